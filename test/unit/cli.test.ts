// The built CLI as a user runs it: node bin/kmodload.js, a child process, real trees, real
// modprobe as the oracle, and this machine's kernel (no module support) for real loads.
// It is compiled into a private directory so that parallel builds of dist/ cannot race it.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reportError } from '../../src/cli/main';
import { EXIT, KmodloadError } from '../../src/errors';
import type { LoadResult } from '../../src/loader/types';
import { installSources } from '../helpers/build';
import { writeBundle } from '../helpers/bundle';
import { memoryIO } from '../helpers/cli-io';
import type { KernelTree } from '../helpers/trees';
import { REPO_ROOT, kernelTree } from '../helpers/trees';

let buildDir: string;
let tree: KernelTree;

beforeAll(() => {
  tree = kernelTree('6.1');
  buildDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-cli-'));
  installSources(buildDir);
});

afterAll(() => {
  fs.rmSync(buildDir, { recursive: true, force: true });
});

function kmodload(
  args: string[],
  input?: string,
): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [path.join(buildDir, 'bin', 'kmodload.js'), ...args], {
    encoding: 'utf8',
    ...(input === undefined ? {} : { input }),
    timeout: 30_000,
    env: {
      ...process.env,
      KMODLOAD_ADDON: path.join(REPO_ROOT, 'build', 'Release', 'kmodload.node'),
    },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function tree61(): string[] {
  return ['-d', tree.root, '-S', tree.version];
}

/** Exactly one line on stderr, prefixed, and no stack trace. */
function expectOneErrorLine(stderr: string): string {
  const lines = stderr.split('\n').filter((line) => line !== '');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^kmodload: /);
  expect(stderr).not.toMatch(/\n\s+at /);
  return lines[0] as string;
}

/** Runs `use` with a new temporary directory, removed afterwards. */
function inScratch(label: string, use: (dir: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `kmodload-${label}-`));
  try {
    use(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A bundle under `dir` with `config` as its config.json; returns the state a runtime sends. */
function hookState(dir: string, config: unknown, annotations: Record<string, string> = {}): string {
  const bundle = writeBundle(fs.mkdtempSync(path.join(dir, 'bundle-')), config);
  return JSON.stringify({ id: 'c', status: 'creating', bundle, annotations });
}

describe('kmodload help and usage', () => {
  it('not built (no dist/): one line, status 4', () => {
    const bare = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-bare-'));
    try {
      fs.mkdirSync(path.join(bare, 'bin'));
      fs.copyFileSync(path.join(REPO_ROOT, 'bin', 'kmodload.js'), path.join(bare, 'bin', 'x.js'));
      const result = spawnSync(process.execPath, [path.join(bare, 'bin', 'x.js'), '--help'], {
        encoding: 'utf8',
      });
      expect(result.status).toBe(EXIT.environment);
      expect(expectOneErrorLine(result.stderr)).toMatch(/^kmodload: not built/);
    } finally {
      fs.rmSync(bare, { recursive: true, force: true });
    }
  });

  it('--help lists the commands and the exit statuses', () => {
    const { status, stdout, stderr } = kmodload(['--help']);
    expect(status).toBe(0);
    expect(stderr).toBe('');
    for (const word of ['load NAME...', 'unload NAME...', 'hook', 'hook-config', 'Exit status:']) {
      expect(stdout).toContain(word);
    }
    expect(stdout).toMatch(/^\s+70\s+internal error/m);
  });

  it('load --help and unload --help describe their options and exit statuses', () => {
    const load = kmodload(['load', '--help']);
    expect(load.status).toBe(0);
    expect(load.stdout).toContain('--show-depends');
    expect(load.stdout).toContain('-o, --option=NAME=PARAMS');
    expect(load.stdout).toContain('Exit status:');
    const unload = kmodload(['unload', '-h']);
    expect(unload.status).toBe(0);
    expect(unload.stdout).toContain('-f, --force');
  });

  it('--version prints the package version', () => {
    const version = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8'))
      .version as string;
    expect(kmodload(['--version']).stdout).toBe(`kmodload ${version}\n`);
  });

  it.each([
    [[], 'kmodload: missing command (see kmodload --help)'],
    [['frobnicate'], "kmodload: unknown command 'frobnicate' (see kmodload --help)"],
    [['--bogus'], "kmodload: unknown option '--bogus' (see kmodload --help)"],
    [['load', '--bogus', 'ip_vs'], "kmodload: unknown option '--bogus' (see kmodload load --help)"],
    [['load', '-x', 'ip_vs'], "kmodload: unknown option '-x' (see kmodload load --help)"],
    [['load'], 'kmodload: missing module name (see kmodload load --help)'],
    [
      ['load', 'ip_vs', '--dirname'],
      "kmodload: option '--dirname' needs a value (see kmodload load --help)",
    ],
    [
      ['load', '--json=yes', 'ip_vs'],
      "kmodload: option '--json' takes no value (see kmodload load --help)",
    ],
    [
      ['load', '-o', 'dummy=numdummies=2', 'ip_vs'],
      "kmodload: option '-o dummy=numdummies=2' is for dummy, which is not requested (see kmodload load --help)",
    ],
    [['unload'], 'kmodload: missing module name (see kmodload unload --help)'],
  ])('usage error %j', (args, message) => {
    const { status, stdout, stderr } = kmodload(args);
    expect(status).toBe(EXIT.usage);
    expect(stdout).toBe('');
    expect(expectOneErrorLine(stderr)).toBe(message);
  });
});

describe('kmodload load --show-depends against modprobe', () => {
  function modprobe(names: string[]): { status: number | null; stdout: string } {
    const result = spawnSync(
      'modprobe',
      ['-d', tree.root, '-S', tree.version, '-a', '--show-depends', ...names],
      { encoding: 'utf8' },
    );
    return { status: result.status, stdout: result.stdout };
  }

  it('ip_vs ip_vs_wrr: byte-identical stdout and the same status', () => {
    const ours = kmodload(['load', ...tree61(), '--show-depends', 'ip_vs', 'ip_vs_wrr']);
    const theirs = modprobe(['ip_vs', 'ip_vs_wrr']);
    expect(theirs.stdout).toContain('crc32c-intel.ko');
    expect(ours.stdout).toBe(theirs.stdout);
    expect(ours.status).toBe(theirs.status);
    expect(ours.stderr).toBe('');
  });

  it('a long answer into a pipe whose reader is slow comes whole', () => {
    // Far more than a pipe holds: the process exits once the last of it is written.
    const names = fs
      .readFileSync(path.join(tree.moduleDir, 'modules.dep'), 'utf8')
      .split('\n')
      .slice(0, 2000)
      .map((line) => path.basename(line.slice(0, line.indexOf(':'))).replace(/\.ko.*$/, ''));
    const args = ['load', '--show-depends', ...tree61(), ...names];
    const whole = kmodload(args);
    expect(whole.status).toBe(0);
    expect(whole.stdout.length).toBeGreaterThan(256 * 1024);
    const command = [process.execPath, path.join(buildDir, 'bin', 'kmodload.js'), ...args];
    const slow = spawnSync('sh', ['-c', '"$@" | (sleep 1; cat)', 'sh', ...command], {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      timeout: 30_000,
    });
    expect(slow.stdout).toBe(whole.stdout);
  });

  it('a name with a newline is still one stderr line', () => {
    const ours = kmodload(['load', '--show-depends', ...tree61(), 'a\nb']);
    expect(ours.status).toBe(EXIT.failed);
    expect(expectOneErrorLine(ours.stderr)).toBe(
      `kmodload: module a\\x0ab not found in directory ${tree.moduleDir}`,
    );
  });

  it('an unknown name: same stdout, status 1, one line naming it', () => {
    const ours = kmodload(['load', ...tree61(), '-D', 'ip_vs', 'nosuch']);
    const theirs = modprobe(['ip_vs', 'nosuch']);
    expect(ours.stdout).toBe(theirs.stdout);
    expect(ours.status).toBe(1);
    expect(theirs.status).toBe(1);
    expect(expectOneErrorLine(ours.stderr)).toBe(
      `kmodload: module nosuch not found in directory ${tree.moduleDir}`,
    );
  });
});

describe('kmodload load', () => {
  it('refuses an unknown module with one line, status 3, nothing loaded', () => {
    const { status, stdout, stderr } = kmodload(['load', ...tree61(), 'ip_vs', 'nosuch']);
    expect(status).toBe(EXIT.refused);
    expect(stdout).toBe('');
    expect(expectOneErrorLine(stderr)).toBe(
      `kmodload: cannot load nosuch: module nosuch not found in directory ${tree.moduleDir}`,
    );
  });

  it('a module tree that does not exist is an environment error', () => {
    const { status, stderr } = kmodload([
      'load',
      '-d',
      '/nonexistent',
      '-S',
      tree.version,
      'ip_vs',
    ]);
    expect(status).toBe(EXIT.environment);
    expectOneErrorLine(stderr);
  });

  it('a real load on this machine (no module support) fails with one ENOSYS line, status 1', () => {
    const { status, stdout, stderr } = kmodload(['load', ...tree61(), 'ip_vs', 'ip_vs_wrr']);
    expect(status).toBe(EXIT.failed);
    expect(stdout).toBe('');
    expect(expectOneErrorLine(stderr)).toBe(
      'kmodload: cannot load ip_vs,ip_vs_wrr: Function not implemented: the running kernel has ' +
        'no module support (ENOSYS)',
    );
  });

  it('a module file that is a FIFO, /dev/zero or a directory: exit 4, one line, no hang', () => {
    const fixture = path.join(REPO_ROOT, 'test/fixtures/trees/no-aliases');
    const version = '6.1.0-fixture';
    inScratch('hostile-module', (dir) => {
      fs.cpSync(fixture, dir, { recursive: true });
      const file = path.join(dir, 'lib/modules', version, 'kernel/lib/libcrc32c.ko');
      for (const make of [
        () => execFileSync('mkfifo', [file]),
        () => fs.symlinkSync('/dev/zero', file),
        () => fs.mkdirSync(file),
      ]) {
        fs.rmSync(file, { recursive: true, force: true });
        make();
        const { status, stderr } = kmodload(['load', '-d', dir, '-S', version, 'libcrc32c']);
        expect(status).toBe(EXIT.environment);
        expect(expectOneErrorLine(stderr)).toBe(
          `kmodload: cannot read module file ${file}: EINVAL: not a regular file`,
        );
      }
    });
  });

  it('--json reports the failure per module', () => {
    const { status, stdout } = kmodload(['load', ...tree61(), '--json', 'dummy']);
    expect(status).toBe(EXIT.failed);
    const result = JSON.parse(stdout) as LoadResult;
    expect(result.ok).toBe(false);
    expect(result.modules).toEqual([
      expect.objectContaining({
        name: 'dummy',
        status: 'failed',
        required: true,
        error: expect.objectContaining({ code: 'ENOSYS', errno: 38 }),
      }),
    ]);
  });

  it('--dry-run prints what would load, -v with files and options; -q prints nothing', () => {
    const dry = kmodload(['load', ...tree61(), '-n', 'ip_vs_wrr']);
    expect(dry.status).toBe(0);
    expect(dry.stderr).toBe('');
    expect(dry.stdout.split('\n')).toEqual([
      'would load crc32c_intel',
      'would load crc32c_generic',
      'would load libcrc32c',
      'would load nf_defrag_ipv4',
      'would load nf_defrag_ipv6',
      'would load nf_conntrack',
      'would load ip_vs',
      'would load ip_vs_wrr',
      '',
    ]);
    // An empty -C: the host's modprobe.d (Debian sets dummy's numdummies) stays out.
    const emptyConfig = fs.mkdtempSync(path.join(buildDir, 'modprobe.d-'));
    const verbose = kmodload([
      'load',
      ...tree61(),
      '-C',
      emptyConfig,
      '-nv',
      '-o',
      'dummy=numdummies=2',
      'dummy',
    ]);
    expect(verbose.stdout).toBe(
      `would load dummy ${tree.moduleDir}/kernel/drivers/net/dummy.ko numdummies=2\n`,
    );
    const quiet = kmodload(['load', ...tree61(), '--dry-run', '--quiet', 'ip_vs']);
    expect(quiet).toEqual({ status: 0, stdout: '', stderr: '' });
  });
});

describe('kmodload unload', () => {
  it('a module that is not loaded: nothing to do, status 0', () => {
    const { status, stdout } = kmodload(['unload', ...tree61(), 'ip_vs']);
    expect(status).toBe(0);
    expect(stdout).toBe('not loaded ip_vs\n');
  });

  it('a builtin module is refused with status 3', () => {
    const builtin = fs
      .readFileSync(path.join(tree.moduleDir, 'modules.builtin'), 'utf8')
      .split('\n')[0] as string;
    const name = path.basename(builtin, '.ko').replace(/-/g, '_');
    const { status, stderr } = kmodload(['unload', ...tree61(), name]);
    expect(status).toBe(EXIT.refused);
    expect(expectOneErrorLine(stderr)).toBe(
      `kmodload: cannot unload ${name}: module ${name} is builtin`,
    );
  });
});

describe('kmodload hook dispatch', () => {
  it('hook --help reaches the hook command', () => {
    const { status, stdout } = kmodload(['hook', '--help']);
    expect(status).toBe(0);
    expect(stdout).toContain('Usage: kmodload hook');
  });
});

describe('kmodload hook: a runtime that kills it', () => {
  /** Starts the hook with stdin left open (the state never comes), sends SIGTERM after `delay`
   *  ms, as a runtime does when its hook timeout passes; resolves to how it ended. */
  async function killedAfter(
    delay: number,
    log: string,
  ): Promise<{ code: number | null; signal: string | null; stderr: string }> {
    const child = spawn(
      process.execPath,
      [path.join(buildDir, 'bin', 'kmodload.js'), 'hook', '--log', log],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdin.write('{"id":"c1",');
    const timer = setTimeout(() => child.kill('SIGTERM'), delay);
    return new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stderr });
      }),
    );
  }

  it('SIGTERM while waiting for the state: exit 143, one stderr line, one log line', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-hook-sigterm-'));
    try {
      const log = path.join(dir, 'hook.log');
      // Before node has started the hook, SIGTERM kills it outright (no handler yet): try again
      // later. A hook that never handles SIGTERM fails every attempt.
      let ended = await killedAfter(300, log);
      for (const delay of [1000, 3000, 8000]) {
        if (ended.signal !== 'SIGTERM') break;
        ended = await killedAfter(delay, log);
      }
      expect(ended.signal).toBeNull();
      expect(ended.code).toBe(143);
      expect(expectOneErrorLine(ended.stderr)).toBe(
        'kmodload: interrupted by SIGTERM while waiting for the container state',
      );
      const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0] as string)).toMatchObject({
        id: null,
        interrupted: true,
        exitStatus: 143,
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('main() error reporting', () => {
  it('an unexpected error is one line with status 70; a KmodloadError keeps its status', async () => {
    const streams = memoryIO();
    expect(reportError(new TypeError('boom\n    at somewhere'), streams.io)).toBe(EXIT.internal);
    expect(reportError(new KmodloadError('in use\nby x', EXIT.refused), streams.io)).toBe(
      EXIT.refused,
    );
    expect(streams.err()).toBe(
      'kmodload: internal error: boom\\x0a    at somewhere\nkmodload: in use\\x0aby x\n',
    );
    expect(streams.out()).toBe('');
  });
});

describe('kmodload policy: malformed policy files', () => {
  // Each: [label, content or a maker, the line the problem is on (0: the file as a whole)].
  type Maker = (file: string) => void;
  const write =
    (content: string | Buffer): Maker =>
    (file) =>
      fs.writeFileSync(file, content);
  const garbage = Buffer.alloc(4096);
  for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 7919 + 13) % 256;
  const cases: Array<[string, Maker, number]> = [
    ['binary garbage', write(garbage), 1],
    ['a 1 MB line', write(`allow ${'a'.repeat(1_000_000)}\n`), 1],
    ['an unterminated continuation', write('default deny\nallow ip_vs \\'), 2],
    ['CRLF line ends', write('default deny\r\nallow ip_vs\r\n'), 1],
    ['a NUL byte', write('allow ip_vs\ndeny x\0y\n'), 2],
    ['a glob "["', write('allow [\n'), 1],
    ['a glob "**"', write('deny **\n'), 1],
    ['a glob "a]"', write('deny a]\n'), 1],
    ['a condition without "="', write('allow x when annotation team\n'), 1],
    ['an empty annotation key', write('allow x when annotation =v\n'), 1],
    ['a bad annotation value glob', write('allow x when annotation a=[b\n'), 1],
    ['an unknown condition key', write('allow x when label a=b\n'), 1],
    ['a source with no value', write('allow x when source\n'), 1],
    ['an unknown source', write('allow x when source kubelet\n'), 1],
    ['a namespace with no glob', write('allow x when namespace\n'), 1],
    ['a bad namespace glob', write('allow x when namespace [a\n'), 1],
    ['a pod-label without "="', write('allow x when pod-label app\n'), 1],
    ['a bad pod-label key', write('allow x when pod-label =v\n'), 1],
    ['when with no condition', write('allow x when\n'), 1],
    ['an empty GLOB list', write('\n\nallow\n'), 3],
    ['an empty GLOB list before when', write('deny when source env\n'), 1],
    ['an unknown directive', write('permit ip_vs\n'), 1],
    ['default twice', write('default deny\n# x\ndefault deny\n'), 3],
    ['default maybe', write('default maybe\n'), 1],
    ['max-modules negative', write('max-modules -1\n'), 1],
    ['max-modules as a float', write('max-modules 1e3\n'), 1],
    ['max-modules twice', write('max-modules 3\nmax-modules 4\n'), 2],
    ['a file name as a glob', write('allow ip_vs.ko\n'), 1],
    ['a path as a glob', write('deny kernel/fs/xfs\n'), 1],
    ['invalid UTF-8', write(Buffer.from('allow caf\xe9\n', 'latin1')), 1],
    ['an escape sequence', write('allow ip_vs\u001b[2J\n'), 1],
    ['a directory', (file) => fs.mkdirSync(file), 0],
    ['a FIFO (must not hang)', (file) => execFileSync('mkfifo', [file]), 0],
    ['a symlink to /dev/zero', (file) => fs.symlinkSync('/dev/zero', file), 0],
    ['a file over 1 MiB', write('deny xfs\n'.repeat(120_000)), 0],
  ];
  let count = 0;

  it.each(cases)(
    '%s: one line naming FILE:LINE, exit 4, for lint, check and the hook',
    (_label, make, line) => {
      inScratch('badpolicy', (dir) => {
        const file = path.join(dir, `p${count++}.conf`);
        make(file);
        const where = line > 0 ? `${file}:${line}: ` : `${file}: `;

        const lint = kmodload(['policy', 'lint', '--policy', file]);
        expect(lint.status).toBe(EXIT.environment);
        expect(lint.stdout.split('\n')[0]).toContain(where);
        expect(lint.stdout).not.toMatch(/\n\s+at /);

        const check = kmodload(['policy', 'check', '--policy', file, ...tree61(), 'ip_vs']);
        expect(check.status).toBe(EXIT.environment);
        expect(expectOneErrorLine(check.stderr)).toContain(`invalid policy: ${where}`);

        // The hook reads the policy at a load stage, once a container asks for something.
        const state = hookState(dir, { process: { env: ['KERNEL_MODULES=ip_vs'] } });
        const hook = kmodload(['hook', '--policy', file, '-n', ...tree61()], state);
        expect(hook.status).toBe(EXIT.environment);
        expect(expectOneErrorLine(hook.stderr)).toContain(`invalid policy: ${where}`);
        // ... and never at the stages that load nothing.
        const poststop = kmodload(['hook', '--state', 'poststop', '--policy', file], state);
        expect(poststop.status).toBe(0);
      });
    },
  );

  it('lint reports every problem of a file, one line each', () => {
    inScratch('badpolicy', (dir) => {
      const file = path.join(dir, 'many.conf');
      fs.writeFileSync(file, 'allow ip_vs\npermit x\ndeny [\ndefault no\n');
      const lint = kmodload(['policy', 'lint', '--policy', file]);
      expect(lint.status).toBe(EXIT.environment);
      expect(
        lint.stdout
          .split('\n')
          .filter((l) => l !== '')
          .map((l) => l.split(': ')[0]),
      ).toEqual([`${file}:2`, `${file}:3`, `${file}:4`]);
      fs.writeFileSync(file, 'default deny\nallow ip_vs*\n');
      const ok = kmodload(['policy', 'lint', '--policy', file]);
      expect(ok.status).toBe(0);
      expect(ok.stdout).toBe(`ok: ${file} (1 rules)\n`);
      // A rule on the NRI plugin's facts is no problem, but lint says what it does in a hook.
      fs.writeFileSync(
        file,
        'default deny\nallow ip_vs* when namespace net-*\ndeny tun when pod-label a=b\n',
      );
      const noted = kmodload(['policy', 'lint', '--policy', file]);
      expect(noted.status).toBe(0);
      expect(noted.stdout).toBe(
        `note: ${file}:2 (allow ip_vs* when namespace net-*) tests the pod's namespace or labels, which only the NRI plugin has: under the hook it never applies\n` +
          `note: ${file}:3 (deny tun when pod-label a=b) tests the pod's namespace or labels, which only the NRI plugin has: under the hook it always applies\n` +
          `ok: ${file} (2 rules)\n`,
      );
    });
  });

  it('params rules: lint counts and checks them, check takes a request with parameters', () => {
    inScratch('params', (dir) => {
      const file = path.join(dir, 'params.conf');
      fs.writeFileSync(
        file,
        'default deny\nallow dummy\nparams dummy numdummies=[1-8]\nparams fs-xfs x=*\non-param-conflict warn\n',
      );
      expect(kmodload(['policy', 'lint', '--policy', file]).stdout).toBe(`ok: ${file} (3 rules)\n`);
      const lint = kmodload(['policy', 'lint', '--policy', file, ...tree61()]);
      expect(lint.status).toBe(EXIT.environment);
      expect(lint.stdout).toMatch(
        new RegExp(`^${file}:4: "fs-xfs" matches no module of .*, only an alias \\(of xfs\\)`),
      );
      const allowed = kmodload([
        'policy',
        'check',
        '--policy',
        file,
        ...tree61(),
        'dummy numdummies=3',
      ]);
      expect(allowed.status).toBe(0);
      expect(allowed.stdout).toBe(
        `allow dummy (dummy): ${file}:2 (allow dummy)\n` +
          `allow dummy numdummies=3 (dummy): ${file}:3 (params dummy numdummies=[1-8])\n` +
          `policy: ${file}; modules in the plan: 1, max-modules 64\n` +
          'the request would be allowed\n',
      );
      const refused = kmodload([
        'policy',
        'check',
        '--policy',
        file,
        ...tree61(),
        '--json',
        'dummy numdummies=9',
      ]);
      expect(refused.status).toBe(EXIT.refused);
      const json = JSON.parse(refused.stdout) as { refusal: string; decisions: unknown[] };
      expect(json.refusal).toBe(
        `cannot load dummy: parameter numdummies=9 is not allowed for this container (${file}:3 (params dummy numdummies=[1-8]) allows other values; needed: params dummy numdummies=9)`,
      );
      expect(json.decisions).toContainEqual({
        request: 'dummy',
        module: 'dummy',
        role: 'target',
        param: 'numdummies=9',
        verdict: 'deny',
        rule: `${file}:3 (params dummy numdummies=[1-8]) allows other values`,
      });
      const hostile = kmodload(['policy', 'check', '--policy', file, ...tree61(), 'dummy x=$(id)']);
      expect(hostile.status).toBe(EXIT.refused);
      expect(expectOneErrorLine(hostile.stderr)).toMatch(
        /^kmodload: cannot load dummy: invalid parameter "x=\$\(id\)" in the argument entry/,
      );
    });
  });

  it('lint -d/-S: a pattern that matches no module of the tree is a problem, saying why', () => {
    inScratch('deadrules', (dir) => {
      const file = path.join(dir, 'dead.conf');
      fs.writeFileSync(file, 'deny SCTP fs-xfs sctp\ndeny no_such_mod* BusLogic\n');
      // Without a tree, nothing to check them against.
      expect(kmodload(['policy', 'lint', '--policy', file]).status).toBe(0);
      const lint = kmodload(['policy', 'lint', '--policy', file, ...tree61()]);
      expect(lint.status).toBe(EXIT.environment);
      const moduleDir = `${tree.root}/lib/modules/${tree.version}`;
      expect(lint.stdout).toBe(
        `${file}:1: "SCTP" matches no module of ${moduleDir}: names are case-sensitive, did you mean "sctp"?\n` +
          `${file}:1: "fs-xfs" matches no module of ${moduleDir}, only an alias (of xfs): rules match module names, write the module\n` +
          `note: ${file}:2: "no_such_mod*" matches no module of ${moduleDir} (another kernel may have one)\n`,
      );
      expect(expectOneErrorLine(lint.stderr)).toBe('kmodload: the policy has 2 problem(s)');
      // A module this kernel lacks is only a note: a deny kept for the next kernel protects.
      fs.writeFileSync(file, 'deny sctp no_such_mod\n');
      const noted = kmodload(['policy', 'lint', '--policy', file, ...tree61()]);
      expect(noted.status).toBe(0);
      expect(noted.stdout).toMatch(/^note: .*:1: "no_such_mod" matches no module .*\nok: /);
      // The parser itself refuses '!' outside brackets, for the hook too.
      fs.writeFileSync(file, 'deny !ip_vs\n');
      const bang = kmodload(['policy', 'lint', '--policy', file]);
      expect(bang.status).toBe(EXIT.environment);
      expect(bang.stdout).toMatch(
        /:1: bad pattern "!ip_vs": '!' outside '\[\.\.\.\]' matches itself/,
      );
      fs.writeFileSync(file, 'deny sctp\n');
      const missing = kmodload(['policy', 'lint', '--policy', file, '-d', dir, '-S', '0.0']);
      expect(missing.status).toBe(EXIT.environment);
      expect(expectOneErrorLine(missing.stderr)).toBe(
        `kmodload: cannot read ${dir}/lib/modules/0.0/modules.dep: ENOENT: no such file or directory`,
      );
    });
  });
});

describe('kmodload policy check', () => {
  it('prints each module with its rule; exit 0 when allowed, 3 when refused; --json', () => {
    inScratch('policycheck', (dir) => {
      const file = path.join(dir, 'policy.conf');
      fs.writeFileSync(file, 'default deny\nallow ip_vs* when annotation team=net\ndeny xfs\n');
      const conf = path.join(dir, 'modprobe.d');
      fs.mkdirSync(conf);
      const base = ['policy', 'check', '--policy', file, '-C', conf, ...tree61()];
      const allowed = kmodload([...base, '--annotation', 'team=net', 'ip_vs']);
      expect(allowed.status).toBe(0);
      expect(allowed.stderr).toBe('');
      expect(allowed.stdout).toContain(
        `allow ip_vs (ip_vs): ${file}:2 (allow ip_vs* when annotation team=net)\n`,
      );
      expect(allowed.stdout).toContain('allow nf_conntrack (dependency for ip_vs): with ip_vs\n');
      expect(allowed.stdout).toMatch(/the request would be allowed\n$/);
      // max-modules counts the plan's module files, loaded or not (the plan is all it sees).
      expect(allowed.stdout).toMatch(/; modules in the plan: \d+, max-modules 64\n/);

      const other = kmodload([...base, '--annotation', 'team=web', 'ip_vs']);
      expect(other.status).toBe(EXIT.refused);
      expect(expectOneErrorLine(other.stderr)).toBe(
        `kmodload: cannot load ip_vs: ip_vs is not allowed for this container (default deny, ${file}:1)`,
      );

      const json = kmodload([...base, '--json', 'fs-xfs']);
      expect(json.status).toBe(EXIT.refused);
      const verdict = JSON.parse(json.stdout) as { ok: boolean; refusal: string; policy: string[] };
      expect(verdict).toMatchObject({
        ok: false,
        refusal: `cannot load fs-xfs: xfs is denied by ${file}:3 (deny xfs)`,
        policy: [file],
      });
      // Refused by the host, not by a rule: `ok` follows the exit status.
      const missing = kmodload([
        'policy',
        'check',
        '-C',
        conf,
        ...tree61(),
        '--json',
        'no_such_module',
      ]);
      expect(missing.status).toBe(EXIT.refused);
      expect(JSON.parse(missing.stdout)).toMatchObject({ ok: false, policyOk: true });

      expect(kmodload(['policy', 'check', '--source', 'pod', 'x']).status).toBe(EXIT.usage);
      expect(kmodload(['policy', 'frob']).status).toBe(EXIT.usage);
      expect(kmodload(['load', '--policy', file, '-D', 'ip_vs']).status).toBe(EXIT.usage);
    });
  });

  it('load --policy refuses what the policy denies, before any syscall', () => {
    inScratch('policyload', (dir) => {
      const file = path.join(dir, 'policy.conf');
      fs.writeFileSync(file, 'deny nf_conntrack\n');
      const result = kmodload(['load', '--policy', file, ...tree61(), 'ip_vs']);
      expect(result.status).toBe(EXIT.refused);
      expect(expectOneErrorLine(result.stderr)).toBe(
        `kmodload: cannot load ip_vs: nf_conntrack (a dependency of ip_vs) is denied by ${file}:1 (deny nf_conntrack)`,
      );
      expect(result.stdout).toBe('');
    });
  });
});

describe('kmodload policy export --format modprobe.d', () => {
  it("writes the denies as install lines that modprobe (the kernel's autoload) honours", () => {
    inScratch('export', (dir) => {
      const policy = path.join(dir, 'policy.conf');
      fs.writeFileSync(
        policy,
        'default deny\nallow ip_vs\ndeny dumm? dccp_ipv* ext4 fs-xfs\ndeny af_alg when source annotation\n',
      );
      const empty = path.join(dir, 'empty.d');
      fs.mkdirSync(empty);
      const args = ['policy', 'export', '--format', 'modprobe.d', '--policy', policy];
      const printed = kmodload([...args, '-C', empty, ...tree61()]);
      expect(printed.status).toBe(0);
      const lines = printed.stdout.split('\n');
      expect(lines.filter((l) => l !== '' && !l.startsWith('#'))).toEqual([
        'install dccp_ipv4 /bin/false',
        'install dccp_ipv6 /bin/false',
        'install dummy /bin/false',
        // ext4 has softdeps (modules.softdep): modprobe would ignore its install rule.
        'blacklist ext4',
        'install ext4 /bin/false',
      ]);
      expect(printed.stdout).toContain(
        `# Not exported (applies to some containers only): ${policy}:4 (deny af_alg when source annotation)\n`,
      );
      expect(printed.stdout).toContain('# Not exported: default deny');
      expect(printed.stdout).toContain(`# No module of this tree: fs_xfs (${policy}:3;`);

      const conf = path.join(dir, 'modprobe.d');
      fs.mkdirSync(conf);
      const file = path.join(conf, 'kmodload-policy.conf');
      const written = kmodload([...args, '-C', empty, ...tree61(), '--output', file]);
      expect(written.status).toBe(0);
      expect(written.stdout).toBe('');
      expect(fs.readFileSync(file, 'utf8')).toBe(printed.stdout);
      expect(fs.statSync(file).mode & 0o777).toBe(0o644);
      expect(fs.readdirSync(conf)).toEqual(['kmodload-policy.conf']);

      // modprobe, as the kernel's autoload runs it: with the file the aliases load nothing.
      const showDepends = (config: string, name: string) =>
        spawnSync('modprobe', ['-C', config, ...tree61(), '--show-depends', name], {
          encoding: 'utf8',
        }).stdout;
      for (const alias of ['rtnl-link-dummy', 'fs-ext4']) {
        expect(showDepends(empty, alias)).toMatch(/^insmod .*\.ko/m);
        expect(showDepends(conf, alias)).not.toMatch(/^insmod .*(dummy|ext4)\.ko/m);
      }
      expect(showDepends(conf, 'rtnl-link-dummy')).toBe('install /bin/false \n');

      expect(kmodload([...args.slice(0, 2), '--policy', policy]).status).toBe(EXIT.usage);
      expect(kmodload([...args.slice(0, 2), '--format', 'json']).status).toBe(EXIT.usage);
      const missing = kmodload([...args, '-d', dir, '-S', '0.0']);
      expect(missing.status).toBe(EXIT.environment);
      expectOneErrorLine(missing.stderr);
    });
  });
});

describe('kmodload policy export --format validating-admission-policy', () => {
  it('prints or writes the policy and its binding; refuses a bad --name (exit 2)', () => {
    inScratch('vap', (dir) => {
      const policy = path.join(dir, 'policy.conf');
      fs.writeFileSync(policy, 'default deny\nallow ip_vs*\n');
      const args = ['policy', 'export', '--format', 'validating-admission-policy'];
      const printed = kmodload([...args, '--policy', policy, '--name', 'modules.example.com']);
      expect(printed.status).toBe(0);
      expect(printed.stderr).toBe('');
      expect(printed.stdout).toMatch(/^# Written by kmodload policy export/);
      expect(printed.stdout).toContain(
        '\nkind: ValidatingAdmissionPolicy\nmetadata:\n  name: modules.example.com\n',
      );
      expect(printed.stdout).toContain('  policyName: modules.example.com\n');
      expect(printed.stdout).toContain(
        `is not allowed for this container (default deny, ${policy}:1)`,
      );

      const file = path.join(dir, 'out', 'kmodload.yaml');
      const written = kmodload([...args, '--policy', policy, '-o', file]);
      expect(written.status).toBe(0);
      expect(written.stderr).toBe(`kmodload: wrote ${file} (1 rule(s))\n`);
      expect(fs.readFileSync(file, 'utf8')).toBe(
        printed.stdout.replaceAll('modules.example.com', 'kmodload'),
      );
      expect(fs.statSync(file).mode & 0o777).toBe(0o644);

      for (const bad of [
        [...args, '--policy', policy, '--name', 'Not_A_Name'],
        ['policy', 'export', '--format', 'modprobe.d', '--policy', policy, '--name', 'x'],
        ['policy', 'export', '--format', 'yaml', '--policy', policy],
      ]) {
        const run = kmodload(bad);
        expect(run.status).toBe(EXIT.usage);
        expectOneErrorLine(run.stderr);
      }
      const missing = kmodload([...args, '--policy', path.join(dir, 'none.conf')]);
      expect(missing.status).toBe(EXIT.environment);
      expectOneErrorLine(missing.stderr);
    });
  });
});

describe("the hook and the host's modprobe.d: fail closed", () => {
  it('a missing -C directory or a FIFO in modprobe.d refuses with exit 4; load skips as kmod does', () => {
    inScratch('strict', (dir) => {
      const state = hookState(dir, { process: { env: ['KERNEL_MODULES=ip_vs'] } });
      const missing = path.join(dir, 'no-such.d');
      const hook = kmodload(['hook', '-n', '-C', missing, ...tree61()], state);
      expect(hook.status).toBe(EXIT.environment);
      expect(expectOneErrorLine(hook.stderr)).toBe(
        `kmodload: cannot read modprobe configuration ${missing}: ENOENT: no such file or directory`,
      );
      // modprobe skips a missing -C directory; `load` keeps modprobe's semantics.
      expect(kmodload(['load', '-n', '-C', missing, ...tree61(), 'ip_vs']).status).toBe(0);

      const conf = path.join(dir, 'modprobe.d');
      fs.mkdirSync(conf);
      execFileSync('mkfifo', [path.join(conf, 'blacklist.conf')]);
      const fifo = kmodload(['hook', '-n', '-C', conf, ...tree61()], state);
      expect(fifo.status).toBe(EXIT.environment);
      expect(expectOneErrorLine(fifo.stderr)).toBe(
        `kmodload: cannot read modprobe configuration ${conf}/blacklist.conf: not a regular file`,
      );
    });
  });

  it('a dangling x.conf symlink in modprobe.d: the hook and policy check refuse (exit 4); load skips it as kmod does', () => {
    inScratch('dangling', (dir) => {
      const state = hookState(dir, { process: { env: ['KERNEL_MODULES=ip_vs'] } });
      const conf = path.join(dir, 'modprobe.d');
      fs.mkdirSync(conf);
      fs.symlinkSync(path.join(dir, 'gone.conf'), path.join(conf, 'blacklist.conf'));
      const expected = `kmodload: cannot read modprobe configuration ${conf}/blacklist.conf: a symlink to nothing (ENOENT: no such file or directory); modprobe skips it, here it is an error: fix or remove the link`;
      const hook = kmodload(['hook', '-n', '-C', conf, ...tree61()], state);
      expect(hook.status).toBe(EXIT.environment);
      expect(expectOneErrorLine(hook.stderr)).toBe(expected);
      const check = kmodload(['policy', 'check', '-C', conf, ...tree61(), 'ip_vs']);
      expect(check.status).toBe(EXIT.environment);
      expect(expectOneErrorLine(check.stderr)).toBe(expected);
      expect(kmodload(['load', '-n', '-C', conf, ...tree61(), 'ip_vs']).status).toBe(0);
      // A link that leads somewhere is read as ever.
      fs.writeFileSync(path.join(dir, 'gone.conf'), '# nothing\n');
      expect(kmodload(['hook', '-n', '-C', conf, ...tree61()], state).status).toBe(0);
    });
  });
});

describe('kmodload hook --policy: the modules, not the strings', () => {
  it('refuses a denied alias target, dependency and softdep; allows what is allowed, by annotation', () => {
    inScratch('hookpolicy', (dir) => {
      const policy = path.join(dir, 'policy.conf');
      fs.writeFileSync(
        policy,
        [
          'default deny',
          'allow ip_vs* xfs when annotation io.kubernetes.pod.namespace=kube-system',
          'deny xfs',
          'deny nf_conntrack when annotation io.kubernetes.pod.name=no-conntrack',
          'deny crc32c_intel when annotation io.kubernetes.pod.name=no-intel',
        ].join('\n'),
      );
      const conf = path.join(dir, 'modprobe.d');
      fs.mkdirSync(conf);
      const hook = (request: string, annotations: Record<string, string>) => {
        const state = hookState(dir, { annotations }, { 'org.kmodload.kernel-modules': request });
        const log = path.join(fs.mkdtempSync(path.join(dir, 'log-')), 'hook.log');
        const run = kmodload(
          ['hook', '-n', '--policy', policy, '-C', conf, '--log', log, ...tree61()],
          state,
        );
        const record = JSON.parse(fs.readFileSync(log, 'utf8')) as {
          verdict: Array<{ module: string; verdict: string }>;
          annotations: Record<string, string>;
          policy: string[];
        };
        return { ...run, record };
      };
      const kube = { 'io.kubernetes.pod.namespace': 'kube-system', 'io.kubernetes.pod.name': 'p' };

      const allowed = hook('ip_vs,ip_vs_wrr', kube);
      expect(allowed.status).toBe(0);
      expect(allowed.record.policy).toEqual([policy]);
      expect(allowed.record.annotations).toEqual(kube);
      expect(new Set(allowed.record.verdict.map((d) => d.verdict))).toEqual(new Set(['allow']));

      const alias = hook('fs-xfs', kube);
      expect(alias.status).toBe(EXIT.refused);
      expect(expectOneErrorLine(alias.stderr)).toBe(
        `kmodload: cannot load fs-xfs: xfs is denied by ${policy}:3 (deny xfs)`,
      );
      const dependency = hook('ip_vs', { ...kube, 'io.kubernetes.pod.name': 'no-conntrack' });
      expect(dependency.status).toBe(EXIT.refused);
      expect(expectOneErrorLine(dependency.stderr)).toMatch(
        /^kmodload: cannot load ip_vs: nf_conntrack \(a dependency of ip_vs\) is denied by .*:4 /,
      );
      const softdep = hook('ip_vs', { ...kube, 'io.kubernetes.pod.name': 'no-intel' });
      expect(softdep.status).toBe(EXIT.refused);
      expect(expectOneErrorLine(softdep.stderr)).toMatch(
        /^kmodload: cannot load ip_vs: crc32c_intel \(a soft dependency of ip_vs\) is denied by .*:5 /,
      );
      const otherNamespace = hook('ip_vs', { 'io.kubernetes.pod.namespace': 'default' });
      expect(otherNamespace.status).toBe(EXIT.refused);
      expect(expectOneErrorLine(otherNamespace.stderr)).toBe(
        `kmodload: cannot load ip_vs: ip_vs is not allowed for this container (default deny, ${policy}:1)`,
      );
    });
  });
});

describe('kmodload status and gc', () => {
  it('status on a host without holds; gc; a poststop without a hold touches no state', () => {
    inScratch('status', (dir) => {
      const stateDir = path.join(dir, 'state');
      const state = hookState(dir, { process: { env: ['KERNEL_MODULES=ip_vs'] } });
      const stop = kmodload(
        ['hook', '--state', 'poststop', '--unload-on-stop', '--state-dir', stateDir],
        state.replace('"creating"', '"stopped"'),
      );
      expect([stop.status, stop.stderr]).toEqual([0, '']);
      expect(fs.existsSync(stateDir)).toBe(false);

      const empty = kmodload(['status', '--state-dir', stateDir]);
      expect([empty.status, empty.stderr]).toEqual([0, '']);
      expect(empty.stdout).toBe(`no module loaded or held through kmodload (${stateDir})\n`);
      expect(JSON.parse(kmodload(['status', '--json', '--state-dir', stateDir]).stdout)).toEqual({
        modules: [],
        stale: [],
        warnings: [],
      });
      const gc = kmodload(['gc', '--json', '--state-dir', stateDir, '--older-than', '2d']);
      expect(gc.status).toBe(0);
      expect(JSON.parse(gc.stdout)).toMatchObject({ stale: [], modules: [] });
      expect(kmodload(['gc', '--older-than', 'soon']).status).toBe(EXIT.usage);
      expect(kmodload(['status', 'extra']).status).toBe(EXIT.usage);
      // Asking created nothing.
      expect(fs.existsSync(stateDir)).toBe(false);
    });
  });
});

describe('kmodload doctor', () => {
  it('says in one line that this kernel cannot load modules, and checks what it is pointed at', () => {
    inScratch('doctor', (dir) => {
      const hooks = path.join(dir, 'hooks.d');
      fs.mkdirSync(hooks);
      const wrapper = path.join(dir, 'kmodload-hook');
      fs.writeFileSync(wrapper, '#!/bin/sh\necho "kmodload 0.1.0"\n', { mode: 0o755 });
      const broken = path.join(dir, 'broken-hook');
      fs.writeFileSync(broken, '#!/bin/sh\necho "node: not found" >&2; exit 127\n', {
        mode: 0o755,
      });
      const entry = (hookPath: string) =>
        JSON.stringify({
          version: '1.0.0',
          hook: { path: hookPath, args: ['kmodload', 'hook'] },
          when: { always: true },
          stages: ['prestart'],
        });
      fs.writeFileSync(path.join(hooks, 'a.json'), entry(wrapper));
      fs.writeFileSync(path.join(hooks, 'b.json'), entry(path.join(dir, 'missing-hook')));
      fs.writeFileSync(path.join(hooks, 'c.json'), entry(broken));
      const result = kmodload(['doctor', ...tree61(), '--hooks-dir', hooks]);
      expect(result.status).toBe(EXIT.failed);
      const lines = result.stdout.trim().split('\n');
      expect(lines[0]).toMatch(
        /^fail kernel module support: the running kernel \(.*\) has no module support \(finit_module: ENOSYS\)$/,
      );
      expect(lines).toContain(`ok   module tree: ${tree.moduleDir} with current indexes`);
      expect(lines).toContain(`ok   hook ${hooks}/a.json: ${wrapper} (hook)`);
      expect(lines).toContain(`fail hook ${hooks}/b.json: ${dir}/missing-hook does not exist`);
      expect(lines).toContain(
        `fail hook ${hooks}/c.json: ${broken} does not run (exit status 127): node: not found`,
      );
      const json = JSON.parse(kmodload(['doctor', '--json', ...tree61()]).stdout) as {
        ok: boolean;
        checks: Array<{ name: string; level: string }>;
      };
      expect(json.ok).toBe(false);
      expect(json.checks.find((c) => c.name === 'kernel module support')?.level).toBe('fail');
    });
  });

  it("warns when the policy denies a module the kernel's own autoload could still load", () => {
    inScratch('doctorautoload', (dir) => {
      const policy = path.join(dir, 'policy.conf');
      fs.writeFileSync(policy, 'deny dummy ext4\ndeny tun when source annotation\n');
      const conf = path.join(dir, 'modprobe.d');
      fs.mkdirSync(conf);
      const doctor = () =>
        kmodload(['doctor', '--policy', policy, '-C', conf, ...tree61()])
          .stdout.split('\n')
          .find((line) => line.includes('kernel autoload'));
      expect(doctor()).toBe(
        "warn kernel autoload: the policy denies dummy ext4, but the kernel's own autoload could load them (a socket, a mount, a link type): kmodload policy export --format modprobe.d --output /etc/modprobe.d/kmodload-policy.conf",
      );
      // ext4 has softdeps: its install rule alone is not enough (modprobe ignores it).
      fs.writeFileSync(
        path.join(conf, 'partial.conf'),
        'install dummy /bin/false\ninstall ext4 /bin/false\n',
      );
      expect(doctor()).toMatch(/^warn kernel autoload: the policy denies ext4, but/);
      fs.rmSync(path.join(conf, 'partial.conf'));
      const exported = kmodload([
        'policy',
        'export',
        '--format',
        'modprobe.d',
        '--policy',
        policy,
        '-C',
        conf,
        ...tree61(),
        '--output',
        path.join(conf, 'kmodload-policy.conf'),
      ]);
      expect(exported.status).toBe(0);
      expect(doctor()).toBe(
        "ok   kernel autoload: modprobe.d keeps the policy's denies from the kernel's autoload too",
      );
    });
  });
});
