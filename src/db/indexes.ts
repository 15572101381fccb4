// The five kmod indexes of a module directory, read off the event loop before planning asks
// them anything: a `.bin` file is read into memory by the addon on libuv's thread pool; where
// there is none (no addon, or a tree without binary indexes) the text file is read
// asynchronously and built into a trie in slices (text-indexes.ts), so planning on a tree kept
// open, which is synchronous, never touches the disk for an index. Both answer identically
// (see trie.ts). For a process that plans once (the hook, resolve()), a `.bin` file is rather
// read block by block on the calling thread as its lookups reach them: a few dozen reads of
// microseconds, not megabytes.
// Every index is read when the database opens, or (ModuleDatabase.settle()) only those that a
// planning pass turned out to need: a name found in modules.dep never consults modules.alias
// or modules.symbols, the two largest.
//
// kmod reads a missing index as empty; so do these (a tree may lack modules.builtin.bin). A
// corrupt one is EXIT.environment with the file named, at open or at the lookup that meets
// the damage: never an internal error.
import { EXIT, KmodloadError } from '../errors';
import { FileReadError, readRegularFile } from '../files';
import type { IndexValue, NativeBinding, NativeIndex } from '../native/binding';
import { systemErrorReason } from '../native/system-error';
import { errorText, oneLine } from '../text';
import type { Matcher } from './fnmatch';
import type { KeyIndex } from './trie';

export type IndexKind = 'dep' | 'alias' | 'symbols' | 'builtin' | 'builtinAlias';

export const INDEX_KINDS: readonly IndexKind[] = [
  'dep',
  'alias',
  'symbols',
  'builtin',
  'builtinAlias',
];

const BIN_FILES: Record<IndexKind, string> = {
  dep: 'modules.dep.bin',
  alias: 'modules.alias.bin',
  symbols: 'modules.symbols.bin',
  builtin: 'modules.builtin.bin',
  builtinAlias: 'modules.builtin.alias.bin',
};

/** Which text file stands in for each index. */
export const TEXT_FILES: Record<IndexKind, string> = {
  dep: 'modules.dep',
  alias: 'modules.alias',
  symbols: 'modules.symbols',
  builtin: 'modules.builtin',
  builtinAlias: 'modules.builtin.modinfo',
};

/** Largest text index file read (the addon caps `.bin` files alike). Debian 12's largest,
 *  modules.alias, is about 1.4 MB. */
export const MAX_INDEX_FILE_BYTES = 32 * 1024 * 1024;

/** The error for a damaged or unreadable index: one line, the file named. */
function indexError(file: string, error: unknown): KmodloadError {
  // The addon's messages read "EBADMSG: corrupt index: <why>, index_exact '<file>'": the
  // file is named here once.
  const reason = oneLine(systemErrorReason(error));
  return new KmodloadError(reason, EXIT.environment, {
    cause: error,
    subject: `cannot read module index ${file}`,
  });
}

/** A `.bin` index whose failures (a corrupt part met by a lookup) are KmodloadErrors. */
class BinaryIndex implements KeyIndex {
  constructor(
    private readonly index: NativeIndex,
    readonly file: string,
  ) {}

  exact(key: string): IndexValue[] {
    try {
      return this.index.exact(key);
    } catch (error) {
      throw indexError(this.file, error);
    }
  }

  wildcard(key: string): IndexValue[] {
    try {
      return this.index.wildcard(key);
    } catch (error) {
      throw indexError(this.file, error);
    }
  }

  close(): void {
    this.index.close();
  }
}

export class ModuleIndexes {
  private readonly open = new Map<IndexKind, KeyIndex>();
  private closed = false;
  /** Module positions in modules.dep, once modules.dep was read as text: the priorities of
   *  the text alias and symbol indexes. */
  private textOrder: Map<string, number> | undefined;

  private constructor(
    private readonly moduleDir: string,
    private readonly fnmatch: Matcher,
    private readonly binding: NativeBinding | undefined,
    private readonly onDemand: boolean,
  ) {}

  /**
   * Reads the indexes of `kinds` (default: all five): the `.bin` files through the addon when
   * there is one, the text files for the rest. add() reads more later. `onDemand`: a `.bin`
   * file is opened at once and its blocks read as lookups reach them (the addon's
   * openIndexOnDemand), for a process that plans once; else read whole, off the event loop.
   * @throws KmodloadError (EXIT.environment) naming the file: corrupt, unreadable, not a
   *   regular file, or over the size cap.
   */
  static async open(
    moduleDir: string,
    fnmatch: Matcher,
    binding: NativeBinding | undefined,
    kinds: readonly IndexKind[] = INDEX_KINDS,
    onDemand = false,
  ): Promise<ModuleIndexes> {
    const indexes = new ModuleIndexes(moduleDir, fnmatch, binding, onDemand);
    try {
      await indexes.add(kinds);
    } catch (error) {
      indexes.close();
      throw error;
    }
    return indexes;
  }

  /** Reads the indexes of `kinds` that are not read yet (errors as open()). */
  async add(kinds: readonly IndexKind[]): Promise<void> {
    const wanted = INDEX_KINDS.filter((kind) => kinds.includes(kind) && !this.open.has(kind));
    if (wanted.length === 0) return;
    if (this.binding) await this.openBinary(this.binding, wanted);
    const missing = wanted.filter((kind) => !this.open.has(kind));
    if (missing.length > 0) await this.openText(missing);
    // Closed while they were read: what was read since is released too.
    if (this.closed) this.close();
  }

  private async openBinary(binding: NativeBinding, kinds: readonly IndexKind[]): Promise<void> {
    const opened = await Promise.allSettled(
      kinds.map(async (kind) => {
        const file = `${this.moduleDir}/${BIN_FILES[kind]}`;
        try {
          const index = this.onDemand
            ? binding.openIndexOnDemand(file)
            : await binding.openIndex(file);
          this.open.set(kind, new BinaryIndex(index, file));
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') return; // text stands in
          throw indexError(file, error);
        }
      }),
    );
    const failure = opened.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) throw failure.reason;
  }

  /** Reads the text files at once, then builds their tries one after the other, in slices.
   *  (The trie code is imported here: a tree with its `.bin` files never runs it.) */
  private async openText(kinds: IndexKind[]): Promise<void> {
    const { aliasIndexBuild, builtinAliasIndexBuild, builtinIndexBuild, depIndexBuild, paced } =
      await import('./text-indexes.js');
    // Alias and symbol priorities are module positions in modules.dep.
    const needDep =
      kinds.includes('dep') ||
      (this.textOrder === undefined && (kinds.includes('alias') || kinds.includes('symbols')));
    const wanted = needDep && !kinds.includes('dep') ? [...kinds, 'dep' as const] : kinds;
    const contents = new Map<IndexKind, string>();
    await Promise.all(
      wanted.map(async (kind) => contents.set(kind, await this.readText(TEXT_FILES[kind]))),
    );
    const text = (kind: IndexKind): string => contents.get(kind) ?? '';
    if (needDep) {
      const dep = await paced(depIndexBuild(text('dep'), this.fnmatch));
      this.textOrder = dep.order;
      if (kinds.includes('dep')) this.open.set('dep', dep.index);
    }
    const order = this.textOrder ?? new Map<string, number>();
    for (const kind of kinds) {
      switch (kind) {
        case 'dep':
          break;
        case 'alias':
        case 'symbols':
          this.open.set(
            kind,
            await paced(aliasIndexBuild(text(kind), this.fnmatch, order, kind === 'alias')),
          );
          break;
        case 'builtin':
          this.open.set(kind, await paced(builtinIndexBuild(text(kind), this.fnmatch)));
          break;
        case 'builtinAlias':
          this.open.set(kind, await paced(builtinAliasIndexBuild(text(kind), this.fnmatch)));
          break;
      }
    }
  }

  /** A missing text file is an empty index, as a missing .bin is for kmod. */
  private async readText(name: string): Promise<string> {
    const file = `${this.moduleDir}/${name}`;
    try {
      return (await readRegularFile(file, MAX_INDEX_FILE_BYTES)).toString('utf8');
    } catch (error) {
      if (error instanceof FileReadError && error.code === 'ENOENT') return '';
      throw new KmodloadError(errorText(error), EXIT.environment, {
        cause: error,
        subject: `cannot read ${file}`,
      });
    }
  }

  /** True when this index answers from a `.bin` file. */
  isBinary(kind: IndexKind): boolean {
    return this.open.get(kind) instanceof BinaryIndex;
  }

  /** True when this index has been read (and the database is open). */
  has(kind: IndexKind): boolean {
    return this.open.has(kind);
  }

  get(kind: IndexKind): KeyIndex {
    const index = this.open.get(kind);
    if (index) return index;
    if (this.closed) throw new KmodloadError('the module database is closed', EXIT.internal);
    throw new KmodloadError(`the module index ${BIN_FILES[kind]} was not read`, EXIT.internal);
  }

  close(): void {
    this.closed = true;
    for (const index of this.open.values()) index.close();
    this.open.clear();
  }
}
