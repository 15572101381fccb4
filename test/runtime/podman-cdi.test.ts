// podman as a real CDI client: Debian 12's 4.3 on this host, and Debian 13's 5.4 in a Debian 13
// root (scripts/test/fetch-roots.sh trixie-podman), both with runc. `kmodload cdi generate` of
// an installation writes the spec where podman reads it (podman 4.3 has no option for another
// directory: /var/run/cdi, under a name of this run's own, removed afterwards; in the root, its
// /etc/cdi is a directory of the test's own), and containers ask with
// `--device kmodload.io/module=NAME`. This machine cannot load modules: the hooks run dry
// against the Debian 6.1 tree, and the checks read their log.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/errors';
import {
  busyboxImage,
  busyboxTar,
  installationBinds,
  modprobeInsmods,
  podmanRun,
  podmanRunCommand,
  readLog,
  removeScratch,
  runInRoot,
  setUpInstallation,
  trixiePodmanRoot,
  type Fixture,
  type Installation,
  type RootBind,
} from './harness';

const CDI_DIR = '/var/run/cdi';
const SPEC = path.join(CDI_DIR, `kmodload-test-${process.pid}.json`);
const DIGITS = path.join(CDI_DIR, `kmodload-test-${process.pid}-digits.json`);

let scratch: string;
let fixture: Fixture;
let kmodload: Installation;
let image: string;
let madeCdiDir = false;
let policy: string;
let log: string;

beforeAll(() => {
  ({ scratch, fixture, kmodload } = setUpInstallation('podman-cdi'));
  image = busyboxImage(scratch);
  madeCdiDir = !fs.existsSync(CDI_DIR);
  policy = path.join(scratch, 'policy.conf');
  log = path.join(scratch, 'hook.log');
}, 120_000);
afterAll(() => {
  fs.rmSync(SPEC, { force: true });
  fs.rmSync(DIGITS, { force: true });
  if (madeCdiDir && fs.existsSync(CDI_DIR) && fs.readdirSync(CDI_DIR).length === 0) {
    fs.rmdirSync(CDI_DIR);
  }
  removeScratch(scratch);
});

/** `kmodload cdi generate` of the installation: its wrapper, the 6.1 tree, dry-run hooks,
 *  the spec at `output`. */
function generate(args: string[], output = SPEC): ReturnType<typeof spawnSync> {
  return spawnSync(
    process.execPath,
    [
      kmodload.cli,
      'cdi',
      'generate',
      '--wrapper',
      kmodload.wrapper,
      '--policy',
      policy,
      '-d',
      fixture.root,
      '-S',
      fixture.version,
      '-n',
      '--log',
      log,
      '--output',
      output,
      ...args,
    ],
    { encoding: 'utf8' },
  );
}

function publish(policyText: string, args: string[] = [], output = SPEC): void {
  fs.writeFileSync(policy, policyText);
  const run = generate(args, output);
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
}

function devices(...names: string[]): string[] {
  return names.flatMap((name) => ['--device', `kmodload.io/module=${name}`]);
}

function newRecords(before: number): ReturnType<typeof readLog> {
  return readLog(log).slice(before);
}

describe('kmodload as CDI devices under podman 4.3', () => {
  it("two devices: both hooks run at createRuntime, each plan is modprobe's", () => {
    publish('default deny\nallow ip_vs* 8021q when source cdi\n');
    const before = readLog(log).length;
    const run = podmanRun(image, devices('ip_vs', 'ip_vs_wrr'));
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe('container-ran\n');
    expect(run.status).toBe(0);
    const records = newRecords(before);
    expect(records.map((r) => [r.stage, r.status, r.request, r.sources, r.exitStatus])).toEqual([
      ['createRuntime', 'creating', ['ip_vs'], { ip_vs: ['cdi'] }, 0],
      ['createRuntime', 'creating', ['ip_vs_wrr'], { ip_vs_wrr: ['cdi'] }, 0],
    ]);
    expect(records[0]?.id).toBe(records[1]?.id);
    expect(records[0]?.plan.map((step) => step.path)).toEqual(modprobeInsmods(fixture, ['ip_vs']));
    expect(records[1]?.plan.map((step) => step.path)).toEqual(
      modprobeInsmods(fixture, ['ip_vs_wrr']),
    );
  });

  it('a name that starts with a digit, from the 0.5.0 file', () => {
    publish('default deny\nallow ip_vs* 8021q when source cdi\n');
    expect(JSON.parse(fs.readFileSync(DIGITS, 'utf8'))).toMatchObject({ cdiVersion: '0.5.0' });
    const before = readLog(log).length;
    const run = podmanRun(image, devices('8021q'));
    expect(run.stdout).toBe('container-ran\n');
    const [record] = newRecords(before);
    expect(record?.request).toEqual(['8021q']);
    expect(record?.plan.map((step) => step.path)).toEqual(modprobeInsmods(fixture, ['8021q']));
  });

  it('a device the spec does not publish: podman refuses before the container exists', () => {
    publish('default deny\nallow ip_vs* when source cdi\n');
    const before = readLog(log).length;
    const run = podmanRun(image, devices('ip_vs', 'xfs'));
    expect(run.status).not.toBe(0);
    expect(run.stdout).toBe('');
    // The 0.5 library lists every device asked for, not only the missing one.
    expect(run.stderr).toMatch(/unresolvable CDI devices .*kmodload\.io\/module=xfs/);
    // No hook ran: the container was never created.
    expect(newRecords(before)).toEqual([]);
  });

  it('a module the policy denies after the spec was made: the hook refuses, --check says stale', () => {
    publish('default deny\nallow ip_vs* when source cdi\n');
    fs.writeFileSync(policy, 'default deny\nallow ip_vs* when source cdi\ndeny ip_vs_wrr\n');
    const before = readLog(log).length;
    const run = podmanRun(image, devices('ip_vs', 'ip_vs_wrr'));
    expect(run.status).not.toBe(0);
    expect(run.stdout).toBe('');
    const records = newRecords(before);
    expect(records.map((r) => [r.request, r.exitStatus])).toEqual([
      [['ip_vs'], 0],
      [['ip_vs_wrr'], EXIT.refused],
    ]);
    expect(records[1]?.error).toBe(
      `cannot load ip_vs_wrr: ip_vs_wrr is denied by ${policy}:3 (deny ip_vs_wrr)`,
    );
    expect(run.stderr).toContain(`exit status 3, stdout: , stderr: kmodload: ${records[1]?.error}`);
    const check = generate(['--check']);
    expect(check.status).toBe(1);
    expect(check.stderr).toBe(
      `kmodload: stale: ${SPEC} differs from what the policy and the module tree give now\n`,
    );
  });

  it('--unload-on-stop: each device also runs a poststop hook', () => {
    publish('default deny\nallow ip_vs* when source cdi\n', ['--unload-on-stop']);
    const before = readLog(log).length;
    expect(podmanRun(image, devices('ip_vs', 'ip_vs_wrr')).status).toBe(0);
    expect(newRecords(before).map((r) => [r.stage, r.status, r.request, r.exitStatus])).toEqual([
      ['createRuntime', 'creating', ['ip_vs'], 0],
      ['createRuntime', 'creating', ['ip_vs_wrr'], 0],
      ['poststop', 'stopped', [], 0],
      ['poststop', 'stopped', [], 0],
    ]);
  });

  it('the spec is 0644 and, right after it was written, fresh for --check', () => {
    publish('default deny\nallow ip_vs* when source cdi\n');
    expect(fs.statSync(SPEC).mode & 0o777).toBe(0o644);
    const fresh = generate(['--check']);
    expect([fresh.status, fresh.stderr, fresh.stdout]).toEqual([
      0,
      '',
      `fresh: ${SPEC}, ${DIGITS}\n`,
    ]);
  });
});

describe("Debian 13's podman 5.4 in a Debian 13 root", () => {
  let root: string;
  let binds: RootBind[];
  let output: string;
  // The hooks there read this modprobe.d, as the oracle does, not the root's (it has none).
  let modprobeDir: string;
  const IMAGE = 'localhost/kmodload-test-busybox';

  beforeAll(() => {
    root = trixiePodmanRoot();
    const cdi = path.join(scratch, 'cdi-5');
    const storage = path.join(scratch, 'storage-5');
    fs.mkdirSync(cdi);
    fs.mkdirSync(storage);
    output = path.join(cdi, 'kmodload.json');
    modprobeDir = path.join(scratch, 'modprobe.d-5');
    fs.mkdirSync(modprobeDir);
    binds = [
      ...installationBinds(fixture, scratch),
      [cdi, '/etc/cdi'],
      [storage, '/var/lib/containers'],
    ];
    const version = runInRoot(root, binds, ['podman', '--version']);
    expect(version.stdout).toMatch(/^podman version 5\.4\./);
    const imported = runInRoot(root, binds, ['podman', 'import', '-', IMAGE], busyboxTar(scratch));
    expect(imported.status).toBe(0);
  }, 900_000);

  function podman5(options: string[]): ReturnType<typeof spawnSync> {
    return runInRoot(root, binds, podmanRunCommand(IMAGE, options));
  }

  function publish5(policyText: string): void {
    publish(policyText, ['-C', modprobeDir], output);
  }

  it("two devices: both hooks run, each plan is modprobe's", () => {
    publish5('default deny\nallow ip_vs* when source cdi\n');
    const before = readLog(log).length;
    const run = podman5(devices('ip_vs', 'ip_vs_wrr'));
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe('container-ran\n');
    const records = newRecords(before);
    expect(records.map((r) => [r.stage, r.status, r.request, r.sources, r.exitStatus])).toEqual([
      ['createRuntime', 'creating', ['ip_vs'], { ip_vs: ['cdi'] }, 0],
      ['createRuntime', 'creating', ['ip_vs_wrr'], { ip_vs_wrr: ['cdi'] }, 0],
    ]);
    expect(records[0]?.plan.map((step) => step.path)).toEqual(
      modprobeInsmods(fixture, ['ip_vs'], modprobeDir),
    );
    expect(records[1]?.plan.map((step) => step.path)).toEqual(
      modprobeInsmods(fixture, ['ip_vs_wrr'], modprobeDir),
    );
  });

  it('with the annotation beside a device: podman 5 keeps its commas', () => {
    publish5(
      'default deny\nallow ip_vs* when source cdi\nallow dummy tun when source annotation\n',
    );
    const before = readLog(log).length;
    const run = podman5([
      ...devices('ip_vs'),
      '--annotation',
      'org.kmodload.kernel-modules=dummy,tun',
    ]);
    expect(run.stdout).toBe('container-ran\n');
    const [record] = newRecords(before);
    expect(record?.request).toEqual(['dummy', 'tun', 'ip_vs']);
    expect(record?.sources).toEqual({ dummy: ['annotation'], tun: ['annotation'], ip_vs: ['cdi'] });
  });

  it('an unpublished device is refused before the container exists', () => {
    publish5('default deny\nallow ip_vs* when source cdi\n');
    const before = readLog(log).length;
    const run = podman5(devices('ip_vs', 'xfs'));
    expect(run.status).not.toBe(0);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/unresolvable CDI devices .*kmodload\.io\/module=xfs/);
    expect(newRecords(before)).toEqual([]);
  });

  it('a module denied after the spec was made: the hook refuses it (exit 3)', () => {
    publish5('default deny\nallow ip_vs* when source cdi\n');
    fs.writeFileSync(policy, 'default deny\nallow ip_vs* when source cdi\ndeny ip_vs_wrr\n');
    const before = readLog(log).length;
    const run = podman5(devices('ip_vs_wrr'));
    expect(run.status).not.toBe(0);
    expect(run.stdout).toBe('');
    const [record] = newRecords(before);
    expect(record?.exitStatus).toBe(EXIT.refused);
    expect(record?.error).toBe(
      `cannot load ip_vs_wrr: ip_vs_wrr is denied by ${policy}:3 (deny ip_vs_wrr)`,
    );
    expect(run.stderr).toContain(`stderr: kmodload: ${record?.error}`);
  });
});
