// Reading a file the host or a runtime wrote, trusted but possibly broken: it must be a regular
// file (a FIFO would block the hook forever, /dev/zero would fill memory), it is opened
// non-blocking, and it is read up to a cap whatever its size claims.

import fsSync, { constants as fsConstants, type Stats } from 'node:fs';

// fs's callback API, promised by hand: fs.promises would load its own module graph (file
// handles, streams, readline), which costs a short-lived hook more start-up than its reads.
function call<T>(start: (done: (error: NodeJS.ErrnoException | null, value: T) => void) => void) {
  return new Promise<T>((resolve, reject) => {
    start((error, value) => (error ? reject(error) : resolve(value)));
  });
}

/** Why a file could not be read, with an errno-style code ('ENOENT', 'EISDIR', 'EFBIG'...). */
export class FileReadError extends Error {
  constructor(
    readonly file: string,
    readonly code: string,
    reason: string,
  ) {
    super(reason);
    this.name = 'FileReadError';
  }
}

function describe(error: unknown): { code: string; reason: string } {
  const code = (error as NodeJS.ErrnoException).code ?? 'EIO';
  // fs messages read "ENOENT: no such file or directory, open '/x'": keep the part before
  // the path, which the caller names itself.
  const message = String((error as Error).message);
  return { code, reason: message.split(', ')[0] ?? message };
}

/**
 * The whole content of the regular file `file`, at most `limit` bytes.
 * @throws FileReadError: missing, unreadable, not a regular file, or larger than `limit`.
 */
export async function readRegularFile(file: string, limit: number): Promise<Buffer> {
  let fd: number;
  try {
    fd = await call<number>((done) =>
      fsSync.open(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK, done),
    );
  } catch (error) {
    const { code, reason } = describe(error);
    throw new FileReadError(file, code, reason);
  }
  try {
    const stat = await call<Stats>((done) => fsSync.fstat(fd, done));
    assertRegular(file, stat);
    // Read to the end, not to st_size: /proc and /sys files say 0 and have content. One
    // byte more than the cap tells "exactly at the cap" from "over it".
    const chunks: Buffer[] = [];
    let length = 0;
    let chunk = Buffer.alloc(Math.min(Math.max(stat.size + 1, 64 * 1024), limit + 1));
    for (;;) {
      const target = chunk;
      const bytesRead = await call<number>((done) =>
        fsSync.read(fd, target, 0, target.length, null, done),
      );
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      length += bytesRead;
      if (length > limit) throw tooLarge(file, limit);
      // A regular file read up to its size is whole (saves a round trip for the EOF read);
      // a /proc file says 0 and is read until EOF.
      if (stat.size > 0 && length === stat.size && bytesRead < chunk.length) break;
      if (bytesRead === chunk.length) {
        chunk = Buffer.alloc(Math.min(chunk.length * 2, limit + 1 - length));
      } else {
        chunk = chunk.subarray(bytesRead);
      }
    }
    return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, length);
  } catch (error) {
    if (error instanceof FileReadError) throw error;
    const { code, reason } = describe(error);
    throw new FileReadError(file, code, reason);
  } finally {
    // Not waited for: the content is complete, and a read-only descriptor loses nothing.
    fsSync.close(fd, () => undefined);
  }
}

function assertRegular(file: string, stat: Stats): void {
  if (stat.isDirectory())
    throw new FileReadError(file, 'EISDIR', 'not a regular file (a directory)');
  if (!stat.isFile()) throw new FileReadError(file, 'EFTYPE', 'not a regular file');
}

function tooLarge(file: string, limit: number): FileReadError {
  return new FileReadError(file, 'EFBIG', `larger than ${limit} bytes`);
}

/**
 * readRegularFile() without the thread pool: the same checks and errors, for the small files
 * (config.json, modprobe.d, the policy, /proc and /sys, the state directory's), where a read
 * is a few system calls of microseconds and each thread-pool round trip of the asynchronous
 * one costs more than that. Never use it for anything large (the indexes).
 */
export function readRegularFileSync(file: string, limit: number): Buffer {
  let fd: number;
  try {
    fd = fsSync.openSync(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch (error) {
    const { code, reason } = describe(error);
    throw new FileReadError(file, code, reason);
  }
  try {
    const stat = fsSync.fstatSync(fd);
    assertRegular(file, stat);
    // Sized by what the file says, one byte over to see its end; read to EOF all the same
    // (/proc and /sys files say 0 or a page), growing up to one byte over the cap.
    let buffer = Buffer.allocUnsafe(Math.min(Math.max(stat.size + 1, 4096), limit + 1));
    let length = 0;
    for (;;) {
      if (length === buffer.length) {
        const grown = Buffer.allocUnsafe(Math.min(length * 2, limit + 1));
        buffer.copy(grown, 0, 0, length);
        buffer = grown;
      }
      const bytesRead = fsSync.readSync(fd, buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > limit) throw tooLarge(file, limit);
    }
    return buffer.subarray(0, length);
  } catch (error) {
    if (error instanceof FileReadError) throw error;
    const { code, reason } = describe(error);
    throw new FileReadError(file, code, reason);
  } finally {
    fsSync.closeSync(fd);
  }
}

/** What the hook's paths would ask of fs.promises, on fs's callback API (see call()): nothing
 *  a hook runs uses fs.promises (only the resident NRI plugin may, which starts once). */
export const fsAsync = {
  lstat: (file: string): Promise<Stats> => call<Stats>((done) => fsSync.lstat(file, done)),
  stat: (file: string): Promise<Stats> => call<Stats>((done) => fsSync.stat(file, done)),
  readdir: (dir: string): Promise<string[]> => call<string[]>((done) => fsSync.readdir(dir, done)),
  access: (file: string): Promise<void> =>
    call<void>((done) => fsSync.access(file, (error) => done(error, undefined))),
  readFile: (file: string, encoding: BufferEncoding): Promise<string> =>
    call<string>((done) => fsSync.readFile(file, encoding, done)),
  /** mkdir -p, with `mode` for what it creates. */
  mkdirs: (dir: string, mode: number): Promise<void> =>
    call<void>((done) =>
      fsSync.mkdir(dir, { recursive: true, mode }, (error) => done(error, undefined)),
    ),
  open: (file: string, flags: number, mode: number): Promise<number> =>
    call<number>((done) => fsSync.open(file, flags, mode, done)),
  close: (fd: number): Promise<void> =>
    call<void>((done) => fsSync.close(fd, (error) => done(error ?? null, undefined))),
};
