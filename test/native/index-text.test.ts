// The index reader against depmod's own text output: every key of every index of both real
// trees must come back with exactly the values the text files list.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadBinding } from '../../src/native/addon';
import type { IndexValue, NativeBinding, NativeIndex } from '../../src/native/binding';
import { kernelTree } from '../helpers/trees';
import { moduleNameFromPath, normalizeAlias } from './fixtures';

type Pairs = Map<string, string[]>;

function lines(file: string): string[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'));
}

function add(map: Pairs, key: string, value: string): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** `alias KEY MODULE` lines (modules.alias, modules.symbols). */
function aliasFile(file: string): Pairs {
  const map: Pairs = new Map();
  for (const line of lines(file)) {
    const [word, key, module, extra] = line.split(' ');
    if (word !== 'alias' || !key || !module || extra !== undefined) throw new Error(line);
    add(map, normalizeAlias(key), module);
  }
  return map;
}

/** modules.builtin.modinfo: NUL-separated `module.key=value`; aliases only. */
function builtinAliases(file: string): Pairs {
  const map: Pairs = new Map();
  for (const field of fs.readFileSync(file, 'latin1').split('\0')) {
    const match = /^([^.]+)\.alias=(.*)$/s.exec(field);
    if (match) add(map, normalizeAlias(match[2]!), match[1]!);
  }
  return map;
}

function sortedValues(values: IndexValue[]): string[] {
  return values.map((v) => v.value).sort();
}

function expectNonDecreasingPriority(values: IndexValue[], key: string): void {
  for (let i = 1; i < values.length; i++) {
    expect(values[i]!.priority, key).toBeGreaterThanOrEqual(values[i - 1]!.priority);
  }
}

for (const flavour of ['6.1', '6.12']) {
  describe(`index reader vs text files, ${flavour} tree`, () => {
    let binding: NativeBinding;
    let dir: string;
    const opened: NativeIndex[] = [];

    async function open(name: string): Promise<NativeIndex> {
      const index = await binding.openIndex(path.join(dir, name));
      opened.push(index);
      return index;
    }

    /** Every key in text equals every key in the index, values as multisets, and each key's
     *  exact() lookup gives the entries() values. */
    function compare(index: NativeIndex, expected: Pairs): void {
      const entries = index.entries();
      const actual: Pairs = new Map(entries.map((e) => [e.key, sortedValues(e.values)]));
      const want: Pairs = new Map([...expected].map(([k, v]) => [k, [...v].sort()]));
      expect(actual.size).toBe(want.size);
      expect(actual).toEqual(want);
      for (const entry of entries) {
        expect(index.exact(entry.key), entry.key).toEqual(entry.values);
        expectNonDecreasingPriority(entry.values, entry.key);
      }
    }

    beforeAll(() => {
      binding = loadBinding();
      dir = kernelTree(flavour).moduleDir;
    });

    afterAll(() => {
      for (const index of opened) index.close();
    });

    it('modules.dep.bin: module name -> "relpath: deps", priority = line number', async () => {
      const index = await open('modules.dep.bin');
      const expected: Pairs = new Map();
      const depLines = lines(path.join(dir, 'modules.dep'));
      depLines.forEach((line) => {
        add(expected, moduleNameFromPath(line.slice(0, line.indexOf(':'))), line);
      });
      compare(index, expected);
      depLines.forEach((line, i) => {
        const values = index.exact(moduleNameFromPath(line.slice(0, line.indexOf(':'))));
        expect(values).toEqual([{ value: line, priority: i }]);
      });
      expect(index.exact('no_such_module')).toEqual([]);
      expect(index.exact('')).toEqual([]);
    });

    it('modules.alias.bin holds every modules.alias line', async () => {
      compare(await open('modules.alias.bin'), aliasFile(path.join(dir, 'modules.alias')));
    });

    it('modules.symbols.bin holds every modules.symbols line', async () => {
      compare(await open('modules.symbols.bin'), aliasFile(path.join(dir, 'modules.symbols')));
    });

    it('modules.builtin.bin holds every modules.builtin module with an empty value', async () => {
      const expected: Pairs = new Map();
      for (const line of lines(path.join(dir, 'modules.builtin'))) {
        add(expected, moduleNameFromPath(line), '');
      }
      compare(await open('modules.builtin.bin'), expected);
    });

    it('modules.builtin.alias.bin holds the alias= entries of modules.builtin.modinfo', async () => {
      const expected = builtinAliases(path.join(dir, 'modules.builtin.modinfo'));
      expect(expected.size).toBeGreaterThan(10);
      compare(await open('modules.builtin.alias.bin'), expected);
    });

    it('exact lookups of prefixes and extensions of real keys find nothing', async () => {
      const index = await open('modules.dep.bin');
      const keys = new Set(index.entries().map((e) => e.key));
      for (const key of [...keys].slice(0, 500)) {
        for (const probe of [key + 'x', key.slice(0, -1), key.toUpperCase()]) {
          if (!keys.has(probe)) expect(index.exact(probe), probe).toEqual([]);
        }
      }
    });
  });
}
