// One hook run: state -> stage -> request -> plan -> load, with a result fit for the hook
// protocol (exit status + one line) and for the log. The loader is only required once a
// container actually asks for modules: the no-request path must stay cheap, because a
// hooks.d entry with `when.always` runs the hook for every container on the node.
// Every run ends in exactly one log line: a normal end, a refusal before the state could be
// read (finishRefusedRun), or an interruption by a signal (HookRun.interrupt).

import type { LoadOptions } from '../api';
import { EXIT, KmodloadError } from '../errors';
import type { LoadResult, ModuleResult } from '../loader/types';
import type { Plan } from '../planner/plan';
import type { HoldsOptions } from '../holds/holds';
import type { Kernel } from '../kernel/kernel';
import { errorText, oneLine } from '../text';
import {
  appendLogLine,
  type HookLogRecord,
  type HookLogRelease,
  type HookLogResult,
  type HookLogStep,
} from './log';
import { readHookRequest, type HookRequest, type ReadRequestOptions } from './request';
import { isLoadStage, inferStage, type HookStage } from './stage';
import { checkContainerState, parseContainerState, type ContainerState } from './state';
import { quote } from './text';

/** The options the hook gives the loader. */
export type HookLoadOptions = Pick<
  LoadOptions,
  | 'root'
  | 'kernelVersion'
  | 'configDirs'
  | 'useBlacklist'
  | 'dryRun'
  | 'allowInstallCommands'
  | 'strictConfig'
  | 'onModuleResult'
>;

/** The per-module result of the public `load()`. */
export type HookModuleResult = ModuleResult;

/** What the hook needs of the public API (src/api.ts): plan once, then run that plan. */
export interface HookLoader {
  resolve(names: string[], options?: HookLoadOptions): Promise<Plan>;
  loadPlan(plan: Plan, options?: HookLoadOptions): Promise<LoadResult>;
}

export interface HookOptions extends ReadRequestOptions {
  /** The stage (`--state`); inferred from the state's status when absent. */
  stage?: HookStage;
  /** Module tree root, like modprobe -d. */
  root?: string;
  /** Kernel version, like modprobe -S. */
  kernelVersion?: string;
  /** modprobe.d directories replacing the defaults, like modprobe -C. */
  configDirs?: string[];
  /** Plan and report, load nothing. */
  dryRun?: boolean;
  /** Append one JSON line for this run to this file. */
  logFile?: string;
  /** Host policy files (`--policy`); absent or empty: /etc/kmodload/policy.conf and
   *  policy.d/*.conf, when they exist. */
  policyFiles?: string[];
  /** The public API or a stand-in. Default: the package's own, required on first use. */
  loader?: HookLoader;
  /** Where holds are kept (`--state-dir`); default /run/kmodload. */
  stateDir?: string;
  /** At poststop, unload what this container's hold was the last to need (`--unload-on-stop`). */
  unloadOnStop?: boolean;
  /** The kernel for unloading at poststop; default a LinuxKernel. */
  kernel?: Kernel;
  /** Where /proc is (tests). */
  procRoot?: string;
}

export type HookAction =
  | 'loaded' // every module loaded (or was already there)
  | 'would-load' // dry run: the plan was made, nothing loaded
  | 'nothing-requested' // the container asks for no modules
  | 'not-a-load-stage' // poststart, poststop, ...: nothing to do
  | 'refused' // bad input or a request that cannot be planned: nothing loaded
  | 'failed'; // the kernel refused a module

export interface HookResult {
  ok: boolean;
  /** An EXIT status; 128 + the signal's number when the run was interrupted. */
  exitStatus: number;
  action: HookAction;
  /** The error line, without the "kmodload: " prefix. */
  message?: string;
  state?: ContainerState;
  stage?: HookStage;
  request?: HookRequest;
  plan?: Plan;
  modules: HookModuleResult[];
  durationMs: number;
  /** The line `--log` writes (also built when there is no log file). */
  record: HookLogRecord;
  /** Set when the log line could not be written; the outcome stands. */
  logError?: string;
  /** Problems that do not change the outcome (state that could not be recorded, state files
   *  moved aside), one line each. */
  warnings: string[];
}

/** The signals the hook command handles, by number (no `os` module on the hook's path). */
const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 2, SIGTERM: 15 };

/** Kubernetes' pod identity, logged when present so the log answers "which pod asked". */
const POD_ANNOTATIONS = ['io.kubernetes.pod.namespace', 'io.kubernetes.pod.name'];

// Lazily: requiring the public API loads the planner and, on first use, the addon.
async function defaultLoader(): Promise<HookLoader> {
  return import('../api.js');
}

function planSteps(plan: Plan | undefined): HookLogStep[] {
  const steps: HookLogStep[] = [];
  for (const request of plan?.requests ?? []) {
    for (const probe of request.probes) {
      if (probe.skipped) continue;
      for (const step of probe.steps) {
        const logged: HookLogStep = {
          request: request.request,
          name: step.name,
          kind: step.kind,
          options: step.options,
          required: step.required,
        };
        if (step.path !== undefined) logged.path = step.path;
        if (step.command !== undefined) logged.command = step.command;
        steps.push(logged);
      }
    }
  }
  return steps;
}

/** The run's failure as one line: about the container's modules, unless it says already
 *  what it is about. */
function asKmodloadError(error: unknown, modules: string[]): KmodloadError {
  const subject = modules.length > 0 ? `cannot load ${modules.join(',')}` : undefined;
  if (error instanceof KmodloadError) return subject ? error.about(subject) : error;
  // Not an expected failure: a bug, reported as one line like the rest, with the CLI's status.
  const message = error instanceof Error ? error.message : String(error);
  return new KmodloadError(`internal error: ${message}`, EXIT.internal, {
    cause: error,
    subject: subject ?? 'hook failed',
  });
}

/**
 * Runs the hook for one container: `input` is the state JSON a runtime writes to stdin (text
 * or bytes) or an already-parsed state object. Never throws for a bad state, config or
 * request: the result carries the exit status and the one-line message.
 */
export async function handleHook(
  input: string | Uint8Array | ContainerState | Record<string, unknown>,
  options: HookOptions = {},
): Promise<HookResult> {
  return startHook(input, options).result;
}

/** A hook run under way: its result, or, if a signal ends the process first, what it had
 *  done so far. */
export interface HookRunHandle {
  result: Promise<HookResult>;
  /** Ends the run now: writes the log line (`"interrupted": true`, with the modules inserted
   *  so far) and returns the result, exit status 128 + the signal's number. Later calls, and
   *  the run's own end, write nothing more. */
  interrupt(signal: NodeJS.Signals): HookResult;
  /** After interrupt(): records the container's hold on what it inserted, as a finished run
   *  would, so that it can be unloaded later. The caller bounds how long it waits. */
  recordInterrupted(): Promise<void>;
}

/** handleHook, with a handle to interrupt it. */
export function startHook(
  input: string | Uint8Array | ContainerState | Record<string, unknown>,
  options: HookOptions = {},
): HookRunHandle {
  // process.hrtime, not performance.now(): the global `performance` loads perf_hooks.
  const started = process.hrtime.bigint();
  const run = newRun(options);
  let ended: HookResult | undefined;
  const end = (): HookResult => (ended ??= finish(run, options, started));
  const result = (async () => {
    try {
      await decide(input, options, run);
    } catch (error) {
      fail(run, error);
    }
    return end();
  })();
  return {
    result,
    interrupt(signal) {
      if (ended) return ended;
      run.interruptedBy = signal;
      const inserted = run.modules.filter((m) => m.status === 'loaded').map((m) => m.name);
      const what = inserted.length > 0 ? `after loading ${inserted.join(',')}` : 'nothing loaded';
      const subject = run.request ? `cannot load ${run.request.modules.join(',')}` : undefined;
      run.failure = new KmodloadError(`interrupted by ${signal} (${what})`, EXIT.failed, {
        ...(subject ? { subject } : {}),
      });
      run.action = 'failed';
      return end();
    },
    async recordInterrupted() {
      const { state, request } = run;
      if (!run.interruptedBy || options.dryRun || !state || !request) return;
      if (!run.modules.some((m) => m.status === 'loaded')) return;
      await recordHold(state, request, run.modules, false, options, run);
    },
  };
}

/** The result and log line of a run that ended before its state could be read: stdin too
 *  large or never closed, or a signal while waiting for it (`interruptedBy`). */
export function finishRefusedRun(
  error: unknown,
  options: HookOptions = {},
  interruptedBy?: NodeJS.Signals,
): HookResult {
  const run = newRun(options);
  fail(run, error);
  if (interruptedBy) {
    run.interruptedBy = interruptedBy;
    run.action = 'failed';
  }
  return finish(run, options, process.hrtime.bigint());
}

function newRun(options: HookOptions): HookRun {
  return {
    stage: options.stage,
    policyKeys: [],
    modules: [],
    action: 'refused',
    warnings: [],
  };
}

function fail(run: HookRun, error: unknown): void {
  run.failure = asKmodloadError(error, run.request?.modules ?? []);
  run.action =
    run.failure.exitStatus === EXIT.failed || run.failure.exitStatus === EXIT.internal
      ? 'failed'
      : 'refused';
}

/** What one run found and did, filled in as it goes so that a failure keeps what was known. */
interface HookRun {
  state?: ContainerState;
  stage: HookStage | undefined;
  request?: HookRequest;
  /** The policy files read (null: none at the default location); undefined: not read. */
  policyFiles?: string[] | null;
  /** The annotation keys the policy's rules test (logged with the run). */
  policyKeys: string[];
  plan?: Plan;
  modules: HookModuleResult[];
  action: HookAction;
  failure?: KmodloadError;
  /** Poststop: what releasing the container's hold did. */
  release?: HookLogRelease;
  warnings: string[];
  /** The signal that ended the run before it was done. */
  interruptedBy?: NodeJS.Signals;
}

/** Parses the state, reads the request and the policy, plans, checks and loads. */
async function decide(
  input: string | Uint8Array | ContainerState | Record<string, unknown>,
  options: HookOptions,
  run: HookRun,
): Promise<void> {
  try {
    run.state =
      typeof input === 'string' || input instanceof Uint8Array
        ? parseContainerState(input)
        : checkContainerState(input);
  } catch (error) {
    // A stage that does nothing never fails a container over its state.
    if (!(run.stage && !isLoadStage(run.stage))) throw error;
  }
  run.stage ??= inferStage(run.state as ContainerState);
  if (!isLoadStage(run.stage)) {
    run.action = 'not-a-load-stage';
    if (run.stage === 'poststop' && run.state) await release(run.state, options, run);
    return;
  }
  const request = await readHookRequest(run.state as ContainerState, options);
  run.request = request;
  if (request.modules.length === 0) {
    run.action = 'nothing-requested';
    return;
  }

  // Required here, not above: the no-request path loads nothing of the policy or loader.
  const policyApi = await import('../policy/index.js');
  // The policy is read while the request is planned (the plan reads the tree, and changes
  // nothing): a broken policy still refuses the request, whatever the plan.
  const reading = policyApi.readPolicyFiles(options.policyFiles);
  // Awaited below; a failure while the loader is required must not count as unhandled.
  reading.catch(() => undefined);
  const loader = options.loader ?? (await defaultLoader());
  const loadOptions: HookLoadOptions = {
    // A container may not load what the host blacklisted, even by its exact name
    // (modprobe -b); install commands never run from a hook (no shell, no PATH).
    useBlacklist: true,
    allowInstallCommands: false,
    dryRun: options.dryRun === true,
    // A modprobe.d file that cannot be read is a blacklist that protects nothing.
    strictConfig: true,
    // Kept as they come, so an interrupted run can log what it inserted.
    onModuleResult: (result) => run.modules.push(result),
  };
  if (options.root !== undefined) loadOptions.root = options.root;
  if (options.kernelVersion !== undefined) loadOptions.kernelVersion = options.kernelVersion;
  if (options.configDirs !== undefined) loadOptions.configDirs = options.configDirs;

  const planning = loader.resolve(request.modules, loadOptions);
  // Not awaited when the policy refuses first.
  planning.catch(() => undefined);
  const read = await reading;
  run.policyFiles = read.policy ? read.policy.files : null;
  const problem = read.problems[0];
  if (problem) throw policyApi.brokenPolicyError(problem, read.problems.length);
  run.policyKeys = policyApi.annotationKeysUsed(read.policy);

  // Planned once, then checked: the plan and the verdict are logged even when refused.
  const plan = await planning;
  run.plan = plan;
  plan.policy = policyApi.checkPolicy(plan, read.policy, {
    source: request.sources,
    annotations: request.annotations,
  });
  let result: LoadResult;
  try {
    result = await loader.loadPlan(plan, loadOptions);
  } catch (error) {
    // Stopped half-way (an unusable module file): what went in is still the container's.
    if (!options.dryRun && run.modules.some((m) => m.status === 'loaded')) {
      await recordHold(run.state as ContainerState, request, run.modules, false, options, run);
    }
    throw error;
  }
  // The same results (a stand-in loader may not report them one by one).
  run.modules = result.modules;
  const { failureSummary } = await import('../loader/summary.js');
  const summary = failureSummary(result);
  if (!options.dryRun) {
    await recordHold(
      run.state as ContainerState,
      request,
      result.modules,
      summary === undefined,
      options,
      run,
    );
  }
  if (summary !== undefined) {
    run.failure = new KmodloadError(summary, EXIT.failed);
    run.action = 'failed';
  } else {
    run.action = options.dryRun ? 'would-load' : 'loaded';
  }
}

function holdsOptions(options: HookOptions): HoldsOptions {
  const picked: HoldsOptions = {};
  if (options.stateDir !== undefined) picked.stateDir = options.stateDir;
  if (options.procRoot !== undefined) picked.procRoot = options.procRoot;
  return picked;
}

/** Records the container's hold. A failure here leaves the modules loaded and the container
 *  starting: it is a warning (the modules are then never unloaded automatically). */
async function recordHold(
  state: ContainerState,
  request: HookRequest,
  modules: HookModuleResult[],
  succeeded: boolean,
  options: HookOptions,
  run: HookRun,
): Promise<void> {
  const { recordLoad } = await import('../holds/index.js');
  try {
    const warnings = await recordLoad(
      holdsOptions(options),
      { id: state.id, pid: state.pid },
      request.modules,
      modules,
      succeeded,
    );
    run.warnings.push(...warnings);
  } catch (error) {
    run.warnings.push(
      `cannot record the hold of container ${quote(state.id)}: ${errorText(error)}`,
    );
  }
}

/** Poststop: drops the container's hold and, with unloadOnStop, unloads what nobody holds.
 *  A container that holds nothing costs a stat(2). Never fails the hook. */
async function release(state: ContainerState, options: HookOptions, run: HookRun): Promise<void> {
  const holds = await import('../holds/index.js');
  const store = holdsOptions(options);
  if (!(await holds.holdExists(store, state.id))) return;
  try {
    const kernel = options.kernel ?? new (await import('../kernel/linux.js')).LinuxKernel();
    const keep = options.unloadOnStop ? await holds.removeRuleKeeper(options) : undefined;
    const result = await holds.releaseHold(store, state.id, {
      unload: options.unloadOnStop === true,
      kernel,
      ...(keep ? { keep } : {}),
    });
    run.release = {
      released: result.released,
      stale: result.stale.map((hold) => hold.id),
      modules: result.modules,
    };
    run.warnings.push(...result.warnings);
  } catch (error) {
    run.warnings.push(
      `cannot release the hold of container ${quote(state.id)}: ${errorText(error)}`,
    );
  }
}

/** The annotations the log keeps: those the policy tests, and the pod's name and namespace. */
function loggedAnnotations(run: HookRun): Record<string, string> {
  const annotations = run.request?.annotations ?? run.state?.annotations ?? {};
  const logged: Record<string, string> = {};
  for (const key of [...run.policyKeys, ...POD_ANNOTATIONS]) {
    const value = annotations[key];
    if (Object.hasOwn(annotations, key) && typeof value === 'string') logged[key] = value;
  }
  return logged;
}

/** The result and the log line of a run. */
function finish(run: HookRun, options: HookOptions, started: bigint): HookResult {
  const { state, stage, request, plan, modules, action, failure } = run;
  const durationMs = Math.round(Number(process.hrtime.bigint() - started) / 1000) / 1000;
  const exitStatus: number = run.interruptedBy
    ? 128 + (SIGNAL_NUMBERS[run.interruptedBy] ?? 0)
    : failure
      ? failure.exitStatus
      : EXIT.ok;
  const message = failure ? oneLine(failure.message) : undefined;
  const record: HookLogRecord = {
    time: new Date().toISOString(),
    id: state?.id ?? null,
    stage: stage ?? null,
    status: state?.status ?? null,
    request: request?.modules ?? [],
    dryRun: options.dryRun === true,
    plan: planSteps(plan),
    policy: run.policyFiles ?? null,
    verdict: plan?.policy?.decisions ?? [],
    annotations: loggedAnnotations(run),
    ...(run.release ? { release: run.release } : {}),
    results: modules.map((entry) => {
      const logged: HookLogResult = {
        request: entry.request,
        name: entry.name,
        status: entry.status,
      };
      if (entry.path !== undefined) logged.path = entry.path;
      if (entry.error !== undefined) logged.error = entry.error;
      return logged;
    }),
    durationMs,
    exitStatus,
  };
  if (run.interruptedBy) record.interrupted = true;
  if (message !== undefined) record.error = message;

  const result: HookResult = {
    ok: !failure,
    exitStatus,
    action,
    modules,
    durationMs,
    record,
    warnings: run.warnings,
  };
  if (run.warnings.length > 0) record.warnings = run.warnings;
  if (message !== undefined) result.message = message;
  if (state) result.state = state;
  if (stage) result.stage = stage;
  if (request) result.request = request;
  if (plan) result.plan = plan;

  if (options.logFile) {
    try {
      appendLogLine(options.logFile, record);
    } catch (error) {
      result.logError = oneLine(`cannot write log ${options.logFile}: ${(error as Error).message}`);
    }
  }
  return result;
}
