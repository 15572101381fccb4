// The module database: kmod's lookup order, the text indexes answering like the binary ones
// (same values, same ORDER), fnmatch, and the module directory string.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { fnmatch, ModuleDatabase, moduleDirectory } from '../../src/db';
import { TextIndex } from '../../src/db/trie';
import {
  aliasIndexFromText,
  builtinAliasIndexFromModinfo,
  depIndexFromText,
} from '../../src/db/text-indexes';
import { EXIT, KmodloadError } from '../../src/errors';
import { loadBinding } from '../../src/native/addon';
import type { NativeBinding, NativeIndex } from '../../src/native/binding';
import { formatShowDepends, planRequests } from '../../src/planner';
import { openModuleDatabase } from '../../src/system';
import { aliasLines, aliasQueries, builtinAliases, moduleNames } from '../differential/names';
import { fetchTree, type Tree } from '../differential/oracle';
import { VERSION, writeTree, type TestTree } from './planner-tree';

describe('fnmatch', () => {
  const patterns = [
    'abc',
    'a*c',
    '*',
    'a?c',
    'pci:v00008086d*sv*sd*bc*sc*i*',
    '[abc]x',
    '[!abc]x',
    '[^abc]x',
    '[a-c]*',
    '[]a]',
    '[!]a]',
    '[[:digit:]]*',
    '[[:alpha:][:digit:]]?',
    '[[:upper:]]',
    '[[:nosuch:]]',
    'a\\*c',
    'a\\',
    '[a',
    'a[',
    '*[0-9]',
    'usb:v05ACp12A8d0[0-2]*dc*',
    '**x**',
    '[a\\]]',
    '[z-a]',
  ];
  const texts = [
    'abc',
    'a*c',
    'axc',
    'ac',
    'ax',
    'bx',
    'dx',
    ']',
    'a',
    '1',
    'A',
    '7q',
    'a\\',
    '[a',
    'a[',
    'x9',
    'xx',
    '',
    'usb:v05ACp12A8d0100dc00',
    'pci:v00008086d000010D3sv00001028sd0000049Ebc02sc00i00',
  ];

  it('agrees with libc fnmatch (through the addon) on tricky patterns', () => {
    const native: NativeBinding = loadBinding();
    for (const p of patterns) {
      for (const t of texts) {
        expect([p, t, fnmatch(p, t)]).toEqual([p, t, native.fnmatch(p, t)]);
      }
    }
  });
});

describe('TextIndex', () => {
  it('orders matches by priority, and equal priorities by reverse discovery', () => {
    const index = new TextIndex(fnmatch);
    index.insert('dev*', 'late', 9);
    index.insert('dev:1', 'exact', 5);
    index.insert('d*', 'first-found', 1);
    index.insert('dev:?', 'q', 1);
    // Walk: 'd*' subtree, then 'dev:?' (found later, equal priority 1: goes first), exact.
    expect(index.wildcard('dev:1').map((v) => v.value)).toEqual([
      'q',
      'first-found',
      'exact',
      'late',
    ]);
  });

  it('finds a glob asked for literally twice when a node ends just before its *', () => {
    const index = new TextIndex(fnmatch);
    index.insert('a*', 'm', 0);
    index.insert('ab', 'n', 0); // splits the trie at 'a': '*' becomes a child edge
    expect(index.wildcard('a*').map((v) => v.value)).toEqual(['m', 'm']);
    expect(index.exact('a*').map((v) => v.value)).toEqual(['m']);
    expect(index.exact('a')).toEqual([]);
  });

  it("keeps a key's values in priority order whatever order they come in", () => {
    const index = new TextIndex(fnmatch);
    for (const [value, priority] of [
      ['p5', 5],
      ['p1', 1],
      ['p9', 9],
      ['p3', 3],
      ['q3', 3], // equal priority: before the one already there
      ['p7', 7],
    ] as const) {
      index.insert('key', value, priority);
    }
    expect(index.exact('key').map((v) => v.value)).toEqual(['p1', 'q3', 'p3', 'p5', 'p7', 'p9']);
  });

  it('holds more keys than its first allocation, every one found again', () => {
    const index = new TextIndex(fnmatch);
    const keys = Array.from({ length: 5000 }, (_, i) => `mod_${(i * 7919) % 5000}_x`);
    keys.forEach((key, i) => index.insert(key, `v${i}`, i));
    keys.forEach((key, i) => expect(index.exact(key)).toEqual([{ value: `v${i}`, priority: i }]));
    expect(index.exact('mod_')).toEqual([]);
    expect(index.wildcard('mod_17_x')).toEqual([
      { value: `v${keys.indexOf('mod_17_x')}`, priority: keys.indexOf('mod_17_x') },
    ]);
  });
});

describe('text indexes = binary indexes of a real tree', () => {
  let tree: Tree;
  let native: NativeBinding;
  const opened: NativeIndex[] = [];
  const open = async (name: string): Promise<NativeIndex> => {
    const index = await native.openIndex(`${tree.moduleDir}/${name}`);
    opened.push(index);
    return index;
  };
  const text = (name: string): string => fs.readFileSync(`${tree.moduleDir}/${name}`, 'utf8');

  beforeAll(() => {
    tree = fetchTree('6.12');
    native = loadBinding();
  });
  afterAll(() => opened.forEach((i) => i.close()));

  it('modules.dep', async () => {
    const bin = await open('modules.dep.bin');
    const { index, order } = depIndexFromText(text('modules.dep'), fnmatch);
    const names = moduleNames(tree).map((n) => n.replace(/-/g, '_'));
    for (const name of names) expect(index.exact(name)[0]?.value).toBe(bin.exact(name)[0]?.value);
    expect(order.size).toBe(names.length);
  });

  it('modules.alias, for real modaliases and literal globs', async () => {
    const bin = await open('modules.alias.bin');
    const { order } = depIndexFromText(text('modules.dep'), fnmatch);
    const index = aliasIndexFromText(text('modules.alias'), fnmatch, order, true);
    const queries = [
      ...aliasQueries(tree),
      ...aliasLines(tree)
        .map((a) => a.pattern)
        .slice(0, 500),
    ];
    let multi = 0;
    for (const q of queries) {
      const ours = index.wildcard(q).map((v) => v.value);
      expect([q, ours]).toEqual([q, bin.wildcard(q).map((v) => v.value)]);
      if (ours.length > 1) multi++;
    }
    expect(multi).toBeGreaterThan(50);
  });

  it('modules.builtin.alias (priority 0 everywhere: order from the walk alone)', async () => {
    const bin = await open('modules.builtin.alias.bin');
    const index = builtinAliasIndexFromModinfo(text('modules.builtin.modinfo'), fnmatch);
    for (const q of [...builtinAliases(tree), 'crypto-*', 'fs-?', 'no-such']) {
      expect([q, index.wildcard(q).map((v) => v.value)]).toEqual([
        q,
        bin.wildcard(q).map((v) => v.value),
      ]);
    }
  });
});

describe('without the addon', () => {
  it('plans a real tree exactly as with it (text indexes, JS fnmatch)', async () => {
    const tree = fetchTree('6.1');
    const opts = { root: tree.root, kernelVersion: tree.version };
    const withAddon = await ModuleDatabase.open(opts, loadBinding());
    const without = await ModuleDatabase.open(opts, undefined);
    try {
      expect(without.usesBinaryIndex('alias')).toBe(false);
      const names = [...moduleNames(tree), ...aliasQueries(tree, 100)];
      expect(formatShowDepends(planRequests(without, names))).toBe(
        formatShowDepends(planRequests(withAddon, names)),
      );
    } finally {
      withAddon.close();
      without.close();
    }
  });
});

describe('module directory', () => {
  it('is built like modprobe builds it', () => {
    const cwd = process.cwd();
    expect(moduleDirectory('/srv/root', '6.1.0')).toBe('/srv/root/lib/modules/6.1.0');
    expect(moduleDirectory('/', '6.1.0')).toBe('//lib/modules/6.1.0');
    expect(moduleDirectory('.', '6.1.0')).toBe(`${cwd}/./lib/modules/6.1.0`);
    expect(moduleDirectory(undefined, '6.1.0')).toBe('/lib/modules/6.1.0');
    expect(moduleDirectory(undefined, undefined)).toMatch(/^\/lib\/modules\/[^/]+$/);
  });
});

describe('lookups on a small tree', () => {
  let tree: TestTree;
  beforeAll(() => {
    tree = writeTree({
      modules: { real: [], other: [], 'has-dash': [] },
      aliases: [
        ['real', 'other'],
        ['dev:*', 'other'],
        ['name:x', 'other'],
      ],
      symbols: [['do_thing', 'other']],
      builtin: ['core'],
      builtinAliases: [['core', 'fs-core']],
      config: {
        'a.conf':
          'alias cfg-* real\ninstall only-install /bin/true\nremove only-remove /bin/true\n',
      },
    });
  });
  afterAll(() => tree.cleanup());

  const lookup = async (name: string): Promise<unknown> => {
    const db = await tree.open();
    try {
      const r = db.lookup(name);
      return r.valid ? r.modules.map((m) => [m.name, m.alias ?? null]) : 'invalid';
    } finally {
      db.close();
    }
  };

  it('tries config aliases, modules.dep, symbols, rules, aliases, builtins, in that order', async () => {
    expect(await lookup('cfg-x')).toEqual([['real', 'cfg_*']]);
    expect(await lookup('real')).toEqual([['real', null]]); // modules.dep before modules.alias
    expect(await lookup('has-dash')).toEqual([['has_dash', null]]);
    expect(await lookup('symbol:do_thing')).toEqual([['other', 'symbol:do_thing']]);
    expect(await lookup('only-install')).toEqual([['only_install', null]]);
    expect(await lookup('only_remove')).toEqual([['only_remove', null]]);
    expect(await lookup('dev:7')).toEqual([['other', 'dev:7']]);
    expect(await lookup('core')).toEqual([['core', null]]);
    expect(await lookup('fs-core')).toEqual([['core', 'fs_core']]);
    expect(await lookup('nothing')).toEqual([]);
    expect(await lookup('bad]')).toBe('invalid');
  });

  it('answers unloading questions', async () => {
    const db = await tree.open();
    try {
      expect(db.isBuiltin('core')).toBe(true);
      expect(db.isBuiltin('real')).toBe(false);
      expect(db.removeCommand('only-remove')).toBe('/bin/true');
      expect(db.dependencies('real')).toEqual([]);
      expect(db.kernelVersion).toBe(VERSION);
    } finally {
      db.close();
    }
  });
});

describe('opening', () => {
  let tree: TestTree | undefined;
  afterEach(() => tree?.cleanup());

  it('rejects a missing module directory with an environment error', async () => {
    const err = await openModuleDatabase({ root: '/no/such/root', kernelVersion: '1.0' }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KmodloadError);
    expect((err as KmodloadError).exitStatus).toBe(EXIT.environment);
    expect((err as KmodloadError).message).toBe(
      'module directory /no/such/root/lib/modules/1.0 does not exist',
    );
  });

  it('rejects a corrupt .bin index instead of guessing', async () => {
    tree = writeTree({ modules: { a: [] } });
    fs.writeFileSync(path.join(tree.moduleDir, 'modules.dep.bin'), 'not an index at all');
    const err = await tree.open().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KmodloadError);
    expect((err as KmodloadError).exitStatus).toBe(EXIT.environment);
    expect((err as KmodloadError).message).toBe(
      `cannot read module index ${tree.moduleDir}/modules.dep.bin: EBADMSG: corrupt index: bad magic 0x6e6f7420`,
    );
  });
});
