// ttrpc (containerd/ttrpc channel.go, PROTOCOL.md, request.proto), unary calls only: what NRI
// uses. A message is a 10-byte header (body length uint32 BE, stream id uint32 BE, type u8,
// flags u8) and a protobuf body: a Request {service, method, payload} from the client on a new
// odd stream id, and one Response {status, payload} from the server on the same id.

import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { errorText } from '../text';
import { NriError } from './error';
import { decode, readMessage } from './proto';

export const MESSAGE_HEADER_LENGTH = 10;
/** ttrpc's limit on a message body; a longer one ends the connection. */
export const MAX_MESSAGE_LENGTH = 4 << 20;

export const MessageType = { request: 1, response: 2, data: 3 } as const;

/** google.rpc.Code values this side uses. */
export const StatusCode = {
  ok: 0,
  unknown: 2,
  invalidArgument: 3,
  deadlineExceeded: 4,
  unimplemented: 12,
  unavailable: 14,
} as const;

/** The longest status message sent: far below the message limit, long enough for any reason. */
const MAX_STATUS_MESSAGE = 16 * 1024;

export interface TtrpcMessage {
  streamId: number;
  type: number;
  flags: number;
  body: Buffer;
}

export interface TtrpcRequest {
  service: string;
  method: string;
  payload: Uint8Array;
}

export interface TtrpcStatus {
  code: number;
  message: string;
}

export interface TtrpcResponse {
  /** Absent or code 0: success. */
  status?: TtrpcStatus;
  payload: Uint8Array;
}

/** A call that ended with a non-OK status; as a handler's error, the status to answer. */
export class TtrpcStatusError extends NriError {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = 'TtrpcStatusError';
  }
}

export function encodeMessage(streamId: number, type: number, body: Uint8Array, flags = 0): Buffer {
  if (body.length > MAX_MESSAGE_LENGTH) {
    throw new NriError(`ttrpc message of ${body.length} bytes exceeds ${MAX_MESSAGE_LENGTH}`);
  }
  const out = Buffer.alloc(MESSAGE_HEADER_LENGTH + body.length);
  out.writeUInt32BE(body.length, 0);
  out.writeUInt32BE(streamId, 4);
  out.writeUInt8(type, 8);
  out.writeUInt8(flags, 9);
  out.set(body, MESSAGE_HEADER_LENGTH);
  return out;
}

/** Reassembles the messages of one connection from byte ranges cut anywhere. push() throws
 *  NriError on a body length over MAX_MESSAGE_LENGTH; what it keeps is one header and at
 *  most one body. */
export class MessageReader {
  private readonly header = Buffer.alloc(MESSAGE_HEADER_LENGTH);
  private headerFill = 0;
  private body: Buffer | undefined;
  private bodyFill = 0;

  constructor(private readonly onMessage: (message: TtrpcMessage) => void) {}

  push(bytes: Buffer): void {
    let at = 0;
    while (at < bytes.length) {
      if (this.body === undefined) {
        const take = Math.min(bytes.length - at, MESSAGE_HEADER_LENGTH - this.headerFill);
        bytes.copy(this.header, this.headerFill, at, at + take);
        this.headerFill += take;
        at += take;
        if (this.headerFill < MESSAGE_HEADER_LENGTH) return;
        const length = this.header.readUInt32BE(0);
        if (length > MAX_MESSAGE_LENGTH) {
          throw new NriError(
            `malformed ttrpc message from the runtime: body of ${length} bytes (at most ${MAX_MESSAGE_LENGTH})`,
          );
        }
        this.body = Buffer.alloc(length);
        this.bodyFill = 0;
      } else {
        const take = Math.min(bytes.length - at, this.body.length - this.bodyFill);
        bytes.copy(this.body, this.bodyFill, at, at + take);
        this.bodyFill += take;
        at += take;
      }
      // (A header announcing an empty body completes its message at once.)
      if (this.bodyFill === this.body.length) this.complete(this.body);
    }
  }

  /** Whether no message is partly read. */
  get idle(): boolean {
    return this.headerFill === 0 && this.body === undefined;
  }

  private complete(body: Buffer): void {
    const message = {
      streamId: this.header.readUInt32BE(4),
      type: this.header.readUInt8(8),
      flags: this.header.readUInt8(9),
      body,
    };
    this.headerFill = 0;
    this.body = undefined;
    this.onMessage(message);
  }
}

export function encodeRequest(request: TtrpcRequest): Uint8Array {
  const writer = new BinaryWriter();
  writer.tag(1, WireType.LengthDelimited).string(request.service);
  writer.tag(2, WireType.LengthDelimited).string(request.method);
  if (request.payload.length > 0) writer.tag(3, WireType.LengthDelimited).bytes(request.payload);
  return writer.finish();
}

export function decodeRequest(bytes: Uint8Array): TtrpcRequest {
  const into: TtrpcRequest = { service: '', method: '', payload: new Uint8Array() };
  return decode('ttrpc request', bytes, into, {
    1: [WireType.LengthDelimited, (r, m) => (m.service = r.string())],
    2: [WireType.LengthDelimited, (r, m) => (m.method = r.string())],
    3: [WireType.LengthDelimited, (r, m) => (m.payload = r.bytes())],
  });
}

export function encodeResponse(response: TtrpcResponse): Uint8Array {
  const writer = new BinaryWriter();
  const status = response.status;
  if (status !== undefined && status.code !== StatusCode.ok) {
    writer.tag(1, WireType.LengthDelimited).fork();
    writer.tag(1, WireType.Varint).int32(status.code);
    if (status.message !== '') writer.tag(2, WireType.LengthDelimited).string(status.message);
    writer.join();
  }
  if (response.payload.length > 0) writer.tag(2, WireType.LengthDelimited).bytes(response.payload);
  return writer.finish();
}

export function decodeResponse(bytes: Uint8Array): TtrpcResponse {
  const into: TtrpcResponse = { payload: new Uint8Array() };
  return decode('ttrpc response', bytes, into, {
    1: [
      WireType.LengthDelimited,
      (r, m) =>
        (m.status = readMessage(
          r,
          { code: 0, message: '' },
          {
            1: [WireType.Varint, (s, into) => (into.code = s.int32())],
            2: [WireType.LengthDelimited, (s, into) => (into.message = s.string())],
          },
        )),
    ],
    2: [WireType.LengthDelimited, (r, m) => (m.payload = r.bytes())],
  });
}

/** The status a failed handler answers with: its code when it is a TtrpcStatusError, else
 *  Unknown (what a Go server answers for a plain error); its message as one line, unchanged
 *  when it already is one. */
export function statusOf(error: unknown): TtrpcStatus {
  const code = error instanceof TtrpcStatusError ? error.code : StatusCode.unknown;
  let message = error instanceof Error || typeof error === 'string' ? errorText(error) : '';
  if (message === '') message = 'request failed';
  if (message.length > MAX_STATUS_MESSAGE) message = `${message.slice(0, MAX_STATUS_MESSAGE)}...`;
  return { code, message };
}

/** Answers a request. A synchronous throw is a protocol error that ends the connection (the
 *  server rethrows it); a rejection becomes the call's error status. */
export type UnaryHandler = (request: TtrpcRequest) => Promise<Uint8Array>;

/** The server side of one connection: `send` writes one encoded message. */
export class TtrpcServer {
  private lastStreamId = 0;

  constructor(
    private readonly send: (message: Buffer) => void,
    private readonly handle: UnaryHandler,
  ) {}

  /** Takes one message from the client; throws NriError on a protocol violation. */
  receive(message: TtrpcMessage): void {
    const { streamId } = message;
    if (message.type !== MessageType.request) {
      throw new NriError(
        `unexpected ttrpc message of type ${message.type} on stream ${streamId} from the runtime`,
      );
    }
    // ttrpc's rule: client streams are odd and each new one is higher than the last.
    if (streamId % 2 === 0 || streamId <= this.lastStreamId) {
      throw new NriError(
        `ttrpc request on stream ${streamId} from the runtime: stream id is not odd and increasing`,
      );
    }
    this.lastStreamId = streamId;
    this.handle(decodeRequest(message.body))
      .then(
        (payload) => this.reply(streamId, { payload }),
        (error: unknown) =>
          this.reply(streamId, { status: statusOf(error), payload: new Uint8Array() }),
      )
      // An answer that cannot be sent has no one to go to; it must not end the process.
      .catch(() => undefined);
  }

  private reply(streamId: number, response: TtrpcResponse): void {
    this.send(encodeMessage(streamId, MessageType.response, encodeResponse(response)));
  }
}

interface PendingCall {
  resolve: (payload: Uint8Array) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/** The client side of one connection: `send` writes one encoded message. */
export class TtrpcClient {
  private nextStreamId = 1;
  private readonly pending = new Map<number, PendingCall>();
  private closedWith: Error | undefined;

  constructor(private readonly send: (message: Buffer) => void) {}

  /** Calls `service`.`method`; rejects with TtrpcStatusError on a non-OK status, NriError on a
   *  timeout or when the connection ends first. */
  call(
    service: string,
    method: string,
    payload: Uint8Array,
    timeoutMs: number,
  ): Promise<Uint8Array> {
    if (this.closedWith !== undefined) return Promise.reject(this.closedWith);
    if (this.nextStreamId > 0xffffffff) {
      return Promise.reject(new NriError('ttrpc stream ids exhausted on this connection'));
    }
    const streamId = this.nextStreamId;
    this.nextStreamId += 2;
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(streamId);
        reject(new NriError(`${method}: no answer from the runtime in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(streamId, { resolve, reject, timer });
      this.send(
        encodeMessage(streamId, MessageType.request, encodeRequest({ service, method, payload })),
      );
    });
  }

  /** Takes one message from the server; throws NriError on a protocol violation. */
  receive(message: TtrpcMessage): void {
    const { streamId } = message;
    if (message.type !== MessageType.response) {
      throw new NriError(
        `unexpected ttrpc message of type ${message.type} on stream ${streamId} from the runtime`,
      );
    }
    if (streamId % 2 === 0 || streamId >= this.nextStreamId) {
      throw new NriError(`ttrpc response on stream ${streamId} from the runtime: no such call`);
    }
    const response = decodeResponse(message.body);
    const call = this.pending.get(streamId);
    // A call that timed out is gone: its late answer is dropped.
    if (call === undefined) return;
    this.pending.delete(streamId);
    clearTimeout(call.timer);
    const status = response.status;
    if (status !== undefined && status.code !== StatusCode.ok) {
      call.reject(new TtrpcStatusError(status.code, status.message));
    } else {
      call.resolve(response.payload);
    }
  }

  /** Rejects every pending call, and every later one, with `error`. */
  close(error: Error): void {
    this.closedWith ??= error;
    for (const call of this.pending.values()) {
      clearTimeout(call.timer);
      call.reject(this.closedWith);
    }
    this.pending.clear();
  }
}
