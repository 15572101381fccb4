// The resident NRI plugin: connects to the runtime (containerd, CRI-O), registers, subscribes
// to container creation, stop and removal, and hands those events to its handlers. A handler's
// rejection answers the runtime with an error status carrying the rejection's one-line
// message: for CreateContainer, the runtime then fails the container's creation and shows that
// message (in Kubernetes, the pod's CreateContainerError event).
//
// The runtime waits for each answer a limited time (plugin_request_timeout, 2 s by default);
// past it, NRI drops the connection (and creates the container anyway). Handlers must answer
// within it; a late answer is dropped, and the plugin connects again.

import net from 'node:net';
import { errorText, oneLine } from '../text';
import { NriError } from './error';
import type { ContainerRequest, NriContainer, NriPod, SynchronizeRequest } from './messages';
import {
  EMPTY,
  NriEvent,
  PLUGIN_SERVICE,
  RUNTIME_SERVICE,
  decodeConfigureRequest,
  decodeContainerRequest,
  decodeStateChangeEvent,
  decodeSynchronizeRequest,
  encodeConfigureResponse,
  encodeRegisterPluginRequest,
  encodeSynchronizeResponse,
  eventMask,
} from './messages';
import {
  Demultiplexer,
  PLUGIN_SERVICE_CONN,
  RUNTIME_SERVICE_CONN,
  encodeFrames,
} from './multiplex';
import type { TtrpcRequest } from './ttrpc';
import { MessageReader, StatusCode, TtrpcClient, TtrpcServer, TtrpcStatusError } from './ttrpc';

export type { NriContainer, NriPod } from './messages';
export { NriError } from './error';

/** Where a runtime listens for external plugins (NRI's default). */
export const DEFAULT_SOCKET_PATH = '/var/run/nri/nri.sock';

/** The events the plugin subscribes to: 0x608. */
export const NRI_EVENTS = eventMask(
  NriEvent.createContainer,
  NriEvent.stopContainer,
  NriEvent.removeContainer,
);

/** The runtime waits this long for the registration (NRI's plugin_registration_timeout). */
const REGISTRATION_TIMEOUT_MS = 5000;
/** A Synchronize split over several requests (NRI >= 0.7) gathers at most this many objects. */
const MAX_SYNC_OBJECTS = 100_000;
/** How long stop() lets the last answers drain before it closes the socket outright. */
const CLOSE_GRACE_MS = 1000;

/**
 * What the plugin does with the runtime's events. Calls may overlap (the runtime may send the
 * next request before the last answer); a rejection answers the request with an error status
 * whose message is the rejection's message as one line (control characters escaped).
 */
export interface NriHandlers {
  /** The runtime's configuration for this plugin (containerd: the file of plugin_config_path
   *  named after it, for a plugin the runtime starts), before any other call. A rejection
   *  refuses the registration with its message. */
  configure?(config: string): void;
  /** The pods and containers that exist when the plugin connects. NRI 0.6 sends this to
   *  external plugins only; a plugin it starts itself is not synchronized. A rejection makes
   *  the plugin drop the connection and connect again (NRI would never call it otherwise). */
  synchronize(pods: NriPod[], containers: NriContainer[]): Promise<void>;
  /** A rejection fails the container's creation with the rejection's message. */
  createContainer(pod: NriPod, container: NriContainer): Promise<void>;
  stopContainer(pod: NriPod, container: NriContainer): Promise<void>;
  removeContainer(pod: NriPod, container: NriContainer): Promise<void>;
}

export interface NriRetry {
  /** The first delay before connecting again; it doubles after each failure. */
  initialDelayMs: number;
  /** The longest delay. Each delay is drawn between half of it and all of it. */
  maxDelayMs: number;
}

export interface NriPluginOptions {
  /** The runtime's socket for external plugins; default DEFAULT_SOCKET_PATH. */
  socketPath?: string;
  /** A connected socket the runtime handed down (NRI_PLUGIN_SOCKET): the plugin ends with
   *  it, as the runtime starts its plugins anew. Excludes socketPath. */
  socketFd?: number;
  /** The plugin's name: letters, digits, `_ . + -`. */
  name: string;
  /** Two digits: the runtime calls plugins in ascending index order. */
  idx: string;
  handlers: NriHandlers;
  /** Receives one line per event worth a log entry; exactly one line containing
   *  "registered" each time the runtime configures the plugin. */
  log: (line: string) => void;
  /** Reconnection delays; default 250 ms doubling up to 10 s. */
  retry?: Partial<NriRetry>;
  /** How long to wait for the runtime to accept the registration; default 5 s. */
  registrationTimeoutMs?: number;
}

export interface NriPlugin {
  /** Closes the connection (or stops retrying); settles when everything is closed. */
  stop(): Promise<void>;
  /** Settles when the plugin has ended: after stop(), or when an inherited socket's
   *  connection ends (rejected with an NriError when it ended on an error). */
  readonly done: Promise<void>;
}

/** The socket and identity a runtime hands the plugin it starts from its plugin directory
 *  (containerd's plugin_path, /opt/nri/plugins/NN-NAME); undefined when NRI_PLUGIN_SOCKET is
 *  not set. Throws NriError when it is set but is not a descriptor number. */
export function preRegisteredPlugin(
  env: NodeJS.ProcessEnv,
): { socketFd: number; name: string; idx: string } | undefined {
  const socket = env.NRI_PLUGIN_SOCKET;
  if (socket === undefined) return undefined;
  if (!/^[0-9]{1,9}$/.test(socket)) {
    throw new NriError(`NRI_PLUGIN_SOCKET is not a file descriptor number: "${oneLine(socket)}"`);
  }
  return {
    socketFd: Number(socket),
    name: env.NRI_PLUGIN_NAME ?? '',
    idx: env.NRI_PLUGIN_IDX ?? '',
  };
}

/** Starts the plugin: connects (retrying until the runtime is there) or takes over the
 *  inherited socket, and registers. Throws NriError on bad options. */
export function startNriPlugin(options: NriPluginOptions): NriPlugin {
  return new ResidentPlugin(options);
}

class ResidentPlugin implements NriPlugin {
  readonly done: Promise<void>;
  private settle!: (error?: Error) => void;
  private readonly retry: NriRetry;
  private readonly socketPath: string;
  private connection: Connection | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private lastFailure = '';
  private stopping = false;

  constructor(private readonly options: NriPluginOptions) {
    if (!/^[A-Za-z0-9_.+-]+$/.test(options.name)) {
      throw new NriError(
        `invalid NRI plugin name "${oneLine(options.name)}": letters, digits and _ . + - only`,
      );
    }
    if (!/^[0-9]{2}$/.test(options.idx)) {
      throw new NriError(`invalid NRI plugin index "${oneLine(options.idx)}": two digits expected`);
    }
    const { socketFd } = options;
    if (socketFd !== undefined && options.socketPath !== undefined) {
      throw new NriError('an NRI plugin takes a socket path or an inherited socket, not both');
    }
    this.socketPath = options.socketPath ?? DEFAULT_SOCKET_PATH;
    this.retry = {
      initialDelayMs: options.retry?.initialDelayMs ?? 250,
      maxDelayMs: options.retry?.maxDelayMs ?? 10_000,
    };
    this.done = new Promise<void>((resolve, reject) => {
      this.settle = (error) => (error === undefined ? resolve() : reject(error));
    });
    // Whoever holds the plugin may never look at `done`: its rejection is not unhandled.
    this.done.catch(() => undefined);

    if (socketFd === undefined) {
      this.connect();
      return;
    }
    let socket: net.Socket;
    try {
      if (!Number.isInteger(socketFd) || socketFd < 0) throw new Error('not a descriptor');
      socket = new net.Socket({ fd: socketFd, readable: true, writable: true });
    } catch (error) {
      throw new NriError(`cannot use socket descriptor ${socketFd}: ${errorText(error)}`);
    }
    this.connection = new Connection(socket, true, options, (ended) => this.ended(ended));
  }

  stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      if (this.connection === undefined) this.settle();
      else this.connection.end();
    }
    return this.done.then(
      () => undefined,
      () => undefined,
    );
  }

  private connect(): void {
    const socket = net.createConnection({ path: this.socketPath });
    this.connection = new Connection(socket, false, this.options, (ended) => this.ended(ended));
  }

  private ended(connection: Connection): void {
    this.connection = undefined;
    if (this.stopping) {
      this.settle();
      return;
    }
    const reason =
      connection.failure?.message ??
      (connection.shutdown ? 'the runtime shut down' : 'closed by the runtime');
    // A runtime that shuts the plugin down wants it gone (a restarting runtime just drops
    // the connection, and is waited for).
    if (this.options.socketFd !== undefined || (connection.shutdown && !connection.failure)) {
      this.options.log(`connection to the runtime ended: ${reason}`);
      this.settle(connection.failure);
      return;
    }
    // Only a connection that got as far as the runtime's Synchronize was a working one: one
    // that fails before (a runtime that refuses, a handler that cannot synchronize) is
    // retried with growing delays, and reported once, not at every attempt.
    if (connection.synchronized) {
      this.failures = 0;
      this.lastFailure = '';
    }
    const line = connection.connected
      ? `connection to the runtime ended: ${reason}; connecting again`
      : `cannot connect to the runtime at ${oneLine(this.socketPath)}: ${reason}; retrying`;
    if (line !== this.lastFailure) this.options.log(line);
    this.lastFailure = connection.synchronized ? '' : line;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect();
    }, this.nextDelay());
  }

  private nextDelay(): number {
    const delay = retryDelay(this.failures, this.retry);
    this.failures += 1;
    return delay;
  }
}

/** The delay before connection attempt `failures` + 1: the initial delay doubled per failure
 *  up to the longest, then drawn (`random` in [0, 1)) between half of that and all of it, so
 *  that plugins that lost one runtime do not all come back at the same instant. */
export function retryDelay(failures: number, retry: NriRetry, random = Math.random()): number {
  const ceiling = Math.min(retry.maxDelayMs, retry.initialDelayMs * 2 ** Math.min(failures, 30));
  return Math.round(ceiling / 2 + (random * ceiling) / 2);
}

/** One connection to the runtime, from connect (or adoption) to close. */
class Connection {
  connected: boolean;
  /** Whether the runtime sent Configure: the plugin was registered. */
  configured = false;
  /** Whether the plugin answered the runtime's Synchronize: it receives events. */
  synchronized = false;
  /** Whether the runtime announced its shutdown. */
  shutdown = false;
  /** Why the connection ended, when it ended on an error. */
  failure: Error | undefined;
  private readonly demux: Demultiplexer;
  private readonly client: TtrpcClient;
  private readonly server: TtrpcServer;
  private syncPods: NriPod[] = [];
  private syncContainers: NriContainer[] = [];
  private closeTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly socket: net.Socket,
    connected: boolean,
    private readonly options: NriPluginOptions,
    onClose: (connection: Connection) => void,
  ) {
    this.connected = connected;
    this.server = new TtrpcServer(
      (message) => this.write(PLUGIN_SERVICE_CONN, message),
      (request) => this.handle(request),
    );
    this.client = new TtrpcClient((message) => this.write(RUNTIME_SERVICE_CONN, message));
    const pluginService = new MessageReader((message) => this.server.receive(message));
    const runtimeService = new MessageReader((message) => this.client.receive(message));
    this.demux = new Demultiplexer((connId, bytes) =>
      (connId === PLUGIN_SERVICE_CONN ? pluginService : runtimeService).push(bytes),
    );

    socket.on('data', (chunk: Buffer) => {
      try {
        this.demux.push(chunk);
      } catch (error) {
        this.fail(error);
      }
    });
    socket.on('end', () => {
      if (!this.demux.atFrameBoundary || !pluginService.idle || !runtimeService.idle) {
        this.fail(new NriError('the runtime closed the connection in the middle of a message'));
      }
    });
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => {
      clearTimeout(this.closeTimer);
      this.client.close(this.failure ?? new NriError('connection to the runtime closed'));
      onClose(this);
    });
    if (connected) {
      this.register();
    } else {
      socket.on('connect', () => {
        this.connected = true;
        this.register();
      });
    }
  }

  /** Closes the connection after what is written has gone out. */
  end(): void {
    if (!this.connected || this.socket.destroyed) {
      this.socket.destroy();
      return;
    }
    this.socket.end();
    this.closeTimer ??= setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
  }

  private fail(error: unknown): void {
    this.failure ??= error instanceof NriError ? error : new NriError(errorText(error));
    this.socket.destroy();
  }

  private write(connId: number, message: Buffer): void {
    if (!this.socket.destroyed && this.socket.writable) {
      this.socket.write(encodeFrames(connId, message));
    }
  }

  private register(): void {
    const { name, idx } = this.options;
    const timeout = this.options.registrationTimeoutMs ?? REGISTRATION_TIMEOUT_MS;
    this.client
      .call(RUNTIME_SERVICE, 'RegisterPlugin', encodeRegisterPluginRequest(name, idx), timeout)
      .catch((error: unknown) => {
        this.fail(
          error instanceof TtrpcStatusError
            ? new NriError(`the runtime refused the registration: ${errorText(error)}`)
            : error,
        );
      });
  }

  /** Answers the runtime's calls. Undecodable requests throw here, synchronously, and end
   *  the connection; what the handlers refuse becomes the call's error status. */
  private handle(request: TtrpcRequest): Promise<Uint8Array> {
    if (request.service !== PLUGIN_SERVICE) {
      return unimplemented(`service ${request.service}`);
    }
    const { handlers } = this.options;
    const payload = request.payload;
    switch (request.method) {
      case 'Configure':
        return this.configure(payload);
      case 'Synchronize':
        return this.synchronize(decodeSynchronizeRequest(payload));
      case 'CreateContainer':
        return relay(
          'CreateContainer',
          decodeContainerRequest('CreateContainerRequest', payload),
          (pod, container) => handlers.createContainer(pod, container),
        );
      case 'StopContainer':
        return relay(
          'StopContainer',
          decodeContainerRequest('StopContainerRequest', payload),
          (pod, container) => handlers.stopContainer(pod, container),
        );
      // NRI >= 0.11 calls RemoveContainer; older runtimes (0.6 included) send StateChange.
      case 'RemoveContainer':
        return relay(
          'RemoveContainer',
          decodeContainerRequest('RemoveContainerRequest', payload),
          (pod, container) => handlers.removeContainer(pod, container),
        );
      case 'StateChange': {
        const event = decodeStateChangeEvent(payload);
        if (event.event !== NriEvent.removeContainer) return Promise.resolve(EMPTY);
        return relay('RemoveContainer', event, (pod, container) =>
          handlers.removeContainer(pod, container),
        );
      }
      // Not subscribed to; answered empty (no change) should a runtime call them anyway.
      case 'UpdateContainer':
      case 'UpdatePodSandbox':
        return Promise.resolve(EMPTY);
      case 'Shutdown':
        this.shutdown = true;
        // After the answer has been written (it is, before the next turn of the loop).
        setImmediate(() => this.end());
        return Promise.resolve(EMPTY);
      default:
        return unimplemented(`method ${request.method}`);
    }
  }

  private configure(payload: Uint8Array): Promise<Uint8Array> {
    const request = decodeConfigureRequest(payload);
    try {
      this.options.handlers.configure?.(request.config);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    if (!this.configured) {
      this.configured = true;
      const runtime = [request.runtimeName || 'the runtime', request.runtimeVersion].join(' ');
      const { idx, name } = this.options;
      this.options.log(`registered with ${oneLine(runtime.trim())} as ${idx}-${name}`);
    }
    return Promise.resolve(encodeConfigureResponse(NRI_EVENTS));
  }

  private synchronize(request: SynchronizeRequest): Promise<Uint8Array> {
    for (const pod of request.pods) this.syncPods.push(pod);
    for (const container of request.containers) this.syncContainers.push(container);
    if (this.syncPods.length + this.syncContainers.length > MAX_SYNC_OBJECTS) {
      throw new NriError(
        `malformed Synchronize from the runtime: more than ${MAX_SYNC_OBJECTS} pods and containers`,
      );
    }
    if (request.more) return Promise.resolve(encodeSynchronizeResponse(true));
    const pods = this.syncPods;
    const containers = this.syncContainers;
    this.syncPods = [];
    this.syncContainers = [];
    return (async () => {
      try {
        await this.options.handlers.synchronize(pods, containers);
      } catch (error) {
        // NRI keeps a plugin it could not synchronize connected but never calls it: start over.
        const refusal = handlerError('Synchronize', error);
        this.failure ??= new NriError(`Synchronize failed: ${errorText(refusal)}`);
        setImmediate(() => this.end());
        throw refusal;
      }
      this.synchronized = true;
      return encodeSynchronizeResponse(false);
    })();
  }
}

function unimplemented(what: string): Promise<Uint8Array> {
  return Promise.reject(new TtrpcStatusError(StatusCode.unimplemented, what));
}

/** Hands a container event to its handler; a refusal becomes the call's error status. */
async function relay(
  what: string,
  request: ContainerRequest,
  handler: (pod: NriPod, container: NriContainer) => Promise<void>,
): Promise<Uint8Array> {
  const { pod, container } = request;
  if (pod === undefined || container === undefined) {
    const missing = pod === undefined ? 'pod' : 'container';
    throw new TtrpcStatusError(StatusCode.invalidArgument, `${what} request without a ${missing}`);
  }
  try {
    await handler(pod, container);
  } catch (error) {
    throw handlerError(what, error);
  }
  return EMPTY;
}

/** A handler's rejection as an Error whose message says why; anything thrown that has no
 *  text (a number, undefined, an Error without a message) says which call failed. */
function handlerError(what: string, error: unknown): Error {
  if (error instanceof Error && error.message !== '') return error;
  if (typeof error === 'string' && error !== '') return new NriError(error);
  return new NriError(`${what} failed`);
}
