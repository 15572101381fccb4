import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT, KmodloadError } from '../../src/errors';
import type { ModuleResult } from '../../src/loader/types';
import { runHookCommand as runHookCommandWith } from '../../src/cli/hook-command';
import { handleHook as handleHookWith, type HookLoader } from '../../src/hook/handler';
import { assertPlanRunnable } from '../../src/loader/load';
import type { AuditRecord } from '../../src/container/audit';
import type * as publicApi from '../../src/index';
import type { RequestPlan } from '../../src/planner/plan';
import { writeBundle } from '../helpers/bundle';
import { memoryIO } from '../helpers/cli-io';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-handler-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

// Loads record holds: keep them in the test's own state directory, never the host's.
const stateDir = path.join(scratch, 'state');
const handleHook: typeof handleHookWith = (input, options = {}) =>
  handleHookWith(input, { stateDir, ...options });
const runHookCommand: typeof runHookCommandWith = (argv, io, deps) =>
  runHookCommandWith(['--state-dir', stateDir, ...argv], io, deps);
// A log path under a regular file cannot be created.
const notADirectory = path.join(scratch, 'a-file');
fs.writeFileSync(notADirectory, '');

let count = 0;
function bundle(env: string[], annotations?: Record<string, string>): string {
  const config: Record<string, unknown> = { process: { args: ['/bin/sh'], env } };
  if (annotations) config['annotations'] = annotations;
  return writeBundle(path.join(scratch, `b${count++}`), config);
}

function stateJson(dir: string | undefined, status = 'creating', id = 'c1'): string {
  return JSON.stringify({ ociVersion: '1.0.2-dev', id, status, pid: 1234, bundle: dir });
}

const MODULE_DIR = '/t/lib/modules/6.1.0-56-amd64';
const DEPS: Record<string, string[]> = {
  ip_vs: ['libcrc32c', 'nf_conntrack', 'ip_vs'],
  ip_vs_wrr: ['libcrc32c', 'nf_conntrack', 'ip_vs', 'ip_vs_wrr'],
};

function requestPlan(name: string): RequestPlan {
  if (name === 'crc32c') {
    // An alias whose every match the host blacklisted, as the planner reports it under -b.
    return {
      request: name,
      probes: [
        { module: 'crc32c_intel', steps: [], skipped: 'blacklisted' },
        { module: 'crc32c_generic', steps: [], skipped: 'blacklisted' },
      ],
      error: {
        reason: 'blacklisted',
        message: 'blacklisted on this host (crc32c_intel, crc32c_generic)',
      },
    };
  }
  const deps = DEPS[name];
  if (!deps) {
    return {
      request: name,
      probes: [],
      error: { reason: 'not-found', message: `module ${name} not found in ${MODULE_DIR}` },
    };
  }
  return {
    request: name,
    probes: [
      {
        module: name,
        steps: deps.map((dep) => ({
          name: dep,
          kind: 'insmod' as const,
          path: `${MODULE_DIR}/kernel/${dep}.ko`,
          options: '',
          required: true,
          target: dep === name,
        })),
      },
    ],
  };
}

/** A stand-in for the public API that records its calls. It runs plans with the real
 *  assertPlanRunnable, so a plan the API would refuse is refused here too. */
function fakeLoader(
  behaviour: { failAt?: string; failCode?: 'ENOSYS' | 'ENOEXEC'; rejectLoad?: Error } = {},
): HookLoader & { calls: string[] } {
  const calls: string[] = [];
  const failCode = behaviour.failCode ?? 'ENOSYS';
  const failText = failCode === 'ENOSYS' ? 'Function not implemented' : 'Exec format error';
  return {
    calls,
    async resolve(names, options) {
      calls.push(`resolve ${names.join(',')} ${JSON.stringify(options)}`);
      return {
        moduleDir: MODULE_DIR,
        kernelVersion: '6.1.0-56-amd64',
        requests: names.map(requestPlan),
      };
    },
    async loadPlan(plan, options) {
      // The policy's verdict travels beside the plan: recorded apart from the options.
      const { verdict, ...rest } = options ?? {};
      const checked = verdict ? ` verdict ${verdict.ok ? 'ok' : 'not ok'}` : '';
      calls.push(
        `loadPlan ${plan.requests.map((r) => r.request).join(',')} ${JSON.stringify(rest)}${checked}`,
      );
      if (behaviour.rejectLoad) throw behaviour.rejectLoad;
      assertPlanRunnable(plan, options);
      const modules: ModuleResult[] = [];
      let ok = true;
      for (const request of plan.requests) {
        for (const step of request.probes[0]?.steps ?? []) {
          if (!ok) break;
          const entry: ModuleResult = {
            request: request.request,
            name: step.name,
            status: options?.dryRun ? 'would-load' : 'loaded',
            required: step.required,
          };
          if (step.path) entry.path = step.path;
          if (step.name === behaviour.failAt) {
            entry.status = 'failed';
            entry.error = {
              code: failCode,
              errno: failCode === 'ENOSYS' ? 38 : 8,
              message: `finit_module ${step.path}: ${failText}`,
            };
            ok = !step.required && failCode !== 'ENOSYS';
          }
          modules.push(entry);
        }
      }
      return { ok, plan, modules };
    },
  };
}

/** A loader that must never be touched. */
const untouchable: HookLoader = {
  resolve: () => {
    throw new Error('the loader was used');
  },
  loadPlan: () => {
    throw new Error('the loader was used');
  },
};

describe('handleHook', () => {
  it('loads the request at prestart and reports each module', async () => {
    const loader = fakeLoader();
    const dir = bundle(['KERNEL_MODULES=ip_vs,ip_vs_wrr']);
    const result = await handleHook(stateJson(dir), { loader });
    expect(result.ok).toBe(true);
    expect(result.exitStatus).toBe(EXIT.ok);
    expect(result.action).toBe('loaded');
    expect(result.stage).toBe('prestart');
    expect(result.modules.map((m) => `${m.request}:${m.name}:${m.status}`)).toEqual([
      'ip_vs:libcrc32c:loaded',
      'ip_vs:nf_conntrack:loaded',
      'ip_vs:ip_vs:loaded',
      'ip_vs_wrr:libcrc32c:loaded',
      'ip_vs_wrr:nf_conntrack:loaded',
      'ip_vs_wrr:ip_vs:loaded',
      'ip_vs_wrr:ip_vs_wrr:loaded',
    ]);
    // The host's blacklist applies to the names a container gives, and no install command
    // ever runs from a hook.
    const options = JSON.stringify({
      useBlacklist: true,
      allowInstallCommands: false,
      dryRun: false,
      strictConfig: true,
    });
    // A module live with other parameters than a container asks refuses it; modprobe.d's
    // options that differ only warn.
    const conflicts = JSON.stringify({ paramConflict: { caller: 'refuse', host: 'warn' } });
    expect(loader.calls).toEqual([
      `resolve ip_vs,ip_vs_wrr ${options}`,
      `loadPlan ip_vs,ip_vs_wrr ${options.slice(0, -1)},${conflicts.slice(1)} verdict ok`,
    ]);
  });

  it('passes -d -S -C and dry-run through', async () => {
    const loader = fakeLoader();
    const dir = bundle(['KERNEL_MODULES=ip_vs']);
    const result = await handleHook(stateJson(dir), {
      loader,
      stage: 'createRuntime',
      root: '/t',
      kernelVersion: '6.1.0-56-amd64',
      configDirs: ['/etc/x.d'],
      dryRun: true,
    });
    expect(result.action).toBe('would-load');
    expect(result.stage).toBe('createRuntime');
    expect(loader.calls[1]).toBe(
      'loadPlan ip_vs {"useBlacklist":true,"allowInstallCommands":false,"dryRun":true,"strictConfig":true,"root":"/t","kernelVersion":"6.1.0-56-amd64","configDirs":["/etc/x.d"],"paramConflict":{"caller":"refuse","host":"warn"}} verdict ok',
    );
  });

  it('accepts a parsed state object', async () => {
    const dir = bundle(['KERNEL_MODULES=ip_vs']);
    const result = await handleHook(
      { id: 'obj', status: 'creating', bundle: dir },
      { loader: fakeLoader() },
    );
    expect(result.action).toBe('loaded');
    expect(result.state?.id).toBe('obj');
  });

  it('no request: returns at once without the loader', async () => {
    for (const env of [[], ['PATH=/bin'], ['KERNEL_MODULES='], ['KERNEL_MODULES= , ']]) {
      const result = await handleHook(stateJson(bundle(env)), { loader: untouchable });
      expect(result).toMatchObject({ ok: true, exitStatus: 0, action: 'nothing-requested' });
    }
  });

  it('other stages do nothing, even with a request, a bad config or a bad state', async () => {
    const dir = bundle(['KERNEL_MODULES=ip_vs;reboot']);
    for (const [status, stage] of [
      ['running', 'poststart'],
      ['stopped', 'poststop'],
    ] as const) {
      const result = await handleHook(stateJson(dir, status), { loader: untouchable });
      expect(result).toMatchObject({ ok: true, action: 'not-a-load-stage', stage });
    }
    for (const stage of ['createContainer', 'startContainer', 'poststart', 'poststop'] as const) {
      const result = await handleHook(stateJson(dir), { loader: untouchable, stage });
      expect(result).toMatchObject({ ok: true, action: 'not-a-load-stage', stage });
      const garbage = await handleHook('not json', { loader: untouchable, stage });
      expect(garbage).toMatchObject({ ok: true, action: 'not-a-load-stage', stage });
    }
  });

  it('status "created" without --state: refused (exit 2), nothing loaded; with --state it loads', async () => {
    // crun's prestart and createRuntime: "created" (runc: "creating").
    const dir = bundle(['KERNEL_MODULES=ip_vs']);
    const guessed = await handleHook(stateJson(dir, 'created'), { loader: untouchable });
    expect(guessed).toMatchObject({ ok: false, exitStatus: EXIT.usage });
    expect(guessed.message).toMatch(/"created" does not tell the stage .*--state STAGE/);
    const told = await handleHook(stateJson(dir, 'created'), {
      loader: fakeLoader(),
      stage: 'createRuntime',
    });
    expect(told).toMatchObject({ ok: true, action: 'loaded', stage: 'createRuntime' });
  });

  it("crun's poststop (status stopped, pid 0) is a poststop", async () => {
    const dir = bundle(['KERNEL_MODULES=ip_vs']);
    const state = JSON.stringify({
      ociVersion: '1.0.0',
      id: 'crun',
      status: 'stopped',
      pid: 0,
      bundle: dir,
    });
    const result = await handleHook(state, { loader: untouchable });
    expect(result).toMatchObject({ ok: true, action: 'not-a-load-stage', stage: 'poststop' });
  });

  it('a bad state at a load stage fails with one line', async () => {
    const result = await handleHook('{"id":', { loader: untouchable, stage: 'prestart' });
    expect(result.ok).toBe(false);
    expect(result.exitStatus).toBe(EXIT.environment);
    expect(result.action).toBe('refused');
    expect(result.message).toMatch(/^malformed container state on stdin: not JSON/);
    const noStatus = await handleHook('{"id":"x","bundle":"/b"}', { loader: untouchable });
    expect(noStatus.exitStatus).toBe(EXIT.usage);
  });

  it('a state refused while parsing keeps in the record what could be read: id, status, the pod', async () => {
    // iSulad-style state with a pid no runtime sends (-2) and an annotation that is no string.
    const state = JSON.stringify({
      id: 'c9',
      status: 'creating',
      pid: -2,
      bundle: '/b',
      annotations: {
        'io.kubernetes.pod.name': 'web-1',
        'io.kubernetes.pod.namespace': 'shop',
        'io.kubernetes.cri.sandbox-name': 'web-1',
        'io.kubernetes.cri.sandbox-namespace': 'shop',
        'io.kubernetes.cri.container-name': 'app',
        'org.example.number': 5,
      },
    });
    const result = await handleHook(state, { loader: untouchable, stage: 'prestart' });
    expect(result).toMatchObject({ ok: false, exitStatus: EXIT.environment });
    expect(result.message).toBe('malformed container state on stdin: "pid" is not a process id');
    expect(result.record).toMatchObject({
      id: 'c9',
      status: 'creating',
      annotations: {
        'io.kubernetes.pod.name': 'web-1',
        'io.kubernetes.pod.namespace': 'shop',
        'io.kubernetes.cri.sandbox-name': 'web-1',
        'io.kubernetes.cri.sandbox-namespace': 'shop',
        'io.kubernetes.cri.container-name': 'app',
      },
    });
    // Not JSON at all: nothing to keep, and nothing made up.
    const garbage = await handleHook('{"id":"c9"', { loader: untouchable, stage: 'prestart' });
    expect(garbage.record).toMatchObject({ annotations: {} });
    expect(garbage.record.id).toBeNull();
  });

  it('an invalid name refuses the request before the loader is touched', async () => {
    for (const request of ['ip_vs,$(reboot)', 'ip_vs,../x', `ip_vs,${'a'.repeat(300)}`]) {
      const dir = bundle([`KERNEL_MODULES=${request}`]);
      const result = await handleHook(stateJson(dir), { loader: untouchable });
      expect(result.exitStatus).toBe(EXIT.refused);
      expect(result.action).toBe('refused');
      expect(result.message).toMatch(/^cannot load "[^"]*": invalid module name in KERNEL_MODULES/);
      expect(result.modules).toEqual([]);
    }
  });

  it('a request that cannot be planned loads nothing', async () => {
    const loader = fakeLoader();
    const dir = bundle(['KERNEL_MODULES=ip_vs,ip_vs_wrx']);
    const result = await handleHook(stateJson(dir), { loader });
    expect(result.exitStatus).toBe(EXIT.refused);
    expect(result.message).toBe(
      `cannot load ip_vs_wrx: module ip_vs_wrx not found in ${MODULE_DIR}`,
    );
    // Planned once; running the plan is refused before anything is loaded.
    expect(loader.calls.map((call) => call.split(' ')[0])).toEqual(['resolve', 'loadPlan']);
    expect(result.modules).toEqual([]);
    // The plan is still reported (and logged): what would have been loaded for ip_vs.
    expect(result.record.plan.map((step) => step.name)).toEqual(DEPS['ip_vs']);
  });

  it('refuses an alias whose every match is blacklisted', async () => {
    const loader = fakeLoader();
    const result = await handleHook(stateJson(bundle(['KERNEL_MODULES=crc32c'])), { loader });
    expect(result.exitStatus).toBe(EXIT.refused);
    expect(result.message).toBe(
      'cannot load crc32c: blacklisted on this host (crc32c_intel, crc32c_generic)',
    );
    expect(loader.calls.map((call) => call.split(' ')[0])).toEqual(['resolve', 'loadPlan']);
    expect(result.modules).toEqual([]);
  });

  it('a kernel failure names the request and the module that failed', async () => {
    const loader = fakeLoader({ failAt: 'libcrc32c', failCode: 'ENOEXEC' });
    const result = await handleHook(stateJson(bundle(['KERNEL_MODULES=ip_vs'])), { loader });
    expect(result.exitStatus).toBe(EXIT.failed);
    expect(result.action).toBe('failed');
    expect(result.message).toBe(
      `cannot load ip_vs: loading libcrc32c: finit_module ${MODULE_DIR}/kernel/libcrc32c.ko: Exec format error`,
    );
  });

  it('a kernel without module support names the requested names, not a module', async () => {
    const loader = fakeLoader({ failAt: 'libcrc32c' });
    const dir = bundle(['KERNEL_MODULES=ip_vs,ip_vs_wrr']);
    const result = await handleHook(stateJson(dir), { loader });
    expect(result.exitStatus).toBe(EXIT.failed);
    expect(result.message).toBe(
      `cannot load ip_vs,ip_vs_wrr: finit_module ${MODULE_DIR}/kernel/libcrc32c.ko: Function not implemented`,
    );
  });

  it('a rejected load keeps its exit status and gets the request in its message', async () => {
    const loader = fakeLoader({
      rejectLoad: new KmodloadError('module tree /x unreadable', EXIT.environment),
    });
    const result = await handleHook(stateJson(bundle(['KERNEL_MODULES=ip_vs'])), { loader });
    expect(result.exitStatus).toBe(EXIT.environment);
    expect(result.message).toBe('cannot load ip_vs: module tree /x unreadable');
    const crash = fakeLoader({ rejectLoad: new TypeError('x is undefined\n  at y') });
    const crashed = await handleHook(stateJson(bundle(['KERNEL_MODULES=ip_vs'])), {
      loader: crash,
    });
    expect(crashed.exitStatus).toBe(EXIT.internal);
    expect(crashed.action).toBe('failed');
    expect(crashed.message).toBe('cannot load ip_vs: internal error: x is undefined\\x0a  at y');
  });

  it('writes one log line per run', async () => {
    const log = path.join(scratch, 'one.log');
    const dir = bundle(['KERNEL_MODULES=ip_vs_wrr']);
    await handleHook(stateJson(dir, 'creating', 'ctr-a'), {
      loader: fakeLoader(),
      dryRun: true,
      logFile: log,
    });
    await handleHook(stateJson(dir, 'stopped', 'ctr-a'), { loader: untouchable, logFile: log });
    await handleHook(stateJson(bundle(['KERNEL_MODULES=nope']), 'creating', 'ctr-b'), {
      loader: fakeLoader(),
      logFile: log,
    });
    const lines = fs.readFileSync(log, 'utf8').split('\n');
    expect(lines.pop()).toBe('');
    const records = lines.map((line) => JSON.parse(line) as AuditRecord);
    expect(records).toHaveLength(3);
    const [first, second, third] = records as [AuditRecord, AuditRecord, AuditRecord];
    expect(new Date(first.time).toISOString()).toBe(first.time);
    expect(first).toMatchObject({
      id: 'ctr-a',
      stage: 'prestart',
      status: 'creating',
      request: ['ip_vs_wrr'],
      dryRun: true,
      exitStatus: 0,
    });
    expect(first.error).toBeUndefined();
    expect(first.plan.map((step) => step.path)).toEqual(
      DEPS['ip_vs_wrr']?.map((dep) => `${MODULE_DIR}/kernel/${dep}.ko`),
    );
    expect(first.results.map((entry) => entry.status)).toEqual(Array(4).fill('would-load'));
    expect(typeof first.durationMs).toBe('number');
    expect(second).toMatchObject({ id: 'ctr-a', stage: 'poststop', request: [], plan: [] });
    expect(third).toMatchObject({
      id: 'ctr-b',
      exitStatus: EXIT.refused,
      error: `cannot load nope: module nope not found in ${MODULE_DIR}`,
      results: [],
    });
  });

  it('a log that cannot be written does not change the outcome', async () => {
    const result = await handleHook(stateJson(bundle([])), {
      loader: untouchable,
      logFile: path.join(notADirectory, 'x.log'),
    });
    expect(result.ok).toBe(true);
    expect(result.logError).toMatch(/^cannot write log .*x\.log: ENOTDIR/);
  });

  it("creates the log's missing directory (0750) and never follows a symlink", async () => {
    const logDir = path.join(scratch, 'created', 'log');
    const log = path.join(logDir, 'hook.log');
    const result = await handleHook(stateJson(bundle([])), { loader: untouchable, logFile: log });
    expect(result.logError).toBeUndefined();
    expect(fs.statSync(logDir).mode & 0o777).toBe(0o750);
    expect(fs.readFileSync(log, 'utf8').split('\n')).toHaveLength(2);
    const target = path.join(scratch, 'target.log');
    fs.writeFileSync(target, '');
    const link = path.join(scratch, 'link.log');
    fs.symlinkSync(target, link);
    const linked = await handleHook(stateJson(bundle([])), { loader: untouchable, logFile: link });
    expect(linked.logError).toMatch(/ELOOP/);
    expect(fs.readFileSync(target, 'utf8')).toBe('');
  });
});

describe('runHookCommand', () => {
  it('exit 0 and silence on success', async () => {
    const streams = memoryIO(stateJson(bundle(['KERNEL_MODULES=ip_vs'])));
    const status = await runHookCommand(['--state', 'prestart'], streams.io, {
      loader: fakeLoader(),
    });
    expect(status).toBe(0);
    expect(streams.err()).toBe('');
    expect(streams.out()).toBe('');
  });

  it('a state already all on stdin is read from its descriptor: no stream is made', async () => {
    const file = path.join(scratch, 'state-on-stdin.json');
    fs.writeFileSync(file, stateJson(bundle(['PATH=/bin'])));
    const fd = fs.openSync(file, 'r');
    try {
      const streams = memoryIO();
      let streamsMade = 0;
      const io = {
        ...streams.io,
        stdinFd: fd,
        get stdin() {
          streamsMade++;
          return streams.io.stdin;
        },
      };
      expect(await runHookCommand(['--state', 'prestart'], io, { loader: untouchable })).toBe(0);
      expect(streams.err()).toBe('');
      expect(streamsMade).toBe(0);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('ONE stderr line on failure', async () => {
    const streams = memoryIO(stateJson(bundle(['KERNEL_MODULES=ip_vs'])));
    const status = await runHookCommand(['--state=createRuntime'], streams.io, {
      loader: fakeLoader({ failAt: 'ip_vs' }),
    });
    expect(status).toBe(EXIT.failed);
    expect(streams.err()).toBe(
      `kmodload: cannot load ip_vs: finit_module ${MODULE_DIR}/kernel/ip_vs.ko: Function not implemented\n`,
    );
  });

  it('bad usage: exit 2, one line', async () => {
    for (const [argv, message] of [
      [['--state'], "option '--state' needs a value"],
      [['--state', 'later'], 'unknown hook stage "later"'],
      [['--frobnicate'], "unknown option '--frobnicate'"],
      [['-n=1'], "unknown option '-=' in '-n=1'"],
      [['extra'], 'unexpected argument "extra"'],
    ] as const) {
      const streams = memoryIO('');
      expect(await runHookCommand([...argv], streams.io, { loader: untouchable })).toBe(EXIT.usage);
      expect(streams.err()).toMatch(new RegExp(`^kmodload: ${message.replace(/[.*"()]/g, '.')}`));
      expect(streams.err().split('\n')).toHaveLength(2);
    }
  });

  it('a failure and a log that cannot be written: still ONE stderr line', async () => {
    const streams = memoryIO(stateJson(bundle(['KERNEL_MODULES=ip_vs'])));
    const log = path.join(notADirectory, 'x.log');
    const status = await runHookCommand(['--state=prestart', '--log', log], streams.io, {
      loader: fakeLoader({ failAt: 'ip_vs' }),
    });
    expect(status).toBe(EXIT.failed);
    expect(streams.err()).toMatch(
      /^kmodload: cannot load ip_vs: finit_module .*: Function not implemented; warning: cannot write log .*x\.log: ENOTDIR[^\n]*\n$/,
    );
  });

  it('takes bundled short options, as load does', async () => {
    const loader = fakeLoader();
    const streams = memoryIO(stateJson(bundle(['KERNEL_MODULES=ip_vs'])));
    expect(await runHookCommand(['-nd', '/t', '-S6.1'], streams.io, { loader })).toBe(0);
    expect(streams.err()).toBe('');
    expect(loader.calls[0]).toBe(
      'resolve ip_vs {"useBlacklist":true,"allowInstallCommands":false,"dryRun":true,"strictConfig":true,"root":"/t","kernelVersion":"6.1"}',
    );
  });

  it('--help prints usage and exit statuses', async () => {
    const streams = memoryIO('');
    expect(await runHookCommand(['-h'], streams.io, { loader: untouchable })).toBe(0);
    expect(streams.out()).toContain('Usage: kmodload hook');
    expect(streams.out()).toContain('3 request refused');
  });

  it('takes -d -S -C -n --log in both spellings', async () => {
    const loader = fakeLoader();
    const log = path.join(scratch, 'cmd.log');
    const streams = memoryIO(stateJson(bundle(['KERNEL_MODULES=ip_vs'])));
    const status = await runHookCommand(
      ['-d', '/t', '-S6.1', '--config=/c1', '-C', '/c2', '-n', '--log', log],
      streams.io,
      { loader },
    );
    expect(status).toBe(0);
    expect(loader.calls[0]).toBe(
      'resolve ip_vs {"useBlacklist":true,"allowInstallCommands":false,"dryRun":true,"strictConfig":true,"root":"/t","kernelVersion":"6.1","configDirs":["/c1","/c2"]}',
    );
    expect(fs.readFileSync(log, 'utf8').split('\n')).toHaveLength(2);
  });

  it('a runtime that never closes stdin: exit 4 after --stdin-timeout, one line', async () => {
    const stdin = new PassThrough();
    stdin.write('{"id":"c1","status":"creating"'); // and never the rest, never the end
    const streams = memoryIO('');
    const status = await runHookCommand(
      ['--stdin-timeout', '1'],
      { ...streams.io, stdin },
      {
        loader: untouchable,
      },
    );
    expect(status).toBe(EXIT.environment);
    expect(streams.err()).toBe(
      'kmodload: no container state on stdin within 1 s (the runtime did not close the pipe)\n',
    );
    expect(stdin.destroyed).toBe(true);
    expect(await runHookCommand(['--stdin-timeout', '0'], memoryIO('').io)).toBe(EXIT.usage);
  });

  it('every run is logged: a state too large or never sent is one line too', async () => {
    const log = path.join(scratch, 'refused-runs.log');
    const big = memoryIO(Buffer.alloc(5 * 1024 * 1024, 0x20));
    expect(await runHookCommand(['--log', log], big.io, { loader: untouchable })).toBe(
      EXIT.environment,
    );
    const stdin = new PassThrough();
    const silent = memoryIO('');
    const status = await runHookCommand(
      ['--log', log, '--stdin-timeout', '1'],
      { ...silent.io, stdin },
      { loader: untouchable },
    );
    expect(status).toBe(EXIT.environment);
    const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(2);
    const [tooBig, never] = lines.map((line) => JSON.parse(line) as AuditRecord);
    expect(tooBig).toMatchObject({ id: null, exitStatus: EXIT.environment, results: [] });
    expect(tooBig?.error).toMatch(/^container state on stdin is larger than \d+ bytes$/);
    expect(never?.error).toMatch(/^no container state on stdin within 1 s/);
  });

  it('a load that stops half-way (exit 4) still records what went in', async () => {
    const loader: HookLoader = {
      ...fakeLoader(),
      async loadPlan(_plan, options) {
        options?.onModuleResult?.({
          request: 'ip_vs',
          name: 'midway_dummy',
          status: 'loaded',
          required: true,
        });
        throw new KmodloadError('EINVAL: not a regular file', EXIT.environment, {
          subject: `cannot read module file ${MODULE_DIR}/kernel/ip_vs.ko`,
        });
      },
    };
    const streams = memoryIO(stateJson(bundle(['KERNEL_MODULES=ip_vs']), 'creating', 'midway'));
    expect(await runHookCommand(['--state=prestart'], streams.io, { loader })).toBe(
      EXIT.environment,
    );
    expect(streams.err()).toBe(
      `kmodload: cannot read module file ${MODULE_DIR}/kernel/ip_vs.ko: EINVAL: not a regular file\n`,
    );
    const inserted = JSON.parse(fs.readFileSync(path.join(stateDir, 'inserted.json'), 'utf8')) as {
      modules: Array<{ name: string; by: string }>;
    };
    expect(inserted.modules).toContainEqual(
      expect.objectContaining({ name: 'midway_dummy', by: 'midway' }),
    );
  });

  it('SIGTERM mid-load: exit 143 and one log line with what was inserted so far', async () => {
    const log = path.join(scratch, 'interrupted.log');
    const signals = new EventEmitter();
    let reached: () => void = () => undefined;
    const midway = new Promise<void>((resolve) => (reached = resolve));
    const loader: HookLoader = {
      ...fakeLoader(),
      // Inserts sigterm_dummy, then hangs in the next insert until the runtime kills the hook.
      loadPlan(_plan, options) {
        options?.onModuleResult?.({
          request: 'ip_vs',
          name: 'sigterm_dummy',
          status: 'loaded',
          required: true,
          path: `${MODULE_DIR}/kernel/sigterm_dummy.ko`,
        });
        reached();
        return new Promise(() => undefined);
      },
    };
    const streams = memoryIO(stateJson(bundle(['KERNEL_MODULES=ip_vs']), 'creating', 'sigterm'));
    const pending = runHookCommand(['--state=prestart', '--log', log], streams.io, {
      loader,
      signals: signals as unknown as Pick<NodeJS.Process, 'once' | 'off'>,
    });
    await midway;
    signals.emit('SIGTERM', 'SIGTERM');
    expect(await pending).toBe(143);
    expect(streams.err()).toBe(
      'kmodload: cannot load ip_vs: interrupted by SIGTERM (after loading sigterm_dummy)\n',
    );
    // What went in is recorded (a failed start holds nothing), so gc --unload can remove it.
    const inserted = JSON.parse(fs.readFileSync(path.join(stateDir, 'inserted.json'), 'utf8')) as {
      modules: Array<{ name: string; by: string }>;
    };
    expect(inserted.modules).toContainEqual(
      expect.objectContaining({ name: 'sigterm_dummy', by: 'sigterm' }),
    );
    const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(1);
    const record = JSON.parse(lines[0] as string) as AuditRecord;
    expect(record).toMatchObject({ interrupted: true, exitStatus: 143, request: ['ip_vs'] });
    expect(record.results).toEqual([
      {
        request: 'ip_vs',
        name: 'sigterm_dummy',
        status: 'loaded',
        path: `${MODULE_DIR}/kernel/sigterm_dummy.ko`,
      },
    ]);
    expect(signals.listenerCount('SIGTERM') + signals.listenerCount('SIGINT')).toBe(0);
  });

  it('an empty stdin at a load stage is an error, at poststop it is not', async () => {
    const prestart = memoryIO('');
    expect(await runHookCommand(['--state', 'prestart'], prestart.io)).toBe(EXIT.environment);
    expect(prestart.err()).toBe(
      'kmodload: malformed container state on stdin: empty input (a runtime sends the state as JSON)\n',
    );
    const poststop = memoryIO('');
    expect(await runHookCommand(['--state', 'poststop'], poststop.io)).toBe(0);
    expect(poststop.err()).toBe('');
  });
});

// The public API must fit what the hook asks of it (checked by tsc, not at run time).
type PublicApi = Pick<typeof publicApi, 'loadPlan' | 'resolve'>;
export const publicApiFitsTheHook = (api: PublicApi): HookLoader => api;
