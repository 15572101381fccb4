// Module files are recognised by their first bytes, as kmod does: a `.ko` may be compressed and
// a `.ko.xz` may not be, whatever the name says.

import { promises as fs } from 'node:fs';
import type { CompressionFormat } from '../native/binding';

const MAGICS: ReadonlyArray<{ format: CompressionFormat; bytes: readonly number[] }> = [
  { format: 'gzip', bytes: [0x1f, 0x8b] },
  { format: 'xz', bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { format: 'zstd', bytes: [0x28, 0xb5, 0x2f, 0xfd] },
];

const LONGEST_MAGIC = Math.max(...MAGICS.map((magic) => magic.bytes.length));

/** The compression of a module image from its leading bytes; undefined when plain. */
export function compressionOf(head: Uint8Array): CompressionFormat | undefined {
  for (const magic of MAGICS) {
    if (head.length >= magic.bytes.length && magic.bytes.every((byte, i) => head[i] === byte)) {
      return magic.format;
    }
  }
  return undefined;
}

/** Reads only the first bytes of `path` and tells its compression; undefined when plain. */
export async function detectCompression(path: string): Promise<CompressionFormat | undefined> {
  const handle = await fs.open(path, 'r');
  try {
    const head = Buffer.alloc(LONGEST_MAGIC);
    const { bytesRead } = await handle.read(head, 0, LONGEST_MAGIC, 0);
    return compressionOf(head.subarray(0, bytesRead));
  } finally {
    await handle.close();
  }
}
