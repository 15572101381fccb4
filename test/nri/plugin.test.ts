// The resident plugin against a fake runtime over real unix sockets: registration,
// configuration, the container events, refusals as error statuses, and what happens when the
// runtime goes away, is not there yet, or sends garbage.

import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NriContainer, NriHandlers, NriPlugin, NriPod } from '../../src/nri/plugin';
import { NriError, preRegisteredPlugin, retryDelay, startNriPlugin } from '../../src/nri/plugin';
import type { ContainerSpec, PodSpec, RuntimeConnection } from '../helpers/nri-runtime';
import { FakeRuntime, encodeContainerRequest } from '../helpers/nri-runtime';

/** Log lines, with a way to wait for one. */
class Log {
  readonly lines: string[] = [];
  private waiters: { test: (line: string) => boolean; resolve: (line: string) => void }[] = [];

  readonly write = (line: string): void => {
    this.lines.push(line);
    for (const waiter of [...this.waiters]) {
      if (waiter.test(line)) {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        waiter.resolve(line);
      }
    }
  };

  /** The first line (already written or to come) that matches. */
  waitFor(pattern: RegExp | string): Promise<string> {
    const test = (line: string) =>
      typeof pattern === 'string' ? line.includes(pattern) : pattern.test(line);
    const found = this.lines.find(test);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve) => this.waiters.push({ test, resolve }));
  }
}

type Call = [string, ...unknown[]];

/** Handlers that record their calls; a container annotated test/refuse is refused with the
 *  annotation's text, test/throw makes the handler throw that kind of value, test/hang never
 *  answers. */
function recordingHandlers(): NriHandlers & { calls: Call[]; hung: (() => void)[] } {
  const calls: Call[] = [];
  const hung: (() => void)[] = [];
  return {
    calls,
    hung,
    async synchronize(pods: NriPod[], containers: NriContainer[]) {
      calls.push(['synchronize', pods, containers]);
      if (pods.some((pod) => pod.annotations['test/refuse'])) {
        throw new Error('cannot read the hold table');
      }
    },
    createContainer(pod: NriPod, container: NriContainer) {
      calls.push(['createContainer', pod.id, container.id]);
      const refusal = container.annotations['test/refuse'];
      const kind = container.annotations['test/throw'];
      if (container.annotations['test/hang']) {
        return new Promise<void>((resolve) => hung.push(resolve));
      }
      if (refusal !== undefined) return Promise.reject(new Error(refusal));
      if (kind === 'number') return Promise.reject(42);
      if (kind === 'undefined') return Promise.reject(undefined);
      if (kind === 'string') return Promise.reject('refused as a string');
      if (kind === 'sync') throw new TypeError('thrown before any promise');
      return Promise.resolve();
    },
    async stopContainer(pod: NriPod, container: NriContainer) {
      calls.push(['stopContainer', pod.id, container.id]);
    },
    async removeContainer(pod: NriPod, container: NriContainer) {
      calls.push(['removeContainer', pod.id, container.id]);
    },
  };
}

const POD: PodSpec = {
  id: 'pod-1',
  name: 'web',
  uid: 'uid-1',
  namespace: 'team-a',
  labels: { app: 'web' },
  annotations: { 'kmodload.io/modules': 'ip_vs' },
};
const CONTAINER: ContainerSpec = {
  id: 'ctr-1',
  podSandboxId: 'pod-1',
  name: 'nginx',
  state: 1,
  annotations: { a: 'b' },
  args: ['nginx', '-g', 'daemon off;'],
  env: ['PATH=/usr/bin', 'KMODLOAD=ip_vs'],
};

let dir: string;
let socketPath: string;
let log: Log;
let handlers: ReturnType<typeof recordingHandlers>;
const cleanups: (() => Promise<unknown>)[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-nri-'));
  socketPath = path.join(dir, 'nri.sock');
  log = new Log();
  handlers = recordingHandlers();
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function listen(options?: Parameters<typeof FakeRuntime.listen>[1]): Promise<FakeRuntime> {
  const runtime = await FakeRuntime.listen(socketPath, options);
  cleanups.push(() => runtime.close());
  return runtime;
}

function start(overrides: Partial<Parameters<typeof startNriPlugin>[0]> = {}): NriPlugin {
  const plugin = startNriPlugin({
    socketPath,
    name: 'kmodload',
    idx: '10',
    handlers,
    log: log.write,
    retry: { initialDelayMs: 2, maxDelayMs: 20 },
    ...overrides,
  });
  cleanups.push(() => plugin.stop());
  return plugin;
}

/** The runtime's next connection, registered and configured. */
async function configured(runtime: FakeRuntime): Promise<RuntimeConnection> {
  const connection = await runtime.nextConnection();
  await connection.registered;
  expect(await connection.configure()).toBe(0x608);
  return connection;
}

describe('an external plugin', () => {
  it('registers, subscribes, and answers every event of a container', async () => {
    const runtime = await listen();
    start();
    const connection = await runtime.nextConnection();
    expect(await connection.registered).toEqual({ name: 'kmodload', idx: '10' });
    expect(log.lines.filter((line) => line.includes('registered'))).toEqual([]);
    expect(await connection.configure('containerd', '1.7.24')).toBe(0x608);
    expect(log.lines.filter((line) => line.includes('registered'))).toEqual([
      'registered with containerd 1.7.24 as 10-kmodload',
    ]);

    expect(await connection.synchronize([POD], [{ ...CONTAINER, state: 3, pid: 321 }])).toBe(false);
    expect(handlers.calls).toEqual([
      [
        'synchronize',
        [
          {
            id: 'pod-1',
            name: 'web',
            uid: 'uid-1',
            namespace: 'team-a',
            labels: { app: 'web' },
            annotations: { 'kmodload.io/modules': 'ip_vs' },
          },
        ],
        [
          {
            id: 'ctr-1',
            podSandboxId: 'pod-1',
            name: 'nginx',
            state: 3,
            labels: {},
            annotations: { a: 'b' },
            args: ['nginx', '-g', 'daemon off;'],
            env: ['PATH=/usr/bin', 'KMODLOAD=ip_vs'],
            pid: 321,
          },
        ],
      ],
    ]);
    handlers.calls.length = 0;

    await expect(connection.createContainer(POD, CONTAINER)).resolves.toEqual(new Uint8Array());
    await expect(connection.stopContainer(POD, CONTAINER)).resolves.toEqual(new Uint8Array());
    // REMOVE_CONTAINER (11) through StateChange, as NRI 0.6 sends it; RUN_POD_SANDBOX (1) is
    // not subscribed to and reaches no handler.
    await expect(connection.stateChange(11, POD, CONTAINER)).resolves.toEqual(new Uint8Array());
    await expect(connection.stateChange(1, POD)).resolves.toEqual(new Uint8Array());
    // NRI >= 0.11's own RemoveContainer call.
    await connection.call('RemoveContainer', encodeContainerRequest(POD, CONTAINER));
    expect(handlers.calls).toEqual([
      ['createContainer', 'pod-1', 'ctr-1'],
      ['stopContainer', 'pod-1', 'ctr-1'],
      ['removeContainer', 'pod-1', 'ctr-1'],
      ['removeContainer', 'pod-1', 'ctr-1'],
    ]);

    // Calls it does not subscribe to are answered without change, unknown ones refused.
    await expect(
      connection.call('UpdateContainer', encodeContainerRequest(POD, CONTAINER)),
    ).resolves.toEqual(new Uint8Array());
    await expect(connection.call('UpdatePodSandbox', new Uint8Array())).resolves.toEqual(
      new Uint8Array(),
    );
    await expect(connection.call('Frobnicate', new Uint8Array())).rejects.toMatchObject({
      code: 12,
      message: 'method Frobnicate',
    });
    expect(handlers.calls).toHaveLength(4);
    expect(log.lines).toEqual(['registered with containerd 1.7.24 as 10-kmodload']);
  });

  it('fails a container creation with the handler’s message, unchanged', async () => {
    const runtime = await listen();
    start();
    const connection = await configured(runtime);
    const refusal =
      'kmodload: cannot load ip_vs for container nginx of pod team-a/web: not allowed by /etc/kmodload/policy.yaml';
    const refuse = (annotations: Record<string, string>) =>
      connection.createContainer(POD, { ...CONTAINER, annotations });
    await expect(refuse({ 'test/refuse': refusal })).rejects.toMatchObject({
      name: 'TtrpcStatusError',
      code: 2,
      message: refusal,
    });
    // A message of several lines or with escape sequences stays one line.
    await expect(refuse({ 'test/refuse': 'one\ntwo\x1b[2J' })).rejects.toMatchObject({
      message: 'one\\x0atwo\\x1b[2J',
    });
    // Longer than a frame: the runtime gets it whole.
    const long = 'x'.repeat(10_000);
    await expect(refuse({ 'test/refuse': long })).rejects.toMatchObject({ message: long });
    // Whatever a handler throws is an error status with a line, never a crash.
    await expect(refuse({ 'test/throw': 'number' })).rejects.toMatchObject({
      code: 2,
      message: 'CreateContainer failed',
    });
    await expect(refuse({ 'test/throw': 'undefined' })).rejects.toMatchObject({
      message: 'CreateContainer failed',
    });
    await expect(refuse({ 'test/throw': 'string' })).rejects.toMatchObject({
      message: 'refused as a string',
    });
    await expect(refuse({ 'test/throw': 'sync' })).rejects.toMatchObject({
      message: 'thrown before any promise',
    });
    // A request without a container is refused, not handed on half-empty.
    await expect(
      connection.call('CreateContainer', encodeContainerRequest(POD, undefined)),
    ).rejects.toMatchObject({ code: 3, message: 'CreateContainer request without a container' });
    // The connection is still the same, working one.
    await expect(connection.createContainer(POD, CONTAINER)).resolves.toEqual(new Uint8Array());
    expect(runtime.connectionCount).toBe(1);
  });

  it('gathers a Synchronize split with `more` (NRI >= 0.7) before handing it on', async () => {
    const runtime = await listen();
    start();
    const connection = await configured(runtime);
    expect(await connection.synchronize([POD], [], true)).toBe(true);
    expect(handlers.calls).toEqual([]);
    const second: PodSpec = { ...POD, id: 'pod-2' };
    expect(await connection.synchronize([second], [CONTAINER], false)).toBe(false);
    expect(handlers.calls).toHaveLength(1);
    const [, pods, containers] = handlers.calls[0] as [string, NriPod[], NriContainer[]];
    expect(pods.map((pod) => pod.id)).toEqual(['pod-1', 'pod-2']);
    expect(containers.map((container) => container.id)).toEqual(['ctr-1']);
  });

  it('works with the runtime’s messages cut into frames of one byte', async () => {
    const runtime = await listen({ frameSize: 1 });
    start();
    const connection = await configured(runtime);
    await connection.synchronize([POD], [CONTAINER]);
    await connection.createContainer(POD, CONTAINER);
    await expect(
      connection.createContainer(POD, { ...CONTAINER, annotations: { 'test/refuse': 'no' } }),
    ).rejects.toMatchObject({ message: 'no' });
    expect(handlers.calls.map((call) => call[0])).toEqual([
      'synchronize',
      'createContainer',
      'createContainer',
    ]);
  });

  it('sends RegisterPlugin as its first bytes, exactly', async () => {
    const received: Buffer[] = [];
    const server = net.createServer((socket) => socket.on('data', (chunk) => received.push(chunk)));
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    start({ registrationTimeoutMs: 60_000 });
    while (Buffer.concat(received).length < 80) await new Promise((r) => setTimeout(r, 5));
    const kmodload = Buffer.from('kmodload').toString('hex');
    const runtime = Buffer.from('nri.pkg.api.v1alpha1.Runtime').toString('hex');
    const register = Buffer.from('RegisterPlugin').toString('hex');
    const expected =
      '00000002 00000048' + // frame: connection 2, 72 bytes
      '0000003e 00000001 01 00' + // ttrpc: 62 bytes, stream 1, request
      `0a1c ${runtime} 120e ${register} 1a0e` + // service, method, payload:
      `0a08 ${kmodload} 1202 3130`; // plugin_name, plugin_idx
    expect(Buffer.concat(received).toString('hex')).toBe(expected.replace(/\s+/g, ''));
  });

  it('connects again, with backoff, when the runtime drops it in the middle of a request', async () => {
    const runtime = await listen();
    start();
    const first = await configured(runtime);
    const pending = first.createContainer(POD, {
      ...CONTAINER,
      annotations: { 'test/hang': '1' },
    });
    pending.catch(() => undefined);
    while (handlers.hung.length === 0) await new Promise((r) => setTimeout(r, 1));
    await first.destroy();
    await expect(pending).rejects.toThrow('plugin connection closed');

    const second = await configured(runtime);
    expect(await log.waitFor('connection to the runtime ended')).toBe(
      'connection to the runtime ended: closed by the runtime; connecting again',
    );
    // The handler that hung answers now: to a connection that is gone, harmlessly.
    for (const resolve of handlers.hung) resolve();
    await expect(second.createContainer(POD, CONTAINER)).resolves.toEqual(new Uint8Array());
    expect(log.lines.filter((line) => line.includes('registered'))).toHaveLength(2);
  });

  it('keeps trying while the runtime is not there yet, then connects', async () => {
    start();
    const line = await log.waitFor('cannot connect');
    expect(line).toBe(
      `cannot connect to the runtime at ${socketPath}: connect ENOENT ${socketPath}; retrying`,
    );
    // Let it fail a few more times: the same failure is logged once.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const runtime = await listen();
    await configured(runtime);
    expect(log.lines).toEqual([line, 'registered with containerd 1.7.24 as 10-kmodload']);
  });

  it('says once that a runtime keeps closing on it, and keeps trying', async () => {
    let attempts = 0;
    const server = net.createServer((socket) => {
      attempts += 1;
      socket.once('data', () => socket.end());
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    start();
    while (attempts < 8) await new Promise((r) => setTimeout(r, 2));
    expect(log.lines).toEqual([
      'connection to the runtime ended: closed by the runtime; connecting again',
    ]);
  });

  it('connects again when the runtime refuses the registration', async () => {
    const runtime = await listen();
    runtime.refusals.push('invalid plugin index "10"');
    start();
    await (
      await runtime.nextConnection()
    ).closed;
    expect(await log.waitFor('refused')).toBe(
      'connection to the runtime ended: the runtime refused the registration: invalid plugin index "10"; connecting again',
    );
    await configured(runtime);
  });

  it('connects again when its synchronization fails: NRI would never call it', async () => {
    const runtime = await listen();
    start();
    const first = await configured(runtime);
    const refusedPod = { ...POD, annotations: { 'test/refuse': '1' } };
    await expect(first.synchronize([refusedPod], [])).rejects.toMatchObject({
      code: 2,
      message: 'cannot read the hold table',
    });
    await first.closed;
    // It keeps failing: the plugin keeps trying, saying so once.
    for (let attempt = 0; attempt < 3; attempt++) {
      const again = await configured(runtime);
      await expect(again.synchronize([refusedPod], [])).rejects.toMatchObject({ code: 2 });
      await again.closed;
    }
    const working = await configured(runtime);
    expect(await working.synchronize([POD], [])).toBe(false);
    expect(log.lines.filter((line) => !line.startsWith('registered'))).toEqual([
      'connection to the runtime ended: Synchronize failed: cannot read the hold table; connecting again',
    ]);
    expect(log.lines.filter((line) => line.startsWith('registered'))).toHaveLength(5);
  });

  it('answers Shutdown, closes and ends; a dropped connection is waited for', async () => {
    const runtime = await listen();
    const plugin = start();
    const first = await configured(runtime);
    await first.destroy();
    const second = await configured(runtime);
    await expect(second.shutdown()).resolves.toEqual(new Uint8Array());
    await second.closed;
    await expect(plugin.done).resolves.toBeUndefined();
    expect(log.lines.filter((line) => !line.startsWith('registered'))).toEqual([
      'connection to the runtime ended: closed by the runtime; connecting again',
      'connection to the runtime ended: the runtime shut down',
    ]);
    expect(runtime.connectionCount).toBe(2);
  });

  it('stops cleanly: connected, or while waiting for the runtime', async () => {
    const runtime = await listen();
    const plugin = start();
    const connection = await configured(runtime);
    await plugin.stop();
    await connection.closed;
    await expect(plugin.done).resolves.toBeUndefined();
    await plugin.stop();

    fs.rmSync(socketPath);
    const waiting = start();
    await log.waitFor('cannot connect');
    await waiting.stop();
    await expect(waiting.done).resolves.toBeUndefined();
    const count = runtime.connectionCount;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(runtime.connectionCount).toBe(count);
  });
});

describe('garbage from the runtime', () => {
  const header = (connId: number, length: number) => {
    const bytes = Buffer.alloc(8);
    bytes.writeUInt32BE(connId, 0);
    bytes.writeUInt32BE(length, 4);
    return bytes;
  };
  // (Stream 1 of the Plugin service was Configure's: new requests take higher ids.)
  const ttrpc = (length: number, streamId: number, type: number, body = Buffer.alloc(0)) => {
    const bytes = Buffer.alloc(10);
    bytes.writeUInt32BE(length, 0);
    bytes.writeUInt32BE(streamId, 4);
    bytes.writeUInt8(type, 8);
    return Buffer.concat([bytes, body]);
  };
  const framed = (connId: number, message: Buffer) =>
    Buffer.concat([header(connId, message.length), message]);
  const request = (method: string, payload: string) => {
    const service = Buffer.from('nri.pkg.api.v1alpha1.Plugin');
    const name = Buffer.from(method);
    const body = Buffer.concat([
      Buffer.from([0x0a, service.length]),
      service,
      Buffer.from([0x12, name.length]),
      name,
      Buffer.from([0x1a, payload.length / 2]),
      Buffer.from(payload, 'hex'),
    ]);
    return ttrpc(body.length, 99, 1, body);
  };

  const cases: [string, Buffer, string][] = [
    ['a reserved connection id', header(0, 0), 'connection id 0 is reserved'],
    ['an unknown connection id', header(9, 1), 'unknown connection id 9'],
    ['a frame over the limit', header(1, 0x7fffffff), 'payload of 2147483647 bytes'],
    [
      'a ttrpc message over 4 MiB',
      framed(1, ttrpc(4 * 1024 * 1024 + 1, 1, 1)),
      'malformed ttrpc message from the runtime: body of 4194305 bytes (at most 4194304)',
    ],
    [
      'a request that is not protobuf',
      framed(1, ttrpc(3, 99, 1, Buffer.from('0a0501', 'hex'))),
      'malformed ttrpc request from the runtime: premature EOF',
    ],
    [
      'a CreateContainer payload that is not protobuf',
      framed(1, request('CreateContainer', '0a05')),
      'malformed CreateContainerRequest from the runtime: premature EOF',
    ],
    [
      'a request on an even stream',
      framed(1, ttrpc(0, 2, 1)),
      'stream id is not odd and increasing',
    ],
    ['a data message', framed(1, ttrpc(0, 1, 3)), 'unexpected ttrpc message of type 3'],
    [
      'a request on the client connection',
      framed(2, ttrpc(0, 1, 1)),
      'unexpected ttrpc message of type 1',
    ],
    [
      'a response to no call',
      framed(2, ttrpc(0, 5, 2)),
      'on stream 5 from the runtime: no such call',
    ],
  ];

  it.each(cases)(
    '%s ends the connection with one line, then it connects again',
    async (_, bytes, reason) => {
      const runtime = await listen();
      start();
      const connection = await configured(runtime);
      connection.writeRaw(bytes);
      await connection.closed;
      const line = await log.waitFor('connection to the runtime ended');
      expect(line).toContain(reason);
      expect(line).not.toMatch(/\n/);
      await configured(runtime);
    },
  );

  it('a connection closed in the middle of a frame is a failure, said so', async () => {
    const runtime = await listen();
    start();
    const connection = await configured(runtime);
    connection.socket.end(header(1, 100));
    await connection.closed;
    expect(await log.waitFor('connection to the runtime ended')).toBe(
      'connection to the runtime ended: the runtime closed the connection in the middle of a message; connecting again',
    );
  });
});

describe('options', () => {
  const base = { name: 'kmodload', idx: '10', handlers: recordingHandlers(), log: () => undefined };

  it('a bad name, index or socket is one NriError line, before anything starts', () => {
    const refused = (options: Partial<Parameters<typeof startNriPlugin>[0]>) => {
      try {
        startNriPlugin({ ...base, ...options });
      } catch (error) {
        expect(error).toBeInstanceOf(NriError);
        return (error as Error).message;
      }
      throw new Error('expected an NriError');
    };
    expect(refused({ name: '' })).toBe(
      'invalid NRI plugin name "": letters, digits and _ . + - only',
    );
    expect(refused({ name: 'a/b\n' })).toBe(
      'invalid NRI plugin name "a/b\\x0a": letters, digits and _ . + - only',
    );
    expect(refused({ idx: '1' })).toBe('invalid NRI plugin index "1": two digits expected');
    expect(refused({ idx: '1a' })).toBe('invalid NRI plugin index "1a": two digits expected');
    expect(refused({ socketPath: '/x', socketFd: 3 })).toBe(
      'an NRI plugin takes a socket path or an inherited socket, not both',
    );
    expect(refused({ socketFd: -1 })).toBe('cannot use socket descriptor -1: not a descriptor');
    const file = fs.openSync(path.join(dir, 'not-a-socket'), 'w');
    try {
      expect(refused({ socketFd: file })).toMatch(
        new RegExp(`^cannot use socket descriptor ${file}: `),
      );
    } finally {
      fs.closeSync(file);
    }
  });

  it('reads what a runtime hands the plugins it starts', () => {
    expect(preRegisteredPlugin({})).toBeUndefined();
    expect(
      preRegisteredPlugin({
        NRI_PLUGIN_SOCKET: '3',
        NRI_PLUGIN_NAME: 'kmodload',
        NRI_PLUGIN_IDX: '10',
      }),
    ).toEqual({ socketFd: 3, name: 'kmodload', idx: '10' });
    expect(() => preRegisteredPlugin({ NRI_PLUGIN_SOCKET: '3x' })).toThrow(
      'NRI_PLUGIN_SOCKET is not a file descriptor number: "3x"',
    );
  });

  it('backoff doubles up to its ceiling, each delay between half of it and all of it', () => {
    const retry = { initialDelayMs: 100, maxDelayMs: 1000 };
    expect([0, 1, 2, 3, 4, 40].map((n) => retryDelay(n, retry, 0.999999))).toEqual([
      100, 200, 400, 800, 1000, 1000,
    ]);
    expect([0, 1, 2, 3, 4, 40].map((n) => retryDelay(n, retry, 0))).toEqual([
      50, 100, 200, 400, 500, 500,
    ]);
  });
});
