// Small text utilities of the hook: bounded reads and safe quoting of hostile input.

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
 *  U+FFFD instead of failing, so we see the same strings the runtime saw. */
export function decodeUtf8(bytes: Uint8Array): string {
  return new TextDecoder('utf-8', { fatal: false, ignoreBOM: true }).decode(bytes);
}

const MAX_QUOTED = 64;

/** Quotes a string for a one-line message: printable ASCII stays, everything else (control
 *  bytes, newlines, escape sequences, non-ASCII) is written as an escape, and long strings
 *  are cut, so a hostile name cannot forge lines or terminal sequences in a runtime's log. */
export function quote(text: string): string {
  const chars = Array.from(text);
  let out = '';
  for (const ch of chars.slice(0, MAX_QUOTED)) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (code >= 0x20 && code < 0x7f) out += ch;
    else if (code === 0xfffd) out += '\\ufffd';
    else if (code < 0x100) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += `\\u{${code.toString(16)}}`;
  }
  if (chars.length > MAX_QUOTED) out += `...(${chars.length} characters)`;
  return `"${out}"`;
}
