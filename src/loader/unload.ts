// modprobe -r semantics (kmod's rmmod_do_module), per module asked for:
//   1. its post-softdeps, last first (each the same procedure, failures not fatal);
//   2. the module itself: delete_module(name, O_NONBLOCK), plus O_TRUNC only with `force`;
//   3. each of its modules.dep dependencies, in modules.dep order, whose refcnt is now 0;
//   4. its pre-softdeps, last first (failures not fatal).
// A module that is not loaded is a silent success, as modprobe -r without --first-time.
// Different from modprobe on purpose: every requested module is checked first (builtin, in use,
// forbidden remove rule) and the whole call is refused before anything is removed; modprobe
// would already have removed the post-softdeps when it notices the module is in use.

import { EXIT, KmodloadError } from '../errors';
import type { Kernel } from '../kernel/kernel';
import { ruleVerdict } from '../planner/rules';
import { O_NONBLOCK, O_TRUNC } from '../kernel/kernel';
import type { CommandRunner } from './commands';
import { runShellCommand } from './commands';
import type { ModuleError } from './errno';
import { commandError, errorCode, kernelError, moduleError } from './errno';
import type { UnloadModuleResult, UnloadResult, UnloadStatus } from './types';

/** What unloading needs from the module database (ModuleDatabase provides it). */
export interface UnloadDatabase {
  /** modules.dep dependencies of a module, in modules.dep order. */
  dependencies(name: string): string[];
  /** Soft dependencies, resolved to module names. */
  softdeps(name: string): { pre: string[]; post: string[] };
  isBuiltin(name: string): boolean;
  /** The command of the first matching `remove` rule, if any. */
  removeCommand(name: string): string | null | undefined;
}

/** One requested name and the modules it resolved to. */
export interface UnloadTarget {
  request: string;
  modules: string[];
}

export interface UnloadExecuteOptions {
  kernel: Kernel;
  /** Decide and report; no delete_module, no command. /sys is still read. */
  dryRun?: boolean;
  /** Adds O_TRUNC (the kernel's forced unload). Only on explicit request. */
  force?: boolean;
  /** Run remove rules other than /bin/true with /bin/sh. Off by default. */
  allowRemoveCommands?: boolean;
  runCommand?: CommandRunner;
  /** Modules that running containers hold (module -> container ids): a requested one refuses
   *  the call, a dependency or softdep one is left in place. */
  held?: ReadonlyMap<string, readonly string[]>;
}

/** Why `name` cannot go, if it cannot. Holders in `goingFirst` (asked for earlier in the same
 *  call, so removed before) do not count, and then neither does the reference count: a holder
 *  may hold more than one reference (ip_vs_wrr holds two on ip_vs), so only delete_module,
 *  after the holders are gone, can tell. */
async function inUseReason(
  kernel: Kernel,
  name: string,
  goingFirst: ReadonlySet<string>,
): Promise<string | undefined> {
  const holders = await kernel.holders(name);
  const staying = holders.filter((holder) => !goingFirst.has(holder));
  if (staying.length > 0) return `module ${name} is in use by ${staying.join(', ')}`;
  if (staying.length < holders.length) return undefined;
  const refcount = await kernel.refcount(name);
  if (refcount !== undefined && refcount > 0) {
    return `module ${name} is in use (reference count ${refcount})`;
  }
  return undefined;
}

/** Refuses the call, before anything is removed, when a requested module cannot go. */
async function assertRemovable(
  targets: UnloadTarget[],
  db: UnloadDatabase,
  options: UnloadExecuteOptions,
): Promise<void> {
  const goingFirst = new Set<string>();
  for (const target of targets) {
    for (const name of target.modules) {
      const refuse = (reason: string): never => {
        throw new KmodloadError(reason, EXIT.refused, {
          subject: `cannot unload ${target.request}`,
        });
      };
      const command = db.removeCommand(name);
      if (command) {
        const verdict = ruleVerdict('remove', name, command, options.allowRemoveCommands === true);
        if (verdict.refusal !== undefined) refuse(verdict.refusal);
        continue;
      }
      if (db.isBuiltin(name)) refuse(`module ${name} is builtin`);
      if ((await options.kernel.initState(name)) === undefined) continue;
      const holders = options.held?.get(name);
      if (holders && holders.length > 0) {
        refuse(
          `module ${name} is held by container${holders.length > 1 ? 's' : ''} ` +
            `${holders.join(', ')} (see kmodload status; --ignore-holds removes it anyway)`,
        );
      }
      const busy = await inUseReason(options.kernel, name, goingFirst);
      if (busy !== undefined) refuse(busy);
      goingFirst.add(name);
    }
  }
}

class Remover {
  private readonly handled = new Map<string, boolean>();
  private readonly removed = new Set<string>();
  readonly results: UnloadModuleResult[] = [];

  constructor(
    private readonly db: UnloadDatabase,
    private readonly options: UnloadExecuteOptions,
    private readonly runCommand: CommandRunner,
  ) {}

  /** Removes `name` and what it brought in; resolves to false when `name` stayed in. */
  async removeModule(request: string, name: string, required: boolean): Promise<boolean> {
    const earlier = this.handled.get(name);
    if (earlier !== undefined) return earlier;
    this.handled.set(name, true);
    // A softdep a container holds stays (a requested one was refused before).
    if (!required && this.options.held?.has(name)) return true;
    const kernel = this.options.kernel;
    const command = this.db.removeCommand(name) || undefined;

    if (command === undefined) {
      if (this.db.isBuiltin(name)) return true; // only softdeps get here; refused earlier otherwise
      if ((await kernel.initState(name)) === undefined) {
        if (required) this.record(request, name, 'not-loaded', required);
        return true;
      }
    }

    const { pre, post } = this.db.softdeps(name);
    for (const dep of [...post].reverse()) await this.removeModule(request, dep, false);

    let ok: boolean;
    if (command !== undefined) {
      ok = await this.runRemoveCommand(request, name, command, required);
    } else {
      // this.removed matters in a dry run only: there the holders we "removed" are still there.
      const busy = await inUseReason(kernel, name, this.removed);
      if (busy !== undefined) {
        this.record(
          request,
          name,
          required ? 'failed' : 'in-use',
          required,
          moduleError('EBUSY', busy),
        );
        ok = false;
      } else {
        ok = await this.delete(request, name, required);
      }
    }
    this.handled.set(name, ok);
    if (!ok) return false;

    if (command === undefined) {
      for (const dep of this.db.dependencies(name)) {
        if (this.handled.has(dep) || this.options.held?.has(dep)) continue;
        if ((await this.remainingRefcount(dep)) === 0) {
          this.handled.set(dep, true);
          // As modprobe: failures to remove a dependency are not fatal.
          this.handled.set(dep, await this.delete(request, dep, false));
        }
      }
    }

    for (const dep of [...pre].reverse()) await this.removeModule(request, dep, false);
    return true;
  }

  /** The refcount a dependency will have once the modules we removed let go of it. */
  private async remainingRefcount(name: string): Promise<number | undefined> {
    const kernel = this.options.kernel;
    const refcount = await kernel.refcount(name);
    if (refcount === undefined || !this.options.dryRun) return refcount;
    // Dry run: nothing was really removed, so subtract the holders we would have removed.
    const holders = await kernel.holders(name);
    return refcount - holders.filter((holder) => this.removed.has(holder)).length;
  }

  private async delete(request: string, name: string, required: boolean): Promise<boolean> {
    if (this.options.dryRun) {
      this.removed.add(name);
      this.record(request, name, 'would-remove', required);
      return true;
    }
    const flags = O_NONBLOCK | (this.options.force ? O_TRUNC : 0);
    try {
      await this.options.kernel.deleteModule(name, flags);
    } catch (error) {
      if (error instanceof KmodloadError) throw error;
      // Someone else removed it in between: it is out, which is what was asked.
      if (errorCode(error) === 'ENOENT') {
        this.record(request, name, 'not-loaded', required);
        return true;
      }
      const failure = kernelError(error);
      const inUse = failure.code === 'EAGAIN' || failure.code === 'EWOULDBLOCK';
      this.record(request, name, inUse && !required ? 'in-use' : 'failed', required, failure);
      return false;
    }
    this.removed.add(name);
    this.record(request, name, 'removed', required);
    return true;
  }

  private async runRemoveCommand(
    request: string,
    name: string,
    command: string,
    required: boolean,
  ): Promise<boolean> {
    const verdict = ruleVerdict('remove', name, command, this.options.allowRemoveCommands === true);
    if (verdict.action === 'noop') {
      this.record(request, name, 'skipped', required);
      return true;
    }
    if (verdict.refusal !== undefined) {
      this.record(request, name, 'failed', required, moduleError('EPERM', verdict.refusal));
      return false;
    }
    if (this.options.dryRun) {
      this.record(request, name, 'would-remove', required);
      return true;
    }
    const outcome = await this.runCommand(command, name);
    if (outcome.status === 0) {
      this.record(request, name, 'removed', required);
      return true;
    }
    const detail = outcome.lastErrorLine ? `: ${outcome.lastErrorLine}` : '';
    this.record(
      request,
      name,
      'failed',
      required,
      commandError(`remove command '${command}' exited with status ${outcome.status}${detail}`),
    );
    return false;
  }

  private record(
    request: string,
    name: string,
    status: UnloadStatus,
    required: boolean,
    error?: ModuleError,
  ): void {
    const result: UnloadModuleResult = { request, name, status, required };
    if (error) result.error = error;
    this.results.push(result);
  }
}

/**
 * Removes the modules each target resolved to, with modprobe -r's order. Rejects with
 * KmodloadError(EXIT.refused) before removing anything when a requested module is builtin, in
 * use (holders named) or protected by a remove rule.
 */
export async function executeUnload(
  targets: UnloadTarget[],
  db: UnloadDatabase,
  options: UnloadExecuteOptions,
): Promise<UnloadResult> {
  await assertRemovable(targets, db, options);
  const remover = new Remover(db, options, options.runCommand ?? runShellCommand);
  let ok = true;
  for (const target of targets) {
    for (const name of target.modules) {
      // As modprobe -r: the first failing match ends that name; other names still go.
      if (!(await remover.removeModule(target.request, name, true))) {
        ok = false;
        break;
      }
    }
  }
  return { ok, modules: remover.results };
}
