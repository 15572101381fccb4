// Containers hold what they asked for; a module some kmodload hook inserted goes away when no
// hold covers it any more and the kernel shows it unused. Modules that were live before,
// builtins and modules someone else loaded are never touched: only `inserted.json` names
// candidates, and only a successful insert by a hook puts a module there.

import { fsAsync } from '../files';
import type { Kernel } from '../kernel/kernel';
import { O_NONBLOCK } from '../kernel/kernel';
import { EXIT, KmodloadError } from '../errors';
import { errorCode, kernelError } from '../loader/errno';
import type { HeldParameters } from '../loader/live-params';
import type { ModuleResult } from '../loader/types';
import { effectiveParams, kernelParams, sameSetting, settingText, valueText } from '../params';
import { processLiveness, processStartTime } from './process';
import type { Hold, HeldModule, InsertedModule, StoreOptions } from './store';
import { DEFAULT_STATE_DIR, STATE_VERSION, StateStore, withStateLock } from './store';
import { isoTime } from '../text';

async function exists(file: string): Promise<boolean> {
  try {
    await fsAsync.stat(file);
    return true;
  } catch {
    return false;
  }
}

export interface HoldsOptions extends StoreOptions {
  /** Where /proc is; tests point it elsewhere. */
  procRoot?: string;
}

/** What became of a module the release or gc looked at. */
export interface ReleasedModule {
  name: string;
  /** removed: delete_module succeeded; in-use: the kernel still uses it (kept, retried at the
   *  next release); gone: no longer loaded (someone removed it); kept: a remove rule keeps it. */
  status: 'removed' | 'in-use' | 'gone' | 'kept';
  reason?: string;
}

export interface ReleaseResult {
  /** A hold of this container existed and was dropped. */
  released: boolean;
  /** Holds of containers that are gone, dropped by the sweep. */
  stale: Hold[];
  modules: ReleasedModule[];
  /** State files moved aside (then nothing was unloaded). */
  warnings: string[];
}

/**
 * Records what a load stage did for container `id`: a hold on every module of the plan (when
 * the load succeeded), and every module this hook inserted (always: a partly failed load
 * leaves modules that a later release may remove). A second load stage of the same container
 * (prestart and createRuntime) adds to the same hold.
 */
export async function recordLoad(
  options: HoldsOptions,
  container: { id: string; pid?: number | undefined; via?: 'nri' | undefined },
  requested: string[],
  results: ModuleResult[],
  succeeded: boolean,
  params: Readonly<Record<string, ModuleParams>> = {},
): Promise<string[]> {
  // Nothing to hold, nothing inserted and no provisional hold to drop: no state to touch.
  if (
    !succeeded &&
    !results.some((r) => r.status === 'loaded') &&
    !(await holdExists(options, container.id))
  ) {
    return [];
  }
  const pid = container.pid !== undefined && container.pid > 0 ? container.pid : null;
  const pidStart = pid === null ? null : (processStartTime(pid, options.procRoot) ?? null);
  return withStateLock(options, async (store) => {
    const now = isoTime();
    const inserted = store.readInserted();
    let changed = false;
    for (const result of results) {
      if (result.status !== 'loaded') continue;
      if (inserted.modules.some((m) => m.name === result.name)) continue;
      const asked = Object.hasOwn(params, result.name) ? params[result.name] : undefined;
      inserted.modules.push({
        name: result.name,
        seq: inserted.next++,
        since: now,
        by: container.id,
        ...(asked ? { params: asked.params } : {}),
      });
      changed = true;
    }
    const earlierHold = store.readHold(container.id);
    if (succeeded) {
      const hold: Hold = earlierHold ?? newHold(container, pid, pidStart, now);
      // Made final: the modules are now held as the load left them.
      delete hold.provisional;
      for (const name of requested) if (!hold.requested.includes(name)) hold.requested.push(name);
      for (const result of results) {
        if (result.status === 'failed') continue;
        const held: HeldModule = {
          name: result.name,
          inserted: result.status === 'loaded',
          request: result.request,
        };
        const earlier = hold.modules.find((m) => m.name === held.name);
        if (!earlier) hold.modules.push(held);
        else earlier.inserted ||= held.inserted;
      }
      keepHeldParams(hold, params);
      store.writeHold(hold);
      store.step('hold-written');
    } else if (earlierHold?.provisional) {
      // Dropped: what was not loaded is not held; a hold of an earlier stage stays.
      delete earlierHold.provisional;
      keepHeldParams(earlierHold, {});
      if (earlierHold.modules.length > 0) store.writeHold(earlierHold);
      else store.removeHold(container.id);
      store.step('hold-written');
    }
    if (changed) {
      store.writeInserted(inserted);
      store.step('inserted-written');
    }
    return store.warnings;
  });
}

function newHold(
  container: { id: string; via?: 'nri' | undefined },
  pid: number | null,
  pidStart: string | null,
  now: string,
): Hold {
  return {
    version: STATE_VERSION,
    id: container.id,
    pid,
    pidStart,
    since: now,
    requested: [],
    modules: [],
    ...(container.via ? { via: container.via } : {}),
  };
}

/** The parameters a container asks for one module, and the name it asked that brought it. */
export interface ModuleParams {
  request: string;
  /** `PARAM=VALUE` words. */
  params: string;
}

/** The hold's parameters: those asked (`asked`, by module) and those it had, for the modules
 *  it holds or is loading only. */
function keepHeldParams(hold: Hold, asked: Readonly<Record<string, ModuleParams>>): void {
  const kept = Object.create(null) as Record<string, string>;
  for (const name of heldNames(hold)) {
    if (Object.hasOwn(asked, name)) kept[name] = (asked[name] as ModuleParams).params;
    else if (hold.params && Object.hasOwn(hold.params, name))
      kept[name] = hold.params[name] as string;
  }
  if (Object.keys(kept).length > 0) hold.params = kept;
  else delete hold.params;
}

/** What taking a provisional hold found. */
export interface ProvisionalHold {
  /** State files moved aside. */
  warnings: string[];
  /** Set when a running container holds a module of the plan with other values of the
   *  parameters asked: then no hold was taken. */
  conflict?: KmodloadError;
  /** Modules running containers' hooks inserted with parameters, and those parameters. */
  held: HeldParameters;
}

/** The first parameter of `asked` that `other` sets to another value: its setting there, and
 *  the value asked. */
function differing(asked: string, other: string): { held: string; asked: string } | undefined {
  const theirs = effectiveParams(kernelParams(other));
  for (const [key, setting] of effectiveParams(kernelParams(asked))) {
    const held = theirs.get(key);
    if (held && !sameSetting(held.value, setting.value)) {
      return { held: settingText(held), asked: valueText(setting.value ?? 'Y') };
    }
  }
  return undefined;
}

/** Why `name` cannot have other values while `other` holds it (or is loading it) with its own:
 *  said as the loader says a live module's conflict. */
function heldConflict(name: string, other: Hold, first: { held: string; asked: string }): string {
  const loaded = other.modules.some((m) => m.name === name);
  const state = loaded ? `live with ${first.held}` : `being loaded with ${first.held}`;
  const why = loaded
    ? `container ${other.id} holds it with that value`
    : `for container ${other.id}`;
  return `${state}, asked ${first.asked} (${why}: wait until it stops, or ask for the same)`;
}

/**
 * Takes a provisional hold for container `id` on every module of the plan it is about to load,
 * before the loader reads any module's state: a release running meanwhile (another container
 * stopping) cannot unload a module this load found live and counts on. `recordLoad` makes it
 * final or drops it. With `params` (the parameters asked, by module), a running container that
 * holds one of those modules with other values refuses the request (no hold is taken), and the
 * values the holds record for modules their hooks inserted come back as `held`.
 */
export async function takeProvisionalHold(
  options: HoldsOptions,
  container: { id: string; pid?: number | undefined; via?: 'nri' | undefined },
  modules: readonly string[],
  params: Readonly<Record<string, ModuleParams>> = {},
): Promise<ProvisionalHold> {
  const held = Object.create(null) as Record<string, { id: string; params: string }>;
  if (modules.length === 0) return { warnings: [], held };
  const pid = container.pid !== undefined && container.pid > 0 ? container.pid : null;
  const pidStart = pid === null ? null : (processStartTime(pid, options.procRoot) ?? null);
  return withStateLock(options, async (store) => {
    const asked = Object.keys(params);
    if (asked.length > 0) {
      // This container's own hold too (an earlier load stage): it vouches, never conflicts.
      const holds = store.readHolds();
      const running = holds.filter((hold) => !staleHolds([hold], options).includes(hold));
      for (const name of asked) {
        const { request, params: wanted } = params[name] as ModuleParams;
        for (const other of running) {
          const theirs =
            other.params && Object.hasOwn(other.params, name) ? other.params[name] : undefined;
          if (theirs === undefined) continue;
          const first = other.id === container.id ? undefined : differing(wanted, theirs);
          if (first) {
            const who = name === request ? '' : `${name} is `;
            const conflict = new KmodloadError(
              `${who}${heldConflict(name, other, first)}`,
              EXIT.refused,
              { subject: `cannot load ${request}` },
            );
            return { warnings: store.warnings, conflict, held };
          }
          if (other.modules.some((m) => m.name === name && m.inserted)) {
            held[name] = { id: other.id, params: theirs };
          }
        }
      }
    }
    const hold = store.readHold(container.id) ?? newHold(container, pid, pidStart, isoTime());
    hold.provisional = [...new Set([...(hold.provisional ?? []), ...modules])];
    keepHeldParams(hold, params);
    store.writeHold(hold);
    store.step('hold-written');
    return { warnings: store.warnings, held };
  });
}

/** The modules a hold covers: those it holds and those it is loading. */
function heldNames(hold: Hold): string[] {
  return [...hold.modules.map((m) => m.name), ...(hold.provisional ?? [])];
}

/** Holds whose container is gone: its process is not there, or the pid is another process's.
 *  A hold without a usable pid is stale only when older than `olderThanMs`, unless the NRI
 *  plugin took it: the runtime tells the plugin which containers live (Synchronize), and age
 *  says nothing about a pod that runs for months. */
function staleHolds(holds: Hold[], options: HoldsOptions, olderThanMs?: number): Hold[] {
  const stale: Hold[] = [];
  for (const hold of holds) {
    const liveness = processLiveness(hold.pid, hold.pidStart, options.procRoot);
    const old =
      olderThanMs !== undefined &&
      hold.via !== 'nri' &&
      Date.now() - Date.parse(hold.since) > olderThanMs;
    if (liveness === 'gone' || (liveness === 'unknown' && old)) stale.push(hold);
  }
  return stale;
}

/**
 * Removes, last inserted first, every inserted module that no hold covers and that the kernel
 * shows unused; repeats while that frees more (a module's users go before it, as with
 * modprobe -r). A module still in use stays recorded and is retried at the next release.
 */
async function removeUnheld(
  store: StateStore,
  kernel: Kernel,
  holds: Hold[],
  keep: (name: string) => string | undefined,
): Promise<ReleasedModule[]> {
  const inserted = store.readInserted();
  const covered = new Set(holds.flatMap(heldNames));
  const candidates = inserted.modules
    .filter((m) => !covered.has(m.name))
    .sort((a, b) => b.seq - a.seq);
  const outcome = new Map<string, ReleasedModule>();
  let progress = true;
  while (progress) {
    progress = false;
    for (const module of candidates) {
      const done = outcome.get(module.name);
      if (done && done.status !== 'in-use') continue;
      const result = await removeIfUnused(kernel, module, keep);
      outcome.set(module.name, result);
      if (result.status === 'removed') progress = true;
    }
  }
  const dropped = new Set(
    [...outcome.values()]
      .filter((r) => r.status === 'removed' || r.status === 'gone')
      .map((r) => r.name),
  );
  if (dropped.size > 0) {
    inserted.modules = inserted.modules.filter((m) => !dropped.has(m.name));
    store.writeInserted(inserted);
    store.step('inserted-written');
  }
  return candidates.map((m) => outcome.get(m.name) as ReleasedModule);
}

async function removeIfUnused(
  kernel: Kernel,
  module: InsertedModule,
  keep: (name: string) => string | undefined,
): Promise<ReleasedModule> {
  const { name } = module;
  const kept = keep(name);
  if (kept !== undefined) return { name, status: 'kept', reason: kept };
  if ((await kernel.initState(name)) === undefined) return { name, status: 'gone' };
  const holders = await kernel.holders(name);
  if (holders.length > 0) {
    return { name, status: 'in-use', reason: `in use by ${holders.join(', ')}` };
  }
  const refcount = await kernel.refcount(name);
  if (refcount !== undefined && refcount > 0) {
    return { name, status: 'in-use', reason: `reference count ${refcount}` };
  }
  try {
    await kernel.deleteModule(name, O_NONBLOCK);
    return { name, status: 'removed' };
  } catch (error) {
    const code = errorCode(error);
    if (code === 'ENOENT') return { name, status: 'gone' };
    if (code === 'EAGAIN' || code === 'EWOULDBLOCK' || code === 'EBUSY') {
      return { name, status: 'in-use', reason: `delete_module: ${code}` };
    }
    // The kernel's answer, not a bug: one line and EXIT.failed. The holds dropped so far stay
    // dropped; the module stays in inserted.json for the next release to try.
    const reason =
      code === 'ENOSYS'
        ? 'the running kernel cannot unload modules (delete_module: ENOSYS; built without CONFIG_MODULE_UNLOAD)'
        : kernelError(error).message;
    throw new KmodloadError(reason, EXIT.failed, { subject: `cannot unload ${name}` });
  }
}

export interface ReleaseOptions {
  /** Unload what the release (and the stale-hold sweep) left unheld. */
  unload: boolean;
  kernel: Kernel;
  /** Why a module must stay although unheld (a modprobe.d remove rule), if it must. */
  keep?: (name: string) => string | undefined;
}

/**
 * Drops container `id`'s hold; with `unload`, also sweeps stale holds and removes what no
 * hold covers any more. A container without a hold (its load failed, a dry run, a second
 * poststop) changes nothing. Nothing is unloaded when a state file was found corrupt.
 */
export async function releaseHold(
  options: HoldsOptions,
  id: string,
  release: ReleaseOptions,
): Promise<ReleaseResult> {
  return withStateLock(options, async (store) => {
    const released = store.removeHold(id);
    if (released) store.step('hold-removed');
    let stale: Hold[] = [];
    let modules: ReleasedModule[] = [];
    if (release.unload) {
      let holds = store.readHolds();
      stale = staleHolds(holds, options);
      for (const hold of stale) store.removeHold(hold.id);
      holds = holds.filter((h) => !stale.includes(h));
      if (!store.corrupt) {
        modules = await removeUnheld(
          store,
          release.kernel,
          holds,
          release.keep ?? (() => undefined),
        );
      }
    }
    return { released, stale, modules, warnings: store.warnings };
  });
}

/** Drops the holds of containers that are gone; with `unload`, removes what that freed. */
export async function collectGarbage(
  options: HoldsOptions,
  gc: ReleaseOptions & { olderThanMs?: number },
): Promise<ReleaseResult> {
  if (!(await exists(options.stateDir ?? DEFAULT_STATE_DIR))) {
    return { released: false, stale: [], modules: [], warnings: [] };
  }
  return withStateLock(options, async (store) => {
    let holds = store.readHolds();
    const stale = staleHolds(holds, options, gc.olderThanMs);
    for (const hold of stale) store.removeHold(hold.id);
    holds = holds.filter((h) => !stale.includes(h));
    const modules =
      gc.unload && !store.corrupt
        ? await removeUnheld(store, gc.kernel, holds, gc.keep ?? (() => undefined))
        : [];
    return { released: false, stale, modules, warnings: store.warnings };
  });
}

/** Whether container `id` has a hold (no lock, no addon: one stat). */
export async function holdExists(options: HoldsOptions, id: string): Promise<boolean> {
  const store = new StateStore(options.stateDir ?? DEFAULT_STATE_DIR, () => undefined);
  return exists(store.holdFile(id));
}

/** Every hold, with whether its container is still there. */
export async function listHolds(
  options: HoldsOptions = {},
): Promise<Array<Hold & { stale: boolean }>> {
  // No state directory: no hold (and nothing to create just to say so).
  if (!(await exists(options.stateDir ?? DEFAULT_STATE_DIR))) return [];
  return withStateLock(options, async (store) => {
    const holds = store.readHolds();
    const stale = staleHolds(holds, options);
    return holds.map((hold) => ({ ...hold, stale: stale.includes(hold) }));
  });
}

export interface TrackedModule {
  name: string;
  /** From /sys/module: live, coming, going, or absent. */
  state: 'live' | 'coming' | 'going' | 'absent';
  refcnt: number | null;
  /** Some kmodload hook inserted it (and nobody has removed it since). */
  inserted: boolean;
  /** The parameters a container asked for when a kmodload hook inserted it, and that
   *  container. */
  params?: { params: string; by: string };
  /** Live holds on it, with the parameters each container asked for it. */
  holders: Array<{ id: string; since: string; request: string; params?: string }>;
}

export interface StatusReport {
  modules: TrackedModule[];
  /** Holds of containers that are gone (`kmodload gc` drops them). */
  stale: Hold[];
  warnings: string[];
}

/** Every module kmodload knows about, its state in the kernel and who holds it. */
export async function holdStatus(options: HoldsOptions, kernel: Kernel): Promise<StatusReport> {
  if (!(await exists(options.stateDir ?? DEFAULT_STATE_DIR))) {
    return { modules: [], stale: [], warnings: [] };
  }
  return withStateLock(options, async (store) => {
    const holds = store.readHolds();
    const stale = staleHolds(holds, options);
    const inserted = store.readInserted();
    const names = new Set([
      ...inserted.modules.map((m) => m.name),
      ...holds.flatMap((h) => h.modules.map((m) => m.name)),
    ]);
    const modules: TrackedModule[] = [];
    for (const name of [...names].sort()) {
      const state = (await kernel.initState(name)) ?? 'absent';
      const insertion = inserted.modules.find((m) => m.name === name);
      modules.push({
        name,
        state,
        refcnt: state === 'absent' ? null : ((await kernel.refcount(name)) ?? null),
        inserted: insertion !== undefined,
        ...(insertion?.params ? { params: { params: insertion.params, by: insertion.by } } : {}),
        holders: holds
          .filter((h) => !stale.includes(h))
          .flatMap((h) =>
            h.modules
              .filter((m) => m.name === name)
              .map((m) => {
                const asked =
                  h.params && Object.hasOwn(h.params, name) ? h.params[name] : undefined;
                return {
                  id: h.id,
                  since: h.since,
                  request: m.request,
                  ...(asked ? { params: asked } : {}),
                };
              }),
          ),
      });
    }
    return { modules, stale, warnings: store.warnings };
  });
}

/** Module -> ids of the live containers holding it (for `kmodload unload`). */
export async function heldModules(options: HoldsOptions = {}): Promise<Map<string, string[]>> {
  const held = new Map<string, string[]>();
  for (const hold of await listHolds(options)) {
    if (hold.stale) continue;
    for (const name of new Set(heldNames(hold)))
      held.set(name, [...(held.get(name) ?? []), hold.id]);
  }
  return held;
}
