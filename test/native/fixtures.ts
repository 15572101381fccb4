// What the native tests share. The module trees themselves come from test/helpers/trees.
import * as path from 'node:path';
import type { NativeBinding, SystemError } from '../../src/native/binding';

/** depmod's key normalisation: '-' becomes '_', except inside a [...] class. */
export function normalizeAlias(alias: string): string {
  let out = '';
  let inClass = false;
  for (const ch of alias) {
    if (ch === '[') inClass = true;
    else if (ch === ']') inClass = false;
    out += !inClass && ch === '-' ? '_' : ch;
  }
  return out;
}

/** Module name from a path in modules.dep / modules.builtin: basename without .ko[.xz|...]. */
export function moduleNameFromPath(relpath: string): string {
  const base = path.basename(relpath);
  const dot = base.indexOf('.ko');
  return (dot >= 0 ? base.slice(0, dot) : base).replace(/-/g, '_');
}

/** The error a promise rejects with; fails the test when it resolves instead. */
export async function rejection(promise: Promise<unknown>): Promise<SystemError> {
  try {
    await promise;
  } catch (error) {
    return error as SystemError;
  }
  throw new Error('expected a rejection');
}

/** The insert tests hand real module files to the kernel and expect ENOSYS back: on a kernel
 *  with module support they would load them into the host. Refuse to run there. */
export function requireNoModuleSupport(binding: NativeBinding): void {
  const errno = binding.probeModuleSupport();
  if (errno !== 38) {
    throw new Error(
      `these tests expect a kernel without module support (finit_module: ENOSYS); this one ` +
        `answered errno ${errno}, so they would load modules into it`,
    );
  }
}
