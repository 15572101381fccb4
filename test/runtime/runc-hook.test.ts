// The hook under a real OCI runtime: runc runs the installed wrapper with an EMPTY
// environment and the real state JSON on stdin, and refuses to start a container whose
// prestart/createRuntime hook fails. This machine's kernel has no module support, so real
// mode fails with ENOSYS; dry-run against a Debian tree shows the plan kmod would make.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/errors';
import type { AuditRecord } from '../../src/container/audit';
import { kernelTree } from '../helpers/trees';
import {
  hookConfig,
  install,
  makeBundle,
  modprobeInsmods,
  runcRun,
  tempDir,
  uniqueId,
  type Fixture,
  type Installation,
  type OciHook,
} from './harness';

let scratch: string;
let stateRoot: string;
let fixture: Fixture;
let kmodload: Installation;

beforeAll(() => {
  scratch = tempDir('runc');
  stateRoot = path.join(scratch, 'runc-state');
  fixture = kernelTree('6.1');
  kmodload = install(path.join(scratch, 'install'));
});

afterAll(() => {
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

let logCount = 0;
function newLog(): string {
  return path.join(scratch, `hook-${logCount++}.log`);
}

function readLog(file: string): AuditRecord[] {
  if (!fs.existsSync(file)) return [];
  const text = fs.readFileSync(file, 'utf8');
  expect(text.endsWith('\n')).toBe(true);
  return text
    .slice(0, -1)
    .split('\n')
    .map((line) => JSON.parse(line) as AuditRecord);
}

/** The message of runc's error line (logfmt: msg="..." with Go quoting). */
function runcMessage(stderr: string): string {
  const match = /msg=("(?:[^"\\]|\\.)*")/.exec(stderr);
  if (!match?.[1]) throw new Error(`no msg= in runc's output: ${stderr}`);
  return JSON.parse(match[1]) as string;
}

/** Loader flags for the fixture tree, plus whatever else. */
function treeArgs(extra: string[] = []): string[] {
  return ['-d', fixture.root, '-S', fixture.version, ...extra];
}

/** prestart + createRuntime + poststop entries, as `hook-config --format oci` and
 *  `--format isulad` print them for these hook arguments. */
function loadHooks(args: string[]): Record<string, OciHook[]> {
  const oci = hookConfig(kmodload, ['--format', 'oci', ...args]) as {
    hooks: Record<string, OciHook[]>;
  };
  const isulad = hookConfig(kmodload, ['--format', 'isulad', ...args]) as Record<string, OciHook[]>;
  return {
    prestart: isulad['prestart'] ?? [],
    createRuntime: oci.hooks['createRuntime'] ?? [],
    poststop: oci.hooks['poststop'] ?? [],
  };
}

describe('kmodload hook under runc', () => {
  it('the generated entries run the installed wrapper with an empty environment', () => {
    const hooks = loadHooks(treeArgs());
    for (const entries of Object.values(hooks)) {
      expect(entries).toHaveLength(1);
      expect(entries[0]?.path).toBe(kmodload.wrapper);
      expect(entries[0]?.env).toEqual([]);
    }
    const wrapper = fs.statSync(kmodload.wrapper);
    expect(wrapper.uid).toBe(0);
    expect(wrapper.mode & 0o7777).toBe(0o755);
  });

  it('(a) valid request, dry run: the container runs, the log shows the plan kmod makes', async () => {
    const log = newLog();
    const bundle = makeBundle(scratch, {
      env: ['PATH=/bin', 'KERNEL_MODULES=ip_vs,ip_vs_wrr'],
      hooks: loadHooks(treeArgs(['--dry-run', '--log', log])),
    });
    const id = uniqueId('dry');
    const run = await runcRun(stateRoot, bundle, id);
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe('started\n');
    expect(run.status).toBe(0);

    const records = readLog(log);
    expect(records.map((record) => [record.id, record.stage, record.status])).toEqual([
      [id, 'prestart', 'creating'],
      [id, 'createRuntime', 'creating'],
      [id, 'poststop', 'stopped'],
    ]);
    const oracle = modprobeInsmods(fixture, ['ip_vs', 'ip_vs_wrr']);
    expect(oracle.length).toBeGreaterThan(5);
    for (const record of records.slice(0, 2)) {
      expect(record).toMatchObject({
        request: ['ip_vs', 'ip_vs_wrr'],
        dryRun: true,
        exitStatus: 0,
      });
      expect(record.error).toBeUndefined();
      expect(record.plan.map((step) => step.path)).toEqual(oracle);
      expect(new Set(record.results.map((result) => result.status))).toEqual(
        new Set(['would-load']),
      );
      expect(record.results.map((result) => result.path)).toEqual([...new Set(oracle)]);
    }
    expect(records[2]).toMatchObject({ request: [], plan: [], results: [], exitStatus: 0 });
  });

  it('(b) valid request, real mode on a kernel without modules: runc refuses, shows why', async () => {
    const log = newLog();
    const bundle = makeBundle(scratch, {
      env: ['KERNEL_MODULES=ip_vs,ip_vs_wrr'],
      hooks: loadHooks(treeArgs(['--log', log])),
    });
    const run = await runcRun(stateRoot, bundle, uniqueId('real'));
    expect(run.status).not.toBe(0);
    expect(run.stdout).toBe('');
    const [record, ...rest] = readLog(log);
    // runc stops at the first failing hook (prestart) and cleans up: poststop still runs.
    expect(rest.map((entry) => [entry.stage, entry.exitStatus])).toEqual([['poststop', 0]]);
    expect(record).toMatchObject({ stage: 'prestart', exitStatus: EXIT.failed, dryRun: false });
    expect(record?.error).toMatch(/^cannot load ip_vs,ip_vs_wrr: .*\(ENOSYS\)$/);
    expect(runcMessage(run.stderr)).toContain(
      `error running hook: exit status 1, stdout: , stderr: kmodload: ${record?.error}\n`,
    );
    expect(record?.results.find((result) => result.status === 'failed')?.error?.code).toBe(
      'ENOSYS',
    );
    expect(record?.results.filter((result) => result.status === 'loaded')).toEqual([]);
  });

  describe('(c) refused requests: start refused, reason shown, nothing loaded', () => {
    const blacklist = () => {
      const dir = path.join(scratch, 'conf-blacklist');
      fs.mkdirSync(dir, { recursive: true });
      // crc32c is an alias of both modules: with every match blacklisted modprobe would
      // silently load nothing; the hook refuses instead.
      fs.writeFileSync(
        path.join(dir, 'blacklist.conf'),
        'blacklist crc32c_intel\nblacklist crc32c_generic\n',
      );
      return dir;
    };
    const forbid = () => {
      const dir = path.join(scratch, 'conf-install');
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'forbid.conf'), 'install ip_vs /bin/false\n');
      return dir;
    };
    const cases: Array<{
      label: string;
      request: string;
      reason: RegExp;
      config?: () => string;
    }> = [
      {
        label: 'shell metacharacters',
        request: 'ip_vs,$(reboot)',
        reason: /^cannot load "\$\(reboot\)": invalid module name in KERNEL_MODULES/,
      },
      {
        label: 'a path',
        request: 'ip_vs,../x',
        reason: /^cannot load "\.\.\/x": invalid module name in KERNEL_MODULES/,
      },
      {
        label: 'a 300-character name',
        request: `ip_vs,${'m'.repeat(300)}`,
        reason:
          /^cannot load "m{64}\.\.\.\(300 characters\)": invalid module name .*longer than 55/,
      },
      {
        label: 'an unknown module',
        request: 'ip_vs,ip_vs_wrx',
        reason: /^cannot load ip_vs_wrx: .*ip_vs_wrx.*not found/,
      },
      {
        label: 'an alias whose modules are blacklisted',
        request: 'crc32c',
        reason: /^cannot load crc32c: .*blacklisted/,
        config: blacklist,
      },
      {
        label: 'an install /bin/false rule on a dependency',
        request: 'ip_vs_wrr',
        reason: /^cannot load ip_vs_wrr: .*install ip_vs \/bin\/false/,
        config: forbid,
      },
    ];
    for (const testCase of cases) {
      // Invalid names never reach the planner: real mode is enough for them.
      const modes =
        testCase.config || testCase.label === 'an unknown module'
          ? ['dry run', 'real mode']
          : ['real mode'];
      for (const mode of modes) {
        it(`${testCase.label} (${mode})`, async () => {
          const log = newLog();
          const extra = ['--log', log];
          if (mode === 'dry run') extra.push('--dry-run');
          if (testCase.config) extra.push('-C', testCase.config());
          const bundle = makeBundle(scratch, {
            env: [`KERNEL_MODULES=${testCase.request}`],
            hooks: loadHooks(treeArgs(extra)),
          });
          const run = await runcRun(stateRoot, bundle, uniqueId('refuse'));
          expect(run.status).not.toBe(0);
          expect(run.stdout).toBe('');
          const records = readLog(log);
          expect(records.map((entry) => entry.stage)).toEqual(['prestart', 'poststop']);
          const record = records[0] as AuditRecord;
          expect(record.stage).toBe('prestart');
          // 3, not 1: refused before anything reached the kernel (which would say ENOSYS).
          expect(record.exitStatus).toBe(EXIT.refused);
          expect(record.error).toMatch(testCase.reason);
          expect(record.results).toEqual([]);
          expect(runcMessage(run.stderr)).toContain(
            `error running hook #0: error running hook: exit status 3, stdout: , stderr: kmodload: ${record.error}\n`,
          );
        });
      }
    }
  });

  it('(d) no KERNEL_MODULES: the container runs, every stage succeeds without the tree', async () => {
    const log = newLog();
    // Real mode and no -d: the default tree /lib/modules/<release> does not exist on this
    // machine, so touching it at all would fail the start.
    const args = ['--log', log];
    const isulad = hookConfig(kmodload, ['--format', 'isulad', ...args]) as Record<
      string,
      OciHook[]
    >;
    const oci = hookConfig(kmodload, ['--format', 'oci', ...args]) as {
      hooks: Record<string, OciHook[]>;
    };
    const bundle = makeBundle(scratch, {
      env: ['PATH=/bin', 'HOME=/root'],
      hooks: {
        prestart: isulad['prestart'] ?? [],
        createRuntime: oci.hooks['createRuntime'] ?? [],
        poststart: isulad['poststart'] ?? [],
        poststop: isulad['poststop'] ?? [],
      },
    });
    const id = uniqueId('none');
    const run = await runcRun(stateRoot, bundle, id);
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe('started\n');
    expect(run.status).toBe(0);
    const records = readLog(log);
    expect(records.map((record) => [record.stage, record.exitStatus, record.request])).toEqual([
      ['prestart', 0, []],
      ['createRuntime', 0, []],
      ['poststart', 0, []],
      ['poststop', 0, []],
    ]);
    expect(records.every((record) => record.id === id)).toBe(true);
  });

  it('(e) the seed: isula run -e KERNEL_MODULES=ip_vs,ip_vs_wrr --hook-spec hookspec.json', async () => {
    const log = newLog();
    // iSulad merges its --hook-spec into the container's hooks: the same entries here.
    const hookspec = hookConfig(kmodload, [
      '--format',
      'isulad',
      ...treeArgs(['--dry-run', '--log', log]),
    ]) as Record<string, OciHook[]>;
    expect(Object.keys(hookspec)).toEqual(['prestart', 'poststart', 'poststop']);
    const bundle = makeBundle(scratch, {
      env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm', 'KERNEL_MODULES=ip_vs,ip_vs_wrr'],
      hooks: hookspec,
      args: ['/bin/sh', '-c', 'echo init'],
    });
    const run = await runcRun(stateRoot, bundle, uniqueId('seed'));
    expect(run.status).toBe(0);
    expect(run.stdout).toBe('init\n');
    const records = readLog(log);
    expect(records.map((record) => record.stage)).toEqual(['prestart', 'poststart', 'poststop']);
    const loaded = new Set(records[0]?.results.map((result) => result.name));
    // What the seed's documentation shows in lsmod afterwards, and exactly what kmod plans.
    for (const name of [
      'ip_vs_wrr',
      'ip_vs',
      'nf_conntrack',
      'nf_defrag_ipv6',
      'nf_defrag_ipv4',
      'libcrc32c',
    ]) {
      expect(loaded.has(name)).toBe(true);
    }
    const oracle = modprobeInsmods(fixture, ['ip_vs', 'ip_vs_wrr']).map((file) =>
      path.basename(file, '.ko').replace(/-/g, '_'),
    );
    expect([...loaded].sort()).toEqual([...new Set(oracle)].sort());
  });

  it('annotation requests work too (CRI-O, podman --annotation)', async () => {
    const log = newLog();
    const bundle = makeBundle(scratch, {
      env: ['PATH=/bin'],
      annotations: { 'org.kmodload.kernel-modules': 'ip_vs_wrr' },
      hooks: loadHooks(treeArgs(['--dry-run', '--log', log])),
    });
    const run = await runcRun(stateRoot, bundle, uniqueId('annotation'));
    expect(run.status).toBe(0);
    const [record] = readLog(log);
    expect(record?.request).toEqual(['ip_vs_wrr']);
    expect(record?.plan.map((step) => step.path)).toEqual(modprobeInsmods(fixture, ['ip_vs_wrr']));
  });
});

/** Runs the installed wrapper directly, the way a runtime does: empty env, state on stdin. */
function runWrapper(
  args: string[],
  stdin: string,
  env: Record<string, string> = {},
): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(kmodload.wrapper, args, { env, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stderr }));
    child.stdin.end(stdin);
  });
}

describe('the installed hook outside a runtime', () => {
  it('no request: neither the addon nor the planner nor the indexes are loaded', () => {
    // A preload that records every file node loaded, CommonJS and ES modules alike, every
    // addon dlopen()ed, every file opened under the module tree and every Node module loaded
    // ("builtin NAME").
    const probe = path.join(scratch, 'probe.js');
    fs.writeFileSync(
      probe,
      [
        "const fs = require('fs');",
        "const Module = require('module');",
        'const seen = new Set();',
        'const original = Module._load;',
        'Module._load = function (request, parent, isMain) {',
        '  try { seen.add(Module._resolveFilename(request, parent, isMain)); } catch {}',
        '  return original.apply(this, arguments);',
        '};',
        'const dlopen = process.dlopen;',
        'process.dlopen = function (module, file) {',
        '  seen.add(file);',
        '  return dlopen.apply(this, arguments);',
        '};',
        'for (const name of ["openSync", "open", "readFileSync", "readFile", "existsSync"]) {',
        '  const fn = fs[name];',
        '  fs[name] = function (file) {',
        "    if (typeof file === 'string' && file.includes('/lib/modules/')) seen.add(`open ${file}`);",
        '    return fn.apply(this, arguments);',
        '  };',
        '}',
        "process.on('exit', () => {",
        '  for (const file of Object.keys(require.cache)) seen.add(file);',
        '  for (const entry of process.moduleLoadList) {',
        "    if (entry.startsWith('NativeModule ')) seen.add(`builtin ${entry.slice(13)}`);",
        '  }',
        '  fs.writeFileSync(process.env.PROBE_OUT, JSON.stringify([...seen]));',
        '});',
      ].join('\n'),
    );
    // The state on stdin in a regular file: like runc's pipe, and unlike the socket that
    // spawn()'s 'pipe' makes, the hook reads it without making process.stdin.
    const loadedFiles = (env: string[]): string[] => {
      const bundle = makeBundle(scratch, { env, hooks: {} });
      const out = path.join(scratch, `probe-${logCount++}.json`);
      const stateFile = path.join(scratch, `state-${logCount++}.json`);
      fs.writeFileSync(
        stateFile,
        JSON.stringify({ ociVersion: '1.0.2', id: 'p', status: 'creating', bundle }),
      );
      const stdin = fs.openSync(stateFile, 'r');
      let result;
      try {
        result = spawnSync(kmodload.wrapper, ['hook', '--state', 'prestart', ...treeArgs(['-n'])], {
          env: { NODE_OPTIONS: `--require ${probe}`, PROBE_OUT: out },
          stdio: [stdin, 'ignore', 'pipe'],
          encoding: 'utf8',
        });
      } finally {
        fs.closeSync(stdin);
      }
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      return probed(out);
    };
    const probed = (out: string): string[] =>
      (JSON.parse(fs.readFileSync(out, 'utf8')) as string[]).map((file) =>
        /^(open|builtin) /.test(file) ? file : path.relative(kmodload.dir, file),
      );
    // The Node modules that node itself loads to run a script (an empty one).
    const empty = path.join(scratch, 'empty.js');
    fs.writeFileSync(empty, '');
    const nodeOut = path.join(scratch, `probe-${logCount++}.json`);
    const node = spawnSync(process.execPath, [empty], {
      env: { NODE_OPTIONS: `--require ${probe}`, PROBE_OUT: nodeOut },
    });
    expect(node.status).toBe(0);
    const nodeBuiltins = new Set(probed(nodeOut).filter((file) => file.startsWith('builtin ')));
    const builtinsBeyondNode = (files: string[]) =>
      files.filter((file) => file.startsWith('builtin ') && !nodeBuiltins.has(file));
    const heavy = (files: string[]) =>
      files.filter(
        (file) =>
          /^dist\/(native|planner|db|config|loader|kernel)\//.test(file) ||
          /^dist\/(index|api)\.js$/.test(file) ||
          file.endsWith('.node') ||
          file.startsWith('open '),
      );

    // The installed CLI is bundled (scripts/make/bundle.js): its modules are functions in
    // dist/kmodload.js, which has all that the hook with nothing asked runs, and in the files
    // it loads when a command needs them, so what a request needs shows as
    // dist/kmodload-load.js, the addon and the tree's files. With nothing asked, the hook
    // loads no Node module that node does not load to run a script but vm (for the code
    // cache): no streams (process.stdin), no thread pool's fs.promises.
    const idle = loadedFiles(['PATH=/bin']);
    expect(idle.filter((file) => file.startsWith('dist/'))).toEqual(['dist/kmodload.js']);
    expect(heavy(idle)).toEqual([]);
    expect(builtinsBeyondNode(idle)).toEqual(['builtin vm']);
    // The same probe sees them when a container does ask: the checks above can fail.
    const busy = loadedFiles(['KERNEL_MODULES=ip_vs']);
    expect(busy.filter((file) => file.startsWith('dist/')).sort()).toEqual([
      'dist/kmodload-load.js',
      'dist/kmodload.js',
    ]);
    expect(heavy(busy).some((file) => file.endsWith('.node'))).toBe(true);
    expect(heavy(busy).some((file) => /^open .*\/modules\.softdep$/.test(file))).toBe(true);
    expect(builtinsBeyondNode(busy).length).toBeGreaterThan(1);
  });

  it('many hooks appending to one log at once leave whole lines', async () => {
    const log = newLog();
    const bundle = makeBundle(scratch, { env: ['KERNEL_MODULES=ip_vs,ip_vs_wrr'], hooks: {} });
    const count = 24;
    const runs = await Promise.all(
      Array.from({ length: count }, (_, index) =>
        runWrapper(
          ['hook', ...treeArgs(['--dry-run', '--log', log])],
          JSON.stringify({ id: `c${index}`, status: 'creating', bundle }),
        ),
      ),
    );
    expect(runs.map((run) => run.status)).toEqual(Array(count).fill(0));
    const records = readLog(log);
    expect(records).toHaveLength(count);
    // Each line is large (well over PIPE_BUF), so interleaving would show.
    expect(fs.statSync(log).size / count).toBeGreaterThan(4096);
    expect(records.map((record) => record.id).sort()).toEqual(
      Array.from({ length: count }, (_, index) => `c${index}`).sort(),
    );
    const oracle = modprobeInsmods(fixture, ['ip_vs', 'ip_vs_wrr']);
    for (const record of records) expect(record.plan.map((step) => step.path)).toEqual(oracle);
  });

  it('a hostile name cannot forge lines in the runtime error output', async () => {
    const bundle = makeBundle(scratch, {
      env: ['KERNEL_MODULES=ip_vs,x\n\u001b[2Jkmodload: loaded\r'],
      hooks: {},
    });
    const result = await runWrapper(
      ['hook', '--state', 'prestart'],
      JSON.stringify({ id: 'h', status: 'creating', bundle }),
    );
    expect(result.status).toBe(EXIT.refused);
    expect(result.stderr).toBe(
      'kmodload: cannot load "\\x1b[2Jkmodload:": invalid module name in KERNEL_MODULES (only letters, digits, "_" and "-" are allowed)\n',
    );
  });

  describe('(f) the host policy (--policy)', () => {
    const policyFile = (name: string, lines: string[]): string => {
      const file = path.join(scratch, name);
      fs.writeFileSync(file, `${lines.join('\n')}\n`);
      return file;
    };
    const policyLines = [
      'default deny',
      'max-modules 16',
      'allow ip_vs* when annotation io.kubernetes.pod.namespace=kube-*',
      'allow ip_vs ip_vs_wrr when source env',
      'deny xfs',
    ];

    async function start(
      env: string[],
      policy: string,
      annotations?: Record<string, string>,
    ): Promise<{ run: Awaited<ReturnType<typeof runcRun>>; records: AuditRecord[] }> {
      const log = newLog();
      const bundle = makeBundle(scratch, {
        env,
        hooks: loadHooks(treeArgs(['--dry-run', '--log', log, '--policy', policy])),
        ...(annotations ? { annotations } : {}),
      });
      const run = await runcRun(stateRoot, bundle, uniqueId('policy'));
      return { run, records: readLog(log) };
    }

    it('an allowed request starts; the log records each verdict and the policy', async () => {
      const policy = policyFile('allowing.conf', policyLines);
      const { run, records } = await start(['KERNEL_MODULES=ip_vs,ip_vs_wrr'], policy);
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      const record = records[0] as AuditRecord;
      expect(record).toMatchObject({ stage: 'prestart', exitStatus: 0, policy: [policy] });
      expect(record.verdict.every((d) => d.verdict === 'allow')).toBe(true);
      expect(record.verdict.find((d) => d.module === 'ip_vs_wrr')).toEqual({
        request: 'ip_vs_wrr',
        module: 'ip_vs_wrr',
        role: 'target',
        verdict: 'allow',
        rule: `${policy}:4 (allow ip_vs ip_vs_wrr when source env)`,
      });
      expect(record.plan.map((step) => step.path)).toEqual(
        modprobeInsmods(fixture, ['ip_vs', 'ip_vs_wrr']),
      );
    });

    it('a denied module reached through an alias: the start is refused with the rule', async () => {
      const policy = policyFile('denying.conf', policyLines);
      const { run, records } = await start(['KERNEL_MODULES=fs-xfs'], policy);
      expect(run.status).not.toBe(0);
      expect(run.stdout).toBe('');
      const record = records[0] as AuditRecord;
      expect(record.error).toBe(`cannot load fs-xfs: xfs is denied by ${policy}:5 (deny xfs)`);
      expect(record.exitStatus).toBe(EXIT.refused);
      expect(record.results).toEqual([]);
      expect(record.verdict.find((d) => d.module === 'xfs')?.verdict).toBe('deny');
      expect(runcMessage(run.stderr)).toContain(
        `error running hook #0: error running hook: exit status 3, stdout: , stderr: kmodload: ${record.error}\n`,
      );
    });

    it('an allow scoped by annotation: the pod namespace decides', async () => {
      const policy = policyFile('scoped.conf', policyLines);
      const ask = { 'org.kmodload.kernel-modules': 'ip_vs_sh' };
      const kube = await start([], policy, {
        ...ask,
        'io.kubernetes.pod.namespace': 'kube-system',
      });
      expect(kube.run.status).toBe(0);
      expect(kube.records[0]?.annotations).toEqual({
        'io.kubernetes.pod.namespace': 'kube-system',
      });
      const other = await start([], policy, { ...ask, 'io.kubernetes.pod.namespace': 'default' });
      expect(other.run.status).not.toBe(0);
      expect(other.records[0]?.error).toBe(
        `cannot load ip_vs_sh: ip_vs_sh is not allowed for this container (default deny, ${policy}:1)`,
      );
      // From the env it is refused too: the `source env` rule names ip_vs and ip_vs_wrr only.
      const env = await start(['KERNEL_MODULES=ip_vs_sh'], policy);
      expect(env.run.status).not.toBe(0);
    });

    it('a broken policy refuses every load-stage request with exit 4; poststop still succeeds', async () => {
      const policy = policyFile('broken.conf', ['default deny', 'alow ip_vs']);
      const { run, records } = await start(['KERNEL_MODULES=ip_vs'], policy);
      expect(run.status).not.toBe(0);
      expect(records.map((r) => [r.stage, r.exitStatus])).toEqual([
        ['prestart', EXIT.environment],
        ['poststop', 0],
      ]);
      expect(records[0]?.error).toBe(
        `cannot load ip_vs: invalid policy: ${policy}:2: unknown directive "alow" (expected default, max-modules, allow, deny, params or on-param-conflict)`,
      );
      expect(runcMessage(run.stderr)).toContain(
        `exit status 4, stdout: , stderr: kmodload: ${records[0]?.error}\n`,
      );
    });
  });
});
