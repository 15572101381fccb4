// Holds and unloading when containers stop: the hook against a fake kernel that tracks who
// holds whom, on plans of the real Debian 6.1 tree; the state directory under several
// processes at once and under processes killed at each step.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPlan, resolve, unload, status } from '../../src/api';
import { EXIT } from '../../src/errors';
import {
  collectGarbage,
  listHolds,
  recordLoad,
  releaseHold,
  takeProvisionalHold,
} from '../../src/holds';
import {
  handleHook,
  type HookLoader,
  type HookOptions,
  type HookResult,
} from '../../src/hook/handler';
import { compileSources } from '../helpers/build';
import { writeBundle } from '../helpers/bundle';
import { FakeKernel } from '../helpers/fake-kernel';
import { REPO_ROOT, kernelTree, treeDependencies, type KernelTree } from '../helpers/trees';

let tree: KernelTree;
let scratch: string;
let emptyConfig: string;

beforeAll(() => {
  tree = kernelTree('6.1');
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-holds-'));
  emptyConfig = path.join(scratch, 'modprobe.d');
  fs.mkdirSync(emptyConfig);
});
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

let count = 0;
function newDir(label: string): string {
  const dir = path.join(scratch, `${label}-${count++}`);
  fs.mkdirSync(dir);
  return dir;
}

interface Host {
  kernel: FakeKernel;
  stateDir: string;
  procRoot: string;
  /** Starts container `id` (a fake process in procRoot) asking for `request`. */
  start(id: string, request: string): Promise<{ exitStatus: number }>;
  /** Stops it: poststop with --unload-on-stop (or not). */
  stop(id: string, unloadOnStop?: boolean): Promise<HookResult>;
}

let pidCount = 1000;
function host(kernel = new FakeKernel().dependsOn(treeDependencies(tree))): Host {
  const stateDir = newDir('state');
  const procRoot = newDir('proc');
  const bundles = newDir('bundles');
  const pids = new Map<string, number>();
  // The public API with the fake kernel: what the hook uses, minus the real syscalls.
  const loader: HookLoader = {
    resolve: (names, options) => resolve(names, options),
    loadPlan: (plan, options) => loadPlan(plan, { ...options, kernel }),
  };
  const options = (extra: Partial<HookOptions> = {}): HookOptions => ({
    root: tree.root,
    kernelVersion: tree.version,
    configDirs: [emptyConfig],
    stateDir,
    procRoot,
    kernel,
    loader,
    ...extra,
  });
  return {
    kernel,
    stateDir,
    procRoot,
    async start(id, request) {
      const pid = pidCount++;
      pids.set(id, pid);
      fs.mkdirSync(path.join(procRoot, String(pid)));
      fs.writeFileSync(path.join(procRoot, String(pid), 'stat'), procStat(pid, 'sh', 5000 + pid));
      const bundle = writeBundle(path.join(bundles, id), {
        process: { env: [`KERNEL_MODULES=${request}`] },
      });
      const state = { id, status: 'creating', pid, bundle };
      return handleHook(state, options({ stage: 'prestart' }));
    },
    async stop(id, unloadOnStop = true) {
      const pid = pids.get(id);
      if (pid !== undefined)
        fs.rmSync(path.join(procRoot, String(pid)), { recursive: true, force: true });
      const state = { id, status: 'stopped', bundle: path.join(bundles, id) };
      return handleHook(state, options({ stage: 'poststop', unloadOnStop }));
    },
  };
}

/** A /proc/PID/stat line: COMM in parentheses (with a space and a ')' to be hard), start time
 *  as field 22. */
function procStat(pid: number, comm: string, start: number): string {
  // Fields 3 (state) to 21, then 22: the start time.
  const after = ['S', '1', ...Array.from({ length: 17 }, () => '0'), String(start)];
  return `${pid} (${comm} (x) y) ${after.join(' ')} 0 0\n`;
}

describe('holds and unload on stop (fake kernel, Debian 6.1 plans)', () => {
  it('overlapping holds: a module goes when the last container needing it stops', async () => {
    const h = host();
    h.kernel.setState('dummy', 'live'); // loaded by someone else (modprobe) first
    const before = h.kernel.loaded();
    expect((await h.start('A', 'ip_vs,ip_vs_wrr,dummy')).exitStatus).toBe(0);
    expect((await h.start('B', 'ip_vs_sh')).exitStatus).toBe(0);
    const loaded = h.kernel.loaded();
    expect(loaded).toEqual(
      expect.arrayContaining(['ip_vs', 'ip_vs_wrr', 'ip_vs_sh', 'nf_conntrack', 'libcrc32c']),
    );

    const stopA = await h.stop('A');
    expect(stopA.exitStatus).toBe(0);
    // The log line says what the release did.
    expect(stopA.record.release).toMatchObject({ released: true, stale: [] });
    expect(stopA.record.release?.modules).toEqual([{ name: 'ip_vs_wrr', status: 'removed' }]);
    expect(h.kernel.loaded()).not.toContain('ip_vs_wrr');
    expect(h.kernel.loaded()).toEqual(
      expect.arrayContaining(['ip_vs', 'ip_vs_sh', 'nf_conntrack', 'libcrc32c', 'dummy']),
    );

    expect((await h.stop('B')).exitStatus).toBe(0);
    expect(h.kernel.loaded()).toEqual(before);
    expect(h.kernel.deleted()).not.toContain('dummy');
    const report = await status({ stateDir: h.stateDir, procRoot: h.procRoot, kernel: h.kernel });
    expect(report).toEqual({ modules: [], stale: [], warnings: [] });
  });

  it('A stops while B starts: a module B found live stays until B stops (provisional hold)', async () => {
    const h = host();
    expect((await h.start('A', 'ip_vs_wrr')).exitStatus).toBe(0);
    // B finds ip_vs_wrr (and its dependencies) live; its insert of tun is slow, and A stops
    // with --unload-on-stop in that window.
    const slow = h.kernel.pauseInsert('tun');
    const startB = h.start('B', 'ip_vs_wrr,tun');
    await slow.reached;
    const inWindow = (await listHolds({ stateDir: h.stateDir })).find((hold) => hold.id === 'B');
    expect(inWindow?.provisional).toEqual(
      expect.arrayContaining(['ip_vs_wrr', 'ip_vs', 'nf_conntrack', 'tun']),
    );
    const stopA = await h.stop('A');
    expect(stopA.exitStatus).toBe(0);
    expect(stopA.record.release?.modules).toEqual([]);
    slow.resume();
    expect((await startB).exitStatus).toBe(0);
    expect(h.kernel.deleted()).toEqual([]);
    expect(h.kernel.loaded()).toEqual(expect.arrayContaining(['ip_vs_wrr', 'ip_vs', 'tun']));
    // Made final: B holds what it asked for, nothing provisional is left.
    const [holdB] = await listHolds({ stateDir: h.stateDir });
    expect(holdB?.id).toBe('B');
    expect(holdB?.provisional).toBeUndefined();
    expect(holdB?.modules.map((m) => m.name).sort()).toEqual(['ip_vs_wrr', 'tun']);
    // When B stops, what A inserted and B held goes too.
    expect((await h.stop('B')).exitStatus).toBe(0);
    expect(h.kernel.loaded()).toEqual([]);
  });

  it('a load that fails drops its provisional hold; one of an earlier stage stays', async () => {
    const h = host();
    h.kernel.fail('tun', 'ENOEXEC');
    expect((await h.start('A', 'tun')).exitStatus).toBe(EXIT.failed);
    expect(await listHolds({ stateDir: h.stateDir })).toEqual([]);
    expect(fs.readdirSync(path.join(h.stateDir, 'holds'))).toEqual([]);
    await h.start('B', 'dummy');
    // A provisional hold left by a killed loader protects its modules until the container goes.
    await takeProvisionalHold({ stateDir: h.stateDir }, { id: 'B' }, ['ip_vs']);
    h.kernel.setState('ip_vs', 'live');
    await recordLoad(
      { stateDir: h.stateDir },
      { id: 'C' },
      ['ip_vs'],
      [{ request: 'ip_vs', name: 'ip_vs', status: 'loaded', required: true }],
      false,
    );
    await releaseHold({ stateDir: h.stateDir, procRoot: h.procRoot }, 'C', {
      unload: true,
      kernel: h.kernel,
    });
    expect(h.kernel.loaded()).toContain('ip_vs');
    await expect(
      unload(['ip_vs'], {
        root: tree.root,
        kernelVersion: tree.version,
        configDirs: [emptyConfig],
        stateDir: h.stateDir,
        procRoot: h.procRoot,
        kernel: h.kernel,
      }),
    ).rejects.toMatchObject({ exitStatus: EXIT.refused });
    await h.stop('B');
    expect(h.kernel.loaded()).toEqual([]);
  });

  it('without --unload-on-stop poststop only releases the hold; a second poststop is a no-op', async () => {
    const h = host();
    await h.start('A', 'ip_vs');
    const loaded = h.kernel.loaded();
    expect((await h.stop('A', false)).exitStatus).toBe(0);
    expect(h.kernel.loaded()).toEqual(loaded);
    expect(await listHolds({ stateDir: h.stateDir })).toEqual([]);
    // Still recorded as inserted: a later release with unloading removes them.
    expect(
      (
        await status({ stateDir: h.stateDir, procRoot: h.procRoot, kernel: h.kernel })
      ).modules.every((m) => m.inserted),
    ).toBe(true);
    expect((await h.stop('A')).exitStatus).toBe(0);
    expect(h.kernel.deleted()).toEqual([]); // no hold of A any more: nothing to release
    await h.start('C', 'dummy');
    await h.stop('C');
    expect(h.kernel.loaded()).toEqual([]);
  });

  it("iSulad's lcr poststop (pid -1, no status) releases the hold and unloads", async () => {
    const h = host();
    await h.start('lcr', 'dummy');
    expect(h.kernel.loaded()).toEqual(['dummy']);
    const lcrState = `{"ociVersion":"","id":"lcr","pid":-1,"root":"/r","bundle":"${h.stateDir}"}`;
    const result = await handleHook(lcrState, {
      stage: 'poststop',
      unloadOnStop: true,
      stateDir: h.stateDir,
      procRoot: h.procRoot,
      kernel: h.kernel,
    });
    expect(result.exitStatus).toBe(0);
    expect(result.record.release?.released).toBe(true);
    expect(h.kernel.loaded()).toEqual([]);
  });

  it('a poststop for a container that never held anything changes nothing', async () => {
    const h = host();
    await h.start('A', 'ip_vs');
    const result = await h.stop('never-started');
    expect(result.exitStatus).toBe(0);
    expect(h.kernel.deleted()).toEqual([]);
    expect((await listHolds({ stateDir: h.stateDir })).map((hold) => hold.id)).toEqual(['A']);
  });

  it('a module that stays busy stays recorded and goes at the next release', async () => {
    const h = host();
    await h.start('A', 'ip_vs');
    await h.start('B', 'dummy');
    // Something else on the host uses nf_conntrack too (ip_vs's reference is one of the 5).
    h.kernel.setRefcount('nf_conntrack', 5);
    await h.stop('A');
    expect(h.kernel.loaded()).toContain('nf_conntrack');
    expect(h.kernel.loaded()).not.toContain('ip_vs');
    const busy = (
      await status({ stateDir: h.stateDir, procRoot: h.procRoot, kernel: h.kernel })
    ).modules.find((m) => m.name === 'nf_conntrack');
    expect(busy).toMatchObject({ inserted: true, holders: [], state: 'live', refcnt: 4 });
    h.kernel.setRefcount('nf_conntrack', 0);
    await h.stop('B');
    expect(h.kernel.loaded()).toEqual([]);
  });

  it('modules live before, builtins and modules others loaded are never touched', async () => {
    const h = host();
    h.kernel.setState('nf_conntrack', 'live').setState('libcrc32c', 'live');
    await h.start('A', 'ip_vs');
    await h.stop('A');
    expect(h.kernel.loaded()).toEqual(['libcrc32c', 'nf_conntrack']);
    expect(h.kernel.deleted()).not.toContain('nf_conntrack');
  });

  it('a dry run records nothing; a refused request records nothing', async () => {
    const h = host();
    const dir = writeBundle(newDir('bundle'), { process: { env: ['KERNEL_MODULES=ip_vs'] } });
    await handleHook(
      { id: 'dry', status: 'creating', pid: 1, bundle: dir },
      {
        root: tree.root,
        kernelVersion: tree.version,
        configDirs: [emptyConfig],
        stateDir: h.stateDir,
        dryRun: true,
        loader: { resolve, loadPlan: (plan, o) => loadPlan(plan, { ...o, kernel: h.kernel }) },
      },
    );
    expect(fs.readdirSync(h.stateDir)).toEqual([]);
    expect((await h.start('bad', 'no_such_module')).exitStatus).toBe(EXIT.refused);
    expect(fs.readdirSync(h.stateDir)).toEqual([]);
  });

  it('corrupt or unknown-version state is moved aside with a warning and unloads nothing', async () => {
    const h = host();
    await h.start('A', 'ip_vs');
    await h.start('B', 'dummy');
    const holdsDir = path.join(h.stateDir, 'holds');
    const [first] = fs.readdirSync(holdsDir);
    fs.writeFileSync(path.join(holdsDir, first as string), '{"version":99}');
    const loaded = h.kernel.loaded();
    const stop = await h.stop('B');
    expect(stop.exitStatus).toBe(0);
    expect(stop.warnings.join('\n')).toMatch(/unknown version 99; moved aside to .*\.corrupt-\d+/);
    expect(h.kernel.deleted()).toEqual([]);
    expect(h.kernel.loaded()).toEqual(loaded);
    fs.writeFileSync(path.join(h.stateDir, 'inserted.json'), '\0garbage');
    const report = await status({ stateDir: h.stateDir, procRoot: h.procRoot, kernel: h.kernel });
    expect(report.warnings.join('\n')).toMatch(/inserted\.json: not JSON; moved aside/);
  });

  it('gc drops the holds of containers that are gone or whose pid is reused', async () => {
    const h = host();
    await h.start('A', 'ip_vs');
    await h.start('B', 'dummy');
    await h.start('C', 'ip_vs_sh');
    const holds = await listHolds({ stateDir: h.stateDir });
    const pid = (id: string) => holds.find((hold) => hold.id === id)?.pid as number;
    // A's process is gone; B's pid now belongs to another process (another start time).
    fs.rmSync(path.join(h.procRoot, String(pid('A'))), { recursive: true });
    fs.writeFileSync(path.join(h.procRoot, String(pid('B')), 'stat'), procStat(pid('B'), 'x', 1));
    const result = await collectGarbage(
      { stateDir: h.stateDir, procRoot: h.procRoot },
      { unload: true, kernel: h.kernel },
    );
    expect(result.stale.map((hold) => hold.id).sort()).toEqual(['A', 'B']);
    expect(h.kernel.loaded()).not.toContain('dummy');
    expect(h.kernel.loaded()).toContain('ip_vs_sh');
    expect(
      (await listHolds({ stateDir: h.stateDir, procRoot: h.procRoot })).map((x) => x.id),
    ).toEqual(['C']);
  });

  it('gc --unload on a kernel that cannot unload (ENOSYS): one line, exit 1; the stale hold is dropped', async () => {
    const h = host();
    await h.start('A', 'dummy');
    const [hold] = await listHolds({ stateDir: h.stateDir });
    fs.rmSync(path.join(h.procRoot, String(hold?.pid)), { recursive: true });
    h.kernel.fail('dummy', 'ENOSYS', { syscall: 'delete_module' });
    const gc = collectGarbage(
      { stateDir: h.stateDir, procRoot: h.procRoot },
      { unload: true, kernel: h.kernel },
    );
    await expect(gc).rejects.toMatchObject({
      exitStatus: EXIT.failed,
      message:
        'cannot unload dummy: the running kernel cannot unload modules (delete_module: ENOSYS; built without CONFIG_MODULE_UNLOAD)',
    });
    expect(h.kernel.loaded()).toContain('dummy');
    expect(await listHolds({ stateDir: h.stateDir, procRoot: h.procRoot })).toEqual([]);
    // Another errno: the kernel's words, the same status.
    h.kernel.fail('dummy', 'EPERM', { syscall: 'delete_module', times: 1 });
    await expect(
      collectGarbage(
        { stateDir: h.stateDir, procRoot: h.procRoot },
        { unload: true, kernel: h.kernel },
      ),
    ).rejects.toMatchObject({
      exitStatus: EXIT.failed,
      message: /^cannot unload dummy: Operation not permitted/,
    });
  });

  it('a hold without a usable pid (lcr: -1) is kept unless older than --older-than', async () => {
    const h = host();
    await recordLoad(
      { stateDir: h.stateDir, procRoot: h.procRoot },
      { id: 'lcr', pid: -1 },
      ['dummy'],
      [{ request: 'dummy', name: 'dummy', status: 'loaded', required: true }],
      true,
    );
    const gc = (olderThanMs?: number) =>
      collectGarbage(
        { stateDir: h.stateDir, procRoot: h.procRoot },
        { unload: false, kernel: h.kernel, ...(olderThanMs === undefined ? {} : { olderThanMs }) },
      );
    expect((await gc()).stale).toEqual([]);
    expect((await gc(3_600_000)).stale).toEqual([]);
    await new Promise((r) => setTimeout(r, 20));
    expect((await gc(10)).stale.map((x) => x.id)).toEqual(['lcr']);
  });

  it("gc --older-than leaves the NRI plugin's holds (no pid at CreateContainer) to its Synchronize", async () => {
    const h = host();
    await recordLoad(
      { stateDir: h.stateDir, procRoot: h.procRoot },
      { id: 'pod', via: 'nri' },
      ['dummy'],
      [{ request: 'dummy', name: 'dummy', status: 'loaded', required: true }],
      true,
    );
    await new Promise((r) => setTimeout(r, 20));
    const result = await collectGarbage(
      { stateDir: h.stateDir, procRoot: h.procRoot },
      { unload: true, kernel: h.kernel, olderThanMs: 10 },
    );
    expect(result.stale).toEqual([]);
    expect(result.modules).toEqual([]);
  });

  it('kmodload unload refuses a held module (exit 3, naming the containers) unless told', async () => {
    const h = host();
    await h.start('A', 'ip_vs');
    await h.start('B', 'ip_vs_wrr');
    const options = {
      root: tree.root,
      kernelVersion: tree.version,
      configDirs: [emptyConfig],
      stateDir: h.stateDir,
      procRoot: h.procRoot,
      kernel: h.kernel,
    };
    await expect(unload(['ip_vs_wrr'], options)).rejects.toMatchObject({
      exitStatus: EXIT.refused,
      message:
        'cannot unload ip_vs_wrr: module ip_vs_wrr is held by container B (see kmodload status; --ignore-holds removes it anyway)',
    });
    expect(h.kernel.deleted()).toEqual([]);
    // Once B's hold is released, ip_vs_wrr can go; ip_vs, held by A, stays although nothing
    // uses it any more, and so do its dependencies.
    await h.stop('B', false);
    expect((await unload(['ip_vs_wrr'], options)).ok).toBe(true);
    expect(h.kernel.deleted()).toEqual(['ip_vs_wrr']);
    expect(h.kernel.loaded()).toEqual(expect.arrayContaining(['ip_vs', 'nf_conntrack']));
    await expect(unload(['ip_vs'], options)).rejects.toMatchObject({ exitStatus: EXIT.refused });
    expect((await unload(['ip_vs'], { ...options, ignoreHolds: true })).ok).toBe(true);
    expect(h.kernel.loaded()).not.toContain('ip_vs');
  });
});

// Several processes on one state directory, and processes killed between any two steps.
describe('the state directory under concurrency and crashes', () => {
  let dist: string;
  beforeAll(() => {
    dist = path.join(scratch, 'dist');
    compileSources(dist);
  }, 120_000);

  /** Runs `script` (with `holds` = the compiled src/holds) in a child node. */
  function child(
    script: string,
    env: Record<string, string> = {},
  ): Promise<{ code: number | null; signal: string | null; stderr: string }> {
    return new Promise((resolve) => {
      const proc = spawn(
        process.execPath,
        [
          '-e',
          `const holds = require(${JSON.stringify(path.join(dist, 'holds/index.js'))});\n${script}`,
        ],
        {
          env: {
            ...process.env,
            ...env,
            KMODLOAD_ADDON: path.join(REPO_ROOT, 'build', 'Release', 'kmodload.node'),
          },
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      let stderr = '';
      proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      proc.on('close', (code, signal) => resolve({ code, signal, stderr }));
    });
  }

  const recordScript = (stateDir: string, id: string, modules: string[]) => `
    holds.recordLoad(
      { stateDir: ${JSON.stringify(stateDir)}, onStep: (step) => { if (process.env.CRASH_AT === step) process.kill(process.pid, 'SIGKILL'); } },
      { id: ${JSON.stringify(id)} },
      ${JSON.stringify(modules)},
      ${JSON.stringify(modules)}.map((name) => ({ request: name, name, status: 'loaded', required: true })),
      true,
    ).catch((e) => { console.error(e.message); process.exit(1); });`;

  it('eight processes recording and releasing at once lose no update', async () => {
    const stateDir = newDir('concurrent');
    const ids = Array.from({ length: 8 }, (_, i) => `c${i}`);
    const recorded = await Promise.all(
      ids.map((id, i) => child(recordScript(stateDir, id, [`m${i}`, 'shared']))),
    );
    expect(recorded.map((r) => [r.code, r.stderr])).toEqual(ids.map(() => [0, '']));
    const holds = await listHolds({ stateDir });
    expect(holds.map((h) => h.id).sort()).toEqual(ids);
    const inserted = JSON.parse(fs.readFileSync(path.join(stateDir, 'inserted.json'), 'utf8')) as {
      modules: Array<{ name: string }>;
    };
    expect(inserted.modules.map((m) => m.name).sort()).toEqual(
      ['shared', ...ids.map((_, i) => `m${i}`)].sort(),
    );

    const released = await Promise.all(
      ids.map((id) =>
        child(
          `holds.releaseHold({ stateDir: ${JSON.stringify(stateDir)} }, ${JSON.stringify(id)}, { unload: false, kernel: null }).catch((e) => { console.error(e.message); process.exit(1); });`,
        ),
      ),
    );
    expect(released.map((r) => [r.code, r.stderr])).toEqual(ids.map(() => [0, '']));
    expect(await listHolds({ stateDir })).toEqual([]);
    expect(fs.readdirSync(path.join(stateDir, 'holds'))).toEqual([]);
  });

  /** A child that takes the state lock and keeps it `ms`, rewriting the lock file's content
   *  every `rewriteMs` meanwhile when given (as a queue of holders handing it on would). */
  const holdScript = (stateDir: string, ms: number, rewriteMs?: number) => `
    holds.withStateLock({ stateDir: ${JSON.stringify(stateDir)} }, () => new Promise((done) => {
      ${
        rewriteMs === undefined
          ? ''
          : `let turn = 0;
      const timer = setInterval(() => require('fs').writeFileSync(${JSON.stringify(path.join(stateDir, 'lock'))}, 'pid ' + process.pid + ' ' + ++turn + '\\n'), ${rewriteMs});
      setTimeout(() => clearInterval(timer), ${ms});`
      }
      setTimeout(done, ${ms});
    })).catch((e) => { console.error(e.message); process.exit(1); });`;

  /** Resolves once the child holding the lock has marked it. */
  async function lockTaken(stateDir: string): Promise<void> {
    const lock = path.join(stateDir, 'lock');
    for (let i = 0; i < 500; i++) {
      if (fs.existsSync(lock) && fs.readFileSync(lock, 'latin1').startsWith('pid ')) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error('the child never took the lock');
  }

  const recordOne = (stateDir: string, lockTimeoutMs: number) =>
    recordLoad(
      { stateDir, lockTimeoutMs },
      { id: 'waiter' },
      ['m'],
      [{ request: 'm', name: 'm', status: 'loaded', required: true }],
      true,
    );

  it('a holder that keeps the lock: the wait gives up after the timeout, naming its pid', async () => {
    const stateDir = newDir('stuck');
    const holder = child(holdScript(stateDir, 1200));
    await lockTaken(stateDir);
    await expect(recordOne(stateDir, 300)).rejects.toThrow(
      /^the state .* is locked by kmodload process \d+ for more than 300 ms$/,
    );
    expect((await holder).code).toBe(0);
  });

  it('a lock that keeps changing hands is waited for past the timeout', async () => {
    const stateDir = newDir('busy');
    const holder = child(holdScript(stateDir, 1500, 50));
    await lockTaken(stateDir);
    const started = Date.now();
    await expect(recordOne(stateDir, 400)).resolves.toEqual([]);
    // It got the lock only when the holder let go, long after 400 ms.
    expect(Date.now() - started).toBeGreaterThan(600);
    expect((await listHolds({ stateDir })).map((h) => h.id)).toEqual(['waiter']);
    expect((await holder).code).toBe(0);
  });

  it.each(['locked', 'hold-written', 'inserted-written'])(
    'a process killed after "%s" leaves readable state',
    async (step) => {
      const stateDir = newDir('crash');
      // Another container holds "shared" already.
      expect((await child(recordScript(stateDir, 'other', ['shared']))).code).toBe(0);
      const crashed = await child(recordScript(stateDir, 'victim', ['mine', 'shared']), {
        CRASH_AT: step,
      });
      expect(crashed.signal).toBe('SIGKILL');
      // The next process gets the lock at once (the kernel dropped it) and reads valid state.
      const kernel = new FakeKernel().setState('mine', 'live').setState('shared', 'live');
      const result = await releaseHold({ stateDir }, 'victim', { unload: true, kernel });
      expect(result.warnings).toEqual([]);
      // Whatever the crash left, "shared" stays: the other container still holds it.
      expect(kernel.deleted()).not.toContain('shared');
      expect((await listHolds({ stateDir })).map((h) => h.id)).toEqual(['other']);
      expect(fs.readdirSync(stateDir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    },
  );
});
