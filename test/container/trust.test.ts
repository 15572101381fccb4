// Files that a user other than root could write are never trusted (sshd's StrictModes): a
// writable policy, modprobe.d file, state directory or log directory refuses a load stage
// (exit 4, one line naming the path and the fix); a forged state directory unloads nothing.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  admit,
  release,
  type ContainerLoader,
  type ContainerRequest,
} from '../../src/container/index';
import { EXIT } from '../../src/errors';
import { collectGarbage, recordLoad } from '../../src/holds';
import { INSECURE_FILES_WARNING, untrustedReason } from '../../src/trust';
import { runHookCommand } from '../../src/cli/hook-command';
import { doctor } from '../../src/doctor/checks';
import { writeBundle } from '../helpers/bundle';
import { memoryIO } from '../helpers/cli-io';
import { FakeKernel } from '../helpers/fake-kernel';

const USER = 1000;
let scratch: string;
beforeAll(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-trust-'));
});
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

let count = 0;
function dir(label: string, mode = 0o755): string {
  const made = path.join(scratch, `${label}-${count++}`);
  fs.mkdirSync(made, { mode });
  fs.chmodSync(made, mode);
  return made;
}

/** A loader whose plan is empty and whose load loads nothing: only the checks matter here. */
const loader: ContainerLoader = {
  resolve: async (names) => ({
    moduleDir: '/t/lib/modules/6.1',
    kernelVersion: '6.1',
    requests: names.map((request) => ({ request, probes: [] })),
  }),
  loadPlan: async (plan) => ({ ok: true, plan, modules: [] }),
};

const request: ContainerRequest = {
  id: 'c',
  parts: [{ value: 'dummy', source: 'env', what: 'KERNEL_MODULES' }],
  annotations: {},
};

/** Options of a node whose every file is in order. */
function node(): {
  policyFiles: string[];
  configDirs: string[];
  stateDir: string;
  logFile: string;
  loader: ContainerLoader;
} {
  const etc = dir('etc');
  fs.writeFileSync(path.join(etc, 'policy.conf'), 'default allow\n');
  fs.mkdirSync(path.join(etc, 'modprobe.d'));
  fs.writeFileSync(path.join(etc, 'modprobe.d', 'host.conf'), 'blacklist dccp\n');
  return {
    policyFiles: [path.join(etc, 'policy.conf')],
    configDirs: [path.join(etc, 'modprobe.d')],
    stateDir: path.join(etc, 'state'),
    logFile: path.join(etc, 'log', 'hook.log'),
    loader,
  };
}

describe('untrustedReason', () => {
  it('owner and mode of the file and every directory above it, up to a sticky one', () => {
    const base = dir('base');
    const file = path.join(base, 'f');
    fs.writeFileSync(file, '');
    // Under /tmp (root's, sticky, world-writable): the walk ends there.
    expect(untrustedReason('the policy', file)).toBeUndefined();
    // A missing path behind a link (merged /usr: /lib -> usr/lib) is judged where it leads.
    const linked = path.join(dir('links'), 'lib');
    fs.symlinkSync(base, linked);
    expect(untrustedReason('modprobe.d', path.join(linked, 'modprobe.d'))).toBeUndefined();
    expect(untrustedReason('modprobe.d', '/lib/no-such-dir.d')).toBeUndefined();
    fs.chmodSync(file, 0o666);
    expect(untrustedReason('the policy', file)).toBe(
      `the policy ${file} is writable by others (chown root and chmod go-w ${file}, or remove it)`,
    );
    fs.chmodSync(file, 0o664);
    expect(untrustedReason('the policy', file)).toMatch(/is writable by its group/);
    fs.chmodSync(file, 0o644);
    fs.chownSync(file, USER, USER);
    expect(untrustedReason('the policy', file)).toMatch(/is owned by uid 1000, not root/);
    fs.chownSync(file, 0, 0);
    // A writable directory above it (not sticky): anyone could replace the file.
    fs.chmodSync(base, 0o777);
    expect(untrustedReason('the policy', file)).toMatch(
      new RegExp(`${base} is writable by others`),
    );
    fs.chmodSync(base, 0o1777);
    // Sticky, but the file's own directory: still refused when it is the one checked.
    expect(untrustedReason('the state directory', base)).toMatch(/writable by others/);
    fs.chmodSync(base, 0o755);
    // A symlink is followed to the real file, unless the path must hold none.
    const link = path.join(dir('links'), 'l');
    fs.symlinkSync(file, link);
    expect(untrustedReason('the policy', link)).toBeUndefined();
    expect(untrustedReason('the state directory', link, { noSymlink: true })).toMatch(
      /is a symlink/,
    );
    // Missing: its nearest directory decides.
    expect(untrustedReason('the log', path.join(base, 'missing', 'x'))).toBeUndefined();
  });
});

describe('untrustedReason with the directories found safe so far', () => {
  it('skips those, and still finds what lies below them', () => {
    const base = dir('shared');
    const sub = path.join(base, 'sub');
    fs.mkdirSync(sub);
    fs.writeFileSync(path.join(base, 'a'), '');
    fs.writeFileSync(path.join(sub, 'b'), '');
    const safe = new Set<string>();
    expect(untrustedReason('the policy', path.join(base, 'a'), {}, safe)).toBeUndefined();
    expect(safe.has(base)).toBe(true);
    expect(safe.has(sub)).toBe(false);
    // A directory below a safe one, writable, and a file writable by others: both found.
    fs.chmodSync(sub, 0o777);
    expect(untrustedReason('the policy', path.join(sub, 'b'), {}, safe)).toMatch(
      new RegExp(`${sub} is writable by others`),
    );
    fs.chmodSync(sub, 0o755);
    fs.chmodSync(path.join(sub, 'b'), 0o646);
    expect(untrustedReason('the policy', path.join(sub, 'b'), {}, safe)).toMatch(
      /b is writable by others/,
    );
    // A refused walk adds nothing: the next check of the same path refuses it again.
    expect(safe.has(sub)).toBe(false);
    // A safe directory is still refused as the file checked itself.
    fs.chmodSync(base, 0o1777);
    expect(untrustedReason('the state directory', base, {}, safe)).toMatch(/writable by others/);
    fs.chmodSync(base, 0o755);
  });
});

describe('load stages refuse untrusted files (exit 4); --insecure-files is logged', () => {
  const refused = async (options: ReturnType<typeof node>, pattern: RegExp) => {
    const decision = await admit(request, options);
    expect(decision.exitStatus).toBe(EXIT.environment);
    expect(decision.message).toMatch(pattern);
    expect(decision.message).not.toMatch(/\n/);
    return decision;
  };

  it('a trusted node loads', async () => {
    expect((await admit(request, node())).exitStatus).toBe(0);
  });

  it('a policy anyone can write, or owned by another user, or in a 0777 directory', async () => {
    const options = node();
    const policy = options.policyFiles[0] as string;
    fs.chmodSync(policy, 0o666);
    await refused(
      options,
      /^cannot load dummy: untrusted file: the policy .*policy\.conf is writable by others \(chown root and chmod go-w/,
    );
    fs.chmodSync(policy, 0o644);
    fs.chownSync(policy, USER, USER);
    await refused(options, /the policy .* is owned by uid 1000, not root/);
    fs.chownSync(policy, 0, 0);
    fs.chmodSync(path.dirname(policy), 0o777);
    await refused(options, /is writable by others/);
    // --insecure-files: used, and said so in the record.
    const insecure = await admit(request, { ...options, insecureFiles: true });
    expect(insecure.exitStatus).toBe(0);
    expect(insecure.record.warnings).toContain(INSECURE_FILES_WARNING);
  });

  it('a writable modprobe.d file, a log directory behind a symlink, a writable log', async () => {
    const options = node();
    const conf = path.join(options.configDirs[0] as string, 'host.conf');
    fs.chmodSync(conf, 0o666);
    await refused(options, /modprobe\.d file .*host\.conf is writable by group or others/);
    fs.chmodSync(conf, 0o644);
    // A link in modprobe.d is judged by its target: root's and read-only is fine, else not.
    const target = path.join(dir('elsewhere'), 'shared.conf');
    fs.writeFileSync(target, 'blacklist rds\n', { mode: 0o644 });
    const link = path.join(options.configDirs[0] as string, 'shared.conf');
    fs.symlinkSync(target, link);
    expect((await admit(request, options)).exitStatus).toBe(0);
    fs.chmodSync(target, 0o666);
    await refused(options, /modprobe\.d file .*shared\.conf -> .*shared\.conf is writable/);
    fs.rmSync(link);

    const real = dir('real-log');
    const linked = path.join(dir('log-link'), 'log');
    fs.symlinkSync(real, linked);
    await refused(
      { ...options, logFile: path.join(linked, 'hook.log') },
      /the log's directory .* is a symlink/,
    );
    fs.mkdirSync(path.dirname(options.logFile));
    fs.writeFileSync(options.logFile, '', { mode: 0o666 });
    fs.chmodSync(options.logFile, 0o666);
    await refused(options, /the log .*hook\.log is writable by group or others/);
  });

  it('a forged state directory: load refused, release and gc unload nothing', async () => {
    const options = node();
    fs.mkdirSync(path.join(options.stateDir, 'holds'), { recursive: true });
    // A user wrote inserted.json naming a host module.
    fs.writeFileSync(
      path.join(options.stateDir, 'inserted.json'),
      JSON.stringify({
        version: 1,
        next: 2,
        modules: [{ name: 'e1000e', seq: 1, since: '2026-01-01T00:00:00Z', by: 'x' }],
      }),
    );
    // Container c holds nothing (its load was refused): its release may unload what nobody holds.
    await recordLoad({ stateDir: options.stateDir }, { id: 'c' }, ['dummy'], [], true);
    fs.chownSync(options.stateDir, USER, USER);
    await refused(options, /the state directory .* is owned by uid 1000, not root/);
    const kernel = new FakeKernel().setState('e1000e', 'live');
    // A hold file lets the release go on to the lock.
    const gone = await release({ id: 'c' }, { ...options, kernel, unloadOnStop: true });
    expect(kernel.deleted()).toEqual([]);
    expect(gone.record.exitStatus).toBe(0);
    expect(gone.warnings.join('\n')).toMatch(/untrusted file: the state directory/);
    await expect(
      collectGarbage({ stateDir: options.stateDir }, { unload: true, kernel }),
    ).rejects.toMatchObject({ exitStatus: EXIT.environment });
    expect(kernel.deleted()).toEqual([]);

    // Root's directory, but the user's file in it, or a lock that is a symlink.
    fs.chownSync(options.stateDir, 0, 0);
    fs.chownSync(path.join(options.stateDir, 'inserted.json'), USER, USER);
    await refused(options, /the state file .*inserted\.json is owned by uid 1000/);
    fs.rmSync(path.join(options.stateDir, 'inserted.json'));
    fs.rmSync(path.join(options.stateDir, 'lock'));
    fs.symlinkSync('/dev/null', path.join(options.stateDir, 'lock'));
    await refused(options, /the state file .*lock is a symlink/);
    fs.rmSync(path.join(options.stateDir, 'lock'));
    expect((await admit(request, options)).exitStatus).toBe(0);
  });

  it('kmodload doctor reports it; the hook exits 4 with one line, or 0 and a warning with --insecure-files', async () => {
    const options = node();
    const policy = options.policyFiles[0] as string;
    fs.chmodSync(policy, 0o666);
    const checks = await doctor({
      policyFiles: options.policyFiles,
      configDirs: options.configDirs,
    });
    expect(checks.find((c) => c.name === 'file trust')).toMatchObject({
      level: 'fail',
      reason: expect.stringMatching(
        /^load stages refuse: untrusted file: the policy .* is writable by others/,
      ),
    });
    fs.chmodSync(policy, 0o644);
    expect(
      (await doctor({ policyFiles: options.policyFiles, configDirs: options.configDirs })).find(
        (c) => c.name === 'file trust',
      )?.level,
    ).toBe('ok');

    fs.chmodSync(policy, 0o666);
    const bundle = writeBundle(dir('bundle'), { process: { env: ['KERNEL_MODULES=dummy'] } });
    const state = JSON.stringify({ id: 'h', status: 'creating', pid: 1, bundle });
    const args = [
      '--state',
      'prestart',
      '--policy',
      policy,
      '-C',
      options.configDirs[0] as string,
      '--state-dir',
      options.stateDir,
    ];
    const strict = memoryIO(state);
    expect(await runHookCommand(args, strict.io, { loader })).toBe(EXIT.environment);
    expect(strict.err()).toMatch(/^kmodload: cannot load dummy: untrusted file: the policy .*\n$/);
    const loose = memoryIO(state);
    expect(await runHookCommand([...args, '--insecure-files'], loose.io, { loader })).toBe(0);
    expect(loose.err()).toBe(`kmodload: warning: ${INSECURE_FILES_WARNING}\n`);
  });
});
