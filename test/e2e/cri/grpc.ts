// Unary gRPC calls over HTTP/2 on a unix socket, with node:http2 alone: a POST to
// /SERVICE/METHOD with content-type application/grpc, the request as one length-prefixed
// message (1 byte "compressed" = 0, 4 bytes big-endian length, the protobuf bytes), the reply
// the same way, and the outcome in the grpc-status / grpc-message trailers (or in the headers
// of a "trailers-only" reply, which is how servers send most errors).

import http2 from 'node:http2';
import net from 'node:net';

/** Largest reply accepted; CRI replies of the scenario are a few hundred bytes. */
const MAX_MESSAGE_BYTES = 4 << 20;

/** gRPC status codes, for messages. */
const STATUS_NAMES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

/** A call that did not succeed: the server's status and message, or a transport failure. */
export class GrpcError extends Error {
  constructor(
    readonly method: string,
    /** The gRPC status; -1 when the call failed before the server answered. */
    readonly code: number,
    /** The server's grpc-message (decoded), or what went wrong on the way. */
    readonly detail: string,
  ) {
    super(`${method}: ${STATUS_NAMES[code] ?? `status ${code}`}: ${detail}`);
  }
}

/** One message as gRPC frames it: flag byte 0, uint32 big-endian length, the bytes. */
export function frameMessage(message: Uint8Array): Buffer {
  const framed = Buffer.alloc(5 + message.length);
  framed.writeUInt32BE(message.length, 1);
  framed.set(message, 5);
  return framed;
}

/** The single message of a unary reply body; throws on anything else. */
export function unframeMessage(body: Buffer): Uint8Array {
  if (body.length < 5) throw new Error(`reply of ${body.length} bytes, not one gRPC message`);
  if (body[0] !== 0) throw new Error('compressed reply (none was asked for)');
  const length = body.readUInt32BE(1);
  if (length > MAX_MESSAGE_BYTES) throw new Error(`reply message of ${length} bytes`);
  if (body.length !== 5 + length) {
    throw new Error(`reply body of ${body.length} bytes for a message of ${length}`);
  }
  return body.subarray(5);
}

/** grpc-message is percent-encoded UTF-8 (every byte outside printable ASCII, and '%'). */
export function decodeGrpcMessage(value: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const hex = value.slice(i + 1, i + 3);
    if (value[i] === '%' && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(value[i]!, 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

function header(headers: http2.IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** A connection to one gRPC server on a unix socket; every call has a deadline. */
export class GrpcClient {
  private session: http2.ClientHttp2Session | undefined;

  constructor(
    readonly socketPath: string,
    readonly timeoutMs: number,
  ) {}

  private connect(): http2.ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    const session = http2.connect('http://localhost', {
      createConnection: () => net.connect(this.socketPath),
    });
    // Errors reach each call through its stream; an unhandled 'error' would throw.
    session.on('error', () => {});
    this.session = session;
    return session;
  }

  /** Calls SERVICE/METHOD with the request's bytes and resolves with the reply's. */
  call(service: string, method: string, request: Uint8Array): Promise<Uint8Array> {
    const session = this.connect();
    return new Promise((resolve, reject) => {
      const fail = (code: number, detail: string): void => {
        clearTimeout(timer);
        reject(new GrpcError(method, code, detail));
      };
      const stream = session.request({
        ':method': 'POST',
        ':path': `/${service}/${method}`,
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-timeout': `${Math.max(1, Math.ceil(this.timeoutMs / 1000))}S`,
      });
      const timer = setTimeout(() => {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        fail(4, `no reply within ${this.timeoutMs / 1000} s`);
      }, this.timeoutMs);
      const chunks: Buffer[] = [];
      let received = 0;
      let status: string | undefined;
      let statusMessage = '';
      const takeStatus = (headers: http2.IncomingHttpHeaders): void => {
        const code = header(headers, 'grpc-status');
        if (code !== undefined) {
          status = code;
          statusMessage = decodeGrpcMessage(header(headers, 'grpc-message') ?? '');
        }
      };
      stream.on('response', (headers) => {
        const httpStatus = headers[':status'];
        if (httpStatus !== 200) {
          stream.close(http2.constants.NGHTTP2_CANCEL);
          fail(-1, `HTTP status ${String(httpStatus)} (not a gRPC server?)`);
          return;
        }
        takeStatus(headers);
      });
      stream.on('trailers', takeStatus);
      stream.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > MAX_MESSAGE_BYTES + 5) {
          stream.close(http2.constants.NGHTTP2_CANCEL);
          fail(8, `reply over ${MAX_MESSAGE_BYTES} bytes`);
          return;
        }
        chunks.push(chunk);
      });
      stream.on('error', (error: Error) => fail(-1, error.message));
      stream.on('close', () => {
        clearTimeout(timer);
        if (status === undefined) {
          fail(-1, `stream on ${this.socketPath} closed without a grpc-status`);
        } else if (status !== '0') {
          fail(Number(status), statusMessage);
        } else {
          try {
            resolve(unframeMessage(Buffer.concat(chunks)));
          } catch (error) {
            fail(13, (error as Error).message);
          }
        }
      });
      stream.end(frameMessage(request));
    });
  }

  close(): void {
    this.session?.close();
    this.session = undefined;
  }
}
