// "A container asks": read the policy while the request is planned, check the plan, load it,
// record the container's hold, and answer with one decision record. The hook, the NRI plugin
// and the library all come here; none of them decides anything itself.
// The no-request path loads nothing of the policy, planner or loader: a hooks.d entry with
// `when.always` runs for every container on the node.

import { EXIT, KmodloadError } from '../errors';
import type { LoadResult, ModuleResult } from '../loader/types';
import type { Plan } from '../planner/plan';
import type { PolicyVerdict, Requester } from '../policy/types';
import { errorText, oneLine, quote } from '../text';
import { INSECURE_FILES_WARNING } from '../trust';
import { auditRecord, exitStatusOf, type AuditFacts, type AuditRecord } from './audit';
import type { ContainerLoadOptions, ContainerLoader, NodeOptions } from './options';
import type { HeldParameters, ParamConflictPolicy } from '../loader/live-params';
import type { ModuleParams } from '../holds/holds';
import type { Policy } from '../policy/types';
import { noNames, requestedNames, type ContainerRequest, type RequestedNames } from './request';

export type AdmissionAction =
  | 'loaded' // every module loaded (or was already there)
  | 'would-load' // dry run: the plan was made, nothing loaded
  | 'nothing-requested' // the container asks for no modules
  | 'refused' // bad input or a request that cannot be planned: nothing loaded
  | 'failed'; // the kernel refused a module, or the run was interrupted

/** The decision about one container's request. Frozen: nobody edits a decision after it. */
export interface Admission {
  readonly ok: boolean;
  readonly action: AdmissionAction;
  /** An EXIT status; 128 + the signal's number when the run was interrupted. */
  readonly exitStatus: number;
  /** Why it is not ok, one line, without the "kmodload: " prefix. */
  readonly message?: string;
  readonly request: ContainerRequest;
  /** The names the request asks for and where each came from; absent when it could not be
   *  parsed. */
  readonly names?: RequestedNames;
  readonly plan?: Plan;
  /** The policy's verdict on the plan. */
  readonly verdict?: PolicyVerdict;
  /** What happened to each module, in order. */
  readonly modules: readonly ModuleResult[];
  /** Problems that did not change the outcome (a hold that could not be recorded). */
  readonly warnings: readonly string[];
  /** The audit record of this decision (`--log`). */
  readonly record: AuditRecord;
}

/** An admission under way, for a front end that may be stopped by a signal meanwhile. */
export interface AdmissionHandle {
  readonly done: Promise<Admission>;
  /** Ends the decision now: the record says interrupted, with the modules inserted so far.
   *  Later calls, and the run's own end, change nothing. */
  interrupt(signal: NodeJS.Signals): Admission;
  /** After interrupt(): records the hold on what was inserted, as a finished run would, so
   *  that it can be unloaded later. The caller bounds how long it waits. */
  recordInterrupted(): Promise<void>;
}

/** What is known of an admission as it goes. */
type AdmissionFacts = AuditFacts & {
  modules: ModuleResult[];
  warnings: string[];
  /** A provisional hold was taken: it must be made final or dropped. */
  provisional?: boolean;
};

// Lazily: requiring the public API loads the planner and, on first use, the addon.
async function defaultLoader(): Promise<ContainerLoader> {
  return import('../api.js');
}

/** The failure as one line about the container's modules, unless it says already what it is
 *  about. An unexpected error is a bug, reported the same way with the internal status. */
export function asKmodloadError(error: unknown, modules: readonly string[]): KmodloadError {
  const subject = modules.length > 0 ? `cannot load ${namesForMessage(modules)}` : undefined;
  if (error instanceof KmodloadError) return subject ? error.about(subject) : error;
  const message = error instanceof Error ? error.message : String(error);
  return new KmodloadError(`internal error: ${message}`, EXIT.internal, {
    cause: error,
    subject: subject ?? 'hook failed',
  });
}

/** The action a failure stands for. */
export function failureAction(failure: KmodloadError): 'refused' | 'failed' {
  return failure.exitStatus === EXIT.failed || failure.exitStatus === EXIT.internal
    ? 'failed'
    : 'refused';
}

/** What the policy conditions are tested against. */
function requesterOf(request: ContainerRequest, names: RequestedNames): Requester {
  const requester: Requester = { source: names.sources, annotations: request.annotations };
  if (request.namespace !== undefined) requester.namespace = request.namespace;
  if (request.podLabels !== undefined) requester.podLabels = request.podLabels;
  return requester;
}

/**
 * Decides one container's request and carries it out: the policy read while the names are
 * planned (a broken policy refuses whatever the plan), the plan checked (deny anywhere in it
 * refuses the whole request, nothing loaded), loaded, and the container's hold recorded.
 * Never throws: the decision carries the exit status and the one-line reason.
 */
export function admit(request: ContainerRequest, options: NodeOptions = {}): Promise<Admission> {
  return startAdmission(request, options).done;
}

/** admit(), with a handle to interrupt it. */
export function startAdmission(
  request: ContainerRequest,
  options: NodeOptions = {},
): AdmissionHandle {
  const names: RequestedNames = noNames();
  const facts: AdmissionFacts = {
    id: request.id,
    stage: request.stage,
    status: request.status,
    request: names.modules,
    dryRun: options.dryRun === true,
    annotations: request.annotations,
    modules: [],
    started: process.hrtime.bigint(),
    warnings: [],
  };
  let action: AdmissionAction = 'refused';
  let ended: Admission | undefined;
  let parsed = false;
  const end = (): Admission =>
    (ended ??= decision(request, parsed ? names : undefined, facts, action));
  const done = (async () => {
    try {
      Object.assign(names, requestedNames(request.parts));
      parsed = true;
      facts.request = names.modules;
      facts.sources = names.sources;
      facts.params = names.params;
      action = await carryOut(request, names, options, facts);
    } catch (error) {
      facts.failure = asKmodloadError(error, names.modules);
      action = failureAction(facts.failure);
    }
    return end();
  })();
  return {
    done,
    interrupt(signal) {
      if (ended) return ended;
      facts.interruptedBy = signal;
      const inserted = facts.modules.filter((m) => m.status === 'loaded').map((m) => m.name);
      const what = inserted.length > 0 ? `after loading ${inserted.join(',')}` : 'nothing loaded';
      const subject =
        names.modules.length > 0 ? `cannot load ${namesForMessage(names.modules)}` : undefined;
      facts.failure = new KmodloadError(`interrupted by ${signal} (${what})`, EXIT.failed, {
        ...(subject ? { subject } : {}),
      });
      action = 'failed';
      return end();
    },
    async recordInterrupted() {
      if (!facts.interruptedBy || options.dryRun) return;
      if (!facts.provisional && !facts.modules.some((m) => m.status === 'loaded')) return;
      await recordHold(request, names, facts.modules, false, {}, options, facts.warnings);
    },
  };
}

function decision(
  request: ContainerRequest,
  names: RequestedNames | undefined,
  facts: AuditFacts,
  action: AdmissionAction,
): Admission {
  const admission: Admission = {
    ok: !facts.failure,
    action,
    exitStatus: exitStatusOf(facts),
    ...(facts.failure ? { message: oneLine(facts.failure.message) } : {}),
    request,
    ...(names ? { names } : {}),
    ...(facts.plan ? { plan: facts.plan } : {}),
    ...(facts.verdict ? { verdict: facts.verdict } : {}),
    modules: [...facts.modules],
    warnings: [...facts.warnings],
    record: auditRecord(facts),
  };
  return Object.freeze(admission);
}

/** The work itself; fills in `facts` as it goes, so that a failure keeps what was known. */
async function carryOut(
  request: ContainerRequest,
  names: RequestedNames,
  options: NodeOptions,
  facts: AdmissionFacts,
): Promise<AdmissionAction> {
  if (names.modules.length === 0) return 'nothing-requested';
  // Before anything is read: whoever can write these decides what root loads.
  const trust = await import('./trust.js');
  if (options.insecureFiles) facts.warnings.push(INSECURE_FILES_WARNING);
  else trust.assertNodeFilesTrusted(options);

  // Required here, not above: the no-request path loads nothing of the policy or loader.
  const policyApi = await import('../policy/index.js');
  // The policy is read while the request is planned (the plan reads the tree and changes
  // nothing): a broken policy still refuses the request, whatever the plan.
  const reading = policyApi.readPolicyFiles(options.policyFiles);
  // Awaited below; a failure while the loader is required must not count as unhandled.
  reading.catch(() => undefined);
  const loader = options.loader ?? (await defaultLoader());
  const loadOptions = containerLoadOptions(options, (result) => facts.modules.push(result));

  // More names than the default limit: the policy says first whether it allows that many,
  // so that a request naming a whole tree is never planned.
  const { DEFAULT_MAX_MODULES } = await import('../policy/types.js');
  const startPlanning = () => {
    const planning = loader.resolve(
      names.modules,
      Object.keys(names.params).length > 0
        ? { ...loadOptions, extraOptions: names.params }
        : loadOptions,
    );
    // Not awaited when the policy refuses first.
    planning.catch(() => undefined);
    return planning;
  };
  let planning = names.modules.length > DEFAULT_MAX_MODULES ? undefined : startPlanning();
  const read = await reading;
  facts.policyFiles = read.policy ? read.policy.files : null;
  const problem = read.problems[0];
  if (problem) throw policyApi.brokenPolicyError(problem, read.problems.length);
  if (!options.insecureFiles) trust.assertPolicyTrusted(facts.policyFiles, options);
  facts.policyKeys = policyApi.annotationKeysUsed(read.policy);
  const maxModules = read.policy?.maxModules ?? { value: DEFAULT_MAX_MODULES };
  if (names.modules.length > maxModules.value) {
    throw new KmodloadError(
      `the request names ${names.modules.length} modules, more than max-modules ${maxModules.value} (${maxModules.origin ?? 'the default'})`,
      EXIT.refused,
      { subject: `cannot load ${namesForMessage(names.modules)}` },
    );
  }
  planning ??= startPlanning();

  // Planned once, then checked: the plan and the verdict are recorded even when refused.
  const planned = await planning;
  facts.plan = planned;
  const verdict = policyApi.checkPolicy(planned, read.policy, requesterOf(request, names));
  facts.verdict = verdict;
  // Before the loader reads any module's state: a container stopping meanwhile must not
  // unload a module this load finds live (made final or dropped by recordHold), nor may
  // another container ask other parameters for a module this one loads with its own.
  const params = paramsByModule(planned);
  let heldParameters: HeldParameters = {};
  if (!options.dryRun && verdict.ok) {
    const provisional = await takeProvisionalHold(
      request,
      planned,
      params,
      options,
      facts.warnings,
    );
    if (provisional?.conflict) throw provisional.conflict;
    facts.provisional = provisional !== undefined;
    heldParameters = provisional?.held ?? {};
  }
  let result: LoadResult;
  try {
    result = await loader.loadPlan(planned, {
      ...loadOptions,
      verdict,
      paramConflict: paramConflictPolicy(read.policy),
      ...(Object.keys(heldParameters).length > 0 ? { heldParameters } : {}),
    });
  } catch (error) {
    // Stopped half-way (an unusable module file): what went in is still the container's.
    if (
      !options.dryRun &&
      (facts.provisional || facts.modules.some((m) => m.status === 'loaded'))
    ) {
      await recordHold(request, names, facts.modules, false, params, options, facts.warnings);
    }
    throw error;
  }
  // The same results (a stand-in loader may not report them one by one).
  facts.modules.splice(0, facts.modules.length, ...result.modules);
  facts.warnings.push(...(result.warnings ?? []));
  const { failureSummary } = await import('../loader/summary.js');
  const summary = failureSummary(result);
  if (!options.dryRun) {
    await recordHold(
      request,
      names,
      result.modules,
      summary === undefined,
      params,
      options,
      facts.warnings,
    );
  }
  if (summary !== undefined) {
    facts.failure = new KmodloadError(summary, EXIT.failed);
    return 'failed';
  }
  return options.dryRun ? 'would-load' : 'loaded';
}

/** How a container's request is planned and loaded: a container may not load what the host
 *  blacklisted, even by its exact name (modprobe -b); install commands never run for a
 *  container (no shell, no PATH); a modprobe.d file that cannot be read is a blacklist that
 *  protects nothing. */
export function containerPlanOptions(options: NodeOptions): ContainerLoadOptions {
  const planOptions: ContainerLoadOptions = {
    useBlacklist: true,
    allowInstallCommands: false,
    dryRun: options.dryRun === true,
    strictConfig: true,
  };
  if (options.root !== undefined) planOptions.root = options.root;
  if (options.kernelVersion !== undefined) planOptions.kernelVersion = options.kernelVersion;
  if (options.configDirs !== undefined) planOptions.configDirs = options.configDirs;
  return planOptions;
}

/** containerPlanOptions, reporting each module's result as it is known. */
function containerLoadOptions(
  options: NodeOptions,
  onModuleResult: (result: ModuleResult) => void,
): ContainerLoadOptions {
  return { ...containerPlanOptions(options), onModuleResult };
}

/** The requested names for a one-line message, cut when there are many: the message is
 *  logged whole. */
function namesForMessage(names: readonly string[]): string {
  if (names.length <= MESSAGE_NAMES) return names.join(',');
  return `${names.slice(0, MESSAGE_NAMES).join(',')},... (${names.length} names)`;
}
const MESSAGE_NAMES = 8;

/** Every module the plan may insert or find live, softdeps included. */
export function planModuleNames(plan: Plan): string[] {
  const names = new Set<string>();
  for (const request of plan.requests) {
    for (const probe of request.probes) {
      if (probe.skipped) continue;
      for (const step of probe.steps) if (step.kind !== 'builtin') names.add(step.name);
    }
  }
  return [...names];
}

/** What a module live with other parameters means: the policy's `on-param-conflict` for
 *  every parameter, or by default a refusal for the container's and a warning for the host's
 *  (modprobe.d's, which modprobe has always let pass). */
function paramConflictPolicy(policy: Policy | null): ParamConflictPolicy {
  const action = policy?.paramConflict?.value;
  return action ? { caller: action, host: action } : { caller: 'refuse', host: 'warn' };
}

/** The parameters the container asks, by module of the plan (the targets they are for). */
export function paramsByModule(plan: Plan): Record<string, ModuleParams> {
  const params = Object.create(null) as Record<string, ModuleParams>;
  for (const request of plan.requests) {
    for (const probe of request.probes) {
      if (probe.skipped) continue;
      for (const step of probe.steps) {
        if (step.extraOptions) {
          params[step.name] ??= { request: request.request, params: step.extraOptions };
        }
      }
    }
  }
  return params;
}

/** Takes the provisional hold on the plan's modules; undefined (with a warning) when it
 *  cannot: the load goes on, as it does when the final hold cannot be recorded. A conflict
 *  with another container's parameters comes back as `conflict`, no hold taken. */
async function takeProvisionalHold(
  request: ContainerRequest,
  plan: Plan,
  params: Readonly<Record<string, ModuleParams>>,
  options: NodeOptions,
  warnings: string[],
): Promise<{ conflict?: KmodloadError; held: HeldParameters } | undefined> {
  const modules = planModuleNames(plan);
  if (modules.length === 0) return undefined;
  const holds = await import('../holds/index.js');
  try {
    const taken = await holds.takeProvisionalHold(
      options,
      { id: request.id, pid: request.pid, via: request.via },
      modules,
      params,
    );
    warnings.push(...taken.warnings);
    return taken.conflict ? { conflict: taken.conflict, held: {} } : { held: taken.held };
  } catch (error) {
    warnings.push(`cannot hold the modules of container ${quote(request.id)}: ${errorText(error)}`);
    return undefined;
  }
}

/** Records the container's hold. A failure here leaves the modules loaded and the container
 *  starting: it is a warning (the modules are then never unloaded automatically). */
async function recordHold(
  request: ContainerRequest,
  names: RequestedNames,
  modules: readonly ModuleResult[],
  succeeded: boolean,
  params: Readonly<Record<string, ModuleParams>>,
  options: NodeOptions,
  warnings: string[],
): Promise<void> {
  const { recordLoad } = await import('../holds/index.js');
  try {
    warnings.push(
      ...(await recordLoad(
        options,
        { id: request.id, pid: request.pid, via: request.via },
        names.modules,
        [...modules],
        succeeded,
        params,
      )),
    );
  } catch (error) {
    warnings.push(`cannot record the hold of container ${quote(request.id)}: ${errorText(error)}`);
  }
}
