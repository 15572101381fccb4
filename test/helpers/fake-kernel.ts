// A Kernel that records every call and answers from a table: live and coming modules,
// injected errors per module (EEXIST, ENODEV, EPERM, ENOEXEC, ENOSYS ...), races, the list of
// in-kernel decompressors (passed to every insert), refcounts and holders, slow inserts, and
// /sys/module/NAME/parameters. Insert and delete change its state like the real kernel would,
// so a run can be followed by another.

import * as fs from 'node:fs';

import { errnoNumber } from '../../src/errno';
import { kernelParams, paramKey } from '../../src/params';
import { nameSystemError, systemErrorReason } from '../../src/native/system-error';
import {
  InsertError,
  type InitState,
  type InsertFailure,
  type InsertOptions,
  type Kernel,
} from '../../src/kernel/kernel';

export type FakeCall =
  | {
      op: 'insertModule';
      name: string;
      path: string;
      params: string;
      flags: number;
      kernelFormats: readonly string[];
    }
  | { op: 'deleteModule'; name: string; flags: number };

/** An errno-style error as the addon produces them, named by the same code. */
export function systemError(code: string, syscall: string, what: string): Error {
  const raw = Object.assign(new Error('fake kernel'), {
    errno: errnoNumber(code),
    syscall,
    path: what,
    detail: 'fake kernel',
  });
  return nameSystemError(raw) as Error;
}

/** An insert that failed, as LinuxKernel reports it: the addon's error, classified. */
export function insertFailure(
  failure: InsertFailure,
  code: string,
  syscall: string,
  what: string,
): InsertError {
  const error = systemError(code, syscall, what);
  return new InsertError(failure, error, systemErrorReason(error));
}

function nameOfPath(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  return base.slice(0, base.indexOf('.') < 0 ? undefined : base.indexOf('.')).replace(/-/g, '_');
}

type Fault = {
  code: string;
  /** Which call fails: an insert (default: both) or a delete. */
  syscall?: 'insert_module' | 'delete_module';
  times: number;
};

export class FakeKernel implements Kernel {
  readonly calls: FakeCall[] = [];
  readonly reads: string[] = [];
  private readonly states = new Map<string, InitState>();
  private readonly faults = new Map<string, Fault[]>();
  private readonly refcounts = new Map<string, number>();
  private readonly holderMap = new Map<string, string[]>();
  private readonly racers = new Set<string>();
  private readonly dependencyMap = new Map<string, string[]>();
  private readonly pauses = new Map<string, { reached: () => void; resumed: Promise<void> }>();
  /** What /sys/module/NAME/parameters shows, by module and parameter. */
  private readonly shown = new Map<string, Map<string, string>>();
  /** Parameters sysfs shows once the module is inserted (declared with a mode other than 0). */
  private readonly exposed = new Map<string, Set<string>>();
  compressionList: string[] = [];

  /** Inserting a module makes it a holder of its live dependencies (one reference each), as
   *  the kernel does for the modules whose symbols it uses. */
  dependsOn(dependencies: Record<string, string[]>): this {
    for (const [name, deps] of Object.entries(dependencies)) this.dependencyMap.set(name, deps);
    return this;
  }

  /** Marks modules live (or another state). */
  setState(name: string, state: InitState): this {
    this.states.set(name, state);
    return this;
  }

  /** The next `times` inserts (or deletes) of `name` fail with `code`. */
  fail(
    name: string,
    code: string,
    options: { times?: number; syscall?: Fault['syscall'] } = {},
  ): this {
    const list = this.faults.get(name) ?? [];
    const fault: Fault = { code, times: options.times ?? Number.POSITIVE_INFINITY };
    if (options.syscall) fault.syscall = options.syscall;
    list.push(fault);
    this.faults.set(name, list);
    return this;
  }

  /** Another loader inserts `name` between our check and our insert: we get EEXIST. */
  raceOn(name: string): this {
    this.racers.add(name);
    return this;
  }

  /** The next insert of `name` waits, before it reaches the kernel, until `resume()`:
   *  `reached` resolves once it waits (a slow insert, for races with other hooks). */
  pauseInsert(name: string): { reached: Promise<void>; resume: () => void } {
    let reached!: () => void;
    let resume!: () => void;
    const reachedPromise = new Promise<void>((resolve) => (reached = resolve));
    const resumed = new Promise<void>((resolve) => (resume = resolve));
    this.pauses.set(name, { reached, resumed });
    return { reached: reachedPromise, resume };
  }

  /** What /sys/module/NAME/parameters/PARAM shows now (undefined: no such file). */
  setParameter(name: string, param: string, shown: string | undefined): this {
    const params = this.shown.get(name) ?? new Map<string, string>();
    if (shown === undefined) params.delete(param);
    else params.set(param, shown);
    this.shown.set(name, params);
    return this;
  }

  /** Parameters an insert of `name` shows in sysfs, with the value it was given as it is
   *  written (the others are declared with mode 0: sysfs has no file for them). */
  exposeParameters(name: string, params: string[]): this {
    this.exposed.set(name, new Set(params));
    return this;
  }

  setRefcount(name: string, refcount: number): this {
    this.refcounts.set(name, refcount);
    return this;
  }

  setHolders(name: string, holders: string[]): this {
    this.holderMap.set(name, holders);
    return this;
  }

  state(name: string): InitState {
    return this.states.get(name);
  }

  /** Names inserted, in order. */
  inserted(): string[] {
    return this.calls.filter((c) => c.op !== 'deleteModule').map((c) => c.name);
  }

  deleted(): string[] {
    return this.calls.filter((c) => c.op === 'deleteModule').map((c) => c.name);
  }

  private fault(name: string, syscall: NonNullable<Fault['syscall']>): string | undefined {
    const list = this.faults.get(name) ?? [];
    const fault = list.find(
      (f) => f.times > 0 && (f.syscall === undefined || f.syscall === syscall),
    );
    if (!fault) return undefined;
    fault.times--;
    return fault.code;
  }

  private insert(name: string, params: string): void {
    // Errors say finit_module, as the kernel's answers to an insert do.
    const refused = (code: string) => insertFailure('kernel', code, 'finit_module', name);
    if (this.racers.has(name)) {
      this.racers.delete(name);
      this.states.set(name, 'live');
      throw refused('EEXIST');
    }
    const code = this.fault(name, 'insert_module');
    if (code) throw refused(code);
    if (this.states.get(name) === 'live') throw refused('EEXIST');
    this.states.set(name, 'live');
    this.refcounts.set(name, this.refcounts.get(name) ?? 0);
    for (const setting of kernelParams(params)) {
      const param = paramKey(setting.name);
      if (this.exposed.get(name)?.has(param)) this.setParameter(name, param, setting.value ?? 'Y');
    }
    for (const dep of this.dependencyMap.get(name) ?? []) {
      if (this.states.get(dep) !== 'live') continue;
      this.holderMap.set(dep, [...(this.holderMap.get(dep) ?? []), name]);
      this.refcounts.set(dep, (this.refcounts.get(dep) ?? 0) + 1);
    }
  }

  /** Names in the kernel now (live or otherwise), sorted. */
  loaded(): string[] {
    return [...this.states.keys()].filter((name) => this.states.get(name) !== undefined).sort();
  }

  async insertModule(path: string, params: string, options: InsertOptions): Promise<void> {
    // The addon opens the file first: a missing one fails there, before any syscall.
    if (!fs.existsSync(path)) throw insertFailure('missing-file', 'ENOENT', 'open', path);
    const name = nameOfPath(path);
    const pause = this.pauses.get(name);
    if (pause) {
      this.pauses.delete(name);
      pause.reached();
      await pause.resumed;
    }
    const flags = options.flags ?? 0;
    const kernelFormats = [...options.kernelFormats];
    this.calls.push({ op: 'insertModule', name, path, params, flags, kernelFormats });
    this.insert(name, params);
  }

  async deleteModule(name: string, flags: number): Promise<void> {
    this.calls.push({ op: 'deleteModule', name, flags });
    const code = this.fault(name, 'delete_module');
    if (code) throw systemError(code, 'delete_module', name);
    if (this.states.get(name) === undefined) throw systemError('ENOENT', 'delete_module', name);
    if ((this.refcounts.get(name) ?? 0) > 0) throw systemError('EAGAIN', 'delete_module', name);
    this.states.delete(name);
    this.refcounts.delete(name);
    this.shown.delete(name);
    // What it held lets go, as the kernel drops the references on removal.
    for (const [held, holders] of this.holderMap) {
      if (holders.includes(name)) {
        this.holderMap.set(
          held,
          holders.filter((h) => h !== name),
        );
        this.refcounts.set(held, Math.max(0, (this.refcounts.get(held) ?? 1) - 1));
      }
    }
  }

  async initState(name: string): Promise<InitState> {
    this.reads.push(`initstate ${name}`);
    return this.states.get(name);
  }

  async refcount(name: string): Promise<number | undefined> {
    this.reads.push(`refcnt ${name}`);
    if (this.states.get(name) === undefined) return undefined;
    return this.refcounts.get(name) ?? 0;
  }

  async holders(name: string): Promise<string[]> {
    this.reads.push(`holders ${name}`);
    return [...(this.holderMap.get(name) ?? [])];
  }

  async parameter(name: string, param: string): Promise<string | undefined> {
    this.reads.push(`parameter ${name} ${param}`);
    return this.shown.get(name)?.get(param);
  }

  async compression(): Promise<string[]> {
    return [...this.compressionList];
  }
}
