// One hook run: the state and config.json turned into a container request for the core
// (src/container), and the core's decision turned into the hook protocol (exit status + one
// line) and the log. Every run ends in exactly one log line: a decision, a refusal before the
// state could be read (finishRefusedRun), or an interruption by a signal.

import {
  asKmodloadError,
  auditRecord,
  failureAction,
  release,
  startAdmission,
  writeAuditRecord,
  type Admission,
  type AdmissionHandle,
  type AuditFacts,
  type AuditRecord,
  type ContainerLoader,
  type ContainerRequest,
  type NodeOptions,
} from '../container/index';
import { EXIT, KmodloadError } from '../errors';
import type { ModuleResult } from '../loader/types';
import type { Plan } from '../planner/plan';
import {
  moduleArgumentsPart,
  readContainerConfig,
  requestParts,
  type ContainerConfig,
  type HookRequest,
  type ReadRequestOptions,
} from './request';
import { isLoadStage, inferStage, type HookStage } from './stage';
import {
  checkContainerState,
  parseContainerState,
  partialContainerState,
  type ContainerState,
} from './state';

/** The planner and loader the hook's core uses (the public API or a stand-in). */
export type HookLoader = ContainerLoader;

export interface HookOptions extends NodeOptions, ReadRequestOptions {
  /** The stage (`--state`); inferred from the state's status when absent. */
  stage?: HookStage;
  /** Modules named by the hook's own arguments (`--module`): a CDI device's hook, whose spec
   *  the host wrote. They add to what config.json asks for, with source `cdi`. */
  modules?: string[];
}

export type HookAction =
  | 'loaded' // every module loaded (or was already there)
  | 'would-load' // dry run: the plan was made, nothing loaded
  | 'nothing-requested' // the container asks for no modules
  | 'not-a-load-stage' // poststart, poststop, ...: nothing to load
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
  modules: ModuleResult[];
  durationMs: number;
  /** The line `--log` writes (also built when there is no log file). */
  record: AuditRecord;
  /** Set when the log line could not be written; the outcome stands. */
  logError?: string;
  /** Problems that do not change the outcome (state that could not be recorded, state files
   *  moved aside), one line each. */
  warnings: string[];
}

type HookInput = string | Uint8Array | ContainerState | Record<string, unknown>;

/**
 * Runs the hook for one container: `input` is the state JSON a runtime writes to stdin (text
 * or bytes) or an already-parsed state object. Never throws for a bad state, config or
 * request: the result carries the exit status and the one-line message.
 */
export async function handleHook(input: HookInput, options: HookOptions = {}): Promise<HookResult> {
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

/** What the hook learnt before the core took over (or instead of it). */
interface HookContext {
  state?: ContainerState;
  /** What could be kept of a state that was refused, for the log record. */
  refusedState?: ReturnType<typeof partialContainerState>;
  stage?: HookStage;
  config?: ContainerConfig;
  /** The config's request, once the core has parsed it. */
  request?: HookRequest;
}

/** handleHook, with a handle to interrupt it. */
export function startHook(input: HookInput, options: HookOptions = {}): HookRunHandle {
  // process.hrtime, not performance.now(): the global `performance` loads perf_hooks.
  const started = process.hrtime.bigint();
  const context: HookContext = options.stage ? { stage: options.stage } : {};
  let admission: AdmissionHandle | undefined;
  let ended: HookResult | undefined;
  const end = (make: () => HookResult): HookResult => (ended ??= write(make(), options));
  const result = (async () => {
    try {
      const outcome = await runStage(input, options, context, (handle) => (admission = handle));
      return end(() => outcome);
    } catch (error) {
      return end(() => refusedResult(error, options, context, started));
    }
  })();
  return {
    result,
    interrupt(signal) {
      if (ended) return ended;
      if (admission) {
        const decided = admission.interrupt(signal);
        return end(() => hookResult(context, decided));
      }
      const waiting = new KmodloadError(`interrupted by ${signal} (nothing loaded)`, EXIT.failed);
      return end(() => refusedResult(waiting, options, context, started, signal));
    },
    async recordInterrupted() {
      await admission?.recordInterrupted();
    },
  };
}

/** The state's stage: loading at prestart/createRuntime, releasing at poststop. */
async function runStage(
  input: HookInput,
  options: HookOptions,
  context: HookContext,
  started: (handle: AdmissionHandle) => void,
): Promise<HookResult> {
  try {
    context.state =
      typeof input === 'string' || input instanceof Uint8Array
        ? parseContainerState(input)
        : checkContainerState(input);
  } catch (error) {
    // A stage that does nothing never fails a container over its state.
    if (!(context.stage && !isLoadStage(context.stage))) {
      context.refusedState = partialContainerState(input);
      throw error;
    }
  }
  context.stage ??= inferStage(context.state as ContainerState);
  if (!isLoadStage(context.stage)) return notALoadStage(context, options);

  const state = context.state as ContainerState;
  context.config = await readContainerConfig(state, options);
  const handle = startAdmission(
    containerRequest(state, context.stage, context.config, options.modules),
    options,
  );
  started(handle);
  return hookResult(context, await handle.done);
}

/** The core's decision as the hook's result. */
function hookResult(context: HookContext, decided: Admission): HookResult {
  if (context.config && decided.names) {
    context.request = { ...context.config, ...decided.names };
  }
  return {
    ...fromAdmission(context),
    ok: decided.ok,
    exitStatus: decided.exitStatus,
    action: decided.action,
    ...(decided.message !== undefined ? { message: decided.message } : {}),
    ...(decided.plan ? { plan: decided.plan } : {}),
    modules: [...decided.modules],
    durationMs: decided.record.durationMs,
    record: decided.record,
    warnings: [...decided.warnings],
  };
}

/** The request as the core takes it: config.json's parts, then the hook's own `--module`s. */
function containerRequest(
  state: ContainerState,
  stage: HookStage,
  config: ContainerConfig,
  modules: readonly string[] = [],
): ContainerRequest {
  const parts = requestParts(config);
  if (modules.length > 0) parts.push(moduleArgumentsPart(modules));
  return {
    id: state.id,
    parts,
    annotations: config.annotations,
    ...(state.pid !== undefined ? { pid: state.pid } : {}),
    stage,
    ...(state.status !== undefined ? { status: state.status } : {}),
  };
}

/** The fields of a result that come from the hook's own reading. */
function fromAdmission(context: HookContext): Pick<HookResult, 'state' | 'stage' | 'request'> {
  return {
    ...(context.state ? { state: context.state } : {}),
    ...(context.stage ? { stage: context.stage } : {}),
    ...(context.request ? { request: context.request } : {}),
  };
}

/** Poststart, poststop, ...: nothing to load; at poststop the container's hold is released. */
async function notALoadStage(context: HookContext, options: HookOptions): Promise<HookResult> {
  const { state, stage } = context;
  const gone =
    stage === 'poststop' && state
      ? await release(
          {
            id: state.id,
            stage,
            ...(state.status !== undefined ? { status: state.status } : {}),
            annotations: state.annotations,
          },
          options,
        )
      : undefined;
  const record =
    gone?.record ??
    auditRecord({
      id: state?.id,
      stage,
      status: state?.status,
      dryRun: options.dryRun === true,
      annotations: state?.annotations,
      modules: [],
      started: process.hrtime.bigint(),
      warnings: [],
    });
  return {
    ...fromAdmission(context),
    ok: true,
    exitStatus: EXIT.ok,
    action: 'not-a-load-stage',
    modules: [],
    durationMs: record.durationMs,
    record,
    warnings: [...(gone?.warnings ?? [])],
  };
}

/** The result of a run refused (or interrupted) before the core decided anything. */
function refusedResult(
  error: unknown,
  options: HookOptions,
  context: HookContext,
  started: bigint,
  interruptedBy?: NodeJS.Signals,
): HookResult {
  const failure = asKmodloadError(error, context.request?.modules ?? []);
  const state = context.state ?? context.refusedState;
  const facts: AuditFacts = {
    id: state?.id,
    stage: context.stage,
    status: state?.status,
    request: context.request?.modules,
    dryRun: options.dryRun === true,
    annotations: context.config?.annotations ?? state?.annotations,
    modules: [],
    started,
    failure,
    interruptedBy,
    warnings: [],
  };
  const record = auditRecord(facts);
  return {
    ...fromAdmission(context),
    ok: false,
    exitStatus: record.exitStatus,
    action: interruptedBy ? 'failed' : failureAction(failure),
    message: record.error as string,
    modules: [],
    durationMs: record.durationMs,
    record,
    warnings: [],
  };
}

/** The result and log line of a run that ended before its state could be read: stdin too
 *  large or never closed, or a signal while waiting for it (`interruptedBy`). */
export function finishRefusedRun(
  error: unknown,
  options: HookOptions = {},
  interruptedBy?: NodeJS.Signals,
): HookResult {
  const context: HookContext = options.stage ? { stage: options.stage } : {};
  return write(
    refusedResult(error, options, context, process.hrtime.bigint(), interruptedBy),
    options,
  );
}

/** Writes the run's log line; a failure to do so is noted on the result. */
function write(result: HookResult, options: HookOptions): HookResult {
  const logError = writeAuditRecord(options.logFile, result.record);
  return logError === undefined ? result : { ...result, logError };
}
