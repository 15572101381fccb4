// The resolver: module database + modprobe.d -> ordered plan, and its --show-depends text.

import { ModuleDatabase, type IndexReading, type ResolverOptions } from '../db';
import { addonPresent, loadBinding } from '../native/addon';
import type { NativeBinding } from '../native/binding';

export { ModuleDatabase, type IndexReading, type ResolverOptions } from '../db';
export { classifyInstallCommand, ruleVerdict } from './rules';
export type { RuleKind, RuleVerdict } from './rules';
export * from './plan';
export { planRequests, type PlanOptions } from './plan-requests';
export { formatShowDepends, showDependsExitStatus } from './show-depends';

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
  opts: ResolverOptions = {},
  reading: IndexReading = 'all',
): Promise<ModuleDatabase> {
  // The addon loads (a dlopen, on this thread) while the configuration is read.
  return ModuleDatabase.open(opts, optionalBinding(), reading);
}

/** The addon, or undefined when it is not there at all. One that is there but does not load
 *  (built for another Node ABI, damaged) is an error: answering from the text files instead
 *  would hide a broken installation until a load needs the addon anyway. */
async function optionalBinding(): Promise<NativeBinding | undefined> {
  return (await addonPresent()) ? loadBinding() : undefined;
}
