// Small trees as `depmod -b` writes them for a handful of Debian 6.1's modules: no
// modules.builtin (so a 0-byte modules.builtin.bin and modules.builtin.alias.bin), a tree
// without any alias (a 12-byte modules.alias.bin whose root is an empty node at the end of
// the file), softdeps from a modprobe.d directory. kmod reads such trees; kmodload must give
// modprobe's stdout and exit status for every name, through the .bin files and the text ones.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { ModuleDatabase } from '../../src/planner';
import { openModuleDatabase } from '../../src/system';
import { kernelTree, toolEnv, type KernelTree } from '../helpers/trees';
import { ODD_NAMES } from './names';
import { compareNames, describeMismatches, type OracleSetup } from './oracle';

const VERSION = '6.1.0-small';

const TREES: Record<string, string[]> = {
  // libcrc32c has no alias: every alias index depmod writes is empty.
  'no-aliases': ['libcrc32c'],
  'no-aliases-deps': ['libcrc32c', 'nf_defrag_ipv4', 'nf_defrag_ipv6', 'x_tables'],
  ipvs: [
    'ip_vs',
    'ip_vs_wrr',
    'nf_conntrack',
    'nf_defrag_ipv4',
    'nf_defrag_ipv6',
    'libcrc32c',
    'crc32c_generic',
    'crc32c-intel',
    'dummy',
  ],
};

/** modprobe.d for the trees: softdeps (including one on a name the tree lacks) and options. */
const CONFIG = [
  'softdep ip_vs_wrr pre: nf_defrag_ipv6 dummy post: libcrc32c',
  'softdep libcrc32c pre: crc32c',
  'softdep nf_defrag_ipv4 pre: no_such_module post: nf_defrag_ipv6',
  'options nf_conntrack hashsize=1024',
  'alias my-crc crc32c_generic',
  '',
].join('\n');

let scratch: string;
let source: KernelTree;

/** Copies the modules into a new root and runs depmod there; returns the root. */
function makeTree(name: string, modules: string[]): string {
  const root = path.join(scratch, name);
  const dir = path.join(root, 'lib', 'modules', VERSION);
  for (const module of modules) {
    const found = execFileSync('find', ['kernel', '-name', `${module}.ko*`], {
      cwd: source.moduleDir,
      encoding: 'utf8',
    })
      .split('\n')
      .filter(Boolean);
    if (found.length !== 1) throw new Error(`${module}: ${found.length} files in the 6.1 tree`);
    const rel = found[0] as string;
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.copyFileSync(path.join(source.moduleDir, rel), path.join(dir, rel));
  }
  execFileSync('depmod', ['-b', root, VERSION], { env: toolEnv(), stdio: 'ignore' });
  // Softdeps come from modprobe.d only: drop the modules.softdep depmod took from libcrc32c.
  fs.rmSync(path.join(dir, 'modules.softdep'), { force: true });
  return root;
}

function textCopy(root: string): string {
  const copy = `${root}-text`;
  fs.cpSync(root, copy, { recursive: true });
  const dir = path.join(copy, 'lib', 'modules', VERSION);
  for (const f of fs.readdirSync(dir)) if (f.endsWith('.bin')) fs.rmSync(path.join(dir, f));
  return copy;
}

/** Every name worth asking of a small tree: its modules (both spellings), its aliases and
 *  symbols, the modules it lacks, and the odd names. */
function namesOf(root: string, modules: string[]): string[] {
  const dir = path.join(root, 'lib', 'modules', VERSION);
  const text = (f: string): string[] =>
    fs.readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean);
  const aliases = text('modules.alias')
    .filter((l) => l.startsWith('alias '))
    .map((l) => l.split(' ')[1] as string);
  const symbols = text('modules.symbols')
    .filter((l) => l.startsWith('alias '))
    .map((l) => l.split(' ')[1] as string)
    .slice(0, 40);
  const all = [
    ...modules,
    ...modules.map((m) => m.replace(/_/g, '-')),
    ...modules.map((m) => m.replace(/-/g, '_')),
    ...aliases,
    ...symbols,
    'crc32c',
    'crypto-crc32c',
    'my-crc',
    'ext4',
    'xfs',
    'nf_conntrack',
    'cpu:type:x86,ven0000fam0006mod003F:feature:,0094,',
    'net-pf-16-proto-16-family-IPVS',
    ...ODD_NAMES,
  ];
  return [...new Set(all)].filter((n) => n !== '' && !n.startsWith('-'));
}

beforeAll(() => {
  source = kernelTree('6.1');
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-small-'));
  fs.mkdirSync(path.join(scratch, 'conf'));
  fs.writeFileSync(path.join(scratch, 'conf', 'small.conf'), CONFIG);
});
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

describe.each(Object.entries(TREES))('depmod -b over %s', (name, modules) => {
  let root: string;
  beforeAll(() => {
    root = makeTree(name, modules);
  });

  it('has the index files depmod writes for such a tree', () => {
    const dir = path.join(root, 'lib', 'modules', VERSION);
    expect(fs.statSync(path.join(dir, 'modules.builtin.bin')).size).toBe(0);
    expect(fs.statSync(path.join(dir, 'modules.builtin.alias.bin')).size).toBe(0);
    if (name.startsWith('no-aliases')) {
      expect(fs.statSync(path.join(dir, 'modules.alias.bin')).size).toBe(12);
    }
  });

  for (const variant of ['.bin indexes', 'text indexes'] as const) {
    for (const withConfig of [false, true]) {
      it(`${variant}, ${withConfig ? 'softdeps in modprobe.d (-C)' : "the host's modprobe.d"}: every name as modprobe`, async () => {
        const treeRoot = variant === 'text indexes' ? textCopy(root) : root;
        const configPaths = withConfig ? [path.join(scratch, 'conf')] : undefined;
        const db: ModuleDatabase = await openModuleDatabase({
          root: treeRoot,
          kernelVersion: VERSION,
          ...(configPaths ? { configDirs: configPaths } : {}),
        });
        try {
          expect(db.usesBinaryIndex('alias')).toBe(variant === '.bin indexes');
          expect(db.usesBinaryIndex('builtin')).toBe(variant === '.bin indexes');
          // kmod reads only the .bin files: it answers on the original tree, and the text
          // copy's paths are mapped back onto it.
          const setup: OracleSetup = {
            root,
            version: VERSION,
            ...(configPaths ? { configPaths } : {}),
          };
          const rewrite = (out: string): string => out.replaceAll(`${treeRoot}/`, `${root}/`);
          const names = namesOf(root, modules);
          const mismatches = await compareNames(db, setup, names, rewrite);
          expect(mismatches, describeMismatches(mismatches)).toEqual([]);
        } finally {
          db.close();
          if (treeRoot !== root) fs.rmSync(treeRoot, { recursive: true, force: true });
        }
      });
    }
  }
});
