// What the module tree and modprobe.d say about a name, answered in kmod's order. Every answer
// is computed once and cached: a database is opened per tree and configuration and then asked
// many questions (a service plans many requests, the hook plans a few).
import * as fs from 'node:fs';
import * as os from 'node:os';

import { loadModprobeConfig, type ConfigSource } from '../config';
import { words } from '../config/lines';
import { aliasNormalize, modnameNormalize, pathToModname } from '../config/normalize';
import type { CommandRule, ModprobeConfig } from '../config/types';
import { EXIT, KmodloadError } from '../errors';
import type { NativeBinding } from '../native/binding';
import { fnmatch as jsFnmatch, type Matcher } from './fnmatch';
import { INDEX_KINDS, ModuleIndexes, type IndexKind } from './indexes';
import type { KeyIndex } from './trie';
import { moduleDirectory } from './module-dir';

/** The module tree, and its configuration (ConfigSource: configDirs, like modprobe -C;
 *  kernelCommandLine; strictConfig, which the hook sets). */
export interface ResolverOptions extends ConfigSource {
  /** Root of the module tree, like modprobe -d; default: the running system. */
  root?: string;
  /** Kernel version, like modprobe -S; default: os.release(). */
  kernelVersion?: string;
}

/**
 * One module as a lookup yields it. kmod keeps a module found through an alias apart from the
 * same module found by name (options may name the alias), so `key` tells them apart.
 */
export interface ModuleRef {
  /** Identity within a plan: name, or name + "\" + alias. */
  key: string;
  name: string;
  /** The alias it was found through (config alias pattern, or the normalised request). */
  alias?: string;
  /** Set when the lookup itself found an install rule for this exact name. */
  installCommand?: string;
  /** Found in modules.builtin / modules.builtin.modinfo. */
  builtin?: boolean;
  /** The file, when the module was reached as a dependency path of another module. */
  path?: string;
}

export type LookupResult = { valid: false } | { valid: true; modules: ModuleRef[] };

/** A modules.dep entry: the module's file and its dependencies, in modules.dep order. */
export interface DepEntry {
  path: string;
  /** Dependency files (absolute) and the module names they stand for. */
  dependencies: Array<{ name: string; path: string }>;
}

/** How open() reads the indexes: all five, whole (a service that plans many times: planning
 *  then never reads the disk), or (`as-needed`, one plan) those that a lookup of a module name
 *  or an alias may ask, the `.bin` ones block by block as lookups reach them, leaving
 *  modules.symbols (only `symbol:` names ask it) to settle(), which opens it when a planning
 *  pass turns out to need it. A database opened `as-needed` answers only inside settle(). */
export type IndexReading = 'all' | 'as-needed';

const AS_NEEDED_AT_OPEN: readonly IndexKind[] = ['dep', 'alias', 'builtin', 'builtinAlias'];

/** What an index not read yet answers while settle() plans ahead: nothing. */
const UNREAD_INDEX: KeyIndex = {
  exact: () => [],
  wildcard: () => [],
  close: () => undefined,
};

/** A promise's outcome, as a value (no rejection goes unhandled while others are awaited). */
function outcome<T>(
  promise: Promise<T>,
): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  return promise.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

function ref(name: string, alias?: string, extra?: Partial<ModuleRef>): ModuleRef {
  const key = alias === undefined ? name : `${name}\\${alias}`;
  return { key, name, ...(alias === undefined ? {} : { alias }), ...extra };
}

export class ModuleDatabase {
  private readonly depCache = new Map<string, DepEntry | null>();
  private readonly lookupCache = new Map<string, LookupResult>();
  private readonly softdepCache = new Map<string, { pre: ModuleRef[]; post: ModuleRef[] }>();
  private readonly optionsCache = new Map<string, string | undefined>();
  private readonly installCache = new Map<string, CommandRule | undefined>();
  private readonly fileExists = new Map<string, boolean>();
  /** While settle() plans ahead: the indexes asked for that were not read yet. */
  private unread: Set<IndexKind> | undefined;
  private closed = false;

  private constructor(
    readonly moduleDir: string,
    readonly kernelVersion: string,
    readonly config: ModprobeConfig,
    private readonly indexes: ModuleIndexes,
    readonly fnmatch: Matcher,
  ) {}

  /**
   * Reads the configuration and the indexes of the tree `opts` names. `binding` (the addon, or
   * undefined for the text files) may still be loading. The indexes are opened as soon as it
   * is there (`reading`), those read whole on the thread pool while the directory and the
   * configuration, small, are looked at on this thread. Failures are reported in that order:
   * the addon, the directory, the configuration, the indexes.
   */
  static async open(
    opts: ResolverOptions,
    binding: NativeBinding | undefined | Promise<NativeBinding | undefined>,
    reading: IndexReading = 'all',
  ): Promise<ModuleDatabase> {
    const moduleDir = moduleDirectory(opts.root, opts.kernelVersion);
    const addon = await binding;
    const match: Matcher = addon ? (p, s) => addon.fnmatch(p, s) : jsFnmatch;
    const indexesRead = outcome(
      ModuleIndexes.open(
        moduleDir,
        match,
        addon,
        reading === 'all' ? INDEX_KINDS : AS_NEEDED_AT_OPEN,
        reading === 'as-needed',
      ),
    );
    try {
      if (!fs.statSync(moduleDir, { throwIfNoEntry: false })) {
        throw new KmodloadError(`module directory ${moduleDir} does not exist`, EXIT.environment);
      }
      const config = loadModprobeConfig({ ...opts, moduleDir });
      const indexes = await indexesRead;
      if (!indexes.ok) throw indexes.error;
      return new ModuleDatabase(
        moduleDir,
        opts.kernelVersion ?? os.release(),
        config,
        indexes.value,
        match,
      );
    } catch (error) {
      void indexesRead.then((indexes) => indexes.ok && indexes.value.close());
      throw error;
    }
  }

  /** True when the index answers from its `.bin` file rather than the text fallback. */
  usesBinaryIndex(kind: IndexKind): boolean {
    return this.indexes.isBinary(kind);
  }

  /**
   * kmod_module_new_from_lookup(): the first source with a match wins: config aliases,
   * modules.dep, symbols, install/remove rules, modules.alias, builtin, builtin aliases.
   */
  lookup(request: string): LookupResult {
    const cached = this.lookupCache.get(request);
    if (cached) return cached;
    const result = this.lookupUncached(request);
    this.lookupCache.set(request, result);
    return result;
  }

  private lookupUncached(request: string): LookupResult {
    const name = aliasNormalize(request);
    if (name === undefined) return { valid: false };
    const sources: Array<() => ModuleRef[]> = [
      () =>
        this.config.aliases
          .filter((rule) => this.fnmatch(rule.pattern, name))
          .map((rule) => ref(rule.module, rule.pattern)),
      () => (!name.includes(':') && this.depEntry(name) ? [ref(modnameNormalize(name))] : []),
      () =>
        name.startsWith('symbol:')
          ? this.wildcard('symbols', name).map((module) => ref(module, name))
          : [],
      () => this.commandLookup(name),
      () => this.wildcard('alias', name).map((module) => ref(module, name)),
      () =>
        this.index('builtin').exact(name).length > 0
          ? [ref(modnameNormalize(name), undefined, { builtin: true })]
          : [],
      () =>
        this.wildcard('builtinAlias', name).map((module) => ref(module, name, { builtin: true })),
    ];
    for (const source of sources) {
      const modules = source();
      if (modules.length > 0) return { valid: true, modules };
    }
    return { valid: true, modules: [] };
  }

  /** A name with an install (else remove) rule of exactly that name stands for a module. */
  private commandLookup(name: string): ModuleRef[] {
    const install = this.config.install.find((rule) => rule.module === name);
    if (install)
      return [ref(modnameNormalize(name), undefined, { installCommand: install.command })];
    const remove = this.config.remove.find((rule) => rule.module === name);
    return remove ? [ref(modnameNormalize(name))] : [];
  }

  private wildcard(kind: IndexKind, key: string): string[] {
    return this.index(kind)
      .wildcard(key)
      .map((v) => v.value);
  }

  /** An index; while settle() plans ahead, one not read yet answers nothing and is noted, to be
   *  read before the plan is made again. */
  private index(kind: IndexKind): KeyIndex {
    if (this.unread && !this.closed && !this.indexes.has(kind)) {
      this.unread.add(kind);
      return UNREAD_INDEX;
    }
    return this.indexes.get(kind);
  }

  /**
   * The modules.dep entry of a module. Like kmod, a dependency file that does not exist
   * drops the whole dependency list (kmod logs it; loading then fails on a missing symbol).
   */
  depEntry(name: string): DepEntry | undefined {
    let entry = this.depCache.get(name);
    if (entry === undefined) {
      entry = this.readDepEntry(name) ?? null;
      this.depCache.set(name, entry);
    }
    return entry ?? undefined;
  }

  private readDepEntry(name: string): DepEntry | undefined {
    const line = this.index('dep').exact(name)[0]?.value;
    if (line === undefined) return undefined;
    const colon = line.indexOf(':');
    if (colon < 0) return undefined;
    const base = `${this.moduleDir}/`;
    const absolute = (p: string): string => (p.startsWith('/') ? p : base + p);
    const dependencies: DepEntry['dependencies'] = [];
    for (const word of words(line.slice(colon + 1))) {
      const path = absolute(word);
      if (!this.exists(path)) return { path: absolute(line.slice(0, colon)), dependencies: [] };
      dependencies.push({ name: pathToModname(path), path });
    }
    return { path: absolute(line.slice(0, colon)), dependencies };
  }

  /** Whether a module file is there: one access(2) per file (microseconds), remembered. */
  private exists(path: string): boolean {
    let known = this.fileExists.get(path);
    if (known === undefined) {
      known = fs.existsSync(path);
      this.fileExists.set(path, known);
    }
    return known;
  }

  /**
   * Runs a synchronous plan with the indexes it needs: a first pass notes those it asked that
   * were not read yet (a database opened `as-needed`); they are read on the thread pool and the
   * plan is made again (a pass that meets new ones goes round again).
   */
  async settle<T>(plan: () => T): Promise<T> {
    for (;;) {
      const unread = new Set<IndexKind>();
      this.unread = unread;
      let result: T;
      try {
        result = plan();
      } finally {
        this.unread = undefined;
      }
      if (unread.size === 0) return result;
      // Answers given without these indexes are asked again.
      await this.indexes.add([...unread]);
      this.lookupCache.clear();
      this.softdepCache.clear();
      this.depCache.clear();
    }
  }

  /** In modules.builtin: compiled into the kernel. */
  isBuiltin(name: string): boolean {
    return this.index('builtin').exact(modnameNormalize(name)).length > 0;
  }

  /** Hard dependencies of a module by name, in modules.dep order. */
  dependencies(name: string): string[] {
    return (this.depEntry(modnameNormalize(name))?.dependencies ?? []).map((d) => d.name);
  }

  /** The first install rule whose pattern matches the module name. */
  installRule(name: string): CommandRule | undefined {
    if (!this.installCache.has(name)) {
      this.installCache.set(
        name,
        this.config.install.find((r) => this.fnmatch(r.module, name)),
      );
    }
    return this.installCache.get(name);
  }

  /** The command of installRule(name). */
  installCommand(name: string): string | undefined {
    return this.installRule(name)?.command;
  }

  /** The first remove rule whose pattern matches the module name (modprobe -r runs it). */
  removeCommand(name: string): string | undefined {
    const module = modnameNormalize(name);
    return this.config.remove.find((rule) => this.fnmatch(rule.module, module))?.command;
  }

  /** True when a blacklist entry names this module. */
  isBlacklisted(name: string): boolean {
    return this.config.blacklist.includes(name);
  }

  /**
   * The softdeps of a module, each name resolved like a request (so an alias gives all its
   * modules). Only the first softdep rule matching the module counts, as in kmod.
   */
  softdepRefs(name: string): { pre: ModuleRef[]; post: ModuleRef[] } {
    let cached = this.softdepCache.get(name);
    if (!cached) {
      const rule = this.config.softdeps.find((r) => this.fnmatch(r.module, name));
      const resolve = (names: string[]): ModuleRef[] =>
        names.flatMap((n) => {
          const found = this.lookup(n);
          return found.valid ? found.modules : [];
        });
      cached = rule ? { pre: resolve(rule.pre), post: resolve(rule.post) } : { pre: [], post: [] };
      this.softdepCache.set(name, cached);
    }
    return cached;
  }

  /** Resolved softdep module names, for unloading. */
  softdeps(name: string): { pre: string[]; post: string[] } {
    const { pre, post } = this.softdepRefs(modnameNormalize(name));
    return { pre: pre.map((m) => m.name), post: post.map((m) => m.name) };
  }

  /** modprobe.d (and kernel command line) options for a module found as `name` / `alias`,
   *  joined with spaces; undefined when there are none. */
  configOptions(name: string, alias: string | undefined): string | undefined {
    const key = alias === undefined ? name : `${name}\\${alias}`;
    if (this.optionsCache.has(key)) return this.optionsCache.get(key);
    const parts = this.config.options
      .filter((o) => o.module === name || (alias !== undefined && o.module === alias))
      .map((o) => o.options)
      .filter((o) => o.length > 0);
    const joined = parts.length > 0 ? parts.join(' ') : undefined;
    this.optionsCache.set(key, joined);
    return joined;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.indexes.close();
  }
}
