// Wildcard lookups against two oracles: a brute-force fnmatch over modules.alias (which
// patterns match) and kmod's own modprobe --resolve-alias (in which order).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadBinding } from '../../src/native/addon';
import type { NativeBinding, NativeIndex } from '../../src/native/binding';
import { kernelTree, type KernelTree, toolEnv } from '../helpers/trees';
import { normalizeAlias } from './fixtures';

interface AliasLine {
  pattern: string;
  module: string;
  literalPrefix: string;
}

const QUERIES_PER_TREE = 300;

function readAliases(file: string): AliasLine[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('alias '))
    .map((line) => {
      const [, key, module] = line.split(' ');
      const pattern = normalizeAlias(key!);
      const wild = pattern.search(/[*?[]/);
      return {
        pattern,
        module: module!,
        literalPrefix: wild < 0 ? pattern : pattern.slice(0, wild),
      };
    });
}

/** A concrete string the pattern matches: '*' -> filler, '?' -> '0', '[...]' -> its first
 *  member. Undefined for patterns this cannot instantiate (negated classes, escapes). */
function instantiate(pattern: string, filler: string): string | undefined {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '\\') return undefined;
    if (ch === '*') out += filler;
    else if (ch === '?') out += '0';
    else if (ch === '[') {
      const close = pattern.indexOf(']', i + 2);
      const first = pattern[i + 1];
      if (close < 0 || first === undefined || first === '!' || first === '^') return undefined;
      out += first;
      i = close;
    } else out += ch;
  }
  return out;
}

function spread<T>(items: T[], count: number): T[] {
  if (items.length <= count) return items;
  const step = items.length / count;
  return Array.from({ length: count }, (_, i) => items[Math.floor(i * step)]!);
}

/** kmod's answers: the modules modprobe --resolve-alias prints for each name, in its order.
 *  One shell runs all the modprobe calls; spawning from node per name is slow under ASan. */
function modprobeResolve(tree: KernelTree, configDir: string, names: string[]): string[][] {
  const script =
    'while IFS= read -r name; do ' +
    'modprobe -C "$1" -d "$2" -S "$3" --resolve-alias "$name" 2>/dev/null; echo "@@end"; done';
  const result = spawnSync('bash', ['-c', script, 'resolve', configDir, tree.root, tree.version], {
    input: names.map((n) => n + '\n').join(''),
    encoding: 'utf8',
    env: toolEnv(),
    maxBuffer: 1 << 26,
  });
  if (result.error) throw result.error;
  const answers = result.stdout.split('@@end\n').map((block) => block.split('\n').filter(Boolean));
  answers.pop();
  if (answers.length !== names.length) throw new Error(`modprobe answered ${answers.length} names`);
  return answers;
}

for (const flavour of ['6.1', '6.12']) {
  describe(`wildcard lookups, ${flavour} tree`, () => {
    let binding: NativeBinding;
    let tree: KernelTree;
    let aliasIndex: NativeIndex;
    let aliases: AliasLine[];
    let queries: string[];
    let configDir: string;

    beforeAll(async () => {
      binding = loadBinding();
      tree = kernelTree(flavour);
      aliasIndex = await binding.openIndex(path.join(tree.moduleDir, 'modules.alias.bin'));
      aliases = readAliases(path.join(tree.moduleDir, 'modules.alias'));
      // An empty config dir: the host's modprobe.d must not add aliases to the oracle.
      configDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-conf-'));

      const moduleNames = new Set(
        fs
          .readFileSync(path.join(tree.moduleDir, 'modules.dep'), 'utf8')
          .split('\n')
          .map((l) => path.basename(l.slice(0, l.indexOf(':'))).replace(/\.ko.*$/, ''))
          .map((n) => n.replace(/-/g, '_')),
      );
      const wildPatterns = [
        ...new Set(aliases.filter((a) => /[*?[]/.test(a.pattern)).map((a) => a.pattern)),
      ];
      const sample = [
        ...spread(wildPatterns, QUERIES_PER_TREE / 2),
        ...wildPatterns.filter((p) => p.includes('[')).slice(0, 20),
        ...wildPatterns.filter((p) => p.startsWith('cpu:')).slice(0, 10),
      ];
      const built = new Set<string>();
      for (const pattern of sample) {
        for (const filler of ['', '00']) {
          const query = instantiate(pattern, filler);
          // A query that is also a module name would be answered from modules.dep by modprobe.
          if (query !== undefined && !moduleNames.has(query)) built.add(query);
        }
      }
      queries = [...built];
    });

    afterAll(() => {
      aliasIndex.close();
      fs.rmSync(configDir, { recursive: true, force: true });
    });

    it('matches exactly the patterns a brute-force fnmatch over modules.alias matches', () => {
      expect(queries.length).toBeGreaterThan(QUERIES_PER_TREE / 2);
      for (const query of queries) {
        const expected = aliases
          .filter((a) => query.startsWith(a.literalPrefix) && binding.fnmatch(a.pattern, query))
          .map((a) => a.module)
          .sort();
        const actual = aliasIndex.wildcard(query);
        expect(expected.length, query).toBeGreaterThan(0);
        expect(actual.map((v) => v.value).sort(), query).toEqual(expected);
      }
    });

    it('returns the matches in the order kmod resolves them', () => {
      let multi = 0;
      const expected = modprobeResolve(tree, configDir, queries);
      queries.forEach((query, i) => {
        const actual = aliasIndex.wildcard(query).map((v) => v.value);
        if (actual.length > 1) multi++;
        expect(actual, query).toEqual(expected[i]);
      });
      // The order check means something only if many queries have several matches.
      expect(multi).toBeGreaterThan(20);
    });

    it('answers plain aliases and misses like kmod', () => {
      const plain = [...new Set(aliases.map((a) => a.pattern).filter((p) => !/[*?[]/.test(p)))];
      // Builtin modules of the same name win in modprobe; those are not this index's answer.
      const names = ['crc32c', 'crypto_crc32c', ...spread(plain, 100)].filter(
        (name) => aliasIndex.wildcard(name).length > 0,
      );
      const expected = modprobeResolve(tree, configDir, names);
      let compared = 0;
      names.forEach((name, i) => {
        expect(aliasIndex.wildcard(name).map((v) => v.value), name).toEqual(expected[i]);
        compared++;
      });
      expect(compared).toBeGreaterThan(50);
      expect(aliasIndex.wildcard('no:such:alias')).toEqual([]);
      expect(aliasIndex.wildcard('')).toEqual([]);
    });

    it('finds builtin aliases by wildcard as kmod does', async () => {
      const index = await binding.openIndex(path.join(tree.moduleDir, 'modules.builtin.alias.bin'));
      const builtin = await binding.openIndex(path.join(tree.moduleDir, 'modules.builtin.bin'));
      try {
        const keys = index.entries().map((e) => e.key);
        for (const key of keys) expect(index.wildcard(key).length, key).toBeGreaterThan(0);
        // modprobe reaches builtin aliases only when the alias index and the builtin module
        // names have no answer.
        const reachable = keys.filter(
          (key) => aliasIndex.wildcard(key).length === 0 && builtin.exact(key).length === 0,
        );
        expect(reachable.length).toBeGreaterThan(10);
        const expected = modprobeResolve(tree, configDir, reachable);
        reachable.forEach((key, i) => {
          expect(
            index.wildcard(key).map((v) => v.value),
            key,
          ).toEqual(expected[i]);
        });
      } finally {
        index.close();
        builtin.close();
      }
    });
  });
}
