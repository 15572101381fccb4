// podman (Debian's 4.3, with runc) as a real hooks.d client: the installed hook in a hooks
// directory written from `hook-config --format hooks.d`, containers asking through the
// annotation and the environment. This machine cannot load modules: the hook runs dry
// against the Debian 6.1 tree, and the checks read its log, not podman's exit code alone.

import type { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/errors';
import {
  busyboxImage,
  hookConfig,
  modprobeInsmods,
  podmanRun as podmanRunIn,
  readLog,
  type Fixture,
  type Installation,
  removeScratch,
  setUpInstallation,
} from './harness';

let scratch: string;
let fixture: Fixture;
let kmodload: Installation;
let image: string;

beforeAll(() => {
  ({ scratch, fixture, kmodload } = setUpInstallation('podman'));
  image = busyboxImage(scratch);
}, 120_000);
afterAll(() => removeScratch(scratch));

let count = 0;
/** A hooks directory holding `hook-config --format hooks.d ARGS` (and, with
 *  `--unload-on-stop`, the `hooks.d-poststop` file), and the hook's log. */
function hooksDir(args: string[]): { dir: string; log: string } {
  const dir = path.join(scratch, `hooks-${count++}`);
  fs.mkdirSync(dir);
  const log = path.join(dir, 'hook.log');
  const unload = args.includes('--unload-on-stop');
  const config = (format: string, rest: string[]) =>
    hookConfig(kmodload, [
      '--format',
      format,
      '-d',
      fixture.root,
      '-S',
      fixture.version,
      '--dry-run',
      '--log',
      log,
      ...rest,
    ]);
  const prestartArgs = args.filter((arg) => arg !== '--unload-on-stop');
  fs.writeFileSync(
    path.join(dir, 'kmodload.json'),
    JSON.stringify(config('hooks.d', prestartArgs)),
  );
  if (unload) {
    fs.writeFileSync(
      path.join(dir, 'kmodload-poststop.json'),
      JSON.stringify(config('hooks.d-poststop', args)),
    );
  }
  return { dir, log };
}

function podmanRun(hooks: string, options: string[]): ReturnType<typeof spawnSync> {
  return podmanRunIn(image, options, hooks);
}

const ASK = 'org.kmodload.kernel-modules';

describe('kmodload hook under podman (hooks.d)', () => {
  it("the annotation asks (names separated by a blank, as podman needs): the plan is modprobe's", () => {
    const { dir, log } = hooksDir([]);
    const run = podmanRun(dir, ['--annotation', `${ASK}=ip_vs ip_vs_wrr`]);
    expect(run.stdout).toBe('container-ran\n');
    expect(run.status).toBe(0);
    const [record, ...rest] = readLog(log);
    expect(rest).toEqual([]);
    expect(record).toMatchObject({
      stage: 'prestart',
      status: 'creating',
      request: ['ip_vs', 'ip_vs_wrr'],
      exitStatus: 0,
    });
    expect(record?.plan.map((step) => step.path)).toEqual(
      modprobeInsmods(fixture, ['ip_vs', 'ip_vs_wrr']),
    );
  });

  it('no annotation: the hook does not run; with --always it runs and asks for nothing', () => {
    const selected = hooksDir([]);
    expect(podmanRun(selected.dir, []).status).toBe(0);
    expect(readLog(selected.log)).toEqual([]);
    const always = hooksDir(['--always']);
    expect(podmanRun(always.dir, []).stdout).toBe('container-ran\n');
    expect(readLog(always.log).map((r) => [r.stage, r.request, r.exitStatus])).toEqual([
      ['prestart', [], 0],
    ]);
  });

  it('env and annotation together (--always): env names first, then the annotation', () => {
    const { dir, log } = hooksDir(['--always']);
    const run = podmanRun(dir, ['-e', 'KERNEL_MODULES=dummy', '--annotation', `${ASK}=ip_vs`]);
    expect(run.status).toBe(0);
    expect(readLog(log)[0]?.request).toEqual(['dummy', 'ip_vs']);
  });

  it("a refused name: podman's error carries the hook's line, the container never runs", () => {
    const { dir, log } = hooksDir([]);
    const run = podmanRun(dir, ['--annotation', `${ASK}=ip_vs ip_vs_wrx`]);
    expect(run.status).not.toBe(0);
    expect(run.stdout).toBe('');
    const [record] = readLog(log);
    expect(record?.exitStatus).toBe(EXIT.refused);
    expect(run.stderr).toContain(
      `error running hook: exit status 3, stdout: , stderr: kmodload: ${record?.error}`,
    );
    expect(record?.error).toMatch(/^cannot load ip_vs_wrx: module ip_vs_wrx not found/);
  });

  it('a host policy: a denied module refuses the container, an allowed one runs', () => {
    const policy = path.join(scratch, 'policy.conf');
    fs.writeFileSync(policy, 'default deny\nallow ip_vs* when source annotation\ndeny xfs\n');
    const { dir, log } = hooksDir(['--policy', policy]);
    expect(podmanRun(dir, ['--annotation', `${ASK}=ip_vs_sh`]).stdout).toBe('container-ran\n');
    const denied = podmanRun(dir, ['--annotation', `${ASK}=fs-xfs`]);
    expect(denied.status).not.toBe(0);
    expect(denied.stderr).toContain(
      `kmodload: cannot load fs-xfs: xfs is denied by ${policy}:3 (deny xfs)`,
    );
    expect(readLog(log).map((r) => [r.request, r.exitStatus, r.policy])).toEqual([
      [['ip_vs_sh'], 0, [policy]],
      [['fs-xfs'], EXIT.refused, [policy]],
    ]);
  });

  it('--unload-on-stop: the prestart file loads, the poststop file releases', () => {
    const { dir, log } = hooksDir(['--unload-on-stop', '--state-dir', path.join(scratch, 'st')]);
    expect(podmanRun(dir, ['--annotation', `${ASK}=ip_vs`]).status).toBe(0);
    expect(readLog(log).map((r) => [r.stage, r.status, r.exitStatus])).toEqual([
      ['prestart', 'creating', 0],
      ['poststop', 'stopped', 0],
    ]);
  });
});
