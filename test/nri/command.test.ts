// `kmodload nri` as a process: bad command lines are one line and exit 2 (4 for a bad
// NRI_PLUGIN_SOCKET), and a dry-run plugin registers with a runtime, decides a container, logs
// the record to --log and stderr, and exits 0 on SIGTERM.

import { spawn, spawnSync } from 'node:child_process';
import type net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/container/index';
import { installSources } from '../helpers/build';
import { FakeRuntime, RuntimeConnection, asking } from '../helpers/nri-runtime';
import { REPO_ROOT, kernelTree, type KernelTree } from '../helpers/trees';

let tree: KernelTree;
let scratch: string;
let cli: string;
const ENV = { KMODLOAD_ADDON: path.join(REPO_ROOT, 'build', 'Release', 'kmodload.node') };

beforeAll(() => {
  tree = kernelTree('6.1');
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-nri-cli-'));
  cli = installSources(path.join(scratch, 'pkg'));
}, 120_000);
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

function run(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [cli, 'nri', ...args], {
    encoding: 'utf8',
    env: { ...ENV, ...env },
    timeout: 20_000,
  });
}

describe('kmodload nri', () => {
  it('--help; bad usage is one line, exit 2; a bad NRI_PLUGIN_SOCKET exit 4', () => {
    const help = run(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: kmodload nri /);
    for (const [args, message] of [
      [['--idx', '1'], "--idx '1': two digits"],
      [['--name', 'a b'], "--name 'a b'"],
      [['extra'], "unexpected argument 'extra'"],
      [['--bogus'], "unknown option '--bogus'"],
    ] as const) {
      const result = run([...args]);
      expect(result.status).toBe(2);
      expect(result.stderr).toContain(message);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
    const fd = run([], { NRI_PLUGIN_SOCKET: 'three' });
    expect(fd.status).toBe(4);
    expect(fd.stderr).toBe(
      'kmodload: NRI_PLUGIN_SOCKET is not a file descriptor number: "three"\n',
    );
  });

  it('registers, decides a container (dry run), logs it, and stops on SIGTERM', async () => {
    const runtime = await FakeRuntime.listen(path.join(scratch, 'nri', 'nri.sock'));
    const log = path.join(scratch, 'nri.log');
    const policy = path.join(scratch, 'policy.conf');
    fs.writeFileSync(policy, 'default deny\nallow ip_vs*\n');
    const child = spawn(
      process.execPath,
      [
        cli,
        'nri',
        '--socket',
        runtime.socketPath,
        '--idx',
        '42',
        '--log',
        log,
        '--policy',
        policy,
        '-n',
        '-d',
        tree.root,
        '-S',
        tree.version,
      ],
      { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      const conn = await runtime.nextConnection();
      expect(await conn.registered).toEqual({ name: 'kmodload', idx: '42' });
      expect(await conn.configure()).toBe(0x608);
      await conn.synchronize([], []);
      const pod = { id: 'p', name: 'web', namespace: 'default' };
      await conn.createContainer(pod, asking('c1', 'ip_vs,ip_vs_wrr'));
      await expect(conn.createContainer(pod, asking('c2', 'dummy'))).rejects.toThrow(
        /^kmodload: cannot load dummy: dummy is not allowed for this container \(default deny, /,
      );
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
      await runtime.close();
    }
    const records = fs
      .readFileSync(log, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as AuditRecord);
    expect(records.map((r) => [r.id, r.stage, r.exitStatus, r.dryRun])).toEqual([
      ['c1', 'CreateContainer', 0, true],
      ['c2', 'CreateContainer', 3, true],
    ]);
    expect(records[0]?.plan.map((step) => step.name)).toContain('ip_vs_wrr');
    // The same records on stderr, for the runtime's journal, between the plugin's own lines.
    const lines = stderr.trim().split('\n');
    expect(lines[0]).toMatch(/^kmodload: nri: registered with containerd .* as 42-kmodload$/);
    expect(lines.filter((line) => line.startsWith('{')).map((l) => JSON.parse(l).id)).toEqual([
      'c1',
      'c2',
    ]);
    expect(lines.at(-1)).toBe('kmodload: nri: stopped by SIGTERM');
  });

  it('started by the runtime (no arguments, fd 3): its flags come from the configuration', async () => {
    const policy = path.join(scratch, 'pre-policy.conf');
    fs.writeFileSync(policy, 'default deny\nallow tun\n');
    const start = () => {
      const child = spawn(process.execPath, [cli], {
        stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
        env: { ...ENV, NRI_PLUGIN_SOCKET: '3', NRI_PLUGIN_NAME: 'kmodload', NRI_PLUGIN_IDX: '10' },
      });
      let stderr = '';
      child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = new Promise<{ status: number | null; stderr: string }>((resolve) =>
        child.on('close', (status) => resolve({ status, stderr })),
      );
      return { child, exited, conn: new RuntimeConnection(child.stdio[3] as net.Socket) };
    };

    const good = start();
    expect(await good.conn.registered).toEqual({ name: 'kmodload', idx: '10' });
    const config = `# /etc/nri/conf.d/10-kmodload.conf\n--policy ${policy} -n\n-d ${tree.root} -S ${tree.version}\n`;
    expect(await good.conn.configure('containerd', '1.7.24', config)).toBe(0x608);
    const pod = { id: 'p', name: 'vpn', namespace: 'default' };
    await good.conn.createContainer(pod, {
      id: 'c1',
      podSandboxId: 'p',
      env: ['KERNEL_MODULES=tun'],
    });
    await expect(
      good.conn.createContainer(pod, {
        id: 'c2',
        podSandboxId: 'p',
        env: ['KERNEL_MODULES=ip_vs'],
      }),
    ).rejects.toThrow(/^kmodload: cannot load ip_vs: ip_vs is not allowed/);
    good.conn.socket.end();
    const ended = await good.exited;
    expect(ended.status).toBe(0);
    expect(ended.stderr).toContain('"dryRun":true');

    // A configuration it cannot read refuses the registration, with the reason.
    const bad = start();
    await expect(bad.conn.configure('containerd', '1.7.24', '--bogus\n')).rejects.toThrow(
      "unknown option '--bogus' (see kmodload nri --help)",
    );
    bad.conn.socket.end();
    await bad.exited;
  });
});
