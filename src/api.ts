// The programmatic API: resolve names to a plan, load it, unload, ask a module's state, drop
// the holds of containers that are gone. (The container core, src/container, plans and loads
// through resolve() and loadPlan().)
// The planner, the addon, the unloader and the holds are imported on first use, so requiring
// the package, or planning and loading, is cheap.

import { EXIT, KmodloadError } from './errors';
import type { Kernel } from './kernel/kernel';
import { LinuxKernel } from './kernel/linux';
import { executePlan } from './loader/load';
import type { HeldParameters, ParamConflictPolicy } from './loader/live-params';
import type { LoadResult, ModuleResult, UnloadResult } from './loader/types';
import type { UnloadTarget } from './loader/unload';
import type { Plan } from './planner/plan';
import type { ReleaseResult, StatusReport } from './holds/holds';
import { checkPolicy } from './policy/check';
import { readPolicy } from './policy/read';
import type { Policy, PolicyVerdict, Requester } from './policy/types';
import { openModuleDatabase } from './system';
import { errorText } from './text';
import type * as Planner from './planner/index';
import type { IndexReading, ModuleDatabase, PlanOptions, ResolverOptions } from './planner/index';

/** Where the module tree and configuration come from, how to plan, and how to load. */
export type LoadOptions = ResolverOptions &
  PlanOptions & {
    /** Plan and report; no syscall, no command. /sys is still read to report live modules. */
    dryRun?: boolean;
    /** Run modprobe.d install rules other than /bin/true through /bin/sh. Off by default:
     *  such a rule otherwise refuses the request. */
    allowInstallCommands?: boolean;
    /** The kernel to talk to. Default: a LinuxKernel (the addon and /sys). */
    kernel?: Kernel;
    /** A host policy to check the plan against (resolve() then gives the verdict beside the
     *  plan, load() refuses a plan that fails it before anything loads and reports it as
     *  `verdict`): a parsed Policy, policy file paths (an empty list: the default location),
     *  or null for none, where only the host's modprobe.d blocks and the default max-modules
     *  apply, as in the hook. Absent: no policy check (modprobe's semantics). */
    policy?: Policy | readonly string[] | null;
    /** Who asks, for the policy's `when` conditions. */
    requester?: Requester;
    /** Called with each module's result as soon as it is known. */
    onModuleResult?: (result: ModuleResult) => void;
    /** What a module already live with other parameters than the plan asks means, for the
     *  caller's parameters (`extraOptions`) and for the host's (modprobe.d): `refuse` (nothing
     *  loads, exit 3) or `warn` (the result's `warnings`). Default: warn for both. */
    paramConflict?: ParamConflictPolicy;
    /** Parameters that running containers' holds say kmodload loaded modules with, by module:
     *  compared where sysfs does not show a parameter (the container core sets it). */
    heldParameters?: HeldParameters;
  };

/** `policy` given: resolve() checks the plan against it. */
export type PolicyCheck = Pick<LoadOptions, 'requester'> & {
  policy: Policy | readonly string[] | null;
};

/** A plan and the host policy's verdict on it: what resolve() gives when asked with a policy.
 *  The plan itself is pure data (the tree and configuration alone); the verdict travels beside
 *  it, to loadPlan() (`{ verdict }`) and into the result. */
export interface CheckedPlan {
  plan: Plan;
  verdict: PolicyVerdict;
}

/** As LoadOptions, plus the policy's verdict on the plan, if it was checked: one that is not
 *  ok refuses the plan before anything loads. */
export type LoadPlanOptions = LoadOptions & { verdict?: PolicyVerdict };

export type UnloadOptions = ResolverOptions & {
  /** Decide and report; no delete_module, no command. */
  dryRun?: boolean;
  /** Where container holds are kept (default /run/kmodload): a module a running container
   *  holds is not removed (a requested one refuses the call). */
  stateDir?: string;
  /** Remove held modules anyway. */
  ignoreHolds?: boolean;
  /** Where /proc is, to tell running containers from gone ones (tests). */
  procRoot?: string;
  /** delete_module with O_TRUNC (forced unload, if the kernel allows it). */
  force?: boolean;
  /** Run modprobe.d remove rules other than /bin/true through /bin/sh. Off by default. */
  allowRemoveCommands?: boolean;
  kernel?: Kernel;
};

export type ModuleStateOptions = ResolverOptions & { kernel?: Kernel };

/** Where a module stands: compiled in, in the kernel (by initstate), or not there. */
export type ModuleState = 'builtin' | 'live' | 'coming' | 'going' | 'absent';

async function openDatabase(
  options: ResolverOptions,
  reading: IndexReading = 'all',
): Promise<{ db: ModuleDatabase; planner: typeof Planner }> {
  const planner = await import('./planner/index.js');
  try {
    return { db: await openModuleDatabase(options, reading), planner };
  } catch (error) {
    if (error instanceof KmodloadError) throw error;
    throw new KmodloadError(errorText(error), EXIT.environment, {
      cause: error,
      subject: 'cannot open the module tree',
    });
  }
}

async function withDatabase<T>(
  options: ResolverOptions,
  use: (db: ModuleDatabase, planner: typeof Planner) => Promise<T> | T,
  reading: IndexReading = 'all',
): Promise<T> {
  const { db, planner } = await openDatabase(options, reading);
  try {
    return await use(db, planner);
  } finally {
    db.close();
  }
}

/**
 * Resolves `names` (module names or aliases, as `modprobe -a` takes them) to the plan kmod's
 * modprobe would follow: softdeps, dependencies and every alias match, in order. Touches no
 * kernel state. A name that cannot be planned has `error` set in its RequestPlan. With a
 * `policy` (null included), the plan and the policy's verdict on it (`{ plan, verdict }`).
 *
 * @throws KmodloadError (EXIT.environment) when the module tree, the configuration or the
 *   policy files are unreadable.
 */
export function resolve(names: string[], options: LoadOptions & PolicyCheck): Promise<CheckedPlan>;
export function resolve(
  names: string[],
  options?: LoadOptions & { policy?: undefined },
): Promise<Plan>;
export async function resolve(
  names: string[],
  options: LoadOptions = {},
): Promise<Plan | CheckedPlan> {
  const { plan, verdict } = await planAndCheck(names, options);
  return verdict === undefined ? plan : { plan, verdict };
}

/** The plan, and the policy's verdict on it when there is a policy to check (null included). */
async function planAndCheck(
  names: string[],
  options: LoadOptions,
): Promise<{ plan: Plan; verdict?: PolicyVerdict }> {
  // Read before the tree: a broken policy refuses the request whatever the tree says.
  const policy =
    options.policy === undefined || options.policy === null || !isPolicyFileList(options.policy)
      ? options.policy
      : await readPolicy(options.policy);
  // Planned through settle(): only the indexes the plan needs are read.
  const plan = await withDatabase(
    options,
    (db, planner) => db.settle(() => planner.planRequests(db, names, options)),
    'as-needed',
  );
  if (policy === undefined) return { plan };
  return { plan, verdict: checkPolicy(plan, policy, options.requester) };
}

function isPolicyFileList(policy: Policy | readonly string[]): policy is readonly string[] {
  return Array.isArray(policy);
}

/**
 * Loads `names` and everything they need, as `modprobe -a` would: `resolve()`, then
 * `loadPlan()`.
 *
 * @returns a result per module; `ok: false` when the kernel refused a required module.
 * @throws KmodloadError (EXIT.refused) when any name cannot be planned (unknown, invalid,
 *   blacklisted under `useBlacklist`, forbidden or not-allowed install rule): nothing is loaded.
 * @throws KmodloadError (EXIT.environment) when the module tree or the addon is unusable.
 */
export async function load(names: string[], options: LoadOptions = {}): Promise<LoadResult> {
  const { plan, verdict } = await planAndCheck(names, options);
  return loadPlan(plan, { ...options, verdict });
}

/**
 * Performs a plan from `resolve()` without planning again, e.g. after showing or logging it.
 * Of `options`, only `dryRun`, `allowInstallCommands`, `kernel`, `onModuleResult`,
 * `paramConflict`, `heldParameters` and `verdict` (the policy's, from `resolve()` with a
 * policy or `checkPolicy()`) matter here (the plan already holds the rest). The result carries the verdict beside the plan.
 *
 * @throws KmodloadError (EXIT.refused), before anything is loaded, when a request of the plan
 *   has an `error`, has an install rule that needs a shell and `allowInstallCommands` is off,
 *   or `verdict` is not ok.
 */
export async function loadPlan(plan: Plan, options: LoadPlanOptions = {}): Promise<LoadResult> {
  return executePlan(plan, {
    kernel: options.kernel ?? new LinuxKernel(),
    dryRun: options.dryRun ?? false,
    allowInstallCommands: options.allowInstallCommands ?? false,
    ...(options.verdict ? { verdict: options.verdict } : {}),
    ...(options.onModuleResult ? { onModuleResult: options.onModuleResult } : {}),
    ...(options.paramConflict ? { paramConflict: options.paramConflict } : {}),
    ...(options.heldParameters ? { heldParameters: options.heldParameters } : {}),
  });
}

/** A module tree and its configuration, read once, for a service that plans many times. */
export interface ModuleTree {
  readonly moduleDir: string;
  readonly kernelVersion: string;
  /** As `resolve()`, without reading the tree again; a policy must be parsed already
   *  (readPolicy()). Throws once closed. */
  resolve(names: string[], options: LoadOptions & PolicyCheck): CheckedPlan;
  resolve(names: string[], options?: LoadOptions & { policy?: undefined }): Plan;
  /** Releases the indexes (their in-memory copies). */
  close(): void;
}

/**
 * Opens the module tree and configuration once (`root`, `kernelVersion`, `configDirs`,
 * `kernelCommandLine`); `tree.resolve()` then plans against it, and `loadPlan()` performs the
 * plans. Changes to the tree (depmod) or to modprobe.d are not seen until it is opened again.
 *
 * @throws KmodloadError (EXIT.environment) when the module tree or configuration is unreadable.
 */
export async function openModuleTree(options: ResolverOptions = {}): Promise<ModuleTree> {
  const { db, planner } = await openDatabase(options);
  let open = true;
  return {
    moduleDir: db.moduleDir,
    kernelVersion: db.kernelVersion,
    resolve: ((names: string[], planWith: LoadOptions = {}): Plan | CheckedPlan => {
      if (!open) throw new KmodloadError('the module tree is closed', EXIT.internal);
      const { policy } = planWith;
      if (policy !== undefined && policy !== null && isPolicyFileList(policy)) {
        throw new KmodloadError(
          'ModuleTree.resolve() takes a parsed policy (readPolicy()), not file names',
          EXIT.usage,
        );
      }
      const plan = planner.planRequests(db, names, planWith);
      if (policy === undefined) return plan;
      return { plan, verdict: checkPolicy(plan, policy, planWith.requester) };
    }) as ModuleTree['resolve'],
    close() {
      if (open) db.close();
      open = false;
    },
  };
}

/** The modules each requested name stands for, for removal. */
function unloadTargets(plan: Plan): UnloadTarget[] {
  return plan.requests.map((request) => {
    // Install rules and blacklists do not matter for removal: only a name that cannot be
    // looked up at all is refused.
    if (request.error && request.probes.length === 0) {
      throw new KmodloadError(request.error.message, EXIT.refused, {
        subject: `cannot unload ${request.request}`,
      });
    }
    return { request: request.request, modules: request.probes.map((probe) => probe.module) };
  });
}

/**
 * Removes `names` as `modprobe -r -a` would: the module, then its dependencies left unused,
 * then its soft dependencies. A module that is not loaded is a success (`not-loaded`).
 *
 * @throws KmodloadError (EXIT.refused) before removing anything when a name is unknown, a
 *   module is builtin, in use (its holders named), or protected by a remove rule.
 */
export async function unload(names: string[], options: UnloadOptions = {}): Promise<UnloadResult> {
  return withDatabase(options, async (db, planner) => {
    const plan = await db.settle(() =>
      planner.planRequests(db, names, { allowInstallCommands: true }),
    );
    const targets = unloadTargets(plan);
    const { heldModules } = await import('./holds/holds.js');
    const { executeUnload } = await import('./loader/unload.js');
    const held = options.ignoreHolds ? undefined : await heldModules(options);
    return executeUnload(targets, db, {
      kernel: options.kernel ?? new LinuxKernel(),
      dryRun: options.dryRun ?? false,
      force: options.force ?? false,
      allowRemoveCommands: options.allowRemoveCommands ?? false,
      ...(held ? { held } : {}),
    });
  });
}

/** Where holds are kept, and the kernel to ask about modules. */
export type StatusOptions = { stateDir?: string; procRoot?: string; kernel?: Kernel };

/**
 * Every module kmodload knows about (inserted by a hook, or held by a container): its state
 * and reference count in the kernel, whether a kmodload hook inserted it, and the containers
 * holding it; then the holds of containers that are gone.
 */
export async function status(options: StatusOptions = {}): Promise<StatusReport> {
  const { holdStatus } = await import('./holds/holds.js');
  return holdStatus(options, options.kernel ?? new LinuxKernel());
}

/**
 * The state of module `name` (a module name, `-` and `_` alike): `builtin` per the module
 * tree's modules.builtin, else /sys/module/NAME/initstate (`live`, `coming`, `going`), else
 * `absent`.
 */
export async function moduleState(
  name: string,
  options: ModuleStateOptions = {},
): Promise<ModuleState> {
  const moduleName = name.replace(/-/g, '_');
  if (!/^[A-Za-z0-9_]+$/.test(moduleName)) {
    throw new KmodloadError(`invalid module name '${name}'`, EXIT.refused);
  }
  // Builtin first: a builtin with parameters has a /sys/module directory without initstate.
  const builtin = await withDatabase(options, (db) => db.isBuiltin(moduleName));
  if (builtin) return 'builtin';
  const kernel = options.kernel ?? new LinuxKernel();
  return (await kernel.initState(moduleName)) ?? 'absent';
}

export type GcOptions = ResolverOptions &
  StatusOptions & {
    /** Unload what the dropped holds were the last to need (as --unload-on-stop would have). */
    unload?: boolean;
    /** Holds without a process to check (pid -1) count as gone after this long. */
    olderThanMs?: number;
  };

/**
 * Drops the holds of containers that are gone (their process, or its start time, no longer
 * there) and, with `unload`, unloads what no container holds any more and a kmodload hook
 * inserted, unless a modprobe.d remove rule keeps it.
 */
export async function gc(options: GcOptions = {}): Promise<ReleaseResult> {
  const { collectGarbage } = await import('./holds/holds.js');
  const { removeRuleKeeper } = await import('./holds/keep.js');
  return collectGarbage(options, {
    unload: options.unload === true,
    kernel: options.kernel ?? new LinuxKernel(),
    ...(options.unload ? { keep: await removeRuleKeeper(options) } : {}),
    ...(options.olderThanMs === undefined ? {} : { olderThanMs: options.olderThanMs }),
  });
}
