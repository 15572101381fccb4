// The one interface between the loader and the running kernel. LinuxKernel (the addon plus
// /sys) is the real one; tests pass a fake that records calls and injects faults.

/** What /sys/module/NAME says. `undefined`: the kernel does not know the module. */
export type InitState = 'live' | 'coming' | 'going' | undefined;

export interface InsertOptions {
  /** finit_module flags: MODULE_INIT_IGNORE_MODVERSIONS, MODULE_INIT_IGNORE_VERMAGIC. */
  flags?: number;
  /** Formats the kernel decompresses itself (what compression() returns). */
  kernelFormats: readonly string[];
}

export interface Kernel {
  /** Inserts a module file: finit_module, or init_module with the image decompressed in user
   *  space when the kernel cannot take the file as it is (see NativeBinding.insertModule).
   *  Rejects with a SystemError whose `syscall` says which step failed. */
  insertModule(path: string, params: string, options: InsertOptions): Promise<void>;
  deleteModule(name: string, flags: number): Promise<void>;
  /** /sys/module/NAME/initstate; a directory without that file reads as 'coming'. */
  initState(name: string): Promise<InitState>;
  /** /sys/module/NAME/refcnt, or undefined when absent (builtin or not loaded). */
  refcount(name: string): Promise<number | undefined>;
  /** Names in /sys/module/NAME/holders/. */
  holders(name: string): Promise<string[]>;
  /** Algorithms the kernel decompresses itself (/sys/module/compression), e.g. ['xz']. */
  compression(): Promise<string[]>;
}

// Flags of finit_module(2) and delete_module(2).
export const MODULE_INIT_IGNORE_MODVERSIONS = 1;
export const MODULE_INIT_IGNORE_VERMAGIC = 2;
export const MODULE_INIT_COMPRESSED_FILE = 4;
export const O_NONBLOCK = 0o4000;
export const O_TRUNC = 0o1000;
