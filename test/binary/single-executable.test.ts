// The single executable (npm run build:binary): built here from this tree, then run as a
// runtime runs a hook, with an empty environment (no PATH, no node): --help, --version,
// load --show-depends against kmod's modprobe on the 6.1 tree, the hook (dry run and nothing
// asked), hook-config naming the executable itself; and the embedded addon loaded from an
// unnamed file, never a named one.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { GLOBAL_HELP } from '../../src/cli/help';
import { EXIT } from '../../src/errors';
import { loadAddonImage } from '../../src/native/embedded';
import type { NativeBinding } from '../../src/native/binding';
import { RuntimeConnection } from '../helpers/nri-runtime';
import { REPO_ROOT, kernelTrees, toolEnv, type KernelTree } from '../helpers/trees';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-binary-'));
const binary = path.join(scratch, 'bin', 'kmodload');
const SEED = ['ip_vs', 'ip_vs_wrr'];
let tree: KernelTree;
let modprobeD: string;

beforeAll(() => {
  fs.mkdirSync(path.dirname(binary));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { buildBinary } = require('../../scripts/make/build-binary.js') as {
    buildBinary(output: string): string;
  };
  buildBinary(binary);
  const found = kernelTrees().find((t) => t.flavour === '6.1');
  if (!found) throw new Error('no 6.1 tree');
  tree = found;
  modprobeD = path.join(scratch, 'modprobe.d');
  fs.mkdirSync(modprobeD);
}, 300_000);

afterAll(() => {
  // loadAddonImage's test mounts a tmpfs there; lazily, since glibc keeps the first segment
  // of a library it failed to map (a few pages of this process, until it exits).
  spawnSync('umount', ['-l', path.join(scratch, 'noexec')]);
  fs.rmSync(scratch, { recursive: true, force: true });
});

/** The executable as a runtime starts a hook: an empty environment, in another directory. */
function run(args: string[], input = '', program = binary) {
  const r = spawnSync(program, args, { input, encoding: 'utf8', env: {}, cwd: scratch });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function treeArgs(): string[] {
  return ['-d', tree.root, '-S', tree.version, '-C', modprobeD];
}

/** A bundle whose config.json has `env`, and its state as the runtime sends it. */
function state(name: string, env: string[]): string {
  const bundle = path.join(scratch, name);
  fs.mkdirSync(bundle);
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify({ process: { env } }));
  return JSON.stringify({ ociVersion: '1.0.2', id: name, status: 'creating', pid: 1, bundle });
}

describe('the single executable', () => {
  it('is one file that runs with no node, no PATH and no package beside it', () => {
    expect(fs.statSync(binary).mode & 0o777).toBe(0o755);
    expect(fs.readdirSync(path.dirname(binary))).toEqual(['kmodload']);
    const help = run(['--help']);
    expect(help).toEqual({ status: 0, stdout: GLOBAL_HELP, stderr: '' });
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
      version: string;
    };
    expect(run(['--version'])).toEqual({
      status: 0,
      stdout: `kmodload ${pkg.version}\n`,
      stderr: '',
    });
  });

  it('load --show-depends prints what modprobe prints (6.1 tree, the seed set)', () => {
    const oracle = spawnSync('modprobe', [...treeArgs(), '-a', '--show-depends', ...SEED], {
      encoding: 'utf8',
      env: toolEnv(),
    });
    expect(oracle.status).toBe(0);
    expect(oracle.stdout).toContain('ip_vs_wrr.ko');
    expect(run(['load', '--show-depends', ...treeArgs(), ...SEED])).toEqual({
      status: 0,
      stdout: oracle.stdout,
      stderr: '',
    });
  });

  it('a bad request is one line with its exit status', () => {
    const r = run(['load', ...treeArgs(), 'no_such_module_x']);
    expect(r.status).toBe(EXIT.refused);
    expect(r.stderr.split('\n')).toEqual([
      expect.stringMatching(/^kmodload: .*no_such_module_x/),
      '',
    ]);
    const usage = run(['frobnicate']);
    expect(usage.status).toBe(EXIT.usage);
    expect(usage.stderr).toBe("kmodload: unknown command 'frobnicate' (see kmodload --help)\n");
  });

  it('the hook plans the seed request (dry run) and logs the modules modprobe would load', () => {
    const log = path.join(scratch, 'hook.log');
    const r = run(
      ['hook', '--state', 'prestart', '-n', ...treeArgs(), '--log', log, '--state-dir', scratch],
      state('seed', ['PATH=/bin', `KERNEL_MODULES=${SEED.join(',')}`]),
    );
    expect(r).toEqual({ status: 0, stdout: '', stderr: '' });
    const record = JSON.parse(fs.readFileSync(log, 'utf8').trim()) as {
      request: string[];
      results: Array<{ name: string; status: string; path: string }>;
    };
    expect(record.request).toEqual(SEED);
    const oracle = spawnSync('modprobe', [...treeArgs(), '-a', '--show-depends', ...SEED], {
      encoding: 'utf8',
      env: toolEnv(),
    });
    const insmods = [
      ...new Set(
        oracle.stdout
          .split('\n')
          .filter((l) => l.startsWith('insmod '))
          .map((l) => l.split(' ')[1]),
      ),
    ];
    expect(record.results.map((result) => result.path)).toEqual(insmods);
    expect(new Set(record.results.map((result) => result.status))).toEqual(new Set(['would-load']));
  });

  it('the hook reads a state that the runtime writes slowly, in two parts', async () => {
    // What is there at start-up is read at once; the rest comes from the stream.
    const log = path.join(scratch, 'slow.log');
    const text = state('slow', [`KERNEL_MODULES=${SEED.join(',')}`]);
    const child = spawn(
      binary,
      ['hook', '--state', 'prestart', '-n', ...treeArgs(), '--log', log, '--state-dir', scratch],
      { env: {}, cwd: scratch, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    child.stdin.write(text.slice(0, 20));
    await new Promise((resolve) => setTimeout(resolve, 500));
    child.stdin.end(text.slice(20));
    expect(await closed).toBe(0);
    expect(stderr).toBe('');
    const record = JSON.parse(fs.readFileSync(log, 'utf8').trim()) as {
      id: string;
      request: string[];
    };
    expect(record).toMatchObject({ id: 'slow', request: SEED });
  });

  it('the hook with nothing asked succeeds and says nothing', () => {
    const r = run(
      ['hook', '--state', 'prestart', '--log', 'none', '--state-dir', scratch],
      state('nothing', ['PATH=/bin']),
    );
    expect(r).toEqual({ status: 0, stdout: '', stderr: '' });
  });

  it('hook-config names the executable itself, with no wrapper', () => {
    for (const format of ['isulad', 'oci', 'hooks.d']) {
      const r = run(['hook-config', '--format', format, '--log', 'none']);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const paths = [...r.stdout.matchAll(/"path": "([^"]*)"/g)].map((m) => m[1]);
      expect(paths.length).toBeGreaterThan(0);
      expect(new Set(paths)).toEqual(new Set([binary]));
    }
    // --binary names another copy; --wrapper still names a wrapper.
    const other = run(['hook-config', '--format', 'oci', '--binary', '/opt/kmodload/kmodload']);
    expect(other.status).toBe(0);
    expect(other.stdout).toContain('"path": "/opt/kmodload/kmodload"');
    expect(other.stderr).toContain('/opt/kmodload/kmodload does not exist yet');
    const both = run(['hook-config', '--binary', '/a', '--wrapper', '/b']);
    expect(both.status).toBe(EXIT.usage);
    expect(both.stderr).toBe(
      'kmodload: --binary and --wrapper exclude each other (see kmodload hook-config --help)\n',
    );
  });

  it('install-node --nri installs the executable itself as the NRI plugin, which registers', async () => {
    const root = path.join(scratch, 'nri-root');
    const r = run(['install-node', '--nri', '--root', root, '-n', ...treeArgs()]);
    expect([r.status, r.stderr]).toEqual([0, '']);
    const plugin = path.join(root, 'opt/nri/plugins/10-kmodload');
    expect(fs.statSync(plugin).mode & 0o777).toBe(0o755);
    expect(fs.readFileSync(plugin).equals(fs.readFileSync(binary))).toBe(true);
    // No Node.js, no package: the executable is all.
    expect(fs.existsSync(path.join(root, 'usr'))).toBe(false);
    // Started as containerd starts it, with the configuration it was given.
    const child = spawn(plugin, [], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
      env: { NRI_PLUGIN_NAME: 'kmodload', NRI_PLUGIN_IDX: '10', NRI_PLUGIN_SOCKET: '3' },
    });
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      const conn = new RuntimeConnection(child.stdio[3] as net.Socket);
      expect(await conn.registered).toEqual({ name: 'kmodload', idx: '10' });
      const config = fs.readFileSync(path.join(root, 'etc/nri/conf.d/10-kmodload.conf'), 'utf8');
      expect(config).toContain(`\n-d ${tree.root}\n-S ${tree.version}\n`);
      expect(await conn.configure('containerd', '1.7.24', config)).toBe(0x608);
      conn.socket.end();
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
    // install-node --binary from anywhere copies the same file.
    const copy = run(['install-node', '--nri', '--binary', binary, '--root', `${root}-2`]);
    expect([copy.status, copy.stderr]).toEqual([0, '']);
    const copied = path.join(`${root}-2`, 'opt/nri/plugins/10-kmodload');
    expect(fs.readFileSync(copied).equals(fs.readFileSync(binary))).toBe(true);
  });

  it('loads the embedded addon through an unnamed file (O_TMPFILE), creating no named file', () => {
    const trace = path.join(scratch, 'strace.out');
    const r = spawnSync(
      'strace',
      [
        '-f',
        '-qq',
        '-e',
        'trace=open,openat,creat,linkat,memfd_create',
        '-o',
        trace,
        binary,
        'load',
        '--show-depends',
        ...treeArgs(),
        ...SEED,
      ],
      { encoding: 'utf8', env: {} },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const calls = fs.readFileSync(trace, 'utf8').split('\n');
    const unnamed = calls.filter((l) => l.includes('O_TMPFILE'));
    expect(unnamed.length).toBe(1);
    expect(unnamed[0]).toMatch(/O_EXCL/);
    expect(calls.filter((l) => /O_CREAT|creat\(|linkat\(/.test(l))).toEqual([]);
    expect(calls.some((l) => /openat\(.*"\/proc\/self\/fd\/\d+"/.test(l))).toBe(true);
  });
});

describe('loadAddonImage', () => {
  const image = fs.readFileSync(path.join(REPO_ROOT, 'build', 'Release', 'kmodload.node'));
  const noexec = path.join(scratch, 'noexec');

  beforeAll(() => {
    fs.mkdirSync(noexec);
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'noexec,size=8m', 'tmpfs', noexec]);
    if (mount.status !== 0) throw new Error(`mount tmpfs noexec: ${String(mount.stderr)}`);
  });

  it('skips directories that cannot hold or map it, and names each reason when none can', () => {
    // Failure first: glibc's dlopen() takes a path it has loaded before (/proc/self/fd/N,
    // with N reused) for the same library, and maps nothing.
    let error: unknown;
    try {
      loadAddonImage(image, [path.join(scratch, 'missing'), noexec]);
    } catch (e) {
      error = e;
    }
    const message = (error as Error).message;
    expect((error as { exitStatus?: number }).exitStatus).toBe(EXIT.environment);
    expect(message).toMatch(
      new RegExp(
        `^cannot load the embedded native addon \\(${path.join(scratch, 'missing')}: ENOENT; ${noexec}: .*(failed to map|Operation not permitted)`,
      ),
    );
    expect(message).not.toContain('\n');

    const binding = loadAddonImage<NativeBinding>(image, [
      path.join(scratch, 'missing'),
      noexec,
      '/dev/shm',
    ]);
    expect(binding.fnmatch('ip_vs*', 'ip_vs_wrr')).toBe(true);
    expect(fs.readdirSync(noexec)).toEqual([]);
  });
});
