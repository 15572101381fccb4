// The audit log under attack: a FIFO, a directory or a symlink at its path, a request naming
// thousands of modules. The hook never hangs, never loses the refusal's reason, never writes
// megabytes for one decision.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  admit,
  appendLogLine,
  auditLine,
  auditRecord,
  MAX_RECORD_BYTES,
  type AuditRecord,
  type ContainerLoader,
  type ContainerRequest,
} from '../../src/container/index';
import { EXIT, KmodloadError } from '../../src/errors';
import { isoTime } from '../../src/text';
import { installSources } from '../helpers/build';
import { writeBundle } from '../helpers/bundle';

let scratch: string;
let cli: string;
beforeAll(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-log-'));
  cli = installSources(path.join(scratch, 'pkg'));
}, 120_000);
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

function record(extra: Partial<AuditRecord> = {}): AuditRecord {
  return {
    ...auditRecord({
      id: 'c',
      dryRun: false,
      modules: [],
      started: process.hrtime.bigint(),
      warnings: [],
    }),
    ...extra,
  };
}

/** The hook as a runtime runs it, with `--log log`; resolves with its exit and stderr. */
function runHook(
  log: string,
  env: string[] = [],
): Promise<{ code: number | null; stderr: string }> {
  const bundle = writeBundle(fs.mkdtempSync(path.join(scratch, 'bundle-')), { process: { env } });
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, 'hook', '--state', 'prestart', '--log', log], {
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code) => resolve({ code, stderr }));
    child.stdin.end(JSON.stringify({ id: 'x', status: 'creating', pid: 1, bundle }));
  });
}

describe('the audit log', () => {
  it('is created 0640', () => {
    const log = path.join(scratch, 'new', 'hook.log');
    appendLogLine(log, record());
    expect(fs.statSync(log).mode & 0o777).toBe(0o640);
  });

  it('a FIFO at the log path: no hang, a warning on stderr, exit as if no log', async () => {
    const fifo = path.join(scratch, 'fifo.log');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    // No reader: the open fails at once (ENXIO) instead of waiting for one.
    expect(() => appendLogLine(fifo, record())).toThrow(/ENXIO/);
    const alone = await runHook(fifo);
    expect(alone.code).toBe(0);
    expect(alone.stderr).toMatch(/^kmodload: warning: cannot write log .*fifo\.log: ENXIO/);
    // With a reader (an attacker's), the open succeeds but nothing is written into it.
    const reader = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      expect(() => appendLogLine(fifo, record())).toThrow(/not a regular file/);
      const read = await runHook(fifo);
      expect(read.code).toBe(0);
      expect(read.stderr).toMatch(/cannot write log .*fifo\.log: not a regular file/);
      expect(fs.readSync(reader, Buffer.alloc(16))).toBe(0); // nothing was written into it
    } finally {
      fs.closeSync(reader);
    }
  });

  it('a directory or a symlink at the log path: a warning on stderr, the target untouched', async () => {
    const dir = path.join(scratch, 'dir.log');
    fs.mkdirSync(dir);
    const atDir = await runHook(dir);
    expect(atDir.code).toBe(0);
    expect(atDir.stderr).toMatch(/^kmodload: warning: cannot write log .*dir\.log: EISDIR/);
    const target = path.join(scratch, 'target');
    fs.writeFileSync(target, '');
    const link = path.join(scratch, 'link.log');
    fs.symlinkSync(target, link);
    const atLink = await runHook(link);
    expect(atLink.stderr).toMatch(/^kmodload: warning: cannot write log .*link\.log: ELOOP/);
    expect(fs.readFileSync(target, 'utf8')).toBe('');
  });

  it('a record past 64 KiB is summarised; the error is always whole', () => {
    const names = Array.from({ length: 5000 }, (_, i) => `module_number_${i}`);
    const reason = `refused: ${'why '.repeat(2000)}`;
    const big = record({
      request: names,
      plan: names.map((name) => ({
        request: name,
        name,
        kind: 'insmod',
        options: '',
        required: true,
      })),
      verdict: names.map((name, i) => ({
        request: name,
        module: name,
        role: 'target',
        verdict: i === 4000 ? 'deny' : 'allow',
        rule: 'default allow',
      })),
      results: [],
      error: reason,
      exitStatus: EXIT.refused,
    });
    expect(Buffer.byteLength(JSON.stringify(big))).toBeGreaterThan(MAX_RECORD_BYTES);
    const line = auditLine(big);
    expect(line.length).toBeLessThanOrEqual(MAX_RECORD_BYTES);
    const logged = JSON.parse(line.toString('utf8')) as AuditRecord;
    expect(logged.error).toBe(reason);
    expect(logged.summarised).toEqual({ request: 5000, plan: 5000, verdict: 5000, results: 0 });
    // What was denied comes first.
    expect(logged.verdict[0]).toMatchObject({ module: 'module_number_4000', verdict: 'deny' });
    expect(logged.plan.length).toBeLessThan(100);
    // A small record is left as it is.
    const small = record({ request: ['ip_vs'] });
    expect(auditLine(small).toString('utf8')).toBe(`${JSON.stringify(small)}\n`);
  });
});

describe("the record's time", () => {
  it('is written as toISOString() writes it, without it', () => {
    for (const ms of [0, 951868799999, 1e12 + 7, 253402300799999, Date.now()]) {
      const date = new Date(ms);
      expect(isoTime(date)).toBe(date.toISOString());
    }
    const before = Date.now();
    const { time } = record();
    expect(time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(Date.parse(time)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(time)).toBeLessThanOrEqual(Date.now());
  });
});

describe('max-modules before planning', () => {
  /** A loader that notes whether planning started. */
  function loader(): ContainerLoader & { planned: string[][] } {
    const planned: string[][] = [];
    return {
      planned,
      resolve: async (names) => {
        planned.push([...names]);
        throw new KmodloadError('stop here', EXIT.refused);
      },
      loadPlan: () => {
        throw new Error('never loads');
      },
    };
  }
  const request = (names: string[]): ContainerRequest => ({
    id: 'big',
    parts: [{ value: names.join(','), source: 'env', what: 'KERNEL_MODULES' }],
    annotations: {},
  });
  const policyFile = (text: string) => {
    const file = path.join(fs.mkdtempSync(path.join(scratch, 'policy-')), 'policy.conf');
    fs.writeFileSync(file, text);
    return file;
  };

  it('a request naming more modules than max-modules is refused unplanned, in a short record', async () => {
    const names = Array.from({ length: 4000 }, (_, i) => `m${i}`);
    const planner = loader();
    const decision = await admit(request(names), {
      loader: planner,
      policyFiles: [policyFile('default allow\n')],
    });
    expect(decision.exitStatus).toBe(EXIT.refused);
    expect(decision.message).toBe(
      'cannot load m0,m1,m2,m3,m4,m5,m6,m7,... (4000 names): the request names 4000 modules, more than max-modules 64 (the default)',
    );
    expect(planner.planned).toEqual([]);
    expect(decision.record.plan).toEqual([]);
    expect(auditLine(decision.record).length).toBeLessThanOrEqual(MAX_RECORD_BYTES);

    // A lower limit from the policy, under the default: refused too.
    const low = await admit(request(['a', 'b', 'c']), {
      loader: planner,
      policyFiles: [policyFile('max-modules 2\n')],
    });
    expect(low.message).toMatch(
      /the request names 3 modules, more than max-modules 2 \(.*policy\.conf:1\)$/,
    );
    // A policy allowing more: planned once the policy said so.
    const high = await admit(request(names.slice(0, 100)), {
      loader: planner,
      policyFiles: [policyFile('max-modules 100\n')],
    });
    expect(high.message).toMatch(/stop here/);
    expect(planner.planned.map((p) => p.length)).toEqual([3, 100]);
  });
});
