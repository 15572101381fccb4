// The installed hook run as iSulad's lcr runs it (see lcr.ts: lxc's behaviour as read from its
// source, since iSulad cannot be installed here), fed with `hook-config --format isulad`.

import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/errors';
import type { AuditRecord } from '../../src/container/audit';
import { writeBundle } from '../helpers/bundle';
import {
  hookConfig,
  modprobeInsmods,
  type Fixture,
  type Installation,
  removeScratch,
  setUpInstallation,
} from './harness';
import { runLcrHook, type LcrHookEntry } from './lcr';

let scratch: string;
let fixture: Fixture;
let kmodload: Installation;

beforeAll(() => {
  ({ scratch, fixture, kmodload } = setUpInstallation('lcr'));
}, 120_000);
afterAll(() => removeScratch(scratch));

let count = 0;
/** iSulad's bundle: <graph>/engines/lcr/<id> with the OCI config.json. */
function bundle(env: string[]): { id: string; dir: string } {
  const id = `lcr${count++}`;
  const dir = writeBundle(path.join(scratch, 'engines', 'lcr', id), { process: { env } });
  return { id, dir };
}

function hookspec(args: string[]): Record<string, LcrHookEntry[]> {
  return hookConfig(kmodload, ['--format', 'isulad', ...args]) as Record<string, LcrHookEntry[]>;
}

function readLog(file: string): AuditRecord[] {
  return fs
    .readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as AuditRecord);
}

describe('kmodload hook under an lcr-exact driver', () => {
  it('the hookspec has only what iSulad reads, explicit timeouts, a path iSulad accepts', () => {
    const spec = hookspec([]);
    expect(Object.keys(spec)).toEqual(['prestart', 'poststart', 'poststop']);
    for (const [stage, entries] of Object.entries(spec)) {
      expect(entries).toHaveLength(1);
      const entry = entries[0] as LcrHookEntry;
      expect(entry.timeout).toBe(30);
      expect(entry.args.slice(0, 4)).toEqual(['kmodload', 'hook', '--state', stage]);
      expect(path.isAbsolute(entry.path)).toBe(true);
      const stat = fs.statSync(entry.path);
      expect(stat.uid).toBe(0);
      expect(stat.mode & 0o002).toBe(0);
    }
  });

  it("the seed's request (dry run): prestart succeeds and logs modprobe's plan", async () => {
    const log = path.join(scratch, 'seed.log');
    const spec = hookspec(['-d', fixture.root, '-S', fixture.version, '--dry-run', '--log', log]);
    const { id, dir } = bundle(['PATH=/bin', 'KERNEL_MODULES=ip_vs,ip_vs_wrr']);
    const run = await runLcrHook(
      spec['prestart']?.[0] as LcrHookEntry,
      { id, pid: process.pid, root: `${dir}/rootfs`, bundle: dir },
      'prestart',
    );
    expect(run).toEqual({ status: 0, killed: false, output: '' });
    const [record] = readLog(log);
    expect(record).toMatchObject({ id, stage: 'prestart', status: null, exitStatus: 0 });
    expect(record?.plan.map((step) => step.path)).toEqual(
      modprobeInsmods(fixture, ['ip_vs', 'ip_vs_wrr']),
    );
  });

  it('a refused request: what the user sees in isula run', async () => {
    const spec = hookspec(['-d', fixture.root, '-S', fixture.version, '--log', 'none']);
    const { id, dir } = bundle(['KERNEL_MODULES=ip_vs,ip_vs_wrx']);
    const run = await runLcrHook(
      spec['prestart']?.[0] as LcrHookEntry,
      { id, pid: process.pid, root: `${dir}/rootfs`, bundle: dir },
      'prestart',
    );
    expect(run.status).toBe(EXIT.refused);
    expect(run.error).toBe(
      `running oci-prestart hook caused "error running hook: exit status 3, output: kmodload: cannot load ip_vs_wrx: module ip_vs_wrx not found in directory ${fixture.root}/lib/modules/${fixture.version}\n"`,
    );
  });

  it('poststop with pid -1 (lcr has no pid then) succeeds', async () => {
    const spec = hookspec(['-d', fixture.root, '-S', fixture.version, '--log', 'none']);
    const { id, dir } = bundle(['KERNEL_MODULES=ip_vs']);
    for (const stage of ['poststart', 'poststop'] as const) {
      const run = await runLcrHook(
        spec[stage]?.[0] as LcrHookEntry,
        { id, pid: -1, root: `${dir}/rootfs`, bundle: dir },
        stage,
      );
      expect(run).toEqual({ status: 0, killed: false, output: '' });
    }
  });

  it('a hook that outlives its timeout is killed and the start fails', async () => {
    // Made slow on purpose: a wrapper that waits before running the real one.
    const slow = path.join(scratch, 'slow-hook');
    fs.writeFileSync(slow, `#!/bin/sh\nsleep 5\nexec '${kmodload.wrapper}' "$@"\n`, {
      mode: 0o755,
    });
    const entry = { ...(hookspec(['--log', 'none'])['prestart']?.[0] as LcrHookEntry) };
    entry.path = slow;
    entry.timeout = 1;
    const { id, dir } = bundle(['KERNEL_MODULES=ip_vs']);
    const started = Date.now();
    const run = await runLcrHook(
      entry,
      { id, pid: process.pid, root: dir, bundle: dir },
      'prestart',
    );
    expect(run.killed).toBe(true);
    expect(Date.now() - started).toBeLessThan(4500);
    expect(run.error).toMatch(/error running hook: hook timed out after 1 s/);
  });

  it('a state with hostile id and bundle: printf-built JSON still parses or fails cleanly', async () => {
    const spec = hookspec([
      '-d',
      fixture.root,
      '-S',
      fixture.version,
      '--dry-run',
      '--log',
      'none',
    ]);
    const { dir } = bundle(['KERNEL_MODULES=ip_vs']);
    // An id with a quote breaks lxc's unescaped JSON: the hook must refuse with one line.
    const run = await runLcrHook(
      spec['prestart']?.[0] as LcrHookEntry,
      { id: 'a"b', pid: process.pid, root: dir, bundle: dir },
      'prestart',
    );
    expect(run.status).toBe(EXIT.environment);
    expect(run.output).toMatch(/^kmodload: malformed container state on stdin: not JSON/);
    expect(run.output.split('\n').filter((l) => l !== '')).toHaveLength(1);
  });
});
