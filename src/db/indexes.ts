// The five kmod indexes of a module directory. A `.bin` file is mapped through the addon
// once, when the database opens; without it (no addon, or a tree without binary indexes) the
// text file is read on first use. Both answer identically (see trie.ts).
import * as fs from 'node:fs';

import { EXIT, KmodloadError } from '../errors';
import type { NativeBinding } from '../native/binding';
import type { Matcher } from './fnmatch';
import {
  aliasIndexFromText,
  builtinAliasIndexFromModinfo,
  builtinIndexFromText,
  depIndexFromText,
} from './text-indexes';
import { TextIndex, type KeyIndex } from './trie';

export type IndexKind = 'dep' | 'alias' | 'symbols' | 'builtin' | 'builtinAlias';

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

export class ModuleIndexes {
  private readonly open = new Map<IndexKind, KeyIndex>();
  private depOrder: Map<string, number> | undefined;

  private constructor(
    private readonly moduleDir: string,
    private readonly fnmatch: Matcher,
  ) {}

  /** Maps every `.bin` present (when the addon is there); text files wait for first use. */
  static async open(
    moduleDir: string,
    fnmatch: Matcher,
    binding: NativeBinding | undefined,
  ): Promise<ModuleIndexes> {
    const indexes = new ModuleIndexes(moduleDir, fnmatch);
    if (!binding) return indexes;
    const kinds = Object.keys(BIN_FILES) as IndexKind[];
    const opened = await Promise.allSettled(
      kinds.map(async (kind) => {
        const file = `${moduleDir}/${BIN_FILES[kind]}`;
        if (!fs.existsSync(file)) return;
        indexes.open.set(kind, await binding.openIndex(file));
      }),
    );
    const failure = opened.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) {
      indexes.close();
      const reason =
        failure.reason instanceof Error ? failure.reason.message : String(failure.reason);
      throw new KmodloadError(`cannot read module index: ${reason}`, EXIT.environment, {
        cause: failure.reason,
      });
    }
    return indexes;
  }

  /** True when this index answers from a `.bin` file. */
  isBinary(kind: IndexKind): boolean {
    const index = this.open.get(kind);
    return index !== undefined && !(index instanceof TextIndex);
  }

  get(kind: IndexKind): KeyIndex {
    let index = this.open.get(kind);
    if (!index) {
      index = this.loadText(kind);
      this.open.set(kind, index);
    }
    return index;
  }

  private loadText(kind: IndexKind): KeyIndex {
    const content = this.readText(TEXT_FILES[kind]);
    switch (kind) {
      case 'dep': {
        const { index, order } = depIndexFromText(content, this.fnmatch);
        this.depOrder = order;
        return index;
      }
      case 'alias':
        return aliasIndexFromText(content, this.fnmatch, this.moduleOrder(), true);
      case 'symbols':
        return aliasIndexFromText(content, this.fnmatch, this.moduleOrder(), false);
      case 'builtin':
        return builtinIndexFromText(content, this.fnmatch);
      case 'builtinAlias':
        return builtinAliasIndexFromModinfo(content, this.fnmatch);
    }
  }

  /** Module positions in modules.dep: the priorities depmod gave alias matches. */
  private moduleOrder(): Map<string, number> {
    if (!this.depOrder) {
      this.depOrder = depIndexFromText(this.readText(TEXT_FILES.dep), this.fnmatch).order;
    }
    return this.depOrder;
  }

  /** A missing text file is an empty index, as a missing .bin is for kmod. */
  private readText(name: string): string {
    try {
      return fs.readFileSync(`${this.moduleDir}/${name}`, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return '';
      throw new KmodloadError(
        `cannot read ${this.moduleDir}/${name}: ${(error as Error).message}`,
        EXIT.environment,
        { cause: error },
      );
    }
  }

  close(): void {
    for (const index of this.open.values()) index.close();
    this.open.clear();
  }
}
