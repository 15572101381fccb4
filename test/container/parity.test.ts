// One decision path: the same container requests through the hook process (as a runtime runs
// it: state on stdin, config.json in the bundle) and through the library's admit() give the
// same decision record, field for field (time and duration aside), on the Debian 6.1 tree.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admit, type AuditRecord } from '../../src/container/index';
import { requestParts } from '../../src/hook/request';
import { installSources } from '../helpers/build';
import { writeBundle } from '../helpers/bundle';
import { REPO_ROOT, kernelTree, type KernelTree } from '../helpers/trees';

let tree: KernelTree;
let scratch: string;
let cli: string;
let policy: string;
let modprobeDir: string;

beforeAll(() => {
  tree = kernelTree('6.1');
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-parity-'));
  cli = installSources(path.join(scratch, 'pkg'));
  policy = path.join(scratch, 'policy.conf');
  fs.writeFileSync(policy, 'default deny\nallow ip_vs* dccp\ndeny xfs when annotation team=*\n');
  modprobeDir = path.join(scratch, 'modprobe.d');
  fs.mkdirSync(modprobeDir);
  fs.writeFileSync(path.join(modprobeDir, 'host.conf'), 'blacklist dccp\n');
}, 120_000);
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

interface Case {
  what: string;
  env?: string;
  annotations?: Record<string, string>;
  exitStatus: number;
}

const CASES: Case[] = [
  { what: 'allowed', env: 'ip_vs,ip_vs_wrr', exitStatus: 0 },
  {
    what: 'denied by the policy',
    annotations: { 'org.kmodload.kernel-modules': 'xfs', team: 'storage' },
    exitStatus: 3,
  },
  { what: "denied by the host's blocks", env: 'dccp', exitStatus: 3 },
  { what: 'nothing asked', exitStatus: 0 },
  { what: 'malformed', env: 'ip_vs,$(reboot)', exitStatus: 3 },
  { what: 'unknown', env: 'no_such_module', exitStatus: 3 },
];

/** The record without what differs between any two runs. */
function comparable(record: AuditRecord): Partial<AuditRecord> {
  const rest: Partial<AuditRecord> = { ...record };
  delete rest.time;
  delete rest.durationMs;
  return rest;
}

describe('the hook and admit() decide alike', () => {
  it.each(CASES)('$what', async (c) => {
    const dir = fs.mkdtempSync(path.join(scratch, 'case-'));
    const env = c.env === undefined ? [] : [`KERNEL_MODULES=${c.env}`];
    const bundle = writeBundle(dir, { process: { env }, annotations: c.annotations ?? {} });
    const id = `parity-${path.basename(dir)}`;
    const state = { ociVersion: '1.0.2', id, status: 'creating', pid: 4242, bundle };
    const log = path.join(dir, 'hook.log');
    const node = ['-n', '-d', tree.root, '-S', tree.version, '-C', modprobeDir, '--policy', policy];
    const hook = spawnSync(
      process.execPath,
      [
        cli,
        'hook',
        '--state',
        'prestart',
        '--log',
        log,
        '--state-dir',
        path.join(dir, 'state'),
        ...node,
      ],
      {
        input: JSON.stringify(state),
        encoding: 'utf8',
        env: { KMODLOAD_ADDON: path.join(REPO_ROOT, 'build', 'Release', 'kmodload.node') },
      },
    );
    expect(hook.status).toBe(c.exitStatus);
    const lines = fs.readFileSync(log, 'utf8').split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    const fromHook = JSON.parse(lines[0] as string) as AuditRecord;

    const config: { env?: string; annotation?: string; annotations: Record<string, string> } = {
      annotations: c.annotations ?? {},
    };
    if (c.env !== undefined) config.env = c.env;
    const annotation = config.annotations['org.kmodload.kernel-modules'];
    if (annotation !== undefined) config.annotation = annotation;
    const decided = await admit(
      {
        id,
        parts: requestParts(config),
        annotations: config.annotations,
        pid: 4242,
        stage: 'prestart',
        status: 'creating',
      },
      {
        dryRun: true,
        root: tree.root,
        kernelVersion: tree.version,
        configDirs: [modprobeDir],
        policyFiles: [policy],
        stateDir: path.join(dir, 'state'),
      },
    );
    expect(decided.exitStatus).toBe(c.exitStatus);
    expect(comparable(decided.record)).toEqual(comparable(fromHook));
    if (c.exitStatus !== 0) expect(hook.stderr).toBe(`kmodload: ${decided.message}\n`);
  });
});
