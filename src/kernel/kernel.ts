// The one interface between the loader and the running kernel. LinuxKernel (the addon plus
// /sys) is the real one; tests pass a fake that records calls and injects faults. What a
// failed insert means is decided here (InsertError), not by the loader.

/** What /sys/module/NAME says. `undefined`: the kernel does not know the module. */
export type InitState = 'live' | 'coming' | 'going' | undefined;

export interface InsertOptions {
  /** finit_module flags: MODULE_INIT_IGNORE_MODVERSIONS, MODULE_INIT_IGNORE_VERMAGIC. */
  flags?: number;
  /** Formats the kernel decompresses itself (what compression() returns). */
  kernelFormats: readonly string[];
}

/** What a failed insert means for the caller:
 *  - `kernel`: finit_module or init_module answered an errno; this module failed;
 *  - `missing-file`: the module file is not there; this module failed (as with modprobe);
 *  - `unusable-file`: the file is there but cannot be used (not a regular file, over the size
 *    cap, a stream that does not decompress): the module tree is broken. */
export type InsertFailure = 'kernel' | 'missing-file' | 'unusable-file';

/** Why insertModule failed. `cause` is the error as the kernel or the file gave it (`code`,
 *  `errno`, `message`); `message` is its reason in one line, without the file's name
 *  ("EBADMSG: xz data is truncated"). */
export class InsertError extends Error {
  constructor(
    readonly failure: InsertFailure,
    override readonly cause: unknown,
    reason: string,
  ) {
    super(reason, { cause });
    this.name = 'InsertError';
  }
}

export interface Kernel {
  /** Inserts a module file: finit_module, or init_module with the image decompressed in user
   *  space when the kernel cannot take the file as it is (see NativeBinding.insertModule).
   *  Rejects with an InsertError saying what the failure means; any other rejection (the addon
   *  missing: a KmodloadError) is not about this module. */
  insertModule(path: string, params: string, options: InsertOptions): Promise<void>;
  deleteModule(name: string, flags: number): Promise<void>;
  /** /sys/module/NAME/initstate; a directory without that file reads as 'coming'. */
  initState(name: string): Promise<InitState>;
  /** /sys/module/NAME/refcnt, or undefined when absent (builtin or not loaded). */
  refcount(name: string): Promise<number | undefined>;
  /** Names in /sys/module/NAME/holders/. */
  holders(name: string): Promise<string[]>;
  /** /sys/module/NAME/parameters/PARAM without its trailing newline; undefined when sysfs does
   *  not show it: no such file (a parameter declared with mode 0, or none of the module's) or
   *  one that cannot be read (write-only). */
  parameter(name: string, param: string): Promise<string | undefined>;
  /** Algorithms the kernel decompresses itself (/sys/module/compression), e.g. ['xz']. */
  compression(): Promise<string[]>;
}

// Flags of finit_module(2) and delete_module(2).
export const MODULE_INIT_IGNORE_MODVERSIONS = 1;
export const MODULE_INIT_IGNORE_VERMAGIC = 2;
export const MODULE_INIT_COMPRESSED_FILE = 4;
export const O_NONBLOCK = 0o4000;
export const O_TRUNC = 0o1000;
