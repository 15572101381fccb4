// npm install of the packed tarball on a fresh host: a Debian 11 root (glibc 2.31) with no
// compiler, no make, no python, into which only a Node 20 binary and its npm are copied. The
// install must take the prebuilt addon and run no node-gyp; the installed CLI then plans the
// 6.1 tree exactly as kmod's modprobe does, and the hook plans a container's request (dry run).
//
// Installation is offline (npm install --offline) from the tarball and the dependencies packed
// from node_modules: the root reaches no registry.
//
// The same root without Node at all then runs the single executable (npm run build:binary)
// for the same commands.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { PREBUILD_FILE } from '../../src/native/addon';
import { writeBundle } from '../helpers/bundle';
import { kernelTree, toolEnv } from '../helpers/trees';
import type { FreshHost } from './fresh-host';
import { copyIntoHost, copyNode, freshHost, removeFreshHost, runInHost } from './fresh-host';
import { ensurePrebuilds, packDependencies, packTarball } from './pack';

const MODULES = ['ip_vs', 'ip_vs_wrr'];

let host: FreshHost;
let app: string; // inside the root
let tarballs: string[]; // inside the root

/** What kmod's modprobe prints for MODULES, with the tree where the root sees it. */
function modprobeShowDepends(): string {
  const output = execFileSync(
    'modprobe',
    ['-a', '-d', host.tree.root, '-S', host.tree.version, '--show-depends', ...MODULES],
    { encoding: 'utf8', env: toolEnv() },
  );
  return output.split(host.tree.root).join(host.treeInside);
}

beforeAll(() => {
  ensurePrebuilds();
  host = freshHost(kernelTree('6.1'));
  copyNode(host);
  const packed = path.join(host.dir, 'packed');
  fs.mkdirSync(packed);
  const { tarball } = packTarball(packed);
  tarballs = [tarball, ...packDependencies(packed)].map(
    (file) => `${host.inside}/packed/${path.basename(file)}`,
  );
  app = `${host.inside}/app`;
  fs.mkdirSync(path.join(host.dir, 'app'));
});

afterAll(() => {
  removeFreshHost(host);
});

describe('a Debian 11 host without a toolchain', () => {
  it('has glibc 2.31, Node 20 only as copied in, and no compiler, make or python', () => {
    const result = runInHost(
      host,
      'ldd --version | head -n1; node --version; ' +
        'for t in cc gcc c++ g++ clang make python python3; do command -v $t || true; done',
    );
    expect(result.stderr).toBe('');
    const [libc, node, ...tools] = result.stdout.trim().split('\n');
    expect(libc).toMatch(/ 2\.31$/);
    expect(node).toBe(process.version);
    expect(tools).toEqual([]);
  });

  it('installs the packed tarball with npm, taking the prebuild and compiling nothing', () => {
    const result = runInHost(
      host,
      `cd ${app} && npm install --offline --no-audit --no-fund --no-update-notifier ` +
        `--foreground-scripts --loglevel=info ${tarballs.join(' ')} 2>&1`,
    );
    expect(result.status, result.stdout).toBe(0);
    // The install script ran (node-gyp-build), and node-gyp did not.
    expect(result.stdout).toMatch(/^> node-gyp-build$/m);
    expect(result.stdout).not.toMatch(/gyp info|gyp ERR|node-gyp rebuild/);
    const installed = path.join(host.dir, 'app', 'node_modules', 'kmodload');
    expect(fs.existsSync(path.join(installed, 'build'))).toBe(false);
    expect(fs.readdirSync(path.join(installed, 'prebuilds')).sort()).toEqual([
      'linux-arm64',
      'linux-x64',
    ]);
  });

  it('loads the prebuilt addon there', () => {
    const script =
      "const a = require('kmodload/dist/native/addon'); const b = a.loadBinding(); " +
      "console.log(a.addonPath()); console.log(b.fnmatch('ip_vs*', 'ip_vs_wrr'))";
    const result = runInHost(host, `cd ${app} && node -e "${script}"`);
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(
      `${app}/node_modules/kmodload/prebuilds/linux-${process.arch}/${PREBUILD_FILE}\ntrue\n`,
    );
  });

  it('kmodload load --show-depends on the 6.1 tree prints what modprobe prints', () => {
    const { treeInside, tree } = host;
    const result = runInHost(
      host,
      `cd ${app} && ./node_modules/.bin/kmodload load --show-depends ` +
        `-d ${treeInside} -S ${tree.version} ${MODULES.join(' ')}`,
    );
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toBe(modprobeShowDepends());
    expect(result.stdout).toContain('/kernel/net/netfilter/ipvs/ip_vs_wrr.ko');
  });

  it('the installed hook plans a container request under a dry run', () => {
    writeBundle(path.join(host.dir, 'bundle'), {
      ociVersion: '1.0.2',
      process: { args: ['sh'], cwd: '/', env: ['PATH=/bin', `KERNEL_MODULES=${MODULES}`] },
      root: { path: 'rootfs' },
    });
    const state = {
      ociVersion: '1.0.2',
      id: 'fresh-host',
      status: 'creating',
      pid: 1,
      bundle: `${host.inside}/bundle`,
    };
    const log = `${host.inside}/hook.log`;
    const result = runInHost(
      host,
      `cd ${app} && ./node_modules/.bin/kmodload hook --state prestart -n ` +
        `-d ${host.treeInside} -S ${host.tree.version} --log ${log} ` +
        `--state-dir ${host.inside}/run`,
      JSON.stringify(state),
    );
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const [record, ...more] = fs
      .readFileSync(path.join(host.dir, 'hook.log'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(more).toEqual([]);
    expect(record).toMatchObject({
      id: 'fresh-host',
      stage: 'prestart',
      dryRun: true,
      request: MODULES,
      exitStatus: 0,
    });
    const plan = (record?.plan as { path: string }[]).map((step) => step.path);
    const insmods = modprobeShowDepends()
      .trim()
      .split('\n')
      .map((line) => line.replace(/^insmod (\S+).*$/, '$1'));
    expect(plan).toEqual(insmods);
    expect((record?.results as { status: string }[]).every((r) => r.status === 'would-load')).toBe(
      true,
    );
  });
});

describe('the same Debian 11 root without Node: the single executable', () => {
  let bare: FreshHost;
  let binary: string; // inside the root

  beforeAll(() => {
    bare = freshHost(kernelTree('6.1'));
    const built = path.join(bare.dir, 'build', 'kmodload');
    fs.mkdirSync(path.dirname(built));
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { buildBinary } = require('../../scripts/make/build-binary.js') as {
      buildBinary(output: string): string;
    };
    buildBinary(built);
    binary = copyIntoHost(bare, built);
    fs.rmSync(path.dirname(built), { recursive: true, force: true });
  }, 300_000);

  afterAll(() => {
    removeFreshHost(bare);
  });

  it('has no node anywhere', () => {
    const result = runInHost(bare, 'command -v node nodejs npm || echo none');
    expect(result.stdout).toBe('none\n');
  });

  it('load --show-depends on the 6.1 tree prints what modprobe prints', () => {
    const result = runInHost(
      bare,
      `${binary} load --show-depends -d ${bare.treeInside} -S ${bare.tree.version} ${MODULES.join(' ')}`,
    );
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const expected = execFileSync(
      'modprobe',
      ['-a', '-d', bare.tree.root, '-S', bare.tree.version, '--show-depends', ...MODULES],
      { encoding: 'utf8', env: toolEnv() },
    );
    expect(result.stdout).toBe(expected.split(bare.tree.root).join(bare.treeInside));
  });

  it('the hook plans a container request under a dry run', () => {
    writeBundle(path.join(bare.dir, 'bundle'), {
      ociVersion: '1.0.2',
      process: { args: ['sh'], cwd: '/', env: [`KERNEL_MODULES=${MODULES}`] },
      root: { path: 'rootfs' },
    });
    const state = { ociVersion: '1.0.2', id: 'no-node', status: 'creating', pid: 1 };
    const log = `${bare.inside}/hook.log`;
    const result = runInHost(
      bare,
      `${binary} hook --state prestart -n -d ${bare.treeInside} -S ${bare.tree.version} ` +
        `--log ${log} --state-dir ${bare.inside}/run`,
      JSON.stringify({ ...state, bundle: `${bare.inside}/bundle` }),
    );
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const lines = fs.readFileSync(path.join(bare.dir, 'hook.log'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(1);
    const record = JSON.parse(lines[0] as string) as { results: { status: string }[] };
    expect(record).toMatchObject({ id: 'no-node', dryRun: true, request: MODULES, exitStatus: 0 });
    expect(record.results.length).toBeGreaterThan(0);
    expect(record.results.every((r) => r.status === 'would-load')).toBe(true);
  });
});
