// Small text utilities of the hook: bounded reads and decoding of what runtimes send.

import { EXIT, KmodloadError } from '../errors';

/** Reads a whole stream, refusing more than `limit` bytes (the excess is not buffered). */
export async function readBounded(
  stream: NodeJS.ReadableStream,
  limit: number,
  what: string,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const buffer = Buffer.from(chunk);
    size += buffer.length;
    if (size > limit) {
      throw new KmodloadError(`${what} is larger than ${limit} bytes`, EXIT.environment);
    }
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

/** Decodes UTF-8 the way Go's encoding/json (runc, iSulad, CRI-O) does: invalid bytes become
 *  U+FFFD instead of failing, so we see the same strings the runtime saw. Buffer's decoder
 *  replaces them as TextDecoder does and keeps a BOM, without TextDecoder's set-up (a tenth of
 *  a millisecond at its first use in a process). */
export function decodeUtf8(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
}
