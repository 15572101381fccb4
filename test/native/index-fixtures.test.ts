// The checked-in trees of test/fixtures/trees (made by depmod: test/fixtures/make-trees.sh)
// through the binary index path: depmod's empty indexes (a 0-byte modules.builtin.bin, a
// 12-byte modules.alias.bin whose root is an empty node at the end) are read as empty, and
// plans from the .bin files equal the ones from the text files and what kmod's modprobe
// printed for the same trees (recorded below). The CLI part: a corrupt index is exit 4 and one
// line naming the file.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadBinding } from '../../src/native/addon';
import { formatShowDepends, planRequests } from '../../src/planner';
import { openModuleDatabase } from '../../src/system';
import { REPO_ROOT } from '../helpers/trees';

const VERSION = '6.1.0-fixture';
const TREES = path.join(REPO_ROOT, 'test', 'fixtures', 'trees');
const CLI = path.join(REPO_ROOT, 'bin', 'kmodload.js');

function moduleDir(tree: string): string {
  return path.join(TREES, tree, 'lib', 'modules', VERSION);
}

let tmp: string;
/** A copy of a fixture tree without its .bin files: the text fallback answers. */
function textOnlyCopy(tree: string): string {
  const root = path.join(tmp, `${tree}-text`);
  fs.cpSync(path.join(TREES, tree), root, { recursive: true });
  const dir = path.join(root, 'lib', 'modules', VERSION);
  for (const f of fs.readdirSync(dir)) if (f.endsWith('.bin')) fs.rmSync(path.join(dir, f));
  return root;
}

async function showDepends(root: string, names: string[]): Promise<string> {
  const db = await openModuleDatabase({ root, kernelVersion: VERSION, configDirs: [] });
  try {
    return formatShowDepends(planRequests(db, names));
  } finally {
    db.close();
  }
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-fixtures-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("depmod's empty indexes", () => {
  it('are the files the issue describes', () => {
    const dir = moduleDir('no-aliases');
    expect(fs.statSync(path.join(dir, 'modules.builtin.bin')).size).toBe(0);
    expect(fs.statSync(path.join(dir, 'modules.builtin.alias.bin')).size).toBe(0);
    const alias = fs.readFileSync(path.join(dir, 'modules.alias.bin'));
    expect(alias.toString('hex')).toBe('b007f45700020001' + '0000000c');
  });

  it('open as empty indexes through the addon', async () => {
    const binding = loadBinding();
    for (const name of ['modules.builtin.bin', 'modules.builtin.alias.bin', 'modules.alias.bin']) {
      const index = await binding.openIndex(path.join(moduleDir('no-aliases'), name));
      expect(index.entries(), name).toEqual([]);
      expect(index.exact('libcrc32c'), name).toEqual([]);
      expect(index.wildcard('libcrc32c'), name).toEqual([]);
      index.close();
    }
  });

  it('plan libcrc32c from the .bin files, as kmod does', async () => {
    const db = await openModuleDatabase({
      root: path.join(TREES, 'no-aliases'),
      kernelVersion: VERSION,
      configDirs: [],
    });
    try {
      for (const kind of ['dep', 'alias', 'symbols', 'builtin', 'builtinAlias'] as const) {
        expect(db.usesBinaryIndex(kind), kind).toBe(true);
      }
      expect(formatShowDepends(planRequests(db, ['libcrc32c']))).toBe(
        `insmod ${moduleDir('no-aliases')}/kernel/lib/libcrc32c.ko \n`,
      );
      expect(db.isBuiltin('libcrc32c')).toBe(false);
      expect(db.lookup('crc32c')).toEqual({ valid: true, modules: [] });
    } finally {
      db.close();
    }
  });
});

describe('the ipvs fixture tree: .bin = text = kmod', () => {
  const dir = moduleDir('ipvs');
  const f = (rel: string): string => `insmod ${dir}/kernel/${rel} \n`;
  const crc = f('arch/x86/crypto/crc32c-intel.ko') + f('crypto/crc32c_generic.ko');
  const conntrack =
    f('net/ipv4/netfilter/nf_defrag_ipv4.ko') +
    f('net/ipv6/netfilter/nf_defrag_ipv6.ko') +
    crc +
    f('lib/libcrc32c.ko') +
    f('net/netfilter/nf_conntrack.ko');
  // What `modprobe -d test/fixtures/trees/ipvs -S 6.1.0-fixture --show-depends NAME` printed.
  const expected: Array<[string, string]> = [
    ['ip_vs_wrr', conntrack + f('net/netfilter/ipvs/ip_vs.ko') + f('net/netfilter/ipvs/ip_vs_wrr.ko')],
    ['net-pf-16-proto-16-family-IPVS', conntrack + f('net/netfilter/ipvs/ip_vs.ko')],
    ['crc32c', crc],
    ['libcrc32c', crc + f('lib/libcrc32c.ko')],
    ['symbol:crc32c', crc + f('lib/libcrc32c.ko')],
    ['cpu:type:x86,ven0000fam0006mod003F:feature:,0094,', f('arch/x86/crypto/crc32c-intel.ko')],
  ];

  it.each(expected)('%s', async (name, output) => {
    const bin = await showDepends(path.join(TREES, 'ipvs'), [name]);
    expect(bin).toBe(output);
    const text = await showDepends(textOnlyCopy('ipvs'), [name]);
    expect(text).toBe(output.replaceAll(path.join(TREES, 'ipvs'), path.join(tmp, 'ipvs-text')));
  });

  it('the .bin files are the ones answering', async () => {
    const db = await openModuleDatabase({
      root: path.join(TREES, 'ipvs'),
      kernelVersion: VERSION,
      configDirs: [],
    });
    expect(db.usesBinaryIndex('alias')).toBe(true);
    expect(db.usesBinaryIndex('builtin')).toBe(true);
    db.close();
  });
});

describe('kmodload with a corrupt index (CLI)', () => {
  function corruptCopy(mutate: (dir: string) => void): string {
    const root = fs.mkdtempSync(path.join(tmp, 'corrupt-'));
    fs.cpSync(path.join(TREES, 'ipvs'), root, { recursive: true });
    mutate(path.join(root, 'lib', 'modules', VERSION));
    return root;
  }

  function showDependsCli(root: string, name: string): { status: number | null; stderr: string } {
    const r = spawnSync(
      process.execPath,
      [CLI, 'load', '--show-depends', '-d', root, '-S', VERSION, '-C', tmp, name],
      { encoding: 'utf8' },
    );
    return { status: r.status, stderr: r.stderr };
  }

  it.each([
    [
      'a bad header',
      'modules.dep.bin',
      (file: string) => fs.writeFileSync(file, 'not an index'),
      /corrupt index: bad magic/,
    ],
    [
      'a truncated file',
      'modules.dep.bin',
      (file: string) => fs.truncateSync(file, 200),
      /corrupt index: /,
    ],
    [
      'a 5-byte file',
      'modules.alias.bin',
      (file: string) => fs.truncateSync(file, 5),
      /file shorter than the 12-byte header/,
    ],
    [
      'a root pointing past the end',
      'modules.alias.bin',
      (file: string) => {
        const data = fs.readFileSync(file);
        data.writeUInt32BE((0xe0000000 | 0x0fffff00) >>> 0, 8);
        fs.writeFileSync(file, data);
      },
      /node offset 0xfffff00 beyond end of file/,
    ],
  ])('%s: exit 4, one line naming the file', (_what, name, mutate, reason) => {
    const root = corruptCopy((dir) => mutate(path.join(dir, name)));
    const { status, stderr } = showDependsCli(root, 'crc32c');
    expect(status).toBe(4);
    const lines = stderr.split('\n').filter((l) => l !== '');
    expect(lines, stderr).toHaveLength(1);
    expect(lines[0]).toContain(`${root}/lib/modules/${VERSION}/${name}`);
    expect(lines[0]).toMatch(reason);
    expect(lines[0]).not.toMatch(/internal error/);
  });

  it('an addon that is there but does not load is exit 4; one that is absent falls back', () => {
    const broken = path.join(tmp, 'broken.node');
    fs.writeFileSync(broken, 'not a shared object\n');
    const args = [CLI, 'load', '--show-depends', '-d', path.join(TREES, 'ipvs'), '-S', VERSION];
    const run = (addon: string): { status: number | null; stderr: string; stdout: string } =>
      spawnSync(process.execPath, [...args, '-C', tmp, 'crc32c'], {
        encoding: 'utf8',
        env: { ...process.env, KMODLOAD_ADDON: addon },
      });
    const failed = run(broken);
    expect(failed.status).toBe(4);
    expect(failed.stdout).toBe('');
    expect(failed.stderr.trim().split('\n')).toHaveLength(1);
    expect(failed.stderr).toContain(`cannot load native addon ${broken}`);
    const absent = run(path.join(tmp, 'absent.node'));
    expect({ status: absent.status, stderr: absent.stderr }).toEqual({ status: 0, stderr: '' });
    expect(absent.stdout).toContain('crc32c_generic.ko');
  });

  it('an intact copy answers (the failures above come from the damage)', () => {
    const root = corruptCopy(() => {});
    const { status, stderr } = showDependsCli(root, 'crc32c');
    expect({ status, stderr }).toEqual({ status: 0, stderr: '' });
  });
});
