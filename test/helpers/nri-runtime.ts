// A fake NRI runtime: the runtime's side of the wire protocol (as containerd's NRI 0.6 speaks
// it) over a real unix socket. It listens where an external plugin connects, or drives a
// socket it handed to a plugin process; it answers RegisterPlugin, then the test drives the
// Plugin service's calls one by one. Its protobuf encoders are written here, apart from the
// plugin's decoders, from api.proto's field numbers.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { Demultiplexer } from '../../src/nri/multiplex';
import type { TtrpcRequest } from '../../src/nri/ttrpc';
import { MessageReader, TtrpcClient, TtrpcServer, TtrpcStatusError } from '../../src/nri/ttrpc';

const PLUGIN_SERVICE = 'nri.pkg.api.v1alpha1.Plugin';
const RUNTIME_SERVICE = 'nri.pkg.api.v1alpha1.Runtime';

export interface PodSpec {
  id?: string;
  name?: string;
  uid?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface ContainerSpec {
  id?: string;
  podSandboxId?: string;
  name?: string;
  state?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  args?: string[];
  env?: string[];
  pid?: number;
}

function writeMap(writer: BinaryWriter, fieldNo: number, map: Record<string, string> = {}): void {
  for (const [key, value] of Object.entries(map)) {
    writer.tag(fieldNo, WireType.LengthDelimited).fork();
    writer.tag(1, WireType.LengthDelimited).string(key);
    writer.tag(2, WireType.LengthDelimited).string(value);
    writer.join();
  }
}

function writeString(writer: BinaryWriter, fieldNo: number, value: string | undefined): void {
  if (value !== undefined && value !== '')
    writer.tag(fieldNo, WireType.LengthDelimited).string(value);
}

/** Container `id` of pod `podSandboxId` asking for `names` in its env. */
export function asking(id: string, names: string, podSandboxId = 'p'): ContainerSpec {
  return { id, podSandboxId, name: 'main', env: [`KERNEL_MODULES=${names}`] };
}

/** PodSandbox, with the fields the plugin ignores set too (runtime_handler = 7, linux = 8,
 *  pid = 9), as containerd fills them. */
export function encodePod(pod: PodSpec): Uint8Array {
  const writer = new BinaryWriter();
  writeString(writer, 1, pod.id);
  writeString(writer, 2, pod.name);
  writeString(writer, 3, pod.uid);
  writeString(writer, 4, pod.namespace);
  writeMap(writer, 5, pod.labels);
  writeMap(writer, 6, pod.annotations);
  writer.tag(7, WireType.LengthDelimited).string('runc');
  writer.tag(8, WireType.LengthDelimited).fork();
  writer.tag(3, WireType.LengthDelimited).string('/kubepods/besteffort');
  writer.join();
  writer.tag(9, WireType.Varint).uint32(4242);
  return writer.finish();
}

/** Container, with mounts (9) and linux (11) set too. */
export function encodeContainer(container: ContainerSpec): Uint8Array {
  const writer = new BinaryWriter();
  writeString(writer, 1, container.id);
  writeString(writer, 2, container.podSandboxId);
  writeString(writer, 3, container.name);
  if (container.state) writer.tag(4, WireType.Varint).int32(container.state);
  writeMap(writer, 5, container.labels);
  writeMap(writer, 6, container.annotations);
  for (const arg of container.args ?? []) writer.tag(7, WireType.LengthDelimited).string(arg);
  for (const env of container.env ?? []) writer.tag(8, WireType.LengthDelimited).string(env);
  writer.tag(9, WireType.LengthDelimited).fork();
  writer.tag(1, WireType.LengthDelimited).string('/etc/hosts');
  writer.tag(4, WireType.LengthDelimited).string('rbind');
  writer.join();
  writer.tag(11, WireType.LengthDelimited).fork();
  writer.tag(5, WireType.LengthDelimited).string('/kubepods/besteffort/ctr');
  writer.join();
  if (container.pid) writer.tag(12, WireType.Varint).uint32(container.pid);
  return writer.finish();
}

/** A message of nested messages at the given field numbers (0 = absent). */
function encodePair(first: [number, Uint8Array?], second: [number, Uint8Array?]): BinaryWriter {
  const writer = new BinaryWriter();
  for (const [fieldNo, bytes] of [first, second]) {
    if (bytes !== undefined) writer.tag(fieldNo, WireType.LengthDelimited).bytes(bytes);
  }
  return writer;
}

export function encodeContainerRequest(pod?: PodSpec, container?: ContainerSpec): Uint8Array {
  return encodePair(
    [1, pod && encodePod(pod)],
    [2, container && encodeContainer(container)],
  ).finish();
}

export function encodeStateChange(
  event: number,
  pod?: PodSpec,
  container?: ContainerSpec,
): Uint8Array {
  const writer = new BinaryWriter().tag(1, WireType.Varint).int32(event);
  if (pod) writer.tag(2, WireType.LengthDelimited).bytes(encodePod(pod));
  if (container) writer.tag(3, WireType.LengthDelimited).bytes(encodeContainer(container));
  return writer.finish();
}

/** Reads one message's varint and string fields by number (the last of each wins). */
function fields(bytes: Uint8Array): Map<number, string | number | boolean> {
  const reader = new BinaryReader(bytes);
  const found = new Map<number, string | number | boolean>();
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    if (wireType === WireType.Varint) found.set(fieldNo, reader.uint32());
    else if (wireType === WireType.LengthDelimited) found.set(fieldNo, reader.string());
    else reader.skip(wireType, fieldNo);
  }
  return found;
}

export interface Registration {
  name: string;
  idx: string;
}

export interface ConnectionOptions {
  /** Refuse RegisterPlugin with this message. */
  refuseRegistration?: string;
  /** Cut what the runtime writes into frames of at most this many payload bytes. */
  frameSize?: number;
}

/** The runtime's end of one plugin connection. */
export class RuntimeConnection {
  readonly registered: Promise<Registration>;
  readonly closed: Promise<void>;
  private readonly client: TtrpcClient;
  private readonly frameSize: number;

  constructor(
    readonly socket: net.Socket,
    private readonly options: ConnectionOptions = {},
  ) {
    this.frameSize = options.frameSize ?? 1 << 20;
    let register!: (registration: Registration) => void;
    this.registered = new Promise((resolve) => (register = resolve));
    this.closed = new Promise((resolve) => socket.on('close', () => resolve()));
    this.client = new TtrpcClient((message) => this.writeFrames(1, message));
    const server = new TtrpcServer(
      (message) => this.writeFrames(2, message),
      (request) => this.serveRuntime(request, register),
    );
    const pluginService = new MessageReader((message) => this.client.receive(message));
    const runtimeService = new MessageReader((message) => server.receive(message));
    const demux = new Demultiplexer((connId, bytes) =>
      (connId === 1 ? pluginService : runtimeService).push(bytes),
    );
    socket.on('data', (chunk: Buffer) => demux.push(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => this.client.close(new Error('plugin connection closed')));
  }

  /** Calls a Plugin service method; rejects with TtrpcStatusError on an error status. */
  call(method: string, payload: Uint8Array, timeoutMs = 5000): Promise<Uint8Array> {
    return this.client.call(PLUGIN_SERVICE, method, payload, timeoutMs);
  }

  /** Configure as containerd 1.7 sends it; resolves to the plugin's event mask. */
  async configure(
    runtimeName = 'containerd',
    runtimeVersion = '1.7.24',
    config?: string,
  ): Promise<number> {
    const writer = new BinaryWriter();
    if (config !== undefined) writer.tag(1, WireType.LengthDelimited).string(config);
    writer.tag(2, WireType.LengthDelimited).string(runtimeName);
    writer.tag(3, WireType.LengthDelimited).string(runtimeVersion);
    const answer = fields(await this.call('Configure', writer.finish()));
    return Number(answer.get(2) ?? 0);
  }

  /** One Synchronize request; resolves to the answer's `more` (field 2). */
  async synchronize(pods: PodSpec[], containers: ContainerSpec[], more = false): Promise<boolean> {
    const writer = new BinaryWriter();
    for (const pod of pods) writer.tag(1, WireType.LengthDelimited).bytes(encodePod(pod));
    for (const container of containers) {
      writer.tag(2, WireType.LengthDelimited).bytes(encodeContainer(container));
    }
    if (more) writer.tag(3, WireType.Varint).bool(true);
    const answer = fields(await this.call('Synchronize', writer.finish()));
    return answer.get(2) === 1;
  }

  createContainer(pod: PodSpec, container: ContainerSpec): Promise<Uint8Array> {
    return this.call('CreateContainer', encodeContainerRequest(pod, container));
  }

  stopContainer(pod: PodSpec, container: ContainerSpec): Promise<Uint8Array> {
    return this.call('StopContainer', encodeContainerRequest(pod, container));
  }

  stateChange(event: number, pod: PodSpec, container?: ContainerSpec): Promise<Uint8Array> {
    return this.call('StateChange', encodeStateChange(event, pod, container));
  }

  shutdown(): Promise<Uint8Array> {
    return this.call('Shutdown', new Uint8Array());
  }

  /** Writes `bytes` as they are (frames the test made itself). */
  writeRaw(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Frames `message` for connection `connId` and writes it. */
  writeFrames(connId: number, message: Uint8Array): void {
    for (let at = 0; at < message.length; at += this.frameSize) {
      const payload = message.subarray(at, at + this.frameSize);
      const header = Buffer.alloc(8);
      header.writeUInt32BE(connId, 0);
      header.writeUInt32BE(payload.length, 4);
      this.socket.write(Buffer.concat([header, payload]));
    }
  }

  destroy(): Promise<void> {
    this.socket.destroy();
    return this.closed;
  }

  private serveRuntime(
    request: TtrpcRequest,
    register: (registration: Registration) => void,
  ): Promise<Uint8Array> {
    if (request.service !== RUNTIME_SERVICE || request.method !== 'RegisterPlugin') {
      return Promise.reject(new TtrpcStatusError(12, `method ${request.method}`));
    }
    const answer = fields(request.payload);
    register({ name: String(answer.get(1) ?? ''), idx: String(answer.get(2) ?? '') });
    if (this.options.refuseRegistration !== undefined) {
      return Promise.reject(new TtrpcStatusError(2, this.options.refuseRegistration));
    }
    return Promise.resolve(new Uint8Array());
  }
}

/** A runtime listening at `socketPath` for external plugins. */
export class FakeRuntime {
  /** Messages to refuse the next registrations with, one per connection. */
  readonly refusals: string[] = [];
  private readonly all: RuntimeConnection[] = [];
  private readonly accepted: RuntimeConnection[] = [];
  private readonly waiting: ((connection: RuntimeConnection) => void)[] = [];

  private constructor(
    readonly socketPath: string,
    private readonly server: net.Server,
    private readonly options: ConnectionOptions,
  ) {
    server.on('connection', (socket) => {
      const refusal = this.refusals.shift();
      const connection = new RuntimeConnection(
        socket,
        refusal === undefined ? this.options : { ...this.options, refuseRegistration: refusal },
      );
      this.all.push(connection);
      const waiter = this.waiting.shift();
      if (waiter) {
        waiter(connection);
      } else {
        this.accepted.push(connection);
      }
    });
  }

  static async listen(socketPath: string, options: ConnectionOptions = {}): Promise<FakeRuntime> {
    fs.mkdirSync(path.dirname(socketPath), { recursive: true });
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    return new FakeRuntime(socketPath, server, options);
  }

  /** How many connections the plugin has opened so far. */
  get connectionCount(): number {
    return this.all.length;
  }

  /** The next connection not yet handed out, when it comes. */
  nextConnection(): Promise<RuntimeConnection> {
    const ready = this.accepted.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Stops listening and drops every connection. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const connection of this.all) connection.socket.destroy();
    });
  }
}
