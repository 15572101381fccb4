// Performs a Plan the way kmod's modprobe -a does (kmod_module_probe_insert_module for every
// match of every name), with three deliberate differences: a request that cannot be fully
// planned refuses the whole call before any syscall; a module is inserted at most once per call;
// install commands other than /bin/true run only when the caller allowed them.
//
// Failure semantics, as modprobe:
// - a soft dependency that fails (not `required`) is recorded and the probe goes on;
// - a required module that fails ends its probe: the rest of that probe is not attempted;
// - every other match of the same name and every other name is still attempted;
// - a name fails when its LAST match failed (modprobe keeps the last match's status), and the
//   call is ok only when no name failed.
// - ENOSYS (a kernel without module support) ends the whole call at once: every other insert
//   would fail the same way.
// - A module file that exists but cannot be used (not a regular file, over the size cap, a
//   compressed stream that does not decode) rejects the call (EXIT.environment): the tree is
//   broken. What was inserted before stays, and is reported through onModuleResult.
// - A module live with other parameters than the plan asks (src/loader/live-params.ts) refuses
//   the call before any syscall, or is a warning, as `paramConflict` says.

import { EXIT, KmodloadError } from '../errors';
import { oneLine } from '../text';
import { InsertError, type InitState, type Kernel } from '../kernel/kernel';
import { installVerdict, shellInstallVerdict } from '../planner/rules';
import type { Plan, Probe, ProbeStep } from '../planner/plan';
import type { PolicyVerdict } from '../policy/types';
import type { CommandRunner } from './commands';
import {
  WARN_ON_PARAM_CONFLICT,
  askedParams,
  compareWithLive,
  paramRefusal,
  paramWarning,
  planParamFindings,
  type HeldParameters,
  type ParamConflictPolicy,
  type ParamFinding,
} from './live-params';
import { expandCommand, runShellCommand } from './commands';
import type { ModuleError } from './errno';
import { commandError, fileError, kernelError, moduleError } from './errno';
import type { LoadResult, ModuleResult } from './types';

export interface ExecuteOptions {
  kernel: Kernel;
  /** Decide and report, but make no syscall and run no command. /sys is still read. */
  dryRun?: boolean;
  /** Run install rules other than /bin/true with /bin/sh. Off by default. */
  allowInstallCommands?: boolean;
  /** The host policy's verdict on the plan, if it was checked: one that is not ok refuses it. */
  verdict?: PolicyVerdict;
  /** Runs install commands; default /bin/sh -c. */
  runCommand?: CommandRunner;
  /** Called with each module's result as soon as it is known (the hook logs what was
   *  inserted so far if it is interrupted). */
  onModuleResult?: (result: ModuleResult) => void;
  /** What a module live with other parameters than the plan asks means: `refuse` refuses the
   *  call before anything is inserted, `warn` adds a warning to the result. Default: warn. */
  paramConflict?: ParamConflictPolicy;
  /** What running containers' holds say kmodload loaded modules with, for parameters sysfs
   *  does not show. */
  heldParameters?: HeldParameters;
}

/**
 * Throws KmodloadError(EXIT.refused) naming the first request that cannot be performed, before
 * any syscall, so a refused request changes nothing. The planner's verdict (`request.error`:
 * unknown, invalid, blacklisted, forbidden) decides, then what only the caller knows now:
 * whether install rules that need a shell may run, and the host policy's verdict if the plan
 * was checked.
 */
export function assertPlanRunnable(
  plan: Plan,
  options: Pick<ExecuteOptions, 'allowInstallCommands' | 'verdict'> = {},
): void {
  for (const request of plan.requests) {
    let reason = request.error?.message;
    if (reason === undefined && !options.allowInstallCommands) {
      reason = request.probes
        .filter((probe) => !probe.skipped)
        .flatMap((probe) => probe.steps)
        .map((step) => shellInstallVerdict(step, false)?.refusal)
        .find((refusal) => refusal !== undefined);
    }
    reason ??= options.verdict?.violations.find((v) => v.request === request.request)?.reason;
    if (reason !== undefined) {
      throw new KmodloadError(reason, EXIT.refused, { subject: `cannot load ${request.request}` });
    }
  }
  // A limit on the whole request (max-modules).
  const overall = options.verdict?.violations.find((v) => v.request === undefined);
  if (overall) {
    throw new KmodloadError(overall.reason, EXIT.refused, {
      subject: `cannot load ${namesForMessage(plan)}`,
    });
  }
}

/** The requested names for a one-line message, cut after a few. */
function namesForMessage(plan: Plan): string {
  const names = plan.requests.map((r) => r.request);
  const shown = names.slice(0, 3).join(',');
  return names.length > 3 ? `${shown},... (${names.length} names)` : shown;
}

/** Thrown inside the runner when the kernel answered ENOSYS: nothing else can load. */
class NoModuleSupport extends Error {}

interface StepOutcome {
  result: ModuleResult;
  failed: boolean;
}

class PlanRunner {
  private readonly done = new Map<string, StepOutcome>();
  private readonly results: ModuleResult[] = [];
  private readonly warnings: string[] = [];
  private kernelCompression: Promise<string[]> | undefined;
  /** A dry run's module states, all asked at once when it starts: nothing it does changes
   *  them, so the answers are those the steps would get one by one. */
  private readonly states = new Map<string, Promise<InitState | ModuleError>>();

  constructor(
    private readonly options: ExecuteOptions,
    private readonly runCommand: CommandRunner,
  ) {}

  async run(plan: Plan): Promise<LoadResult> {
    if (this.options.dryRun) this.askStates(plan);
    this.report(
      await planParamFindings(
        plan,
        this.options.kernel,
        (name) => this.readState(name),
        this.paramConflict,
        this.options.heldParameters,
      ),
    );
    let ok = true;
    try {
      for (const request of plan.requests) {
        let requestFailed = false;
        for (const probe of request.probes) {
          // A blacklisted alias match is skipped silently, as modprobe does.
          if (probe.skipped) continue;
          requestFailed = await this.runProbe(request.request, probe);
        }
        if (requestFailed) ok = false;
      }
    } catch (error) {
      if (!(error instanceof NoModuleSupport)) throw error;
      ok = false;
    }
    const verdict = this.options.verdict;
    return {
      ok,
      plan,
      ...(verdict ? { verdict } : {}),
      modules: this.results,
      ...(this.warnings.length > 0 ? { warnings: this.warnings } : {}),
    };
  }

  private get paramConflict(): ParamConflictPolicy {
    return this.options.paramConflict ?? WARN_ON_PARAM_CONFLICT;
  }

  /** Throws the first refusal; keeps the warnings. */
  private report(findings: readonly ParamFinding[]): void {
    const refusal = paramRefusal(findings);
    if (refusal) throw refusal;
    this.warnings.push(...findings.map(paramWarning));
  }

  /** Returns true when the probe failed (a required step failed). */
  private async runProbe(request: string, probe: Probe): Promise<boolean> {
    const target = probe.steps.find((step) => step.target);
    // modprobe first asks whether the module itself is in (builtin or live): then it does
    // nothing at all, not even its softdeps.
    if (target && !this.done.has(target.name)) {
      if (target.kind === 'builtin') {
        this.record(request, target, { status: 'builtin' });
        return false;
      }
      const state = await this.readState(target.name);
      if (typeof state === 'object') {
        this.record(request, target, { status: 'failed', error: state });
        return true;
      }
      if (state === 'live') {
        this.record(request, target, { status: 'already-live' });
        return false;
      }
    }
    for (const step of probe.steps) {
      const outcome = await this.runStep(request, step);
      if (outcome.failed && step.required) return true;
    }
    return false;
  }

  private async runStep(request: string, step: ProbeStep): Promise<StepOutcome> {
    const earlier = this.done.get(step.name);
    if (earlier) {
      // Loaded at most once per call. A failed softdep that another probe requires fails
      // that probe too: mark the entry as required so the report says so.
      if (step.required) earlier.result.required = true;
      return earlier;
    }
    if (step.kind === 'builtin') return this.record(request, step, { status: 'builtin' });

    const state = await this.readState(step.name);
    if (typeof state === 'object')
      return this.record(request, step, { status: 'failed', error: state });
    // Only live counts: a coming module is inserted anyway and the kernel waits for it.
    if (state === 'live') return this.record(request, step, { status: 'already-live' });

    if (step.kind === 'install') return this.runInstall(request, step);
    return this.runInsmod(request, step);
  }

  /** Starts reading the state of every module the plan may look at. */
  private askStates(plan: Plan): void {
    for (const request of plan.requests) {
      for (const probe of request.probes) {
        if (probe.skipped) continue;
        for (const step of probe.steps) {
          if (step.kind === 'builtin' || this.states.has(step.name)) continue;
          const state = this.askState(step.name);
          // Awaited when its step comes; one that never comes must not be an unhandled rejection.
          state.catch(() => undefined);
          this.states.set(step.name, state);
        }
      }
    }
  }

  /** The module's initstate, or why /sys could not tell: a failure of this module only. */
  private readState(name: string): Promise<InitState | ModuleError> {
    return this.states.get(name) ?? this.askState(name);
  }

  private async askState(name: string): Promise<InitState | ModuleError> {
    try {
      return await this.options.kernel.initState(name);
    } catch (error) {
      rethrowIfEnvironment(error);
      return fileError(error, `cannot read the state of module ${name}`);
    }
  }

  private async runInstall(request: string, step: ProbeStep): Promise<StepOutcome> {
    const command = step.command ?? '';
    const verdict = installVerdict(step, this.options.allowInstallCommands === true);
    if (verdict.action === 'noop') return this.record(request, step, { status: 'skipped' });
    if (verdict.refusal !== undefined) {
      // assertPlanRunnable refuses these first; this keeps the loader safe on its own.
      return this.record(request, step, {
        status: 'failed',
        error: moduleError('EPERM', verdict.refusal),
      });
    }
    if (this.options.dryRun) return this.record(request, step, { status: 'would-load' });
    const expanded = expandCommand(command, step.options);
    const outcome = await this.runCommand(expanded, step.name);
    if (outcome.status === 0) return this.record(request, step, { status: 'loaded' });
    const detail = outcome.lastErrorLine ? `: ${outcome.lastErrorLine}` : '';
    return this.record(request, step, {
      status: 'failed',
      error: commandError(
        `install command '${expanded}' exited with status ${outcome.status}${detail}`,
      ),
    });
  }

  private async runInsmod(request: string, step: ProbeStep): Promise<StepOutcome> {
    if (this.options.dryRun) return this.record(request, step, { status: 'would-load' });
    const path = step.path;
    if (path === undefined) {
      return this.record(request, step, {
        status: 'failed',
        error: moduleError('ENOENT', `module ${step.name} has no file in modules.dep`),
      });
    }
    const error = await this.insert(path, step.options);
    if (error === undefined) return this.record(request, step, { status: 'loaded' });
    // Another loader won the race between our check and our insert: the module is in, with
    // the parameters that loader gave it.
    if (error.code === 'EEXIST') {
      if (askedParams(step).length > 0) {
        const findings = await compareWithLive(
          request,
          step,
          this.options.kernel,
          this.paramConflict,
          this.options.heldParameters,
        );
        const refusal = paramRefusal(findings);
        if (refusal) {
          return this.record(request, step, {
            status: 'failed',
            error: moduleError('EEXIST', refusal.reason),
          });
        }
        this.warnings.push(...findings.map(paramWarning));
      }
      return this.record(request, step, { status: 'already-live' });
    }
    const outcome = this.record(request, step, { status: 'failed', error });
    if (error.code === 'ENOSYS') throw new NoModuleSupport();
    return outcome;
  }

  /** Inserts one module file; resolves to the error, or undefined on success. */
  private async insert(path: string, params: string): Promise<ModuleError | undefined> {
    const kernel = this.options.kernel;
    let kernelFormats: string[];
    try {
      this.kernelCompression ??= kernel.compression();
      kernelFormats = await this.kernelCompression;
    } catch (error) {
      rethrowIfEnvironment(error);
      return fileError(error, "cannot read the kernel's module compression");
    }
    try {
      await kernel.insertModule(path, params, { kernelFormats });
      return undefined;
    } catch (error) {
      // The addon missing (a KmodloadError), or a bug: not about this module.
      if (!(error instanceof InsertError)) throw error;
      if (error.failure === 'kernel') return kernelError(error.cause);
      // A missing file fails this module, as with modprobe; an unusable one is a broken tree:
      // the run stops.
      const subject = `cannot read module file ${path}`;
      const reason = oneLine(error.message);
      if (error.failure === 'missing-file') {
        return { ...fileError(error.cause, subject), message: `${subject}: ${reason}` };
      }
      throw new KmodloadError(reason, EXIT.environment, { cause: error.cause, subject });
    }
  }

  private record(
    request: string,
    step: ProbeStep,
    outcome: Pick<ModuleResult, 'status' | 'error'>,
  ): StepOutcome {
    const result: ModuleResult = {
      request,
      name: step.name,
      status: outcome.status,
      required: step.required,
    };
    if (step.path !== undefined) result.path = step.path;
    result.options = step.options;
    if (outcome.error) result.error = outcome.error;
    const recorded = { result, failed: outcome.status === 'failed' };
    this.done.set(step.name, recorded);
    this.results.push(result);
    this.options.onModuleResult?.(result);
    return recorded;
  }
}

/** A KmodloadError from below (e.g. the addon missing) is about the machine, not one module. */
function rethrowIfEnvironment(error: unknown): void {
  if (error instanceof KmodloadError) throw error;
}

/**
 * Performs `plan` with `options.kernel`. Rejects with KmodloadError(EXIT.refused) before any
 * syscall when a request cannot be performed; otherwise resolves to a result per module, with
 * `ok: false` when a required module failed.
 */
export async function executePlan(plan: Plan, options: ExecuteOptions): Promise<LoadResult> {
  assertPlanRunnable(plan, options);
  const runner = new PlanRunner(options, options.runCommand ?? runShellCommand);
  return runner.run(plan);
}
