// The NRI plugin deciding containers through the container core, driven over the wire by the
// fake runtime: the module tree is the real Debian 6.1 one, the kernel a fake that tracks what
// is live. Create (allowed, refused by the policy, malformed, nothing asked, per-container
// annotation, namespace condition), stop and remove with unload-on-stop, and Synchronize
// rebuilding the holds after a restart.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPlan, resolve } from '../../src/api';
import type { AuditRecord, NodeOptions } from '../../src/container/index';
import { listHolds } from '../../src/holds';
import { startNriPlugin, type NriPlugin } from '../../src/nri/plugin';
import { nriHandlers } from '../../src/nri/service';
import { FakeKernel } from '../helpers/fake-kernel';
import { FakeRuntime, type ContainerSpec, type PodSpec } from '../helpers/nri-runtime';
import { kernelTree, treeDependencies, type KernelTree } from '../helpers/trees';

let tree: KernelTree;
let scratch: string;
beforeAll(() => {
  tree = kernelTree('6.1');
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-nri-service-'));
});
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

let count = 0;
function newDir(label: string): string {
  const dir = path.join(scratch, `${label}-${count++}`);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

// What kmod's modprobe loads for the seed on this tree (the differential suite proves it).
const SEED = [
  'crc32c_generic',
  'crc32c_intel',
  'ip_vs',
  'ip_vs_wrr',
  'libcrc32c',
  'nf_conntrack',
  'nf_defrag_ipv4',
  'nf_defrag_ipv6',
];

/** A node: the plugin connected to a fake runtime, over the core with a fake kernel. */
async function node(kernel = new FakeKernel().dependsOn(treeDependencies(tree))) {
  const dir = newDir('node');
  const policy = path.join(dir, 'policy.conf');
  fs.writeFileSync(
    policy,
    ['default deny', 'allow ip_vs* tun', 'allow dummy when namespace kube-*', 'deny xfs'].join(
      '\n',
    ),
  );
  fs.mkdirSync(path.join(dir, 'modprobe.d'));
  const options: NodeOptions = {
    root: tree.root,
    kernelVersion: tree.version,
    configDirs: [path.join(dir, 'modprobe.d')],
    policyFiles: [policy],
    stateDir: path.join(dir, 'state'),
    unloadOnStop: true,
    kernel,
    loader: { resolve, loadPlan: (plan, o) => loadPlan(plan, { ...o, kernel }) },
  };
  const runtime = await FakeRuntime.listen(path.join(dir, 'nri.sock'));
  const records: AuditRecord[] = [];
  const start = (): NriPlugin =>
    startNriPlugin({
      socketPath: runtime.socketPath,
      name: 'kmodload',
      idx: '10',
      handlers: nriHandlers(options, (record) => records.push(record)),
      log: () => undefined,
      retry: { initialDelayMs: 10, maxDelayMs: 50 },
    });
  return { kernel, options, runtime, records, start };
}

const pod = (id: string, extra: PodSpec = {}): PodSpec => ({
  id,
  name: `pod-${id}`,
  uid: `uid-${id}`,
  namespace: 'default',
  ...extra,
});
const container = (id: string, podId: string, extra: ContainerSpec = {}): ContainerSpec => ({
  id,
  podSandboxId: podId,
  name: 'main',
  ...extra,
});

describe('kmodload nri over the container core', () => {
  it('create loads what the hook would, refusals fail the creation, stop unloads', async () => {
    const n = await node();
    const plugin = n.start();
    try {
      const conn = await n.runtime.nextConnection();
      await conn.configure();
      await conn.synchronize([], []);

      // A: the env; B: the pod annotation, for every container of the pod.
      const a = pod('a');
      await conn.createContainer(
        a,
        container('a1', 'a', { env: ['KERNEL_MODULES=ip_vs,ip_vs_wrr'] }),
      );
      const b = pod('b', { annotations: { 'org.kmodload.kernel-modules': 'ip_vs ip_vs_wrr' } });
      await conn.createContainer(b, container('b1', 'b'));
      expect(n.kernel.loaded().sort()).toEqual([...SEED].sort());
      const created = n.records.filter((r) => r.stage === 'CreateContainer');
      expect(created.map((r) => [r.id, r.request, r.exitStatus])).toEqual([
        ['a1', ['ip_vs', 'ip_vs_wrr'], 0],
        ['b1', ['ip_vs', 'ip_vs_wrr'], 0],
      ]);
      expect(created[0]?.annotations).toEqual({
        'io.kubernetes.pod.namespace': 'default',
        'io.kubernetes.pod.name': 'pod-a',
      });
      const holds = await listHolds(n.options);
      expect(holds.map((h) => [h.id, h.via, h.pid]).sort()).toEqual([
        ['a1', 'nri', null],
        ['b1', 'nri', null],
      ]);

      // The per-container annotation: only the container of that name.
      const c = pod('c', { annotations: { 'org.kmodload.kernel-modules/container.vpn': 'tun' } });
      await conn.createContainer(c, container('c1', 'c', { name: 'web' }));
      expect(n.kernel.state('tun')).toBeUndefined();
      await conn.createContainer(c, container('c2', 'c', { name: 'vpn' }));
      expect(n.kernel.state('tun')).toBe('live');

      // Refused by the policy, malformed, namespace-scoped: the creation fails with the line.
      const refusals: Array<[PodSpec, ContainerSpec, RegExp]> = [
        [
          pod('d'),
          container('d1', 'd', { env: ['KERNEL_MODULES=xfs'] }),
          /^kmodload: cannot load xfs: xfs is denied by .*policy.conf:4 \(deny xfs\)$/,
        ],
        [
          pod('e'),
          container('e1', 'e', { env: ['KERNEL_MODULES=ip_vs,$(reboot)'] }),
          /^kmodload: cannot load "\$\(reboot\)": invalid module name in KERNEL_MODULES/,
        ],
        [
          pod('f'),
          container('f1', 'f', { env: ['KERNEL_MODULES=a', 'KERNEL_MODULES=b'] }),
          /^kmodload: .*KERNEL_MODULES is set twice/,
        ],
        [pod('g'), container('g1', 'g', { env: ['KERNEL_MODULES=dummy'] }), /default deny/],
      ];
      for (const [p, c1, message] of refusals) {
        await expect(conn.createContainer(p, c1)).rejects.toThrow(message);
      }
      expect(n.kernel.state('xfs')).toBeUndefined();
      expect(n.kernel.state('dummy')).toBeUndefined();
      await conn.createContainer(
        pod('h', { namespace: 'kube-system' }),
        container('h1', 'h', { env: ['KERNEL_MODULES=dummy'] }),
      );
      expect(n.kernel.state('dummy')).toBe('live');

      // Nothing asked: allowed, recorded, nothing loaded.
      await conn.createContainer(pod('i'), container('i1', 'i'));
      expect(n.records.at(-1)).toMatchObject({ id: 'i1', request: [], exitStatus: 0 });

      // Stop A: B still holds the seed. Stop B (and remove it): the seed goes.
      await conn.stopContainer(a, container('a1', 'a'));
      expect(n.kernel.state('ip_vs')).toBe('live');
      await conn.stopContainer(b, container('b1', 'b'));
      await conn.stateChange(11, b, container('b1', 'b'));
      for (const name of SEED) expect(n.kernel.state(name)).toBeUndefined();
      const released = n.records.filter((r) => r.stage === 'StopContainer');
      expect(released.map((r) => [r.id, r.release?.released])).toEqual([
        ['a1', true],
        ['b1', true],
      ]);
    } finally {
      await plugin.stop();
      await n.runtime.close();
    }
  });

  it('Synchronize after a restart: running containers keep (or get) their holds, gone ones release', async () => {
    const n = await node();
    let plugin = n.start();
    const a = pod('a');
    const a1 = container('a1', 'a', { env: ['KERNEL_MODULES=ip_vs_wrr'], state: 3 });
    const z = pod('z');
    const z1 = container('z1', 'z', { env: ['KERNEL_MODULES=tun'], state: 3 });
    try {
      let conn = await n.runtime.nextConnection();
      await conn.configure();
      await conn.synchronize([], []);
      await conn.createContainer(a, a1);
      await conn.createContainer(z, z1);
      // The plugin goes away; meanwhile z stops, and tun is unloaded by someone by hand.
      await plugin.stop();
      n.kernel.setState('ip_vs_wrr', 'live');
      plugin = n.start();
      conn = await n.runtime.nextConnection();
      await conn.configure();
      // The runtime knows a1 (running) and a new b1 that was created while the plugin was down.
      const b1 = container('b1', 'a', { name: 'side', env: ['KERNEL_MODULES=tun'], state: 3 });
      await conn.synchronize([a], [a1, b1]);
      const holds = await listHolds(n.options);
      expect(holds.map((h) => h.id).sort()).toEqual(['a1', 'b1']);
      expect(n.kernel.state('tun')).toBe('live');
      const synced = n.records.filter((r) => r.stage === 'synchronize');
      expect(synced.map((r) => [r.id, r.release ? 'released' : 'admitted'])).toEqual([
        ['z1', 'released'],
        ['b1', 'admitted'],
      ]);
    } finally {
      await plugin.stop();
      await n.runtime.close();
    }
  });

  it('never decides on a stale policy or modprobe.d: edits count from the next container', async () => {
    const dir = newDir('edits');
    const policy = path.join(dir, 'policy.conf');
    const modprobe = path.join(dir, 'modprobe.d');
    fs.mkdirSync(modprobe);
    fs.writeFileSync(policy, 'default deny\nallow tun dummy\n');
    const records: AuditRecord[] = [];
    const handlers = nriHandlers(
      {
        root: tree.root,
        kernelVersion: tree.version,
        configDirs: [modprobe],
        policyFiles: [policy],
        dryRun: true,
        stateDir: path.join(dir, 'state'),
      },
      (record) => records.push(record),
    );
    const p = {
      id: 'p',
      name: 'p',
      uid: 'u',
      namespace: 'default',
      labels: {},
      annotations: {},
    };
    const asking = (id: string, names: string) => ({
      id,
      podSandboxId: 'p',
      name: 'main',
      state: 1,
      labels: {},
      annotations: {},
      args: [],
      env: [`KERNEL_MODULES=${names}`],
    });
    await handlers.createContainer(p, asking('c1', 'tun'));
    fs.writeFileSync(policy, 'default deny\nallow dummy\n');
    await expect(handlers.createContainer(p, asking('c2', 'tun'))).rejects.toThrow(
      /tun is not allowed/,
    );
    await handlers.createContainer(p, asking('c3', 'dummy'));
    // The host blacklists dummy: the kept tree is read again.
    fs.writeFileSync(path.join(modprobe, 'host.conf'), 'blacklist dummy\n');
    await expect(handlers.createContainer(p, asking('c4', 'dummy'))).rejects.toThrow(
      /cannot load dummy: blacklisted on this host/,
    );
    expect(records.map((r) => r.exitStatus)).toEqual([0, 3, 0, 3]);
  });
});
