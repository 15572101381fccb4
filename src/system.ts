// The addon, wired in one place. It is loaded on first need, never when a module is imported
// (the hook's path that loads nothing must not dlopen it), at most once per process, and
// handed from here to the three parts that use it: the module database (binary indexes,
// libc's fnmatch), the kernel (module syscalls) and the state directory's lock (flock). Those
// take it as a parameter and come here when they are given none; nothing else loads it.

import type { IndexReading, ModuleDatabase, ResolverOptions } from './db/database';
import type { NativeBinding } from './native/binding';

/** The addon. Rejects with KmodloadError (EXIT.environment) when it is missing or cannot be
 *  loaded. */
export async function addon(): Promise<NativeBinding> {
  const { loadBinding } = await import('./native/addon.js');
  return loadBinding();
}

/** The addon for the module indexes, or undefined when it is not there at all (the text files
 *  give the same answers). One that is there but does not load (built for another Node ABI,
 *  damaged) is an error: answering from the text files instead would hide a broken
 *  installation until a load needs the addon anyway. */
async function indexAddon(): Promise<NativeBinding | undefined> {
  const { addonPresent, loadBinding } = await import('./native/addon.js');
  return addonPresent() ? loadBinding() : undefined;
}

/**
 * Opens the module tree <root>/lib/modules/<version> with its configuration, reading every
 * index before it returns (planning then reads nothing), or with `as-needed` all but
 * modules.symbols (then plan through db.settle(), which reads it if a plan needs it). The `.bin`
 * indexes are read through the addon; without the addon (not built), or for a tree without
 * them, the text files give the same answers. Rejects with KmodloadError (EXIT.environment)
 * when the directory is missing, an index is unreadable or corrupt, or the addon exists but
 * cannot be loaded.
 */
export async function openModuleDatabase(
  options: ResolverOptions = {},
  reading: IndexReading = 'all',
): Promise<ModuleDatabase> {
  const { ModuleDatabase } = await import('./db/database.js');
  // The addon loads (a dlopen, on this thread) while the configuration is read.
  return ModuleDatabase.open(options, indexAddon(), reading);
}
