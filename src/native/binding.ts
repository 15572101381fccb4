// The shape of the compiled addon (native/src), as loadBinding() hands it out: everything that
// blocks returns a Promise and runs on libuv's thread pool; failures are Node-style errors
// (see SystemError), named in system-error.ts from the errno the addon reports.

/** An error as `fs` makes them: `code` ('EEXIST'), `errno` (positive), `syscall`, `path`. */
export interface SystemError extends Error {
  code: string;
  errno: number;
  syscall: string;
  path?: string;
}

/** One value stored under a key of a kmod binary index. Lower priority sorts first. */
export interface IndexValue {
  value: string;
  priority: number;
}

/** A modules.*.bin file read into memory. Lookups are synchronous and bounded: each reaches a
 *  node at most once and a wildcard's fnmatch() work is capped (EBADMSG beyond). */
export interface NativeIndex {
  /** Exact lookup: the values stored under exactly `key`, in kmod's order (by priority). */
  exact(key: string): IndexValue[];
  /** Wildcard lookup: every stored pattern that fnmatch()es `key`, values in kmod's order. */
  wildcard(key: string): IndexValue[];
  /** Every key with its values, in trie order (tests and the text comparison use it). */
  entries(): Array<{ key: string; values: IndexValue[] }>;
  /** Frees the copy. Further calls throw. */
  close(): void;
}

export type CompressionFormat = 'gzip' | 'xz' | 'zstd';

/** The steps an insert took: 'finit_module', 'finit_module(compressed)', 'decompress(xz)',
 *  'init_module'. Errors from insertModule carry the same list as `attempts`. */
export interface InsertOutcome {
  attempts: string[];
}

export interface NativeBinding {
  /**
   * Inserts a module file, as kmod does: opened once (regular files only, non-blocking), its
   * compression read from its first bytes; finit_module(fd) when it is plain or the kernel
   * decompresses the format (`kernelFormats`, from /sys/module/compression), otherwise, or when
   * finit_module answers ENOSYS (or EINVAL to the compressed flag), the same fd read and
   * decompressed in user space (1 GiB cap) for init_module. `flags`: MODULE_INIT_IGNORE_*.
   */
  insertModule(
    path: string,
    params: string,
    flags: number,
    kernelFormats: readonly string[],
  ): Promise<InsertOutcome>;
  /** The image insertModule would give init_module: the file's bytes, decompressed. */
  readModuleImage(path: string): Promise<{ format: CompressionFormat | null; image: Buffer }>;
  deleteModule(name: string, flags: number): Promise<void>;
  /** Reads a kmod index file (regular file, at most 32 MiB) into memory; rejects (code
   *  EBADMSG / ENOENT / EFBIG ...) on a bad file. A 0-byte file is an empty index. */
  openIndex(path: string): Promise<NativeIndex>;
  /** As openIndex, at once: only the header is read now, and each 16 KiB block of the file
   *  when a lookup first reaches it (a read of microseconds, on the calling thread), into
   *  memory reserved for the file; the file stays open until close(). For a process that
   *  asks a few keys; a lookup meeting a file shorter than it was throws EBADMSG. */
  openIndexOnDemand(path: string): NativeIndex;
  /** libc fnmatch(pattern, string, 0), the matcher kmod uses for aliases. */
  fnmatch(pattern: string, string: string): boolean;
  /** flock(2) on an open fd. Synchronous: `operation` must include LOCK_NB (or be LOCK_UN);
   *  throws (code EWOULDBLOCK/EAGAIN) when another process holds the lock. */
  flock(fd: number, operation: number): void;
  /** finit_module(-1, "", 0)'s errno: EBADF (9) means the kernel has module support,
   *  ENOSYS (38) that it has none, EPERM (1) no privilege or modules_disabled. */
  probeModuleSupport(): number;
}

// flock(2) operations.
export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;
