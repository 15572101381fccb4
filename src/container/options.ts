// How a node loads modules for its containers: one set of options, the same for every front
// end (the hook, the NRI plugin, the library), passed down as it is.

import type { Kernel } from '../kernel/kernel';
import type { LoadResult, ModuleResult } from '../loader/types';
import type { Plan } from '../planner/plan';
import type { PlanOptions, ResolverOptions } from '../planner/index';
import type { HeldParameters, ParamConflictPolicy } from '../loader/live-params';
import type { PolicyVerdict } from '../policy/types';

/** What the core needs of the planner and loader (src/api.ts); tests stand in for it. */
export interface ContainerLoader {
  resolve(names: string[], options?: ContainerLoadOptions): Promise<Plan>;
  loadPlan(plan: Plan, options?: ContainerLoadOptions): Promise<LoadResult>;
}

/** The options the core gives the loader. */
export type ContainerLoadOptions = ResolverOptions &
  PlanOptions & {
    dryRun?: boolean;
    allowInstallCommands?: boolean;
    onModuleResult?: (result: ModuleResult) => void;
    /** loadPlan: the policy's verdict on the plan. */
    verdict?: PolicyVerdict;
    /** loadPlan: what a module live with other parameters means. */
    paramConflict?: ParamConflictPolicy;
    /** loadPlan: the parameters running containers' holds say their hooks inserted with. */
    heldParameters?: HeldParameters;
  };

export interface NodeOptions {
  /** Module tree root, like modprobe -d. */
  root?: string;
  /** Kernel version, like modprobe -S. */
  kernelVersion?: string;
  /** modprobe.d directories replacing the defaults, like modprobe -C. */
  configDirs?: string[];
  /** Host policy files (`--policy`); absent or empty: /etc/kmodload/policy.conf and
   *  policy.d/*.conf, when they exist. */
  policyFiles?: string[];
  /** Plan and report, load nothing, record no hold. */
  dryRun?: boolean;
  /** Where holds are kept (`--state-dir`); default /run/kmodload. */
  stateDir?: string;
  /** When a container goes, unload the modules it was the last to hold (`--unload-on-stop`). */
  unloadOnStop?: boolean;
  /** Append one JSON line per decision to this file (`--log`). */
  logFile?: string;
  /** The kernel for unloading; default a LinuxKernel. */
  kernel?: Kernel;
  /** Where /proc is (tests). */
  procRoot?: string;
  /** The planner and loader; default the package's own (src/api.ts), required on first use. */
  loader?: ContainerLoader;
  /** Use files that others than root could have written (tests; `--insecure-files`). Noted
   *  in every decision's warnings. */
  insecureFiles?: boolean;
}
