// The hooks of a generated spec, run as the runtime runs them when a container asks for two
// devices (`--device kmodload.io/module=ip_vs --device kmodload.io/module=ip_vs_wrr`): the
// Debian 6.1 tree, a fake kernel. Each hook asks for its own module with source cdi; the
// second finds what it shares with the first live and inserts only its own; one hold records
// both requests; of the two poststop hooks, the first releases and the second finds no hold.
// Also `kmodload hook --module` on its own: its usage, and the policy checked at run time.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPlan, resolve } from '../../src/api';
import { generateCdiSpecs, type CdiHook, type CdiSpec } from '../../src/cdi/index';
import { runHookCommand } from '../../src/cli/hook-command';
import type { AuditRecord } from '../../src/container/audit';
import type { ContainerLoader } from '../../src/container/options';
import { EXIT } from '../../src/errors';
import { listHolds } from '../../src/holds/index';
import { writeBundle } from '../helpers/bundle';
import { memoryIO } from '../helpers/cli-io';
import { FakeKernel } from '../helpers/fake-kernel';
import { kernelTree, treeDependencies, type KernelTree } from '../helpers/trees';

let tree: KernelTree;
let scratch: string;
beforeAll(() => {
  tree = kernelTree('6.1');
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-cdi-hook-'));
});
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

let count = 0;
interface Node {
  dir: string;
  policy: string;
  log: string;
  stateDir: string;
  kernel: FakeKernel;
  loader: ContainerLoader;
  spec: CdiSpec;
}

/** A host: a policy, a spec generated for it (hooks with --unload-on-stop), a fake kernel. */
async function node(policyText: string): Promise<Node> {
  const dir = path.join(scratch, `node-${count++}`);
  fs.mkdirSync(dir);
  const policy = path.join(dir, 'policy.conf');
  fs.writeFileSync(policy, policyText);
  const log = path.join(dir, 'hook.log');
  const stateDir = path.join(dir, 'state');
  const kernel = new FakeKernel().dependsOn(treeDependencies(tree));
  const { specs } = await generateCdiSpecs({
    root: tree.root,
    kernelVersion: tree.version,
    policyFiles: [policy],
    wrapperPath: '/usr/local/libexec/kmodload/kmodload-hook',
    nodeArguments: [
      '--log',
      log,
      '--policy',
      policy,
      '--state-dir',
      stateDir,
      '-d',
      tree.root,
      '-S',
      tree.version,
    ],
    unloadOnStop: true,
  });
  const loader: ContainerLoader = {
    resolve,
    loadPlan: (plan, options) => loadPlan(plan, { ...options, kernel }),
  };
  return { dir, policy, log, stateDir, kernel, loader, spec: specs.main as CdiSpec };
}

function hooksOf(host: Node, device: string): CdiHook[] {
  const found = host.spec.devices.find((d) => d.name === device);
  if (!found) throw new Error(`no device ${device}`);
  return found.containerEdits.hooks;
}

/** Runs a spec's hook entry as runc would: its args after argv[0] "kmodload" and "hook", the
 *  container's state on stdin. */
async function runHook(
  host: Node,
  hook: CdiHook,
  state: Record<string, unknown>,
): Promise<{ status: number; err: string }> {
  expect(hook.args.slice(0, 2)).toEqual(['kmodload', 'hook']);
  const memory = memoryIO(JSON.stringify(state));
  const status = await runHookCommand(hook.args.slice(2), memory.io, {
    loader: host.loader,
    kernel: host.kernel,
  });
  return { status, err: memory.err() };
}

function records(host: Node): AuditRecord[] {
  return fs
    .readFileSync(host.log, 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as AuditRecord);
}

function container(host: Node, id: string, env: string[] = []) {
  const bundle = writeBundle(path.join(host.dir, id), { process: { args: ['/bin/sh'], env } });
  const state = (status: string) => ({
    ociVersion: '1.0.2-dev',
    id,
    status,
    // A live process: the hold is not swept as stale while the test runs.
    pid: process.pid,
    bundle,
  });
  return { creating: state('creating'), stopped: state('stopped') };
}

describe('two CDI devices in one container', () => {
  it('each hook loads its module; the second inserts only its own; one hold with both', async () => {
    const host = await node('default deny\nallow ip_vs ip_vs_wrr when source cdi\n');
    const { creating, stopped } = container(host, 'c1');
    const [ipvsLoad, ipvsStop] = hooksOf(host, 'ip_vs') as [CdiHook, CdiHook];
    const [wrrLoad, wrrStop] = hooksOf(host, 'ip_vs_wrr') as [CdiHook, CdiHook];

    expect(await runHook(host, ipvsLoad, creating)).toEqual({ status: EXIT.ok, err: '' });
    const first = host.kernel.inserted();
    expect(first).toContain('ip_vs');
    expect(first).toContain('nf_conntrack');
    expect(first).not.toContain('ip_vs_wrr');

    expect(await runHook(host, wrrLoad, creating)).toEqual({ status: EXIT.ok, err: '' });
    // Only its own module went in: what it shares with ip_vs was live already.
    expect(host.kernel.inserted()).toEqual([...first, 'ip_vs_wrr']);

    // The same device's hook again (a second createRuntime): nothing to insert at all.
    expect(await runHook(host, ipvsLoad, creating)).toEqual({ status: EXIT.ok, err: '' });
    expect(host.kernel.inserted()).toEqual([...first, 'ip_vs_wrr']);

    const [hold, ...otherHolds] = await listHolds({ stateDir: host.stateDir });
    expect(otherHolds).toEqual([]);
    expect(hold?.id).toBe('c1');
    expect(hold?.requested).toEqual(['ip_vs', 'ip_vs_wrr']);
    expect(hold?.modules.map((m) => m.name).sort()).toEqual([...first, 'ip_vs_wrr'].sort());

    const loads = records(host);
    expect(loads.map((r) => [r.request, r.sources, r.exitStatus])).toEqual([
      [['ip_vs'], { ip_vs: ['cdi'] }, 0],
      [['ip_vs_wrr'], { ip_vs_wrr: ['cdi'] }, 0],
      [['ip_vs'], { ip_vs: ['cdi'] }, 0],
    ]);
    expect(loads[1]?.results.find((r) => r.name === 'ip_vs')?.status).toBe('already-live');
    expect(loads[1]?.verdict.find((d) => d.module === 'ip_vs_wrr')?.rule).toBe(
      `${host.policy}:2 (allow ip_vs ip_vs_wrr when source cdi)`,
    );

    // poststop, once per device: the first releases and unloads, the second finds no hold.
    expect(await runHook(host, ipvsStop, stopped)).toEqual({ status: EXIT.ok, err: '' });
    expect(host.kernel.deleted().sort()).toEqual([...first, 'ip_vs_wrr'].sort());
    expect(await runHook(host, wrrStop, stopped)).toEqual({ status: EXIT.ok, err: '' });
    expect(host.kernel.deleted()).toHaveLength(first.length + 1);
    const [released, again] = records(host).slice(3);
    expect(released?.release?.released).toBe(true);
    expect(again?.stage).toBe('poststop');
    expect(again?.release).toBeUndefined();
    expect(await listHolds({ stateDir: host.stateDir })).toEqual([]);
  });

  it("the container's own KERNEL_MODULES still counts, with its source", async () => {
    const host = await node('default deny\nallow ip_vs* dummy\n');
    const { creating } = container(host, 'c2', ['KERNEL_MODULES=dummy']);
    const [load] = hooksOf(host, 'ip_vs') as [CdiHook];
    expect((await runHook(host, load, creating)).status).toBe(EXIT.ok);
    const [record] = records(host);
    expect(record?.request).toEqual(['dummy', 'ip_vs']);
    expect(record?.sources).toEqual({ dummy: ['env'], ip_vs: ['cdi'] });
  });

  it('a policy edited after the spec was made: the hook refuses (exit 3), nothing inserted', async () => {
    const host = await node('default deny\nallow ip_vs*\n');
    fs.writeFileSync(host.policy, 'default deny\nallow ip_vs*\ndeny ip_vs_wrr\n');
    const { creating } = container(host, 'c3');
    const [load] = hooksOf(host, 'ip_vs_wrr') as [CdiHook];
    const run = await runHook(host, load, creating);
    expect(run.status).toBe(EXIT.refused);
    expect(run.err).toBe(
      `kmodload: cannot load ip_vs_wrr: ip_vs_wrr is denied by ${host.policy}:3 (deny ip_vs_wrr)\n`,
    );
    expect(host.kernel.inserted()).toEqual([]);
    expect(records(host)[0]?.exitStatus).toBe(EXIT.refused);
  });
});

describe('kmodload hook --module', () => {
  it('one module name per --module: anything else is bad usage (exit 2), one line', async () => {
    for (const value of ['a,b', 'a b', '', '$(reboot)', 'x'.repeat(56)]) {
      const memory = memoryIO('{}');
      const status = await runHookCommand(['--module', value], memory.io);
      expect([value, status]).toEqual([value, EXIT.usage]);
      expect(memory.err()).toMatch(/^kmodload: .*\(see kmodload hook --help\)\n$/);
    }
  });

  it("'source cdi' conditions see names from --module only", async () => {
    const host = await node('default deny\nallow ip_vs when source cdi\n');
    const { creating } = container(host, 'c4', ['KERNEL_MODULES=ip_vs']);
    const [load] = hooksOf(host, 'ip_vs') as [CdiHook];
    // Asked through the env too: an allow needs every source to satisfy it.
    const run = await runHook(host, load, creating);
    expect(run.status).toBe(EXIT.refused);
    expect(run.err).toMatch(/ip_vs is not allowed for this container \(default deny/);
    expect(records(host)[0]?.sources).toEqual({ ip_vs: ['env', 'cdi'] });
  });
});
