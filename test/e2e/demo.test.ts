// `npm run demo` as a person runs it (README quick start): one boot of Debian 6.1 under qemu,
// checked from what it prints. The lsmod lines must be the real kernel's: the seed's modules,
// with sizes and users, none of them before the container; the hook's log line must show
// the request loaded.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { kernelByFlavour, PROJECT_ROOT } from './harness';

interface Finished {
  status: number | null;
  stdout: string;
  stderr: string;
}

function npmRunDemo(): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn('npm', ['run', 'demo'], {
      cwd: PROJECT_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** What `lsmod | grep ip_vs` shows on a host after the seed's request (nf_defrag_ipv4 and
 *  the crc32c implementation are loaded too, but no ip_vs module uses them). */
const SEED_LSMOD = ['ip_vs_wrr', 'ip_vs', 'nf_conntrack', 'nf_defrag_ipv6', 'libcrc32c'];

const LSMOD_PROMPT = '  guest# lsmod | grep ip_vs';

let run: Finished;
let version: string;

/** The lines printed under the Nth `lsmod | grep ip_vs` prompt. */
function lsmodBlock(n: number): string[] {
  const lines = run.stdout.split('\n');
  const starts = lines.flatMap((line, i) => (line === LSMOD_PROMPT ? [i] : []));
  const at = starts[n];
  if (at === undefined) throw new Error(`no lsmod prompt #${n + 1} in:\n${run.stdout}`);
  const block: string[] = [];
  for (const line of lines.slice(at + 1)) {
    if (!line.startsWith('    ')) break;
    block.push(line.trim());
  }
  return block;
}

describe('npm run demo', () => {
  beforeAll(async () => {
    version = (await kernelByFlavour('6.1')).version;
    run = await npmRunDemo();
    console.log(`npm run demo: exit ${String(run.status)}; ${run.stdout.trim().split('\n').pop()}`);
  }, 900_000);

  it('finishes with status 0 and a progress line per phase, in order', () => {
    expect(run.status, `stdout:\n${run.stdout}\nstderr:\n${run.stderr}`).toBe(0);
    const phases = ['fetching', 'building the image', 'booting', 'running'].map((phase, i) =>
      run.stdout.indexOf(`[${i + 1}/4] ${phase}`),
    );
    expect(phases.every((at) => at >= 0)).toBe(true);
    expect([...phases].sort((a, b) => a - b)).toEqual(phases);
    expect(run.stdout).toContain(`Linux ${version} is up`);
  });

  it('shows no ip_vs module before the container', () => {
    expect(lsmodBlock(0)).toEqual(['(nothing: no ip_vs module is loaded)']);
  });

  it("starts the container and shows the real kernel's lsmod lines after it", () => {
    expect(run.stdout).toContain('container started, KERNEL_MODULES=ip_vs,ip_vs_wrr');
    const rows = lsmodBlock(1).map((line) => line.split(/\s+/));
    expect(rows.map((r) => r[0]).sort()).toEqual([...SEED_LSMOD].sort());
    for (const row of rows) {
      // name, size in bytes, use count, users: as the kernel's /proc/modules gives them.
      expect(Number(row[1]), row.join(' ')).toBeGreaterThan(4096);
      expect(row[2], row.join(' ')).toMatch(/^\d+$/);
    }
    const usersOf = (name: string): string => rows.find((r) => r[0] === name)?.[3] ?? '';
    expect(usersOf('ip_vs').split(',')).toContain('ip_vs_wrr');
    expect(usersOf('nf_conntrack').split(',')).toContain('ip_vs');
    expect(usersOf('libcrc32c').split(',').sort()).toEqual(['ip_vs', 'nf_conntrack']);
  });

  it("prints the hook's log line: the request, every module loaded, exit status 0", () => {
    const lines = run.stdout.split('\n');
    const title = lines.findIndex((l) => l.startsWith("  the hook's log line"));
    expect(title, run.stdout).toBeGreaterThanOrEqual(0);
    const record = JSON.parse(lines[title + 1]!.trim()) as {
      id: string;
      stage: string;
      request: string[];
      results: Array<{ name: string; status: string }>;
      exitStatus: number;
    };
    expect(record.id).toBe('kmodload-demo');
    expect(record.stage).toBe('createRuntime');
    expect(record.request).toEqual(['ip_vs', 'ip_vs_wrr']);
    expect(record.exitStatus).toBe(0);
    expect(record.results.every((r) => r.status === 'loaded')).toBe(true);
    const loaded = record.results.map((r) => r.name);
    for (const name of [...SEED_LSMOD, 'nf_defrag_ipv4']) expect(loaded).toContain(name);
  });
});

describe('npm run demo, refusals (one line, documented status)', () => {
  const demo = path.join(PROJECT_ROOT, 'scripts', 'demo', 'demo.js');

  it('an argument: usage, status 2', () => {
    const r = spawnSync(process.execPath, [demo, '--kernel'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('kmodload demo: unexpected argument --kernel (usage: npm run demo)\n');
  });

  it('a package missing, not root: names it in one line, status 4', () => {
    // dpkg-query answering "not installed" for runc, as on a machine without it; as an
    // ordinary user, so the demo cannot install it itself.
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-demo-test-'));
    try {
      fs.writeFileSync(
        path.join(bin, 'dpkg-query'),
        '#!/bin/sh\ncase "$*" in *runc*) exit 1 ;; esac\nexec /usr/bin/dpkg-query "$@"\n',
      );
      fs.chmodSync(bin, 0o755);
      fs.chmodSync(path.join(bin, 'dpkg-query'), 0o755);
      const r = spawnSync(
        'setpriv',
        ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, demo],
        {
          encoding: 'utf8',
          env: { ...process.env, HOME: bin, PATH: `${bin}:${process.env.PATH}` },
        },
      );
      expect(r.stderr).toBe(
        'kmodload demo: missing Debian packages: runc (run as root, or apt-get install them)\n',
      );
      expect(r.status).toBe(4);
    } finally {
      fs.rmSync(bin, { recursive: true, force: true });
    }
  });

  it('no apt: says what it needs, status 4', () => {
    const r = spawnSync(process.execPath, [demo], {
      encoding: 'utf8',
      env: { ...process.env, PATH: '/nonexistent' },
    });
    expect(r.status).toBe(4);
    expect(r.stderr).toMatch(/^kmodload demo: needs a Debian system \(apt-get, dpkg\)[^\n]*\n$/);
  });
});
