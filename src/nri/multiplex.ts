// NRI's multiplexer (containerd/nri pkg/net/multiplex): one unix stream socket carries two
// logical connections. Every frame is the connection id (uint32, big-endian), the payload
// length (uint32, big-endian) and the payload; id 0 is reserved. A ttrpc message may span
// frames, so bytes are handed on per connection as they arrive, never a frame at a time.

import { NriError } from './error';

/** The runtime calls the plugin here (Plugin service): the plugin is the ttrpc server. */
export const PLUGIN_SERVICE_CONN = 1;
/** The plugin calls the runtime here (Runtime service): the plugin is the ttrpc client. */
export const RUNTIME_SERVICE_CONN = 2;

export const FRAME_HEADER_LENGTH = 8;
/** The largest payload this side sends in one frame. NRI 0.6's reader hands each frame whole
 *  to ttrpc's 4096-byte bufio.Reader and fails (ENOMEM) on a longer one. */
export const MAX_SENT_PAYLOAD = 4096;
/** The largest payload accepted: one whole ttrpc message (10-byte header, 4 MiB body), the
 *  most that NRI's own writer puts in a frame. */
export const MAX_RECEIVED_PAYLOAD = 10 + (4 << 20);

/** `data` as frames of connection `connId`, each payload at most MAX_SENT_PAYLOAD bytes, in
 *  one buffer (one socket write, so frames of two messages never interleave). Callers frame
 *  one ttrpc message at a time: the Go reader must never get bytes of two messages in one
 *  frame. */
export function encodeFrames(connId: number, data: Uint8Array): Buffer {
  const count = Math.ceil(data.length / MAX_SENT_PAYLOAD);
  const out = Buffer.alloc(count * FRAME_HEADER_LENGTH + data.length);
  let at = 0;
  for (let start = 0; start < data.length; start += MAX_SENT_PAYLOAD) {
    const payload = data.subarray(start, start + MAX_SENT_PAYLOAD);
    out.writeUInt32BE(connId, at);
    out.writeUInt32BE(payload.length, at + 4);
    out.set(payload, at + FRAME_HEADER_LENGTH);
    at += FRAME_HEADER_LENGTH + payload.length;
  }
  return out;
}

/**
 * Splits the socket's byte stream back into the two connections. push() hands each payload
 * byte range to `deliver` as soon as it has arrived (so memory stays bounded by what the
 * ttrpc layer keeps) and throws NriError on a frame that cannot be valid: a reserved or
 * unknown connection id, or a payload longer than MAX_RECEIVED_PAYLOAD. After a throw the
 * stream is out of step: the caller ends the connection.
 */
export class Demultiplexer {
  private readonly header = Buffer.alloc(FRAME_HEADER_LENGTH);
  private headerFill = 0;
  private connId = 0;
  private payloadLeft = 0;

  constructor(private readonly deliver: (connId: number, bytes: Buffer) => void) {}

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.payloadLeft > 0) {
        const end = Math.min(chunk.length, at + this.payloadLeft);
        this.payloadLeft -= end - at;
        this.deliver(this.connId, chunk.subarray(at, end));
        at = end;
        continue;
      }
      const take = Math.min(chunk.length - at, FRAME_HEADER_LENGTH - this.headerFill);
      chunk.copy(this.header, this.headerFill, at, at + take);
      this.headerFill += take;
      at += take;
      if (this.headerFill < FRAME_HEADER_LENGTH) break;
      this.headerFill = 0;
      this.startFrame(this.header.readUInt32BE(0), this.header.readUInt32BE(4));
    }
  }

  /** Whether the stream stopped between two frames (a cut mid-frame is a truncated frame). */
  get atFrameBoundary(): boolean {
    return this.headerFill === 0 && this.payloadLeft === 0;
  }

  private startFrame(connId: number, length: number): void {
    if (connId !== PLUGIN_SERVICE_CONN && connId !== RUNTIME_SERVICE_CONN) {
      throw new NriError(
        connId === 0
          ? 'malformed frame from the runtime: connection id 0 is reserved'
          : `malformed frame from the runtime: unknown connection id ${connId}`,
      );
    }
    if (length > MAX_RECEIVED_PAYLOAD) {
      throw new NriError(
        `malformed frame from the runtime: payload of ${length} bytes (at most ${MAX_RECEIVED_PAYLOAD})`,
      );
    }
    this.connId = connId;
    this.payloadLeft = length;
  }
}
