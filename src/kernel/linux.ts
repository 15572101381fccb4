// The real kernel: syscalls through the addon, state through /sys. The addon is loaded on the
// first syscall only, so reading state (dry runs, --show-depends, the hook's empty path) never
// loads the .node file. /sys is read at once, without the thread pool: its files are made in
// memory by the kernel, a few bytes each, read in fewer microseconds than a round trip takes.

import fs from 'node:fs';
import path from 'node:path';
import { FileReadError, readRegularFile } from '../files';
import type { NativeBinding } from '../native/binding';
import { systemErrorReason } from '../native/system-error';
import { InsertError, type InitState, type InsertOptions, type Kernel } from './kernel';

export interface LinuxKernelOptions {
  /** Where sysfs is mounted. Default '/sys'; tests point it at a directory they made. */
  sysfsRoot?: string;
  /** Supplies the addon, asked on the first syscall. Default: the package's (src/system.ts). */
  binding?: () => NativeBinding | Promise<NativeBinding>;
}

async function packageAddon(): Promise<NativeBinding> {
  const { addon } = await import('../system.js');
  return addon();
}

/** The addon's steps on the module file before any syscall (open, fstat, read, decompress). */
const FILE_STEPS = new Set(['open', 'fstat', 'read', 'decompress']);

/** An error of the addon's insertModule as an InsertError, by the step it names. Anything that
 *  is not the addon's account of a syscall or of the module file (a bug) stays as it is. */
function insertError(error: unknown): unknown {
  const { syscall, errno, code } = (error ?? {}) as Partial<Record<string, unknown>>;
  const reason = systemErrorReason(error);
  if (syscall === 'finit_module' || syscall === 'init_module') {
    return new InsertError('kernel', error, reason);
  }
  if (typeof errno !== 'number' || !FILE_STEPS.has(String(syscall))) return error;
  return new InsertError(code === 'ENOENT' ? 'missing-file' : 'unusable-file', error, reason);
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Largest parameter value read from sysfs (a page, and more than enough). */
const PARAMETER_BYTES = 64 * 1024;

/** `Kernel` for the running Linux kernel. */
export class LinuxKernel implements Kernel {
  readonly sysfsRoot: string;
  private readonly getBinding: () => NativeBinding | Promise<NativeBinding>;

  constructor(options: LinuxKernelOptions = {}) {
    this.sysfsRoot = options.sysfsRoot ?? '/sys';
    this.getBinding = options.binding ?? packageAddon;
  }

  async insertModule(modulePath: string, params: string, options: InsertOptions): Promise<void> {
    const binding = await this.getBinding();
    try {
      await binding.insertModule(modulePath, params, options.flags ?? 0, options.kernelFormats);
    } catch (error) {
      throw insertError(error);
    }
  }

  async deleteModule(name: string, flags: number): Promise<void> {
    const binding = await this.getBinding();
    await binding.deleteModule(name, flags);
  }

  async initState(name: string): Promise<InitState> {
    const dir = this.moduleDir(name);
    // The module's directory first: most modules asked about are not in the kernel, and a
    // missing one is then one stat(2) that makes no error.
    let stat: fs.Stats | undefined;
    try {
      stat = fs.statSync(dir, { throwIfNoEntry: false });
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    if (!stat?.isDirectory()) return undefined;
    try {
      const text = fs.readFileSync(path.join(dir, 'initstate'), 'utf8').trim();
      if (text === 'live' || text === 'coming' || text === 'going') return text;
      throw new Error(`unexpected content in ${path.join(dir, 'initstate')}: '${text}'`);
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
    // A module directory without initstate is a module still being set up (or a builtin with
    // parameters, which callers rule out first through modules.builtin).
    return 'coming';
  }

  async refcount(name: string): Promise<number | undefined> {
    try {
      const text = fs.readFileSync(path.join(this.moduleDir(name), 'refcnt'), 'utf8').trim();
      const value = Number.parseInt(text, 10);
      if (!Number.isFinite(value)) {
        throw new Error(`unexpected content in /sys/module/${name}/refcnt: '${text}'`);
      }
      return value;
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  async holders(name: string): Promise<string[]> {
    try {
      const entries = fs.readdirSync(path.join(this.moduleDir(name), 'holders'));
      return entries.filter((entry) => !entry.startsWith('.')).sort();
    } catch (error) {
      if (isMissing(error)) return [];
      throw error;
    }
  }

  async parameter(name: string, param: string): Promise<string | undefined> {
    if (!/^[A-Za-z0-9_-]+$/.test(param)) throw new Error(`invalid parameter name '${param}'`);
    const file = path.join(this.moduleDir(name), 'parameters', param);
    let text: string;
    try {
      // sysfs shows at most a page; the cap is for a directory that is not sysfs.
      text = (await readRegularFile(file, PARAMETER_BYTES)).toString('utf8');
    } catch (error) {
      if (!(error instanceof FileReadError)) throw error;
      // Absent, or not readable (write-only: EACCES; a show method that fails: EIO, EPERM;
      // anything that is not a sysfs attribute): nothing to compare with.
      return undefined;
    }
    return text.endsWith('\n') ? text.slice(0, -1) : text;
  }

  async compression(): Promise<string[]> {
    try {
      const text = fs.readFileSync(path.join(this.sysfsRoot, 'module', 'compression'), 'utf8');
      return text.split(/\s+/).filter((word) => word !== '');
    } catch (error) {
      if (isMissing(error)) return [];
      throw error;
    }
  }

  private moduleDir(name: string): string {
    // Names come from the module tree or a validated request; refuse anything that could
    // walk out of /sys/module.
    if (name === '' || name.includes('/') || name === '.' || name === '..') {
      throw new Error(`invalid module name '${name}'`);
    }
    return path.join(this.sysfsRoot, 'module', name);
  }
}
