// A plugin the runtime starts itself: a process with the connected socket on fd 3 (a unix
// socket pair, as NRI makes it) and its identity in the environment. It speaks on that socket
// alone and ends with it, never dialling the runtime's socket.

import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { buildSync } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntimeConnection } from '../helpers/nri-runtime';
import { REPO_ROOT } from '../helpers/trees';

let dir: string;
let script: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-nri-child-'));
  script = path.join(dir, 'nri-child.js');
  buildSync({
    entryPoints: [path.join(REPO_ROOT, 'test', 'helpers', 'nri-child.ts')],
    outfile: script,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    logLevel: 'warning',
  });
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

interface Started {
  child: ChildProcess;
  connection: RuntimeConnection;
  /** Everything the process printed, once it has exited, and its exit status. */
  exited: Promise<{ status: number | null; output: string[] }>;
}

function startPlugin(): Started {
  const child = spawn(process.execPath, [script], {
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    env: { NRI_PLUGIN_SOCKET: '3', NRI_PLUGIN_NAME: 'kmodload', NRI_PLUGIN_IDX: '10' },
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ status: number | null; output: string[] }>((resolve) =>
    child.on('close', (status) => resolve({ status, output: output.trimEnd().split('\n') })),
  );
  const connection = new RuntimeConnection(child.stdio[3] as net.Socket);
  return { child, connection, exited };
}

describe('a plugin started by the runtime', () => {
  it('registers on fd 3, answers, and exits when the runtime closes the socket', async () => {
    const { connection, exited } = startPlugin();
    expect(await connection.registered).toEqual({ name: 'kmodload', idx: '10' });
    expect(await connection.configure('containerd', '1.7.24')).toBe(0x608);
    const pod = { id: 'pod-1', namespace: 'team-a' };
    await connection.createContainer(pod, { id: 'ctr-1', podSandboxId: 'pod-1' });
    await expect(
      connection.createContainer(pod, {
        id: 'ctr-2',
        annotations: { 'test/refuse': 'not allowed' },
      }),
    ).rejects.toMatchObject({ code: 2, message: 'not allowed' });
    await connection.stopContainer(pod, { id: 'ctr-1' });
    await connection.stateChange(11, pod, { id: 'ctr-1' });
    connection.socket.end();
    expect(await exited).toEqual({
      status: 0,
      output: [
        'log: registered with containerd 1.7.24 as 10-kmodload',
        'create ctr-1',
        'create ctr-2',
        'stop ctr-1',
        'remove ctr-1',
        'log: connection to the runtime ended: closed by the runtime',
        'done',
      ],
    });
  });

  it('exits after Shutdown', async () => {
    const { connection, exited } = startPlugin();
    await connection.registered;
    await connection.configure();
    await connection.shutdown();
    const { status, output } = await exited;
    expect(status).toBe(0);
    expect(output.slice(1)).toEqual([
      'log: connection to the runtime ended: the runtime shut down',
      'done',
    ]);
  });

  it('exits with a one-line failure on garbage', async () => {
    const { connection, exited } = startPlugin();
    await connection.registered;
    connection.writeRaw(Buffer.from('0000000000000000', 'hex'));
    const { status, output } = await exited;
    expect(status).toBe(1);
    expect(output).toEqual([
      'log: connection to the runtime ended: malformed frame from the runtime: connection id 0 is reserved',
      'failed: malformed frame from the runtime: connection id 0 is reserved',
    ]);
  });
});
