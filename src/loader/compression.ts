// Module files are recognised by their first bytes, as kmod does: a `.ko` may be compressed and
// a `.ko.xz` may not be, whatever the name says.

import { promises as fs } from 'node:fs';
import type { CompressionFormat } from '../native/binding';

const MAGICS: ReadonlyArray<{ format: CompressionFormat; bytes: readonly number[] }> = [
  { format: 'gzip', bytes: [0x1f, 0x8b] },
  { format: 'xz', bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { format: 'zstd', bytes: [0x28, 0xb5, 0x2f, 0xfd] },
];

// An xz stream header is the magic, a zero byte and the check type. The kernel's xz decoder
// accepts only streams without a check or with CRC32 (what `xz --check=crc32` and kbuild
// write); plain `xz` writes CRC64, which finit_module rejects with EINVAL.
const XZ_CHECK_OFFSET = 7;
const XZ_CHECKS_THE_KERNEL_DECODES: readonly number[] = [0x00, 0x01];
const HEAD_BYTES = XZ_CHECK_OFFSET + 1;

/** How a module file is compressed. */
export interface ModuleCompression {
  format: CompressionFormat;
  /** False when the kernel's own decompressor cannot read this stream even if it supports
   *  the format (an xz check other than none or CRC32): decompress in user space. */
  kernelDecodable: boolean;
}

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
export async function detectCompression(path: string): Promise<ModuleCompression | undefined> {
  const handle = await fs.open(path, 'r');
  try {
    const head = Buffer.alloc(HEAD_BYTES);
    const { bytesRead } = await handle.read(head, 0, HEAD_BYTES, 0);
    const format = compressionOf(head.subarray(0, bytesRead));
    if (format === undefined) return undefined;
    const kernelDecodable =
      format !== 'xz' ||
      (bytesRead > XZ_CHECK_OFFSET &&
        XZ_CHECKS_THE_KERNEL_DECODES.includes(head[XZ_CHECK_OFFSET] as number));
    return { format, kernelDecodable };
  } finally {
    await handle.close();
  }
}
