// The host policy: which modules containers may have. Parsed from /etc/kmodload/policy.conf
// (and policy.d), checked against a plan: the modules themselves, not the strings asked for.

/** The default policy: this file, then policy.d/*.conf in name order. */
export const DEFAULT_POLICY_FILE = '/etc/kmodload/policy.conf';
export const DEFAULT_POLICY_DIR = '/etc/kmodload/policy.d';

export type Verdict = 'allow' | 'deny';

/** Where a container's request came from: `KERNEL_MODULES`, the annotation, or a CDI device
 *  (the hook's `--module` arguments, written into the device's spec by the host). */
export type RequestSource = 'env' | 'annotation' | 'cdi';
export const REQUEST_SOURCES: readonly RequestSource[] = ['env', 'annotation', 'cdi'];
/** The sources as messages list them: "env, annotation or cdi". */
export const REQUEST_SOURCES_TEXT = `${REQUEST_SOURCES.slice(0, -1).join(', ')} or ${REQUEST_SOURCES.at(-1)}`;

export type PolicyCondition =
  /** The container has annotation `key` and its value matches `value` (fnmatch). */
  | { kind: 'annotation'; key: string; value: string }
  /** The request came from this source. */
  | { kind: 'source'; source: RequestSource }
  /** The pod's namespace matches `value` (fnmatch): a typed fact the runtime sets (NRI). */
  | { kind: 'namespace'; value: string }
  /** The pod has label `key` and its value matches `value` (fnmatch): set by the runtime (NRI). */
  | { kind: 'pod-label'; key: string; value: string };

/** Conditions on facts only some front ends have (the NRI plugin; not the hook). */
export const RUNTIME_FACT_CONDITIONS: ReadonlySet<PolicyCondition['kind']> = new Set([
  'namespace',
  'pod-label',
]);

export interface PolicyRule {
  verdict: Verdict;
  /** fnmatch patterns on module names, `-` written as `_` (kmod's spelling). */
  patterns: string[];
  /** All must hold for the rule to apply; none: it always applies. */
  conditions: PolicyCondition[];
  /** "FILE:LINE". */
  origin: string;
  /** The rule as written, for messages: "deny xfs". */
  text: string;
}

/** `params MODULE-GLOB PARAM=VALUE-GLOB... [when COND...]`: the parameters (and values) a
 *  container may pass for a module. A parameter no applicable rule names is refused. */
export interface ParamsRule {
  /** fnmatch pattern on module names, `-` written as `_`. */
  pattern: string;
  /** Parameter names (`-` written as `_`) and fnmatch patterns on their values. */
  params: Array<{ name: string; value: string }>;
  /** All must hold for the rule to apply (as an allow's). */
  conditions: PolicyCondition[];
  /** "FILE:LINE". */
  origin: string;
  /** The rule as written. */
  text: string;
}

/** What a module that is live with other parameters than asked means (`on-param-conflict`). */
export type ParamConflictAction = 'refuse' | 'warn';

/** A setting and where it was set; `origin` is absent for the built-in default. */
export interface PolicySetting<T> {
  value: T;
  origin?: string;
}

export interface Policy {
  /** The files read, in order. */
  files: string[];
  /** The verdict for a requested module that no applicable rule names (built in: allow). */
  default: PolicySetting<Verdict>;
  /** The most module files one request's plan may name, loaded or not (built in:
   *  DEFAULT_MAX_MODULES). */
  maxModules: PolicySetting<number>;
  rules: PolicyRule[];
  /** `params` rules, in file order. */
  paramRules: ParamsRule[];
  /** `on-param-conflict`; absent: refuse for a container's parameters, warn for modprobe.d's. */
  paramConflict?: PolicySetting<ParamConflictAction>;
}

/** One problem of a policy file: `FILE:LINE: message`. */
export interface PolicyProblem {
  file: string;
  /** 0 when the problem is the file as a whole (cannot be read). */
  line: number;
  message: string;
}

/** Who asks: what the policy's conditions are tested against. */
export interface Requester {
  /** Where the names came from: one source for all, or the sources of each requested name
   *  (a name asked for in both the env and the annotation has both). Unknown: `source`
   *  conditions do not hold. */
  source?: RequestSource | Readonly<Record<string, readonly RequestSource[]>>;
  /** The container's annotations. */
  annotations?: Readonly<Record<string, string>>;
  /** The pod's namespace, as the runtime gives it (NRI); undefined where the front end has no
   *  such typed fact (the hook): an allow that needs it does not apply, a deny that needs it
   *  does. */
  namespace?: string;
  /** The pod's labels, as the runtime gives them (NRI); undefined as for `namespace`. */
  podLabels?: Readonly<Record<string, string>>;
}

/** What a module is to the request that brings it. */
export type ModuleRole = 'target' | 'dependency' | 'softdep';

export interface PolicyDecision {
  /** The name asked for. */
  request: string;
  /** The module (normalised name). */
  module: string;
  role: ModuleRole;
  verdict: Verdict;
  /** Set when the decision is about a parameter the caller passes (`NAME=VALUE`), not about
   *  the module itself. */
  param?: string;
  /** What decided: "FILE:LINE (deny xfs)", "default allow", "host: blacklist dccp (FILE:LINE)",
   *  "with ip_vs" (a dependency or softdep that no rule denies comes with its target). */
  rule: string;
}

export interface PolicyViolation {
  /** The name asked for; absent for a limit on the whole request. */
  request?: string;
  /** Without "cannot load REQUEST: ", e.g. "xfs is denied by FILE:4 (deny xfs)". */
  reason: string;
}

export interface PolicyVerdict {
  ok: boolean;
  /** The policy files that decided, or null: no policy file (only the host's blocks and the
   *  default limit applied). */
  policy: string[] | null;
  /** Module files the plan names (loaded or not: the plan does not know), and the limit. */
  modules: number;
  maxModules: number;
  /** One per module and request, in plan order. */
  decisions: PolicyDecision[];
  violations: PolicyViolation[];
}

/** Most module files one request's plan may name when the policy does not say (`max-modules`). */
export const DEFAULT_MAX_MODULES = 64;
