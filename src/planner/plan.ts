// What the planner decides and the loader performs: a pure description, made from the
// module tree and configuration alone (no kernel state, no host policy), in kmod modprobe's
// exact order. Nothing is added to a plan once it is made: the host policy's verdict on it
// travels beside it (src/api.ts: CheckedPlan, loadPlan's `verdict`).

/** One module to bring in, as one line of `modprobe --show-depends` would show it. */
export interface ProbeStep {
  /** Normalised module name (`-` -> `_`). */
  name: string;
  /** insmod: load `path`; install: a modprobe.d install rule stands in; builtin: nothing to do. */
  kind: 'insmod' | 'install' | 'builtin';
  /** Absolute path of the module file (insmod). */
  path?: string;
  /** Parameters, merged: modprobe.d options, kernel command line, then the caller's. */
  options: string;
  /** The caller's part of `options` (PlanOptions.extraOptions), on the target step it was
   *  given for: the host policy names which ones a container may pass. */
  extraOptions?: string;
  /** The install rule's command (install). */
  command?: string;
  /** What an install rule amounts to without a shell: `noop` (/bin/true: nothing to load,
   *  nothing to run), `forbid` (/bin/false: the rule forbids the module; a required step
   *  makes the request fail), `shell` (any other command: needs /bin/sh). Set on `install`. */
  installAction?: InstallAction;
  /** A modprobe.d install rule needing a shell that kmod ignores here, because the module has
   *  softdeps (it inserts the module directly). The host meant the module to be loaded its
   *  own way: a caller that may not run shell commands refuses it as if it were an install
   *  step (src/planner/rules.ts). */
  ignoredInstallCommand?: string;
  /** An `insmod` step without `path`: the module is named (by an alias) but is not in
   *  modules.dep. modprobe prints nothing for it and fails to insert it with ENOENT. */
  missing?: boolean;
  /** The probed module or one of its hard dependencies. Softdeps are not required:
   *  modprobe ignores their failures. */
  required: boolean;
  /** This step is the module the probe is for. */
  target: boolean;
  /** The host keeps this module out: a modprobe.d `blacklist` or an `install X /bin/true|false`
   *  rule. modprobe still loads such a module as a dependency or softdep; a host policy
   *  (src/policy) denies it wherever it appears. */
  hostBlock?: HostBlock;
}

export interface HostBlock {
  kind: 'blacklist' | 'install';
  /** The rule as written: "blacklist dccp", "install sctp /bin/false". */
  rule: string;
  /** Where: "FILE:LINE", or "the kernel command line". */
  origin?: string;
}

export type InstallAction = 'noop' | 'forbid' | 'shell';

/** One kmod_module_probe_insert_module(): a module found for a request, with its steps. */
export interface Probe {
  module: string;
  steps: ProbeStep[];
  /** Set when modprobe would skip this match silently (blacklisted alias match). */
  skipped?: 'blacklisted';
}

export type PlanErrorReason =
  | 'invalid-name' // not a module name kmod accepts
  | 'not-found' // no module, alias or builtin by that name
  | 'forbidden' // an install rule that forbids it (install NAME /bin/false)
  | 'install-command' // an install rule that needs a shell, not allowed by the caller
  | 'blacklisted'; // every match blacklisted (-b / useBlacklist)

export interface PlanError {
  reason: PlanErrorReason;
  /** One line for a person: "module ip_vs_wrx not found in /lib/modules/6.1.0-13-amd64". */
  message: string;
}

/** Everything one requested name resolves to. */
export interface RequestPlan {
  /** The name as the caller gave it. */
  request: string;
  /** One probe per lookup match, in kmod's order. Empty when the name could not be looked
   *  up (invalid-name, not-found). For a refusal (forbidden, install-command, blacklisted,
   *  a required module without a file) the probes stay, as `--show-depends` prints them. */
  probes: Probe[];
  /** Set when the request cannot be carried out as planned: load nothing for it. */
  error?: PlanError;
}

export interface Plan {
  /** The module directory used: <root>/lib/modules/<version>. */
  moduleDir: string;
  kernelVersion: string;
  requests: RequestPlan[];
}
