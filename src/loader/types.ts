// Results of loading and unloading, shared by the loader, the public API, the CLI and the hook.

import type { Plan } from '../planner/plan';
import type { PolicyVerdict } from '../policy/types';
import type { ModuleError } from './errno';

export type { ModuleError } from './errno';

/**
 * What happened to one module of the plan.
 * - `loaded`: this call inserted it.
 * - `already-live`: it was live before (or another loader won the race: EEXIST).
 * - `builtin`: compiled into the kernel, nothing to do.
 * - `skipped`: an `install NAME /bin/true` rule says there is nothing to load.
 * - `would-load`: dry run; it would be inserted (or its install command run).
 * - `failed`: the kernel (or the install command) refused it; see `error`.
 */
export type ModuleStatus =
  'loaded' | 'already-live' | 'builtin' | 'skipped' | 'would-load' | 'failed';

export interface ModuleResult {
  /** The requested name this module was first needed for. */
  request: string;
  /** Normalised module name. */
  name: string;
  status: ModuleStatus;
  /** The module file (insmod steps). */
  path?: string;
  /** The parameters passed to the kernel. */
  options?: string;
  /** False for soft dependencies: their failure does not fail the request (as modprobe). */
  required: boolean;
  error?: ModuleError;
}

export interface LoadResult {
  /** True when every request was satisfied; false when a required module failed. */
  ok: boolean;
  plan: Plan;
  /** The host policy's verdict on the plan, when it was checked (then it was ok). */
  verdict?: PolicyVerdict;
  /** One entry per module, in the order the loader reached them; each module once. */
  modules: ModuleResult[];
  /** Modules live with other parameters than asked, where that only warns (each a line). */
  warnings?: string[];
}

/**
 * What happened to one module on unload.
 * - `removed`: this call removed it.
 * - `not-loaded`: it was not in the kernel (modprobe -r succeeds silently for that).
 * - `would-remove`: dry run.
 * - `skipped`: a `remove NAME /bin/true` rule says there is nothing to do.
 * - `in-use`: a soft dependency or a dependency still in use, left in place (not an error).
 * - `failed`: the kernel refused; see `error`.
 */
export type UnloadStatus =
  'removed' | 'not-loaded' | 'would-remove' | 'skipped' | 'in-use' | 'failed';

export interface UnloadModuleResult {
  request: string;
  name: string;
  status: UnloadStatus;
  /** True for the module that was asked for; dependencies and softdeps are best effort. */
  required: boolean;
  error?: ModuleError;
}

export interface UnloadResult {
  /** True when every requested module is out of the kernel (or was never in). */
  ok: boolean;
  modules: UnloadModuleResult[];
}
