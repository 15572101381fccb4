// The resolver: module database + modprobe.d -> ordered plan, and its --show-depends text.
import { ModuleDatabase, type ResolverOptions } from '../db';
import { loadBinding } from '../native/addon';
import type { NativeBinding } from '../native/binding';

export { ModuleDatabase, type ResolverOptions } from '../db';
export { classifyInstallCommand, ruleVerdict } from './rules';
export type { RuleKind, RuleVerdict } from './rules';
export * from './plan';
export { planRequests, type PlanOptions } from './plan-requests';
export { formatShowDepends, showDependsExitStatus } from './show-depends';

/**
 * Opens the module tree <root>/lib/modules/<version> with its configuration. The `.bin`
 * indexes are read through the addon; without the addon, or for a tree without them, the
 * text files give the same answers. Rejects with KmodloadError (EXIT.environment) when the
 * directory is missing or an index is unreadable.
 */
export async function openModuleDatabase(opts: ResolverOptions = {}): Promise<ModuleDatabase> {
  return ModuleDatabase.open(opts, optionalBinding());
}

function optionalBinding(): NativeBinding | undefined {
  try {
    return loadBinding();
  } catch {
    return undefined; // not built: the text indexes and the JS fnmatch stand in
  }
}
