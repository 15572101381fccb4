// Containers passing module parameters, through the hook and the container core, on plans of
// the real Debian 6.1 tree and a fake kernel that shows in /sys/module what the real modules
// show (ip_vs's conn_tab_bits is 0444; dummy's numdummies is declared with mode 0 and has no
// file): the policy's params rules, the holds that remember who asked what, the refusals of
// other values while a container holds a module, and what `kmodload status` says.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPlan, resolve, status } from '../../src/api';
import { main } from '../../src/cli/main';
import { EXIT } from '../../src/errors';
import { handleHook, type HookLoader, type HookOptions } from '../../src/hook/handler';
import { memoryIO } from '../helpers/cli-io';
import { writeBundle } from '../helpers/bundle';
import { FakeKernel } from '../helpers/fake-kernel';
import { kernelTree, treeDependencies, type KernelTree } from '../helpers/trees';

let tree: KernelTree;
let scratch: string;
beforeAll(() => {
  tree = kernelTree('6.1');
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-params-'));
});
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

let count = 0;
function newDir(label: string): string {
  const dir = path.join(scratch, `${label}-${count++}`);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

const POLICY = [
  'default deny',
  'allow dummy ip_vs* nf_conntrack',
  'params dummy numdummies=[0-9]',
  'params ip_vs conn_tab_bits=1[0-9]',
  'params nf_conntrack hashsize=*',
];

let pidCount = 2000;

/** A node: the hook with the fake kernel, a policy, modprobe.d and a state directory. */
function node(policy: string[] = POLICY, modprobe = '') {
  const dir = newDir('node');
  const kernel = new FakeKernel()
    .dependsOn(treeDependencies(tree))
    .exposeParameters('ip_vs', ['conn_tab_bits'])
    .exposeParameters('nf_conntrack', ['hashsize']);
  fs.writeFileSync(path.join(dir, 'policy.conf'), policy.join('\n'));
  fs.mkdirSync(path.join(dir, 'modprobe.d'));
  fs.writeFileSync(path.join(dir, 'modprobe.d', 'host.conf'), modprobe);
  const stateDir = path.join(dir, 'state');
  const procRoot = path.join(dir, 'proc');
  const loader: HookLoader = {
    resolve: (names, options) => resolve(names, options),
    loadPlan: (plan, options) => loadPlan(plan, { ...options, kernel }),
  };
  const options = (extra: Partial<HookOptions> = {}): HookOptions => ({
    root: tree.root,
    kernelVersion: tree.version,
    configDirs: [path.join(dir, 'modprobe.d')],
    policyFiles: [path.join(dir, 'policy.conf')],
    stateDir,
    procRoot,
    kernel,
    loader,
    ...extra,
  });
  return {
    kernel,
    stateDir,
    procRoot,
    /** Starts container `id` asking `KERNEL_MODULES=request`. */
    start(id: string, request: string, stage: HookOptions['stage'] = 'prestart') {
      const pid = pidCount++;
      fs.mkdirSync(path.join(procRoot, String(pid)), { recursive: true });
      const stat = `${pid} (sh) S 1 ${Array.from({ length: 17 }, () => '0').join(' ')} ${pid}\n`;
      fs.writeFileSync(path.join(procRoot, String(pid), 'stat'), stat);
      const bundle = writeBundle(path.join(dir, 'bundles', id), {
        process: { env: [`KERNEL_MODULES=${request}`] },
      });
      return handleHook({ id, status: 'creating', pid, bundle }, options({ stage }));
    },
    stop(id: string, unloadOnStop = false) {
      const state = { id, status: 'stopped', bundle: path.join(dir, 'bundles', id) };
      return handleHook(state, options({ stage: 'poststop', unloadOnStop }));
    },
  };
}

describe('module parameters from containers', () => {
  it('dummy numdummies=3: inserted with it; other values refused while a container holds it; unverifiable after', async () => {
    const n = node();
    const a = await n.start('A', 'dummy numdummies=3');
    expect(a.exitStatus).toBe(0);
    expect(n.kernel.calls).toMatchObject([
      { op: 'insertModule', name: 'dummy', params: 'numdummies=3' },
    ]);
    // The record shows what was asked and the rule that allowed it.
    expect(a.record.params).toEqual({ dummy: 'numdummies=3' });
    expect(a.record.verdict.filter((d) => d.param)).toEqual([
      {
        request: 'dummy',
        module: 'dummy',
        role: 'target',
        param: 'numdummies=3',
        verdict: 'allow',
        rule: expect.stringMatching(/policy\.conf:3 \(params dummy numdummies=\[0-9\]\)$/),
      },
    ]);
    expect(a.record.plan).toMatchObject([{ name: 'dummy', options: 'numdummies=3' }]);

    const b = await n.start('B', 'dummy numdummies=5');
    expect(b.exitStatus).toBe(EXIT.refused);
    expect(b.message).toBe(
      'cannot load dummy: live with numdummies=3, asked 5 (container A holds it with that value: wait until it stops, or ask for the same)',
    );
    // The same value: sysfs cannot show it, A's hold says kmodload loaded it so.
    const c = await n.start('C', 'dummy numdummies=3');
    expect(c.exitStatus).toBe(0);
    expect(c.modules.map((m) => `${m.status} ${m.name}`)).toEqual(['already-live dummy']);
    // Nobody asking parameters takes the module as it is.
    expect((await n.start('D', 'dummy')).exitStatus).toBe(0);
    expect(n.kernel.calls).toHaveLength(1);

    const report = await status({ stateDir: n.stateDir, procRoot: n.procRoot, kernel: n.kernel });
    // Holds are listed in the order of their files' names (hashes of the ids).
    for (const module of report.modules) module.holders.sort((x, y) => x.id.localeCompare(y.id));
    expect(report.modules).toEqual([
      {
        name: 'dummy',
        state: 'live',
        refcnt: 0,
        inserted: true,
        params: { params: 'numdummies=3', by: 'A' },
        holders: [
          { id: 'A', since: expect.any(String), request: 'dummy', params: 'numdummies=3' },
          { id: 'C', since: expect.any(String), request: 'dummy', params: 'numdummies=3' },
          { id: 'D', since: expect.any(String), request: 'dummy' },
        ],
      },
    ]);
    // The CLI's line: this machine's /sys has no dummy, its /proc none of the containers.
    const cli = memoryIO();
    expect(await main(['status', '--state-dir', n.stateDir], cli.io)).toBe(0);
    expect(cli.out()).toMatch(
      /^dummy: not loaded; inserted by kmodload with numdummies=3 \(asked by A\); held by no container\n/,
    );

    // Once the containers that asked are gone (the module stays), nothing vouches for the value.
    for (const id of ['A', 'C', 'D']) expect((await n.stop(id)).exitStatus).toBe(0);
    const e = await n.start('E', 'dummy numdummies=5');
    expect(e.exitStatus).toBe(EXIT.refused);
    expect(e.message).toBe(
      'cannot load dummy: live, and /sys/module/dummy/parameters does not show numdummies: cannot verify numdummies=5 (unload it first, or ask without it)',
    );
    expect(e.record.error).toBe(e.message);
    expect(n.kernel.calls).toHaveLength(1);
  });

  it('ip_vs conn_tab_bits=12, then 14: refused while held, then by what sysfs shows; unload on stop', async () => {
    const n = node();
    expect((await n.start('A', 'ip_vs conn_tab_bits=12')).exitStatus).toBe(0);
    expect(n.kernel.calls.find((c) => c.name === 'ip_vs')).toMatchObject({
      params: 'conn_tab_bits=12',
    });
    const b = await n.start('B', 'ip_vs conn_tab_bits=14');
    expect(b.message).toBe(
      'cannot load ip_vs: live with conn_tab_bits=12, asked 14 (container A holds it with that value: wait until it stops, or ask for the same)',
    );
    expect((await n.stop('A')).exitStatus).toBe(0);
    const c = await n.start('C', 'ip_vs conn_tab_bits=14');
    expect(c.exitStatus).toBe(EXIT.refused);
    expect(c.message).toBe(
      'cannot load ip_vs: live with conn_tab_bits=12, asked 14 (unload it first, or ask for the live value)',
    );
    // A refusal holds nothing and leaves no hold behind.
    const report = await status({ stateDir: n.stateDir, kernel: n.kernel });
    expect(report.modules.flatMap((m) => m.holders)).toEqual([]);
    // The live value is what it asks: allowed.
    expect((await n.start('D', 'ip_vs conn_tab_bits=12')).exitStatus).toBe(0);
    const stop = await n.stop('D', true);
    expect(stop.exitStatus).toBe(0);
    expect(n.kernel.loaded()).toEqual([]);
  });

  it('a second load stage of the same container (prestart, then createRuntime) finds its own value', async () => {
    const n = node();
    expect((await n.start('A', 'dummy numdummies=3', 'prestart')).exitStatus).toBe(0);
    const again = await n.start('A', 'dummy numdummies=3', 'createRuntime');
    expect(again.exitStatus).toBe(0);
    expect(again.modules.map((m) => `${m.status} ${m.name}`)).toEqual(['already-live dummy']);
  });

  it('a parameter the policy does not name, or a value it does not allow: refused, nothing loaded', async () => {
    const n = node();
    const unnamed = await n.start('A', 'dummy numdummies=3 foo=1');
    expect(unnamed.exitStatus).toBe(EXIT.refused);
    expect(unnamed.message).toBe(
      'cannot load dummy: parameter foo=1 is not allowed for this container (no params rule names it; needed: params dummy foo=1)',
    );
    const value = await n.start('B', 'ip_vs conn_tab_bits=20');
    expect(value.message).toMatch(
      /^cannot load ip_vs: parameter conn_tab_bits=20 is not allowed for this container \(.*policy\.conf:4 \(params ip_vs conn_tab_bits=1\[0-9\]\) allows other values; needed: params ip_vs conn_tab_bits=20\)$/,
    );
    expect(value.record.verdict.find((d) => d.param)).toMatchObject({ verdict: 'deny' });
    expect(n.kernel.calls).toEqual([]);
  });

  it('two containers at once with other values: the second is refused, not raced', async () => {
    const n = node();
    const paused = n.kernel.pauseInsert('dummy');
    const first = n.start('A', 'dummy numdummies=3');
    await paused.reached;
    const second = await n.start('B', 'dummy numdummies=5');
    expect(second.message).toBe(
      'cannot load dummy: being loaded with numdummies=3, asked 5 (for container A: wait until it stops, or ask for the same)',
    );
    paused.resume();
    expect((await first).exitStatus).toBe(0);
  });

  it("modprobe.d's options that differ from a live module only warn; on-param-conflict refuse refuses them", async () => {
    const modprobe = 'options nf_conntrack hashsize=262144\n';
    const n = node(POLICY, modprobe);
    n.kernel.setState('nf_conntrack', 'live').setParameter('nf_conntrack', 'hashsize', '65536');
    const a = await n.start('A', 'ip_vs');
    expect(a.exitStatus).toBe(0);
    const warning =
      "ip_vs: nf_conntrack is live with hashsize=65536, the host's options (modprobe.d) ask 262144: the kernel keeps the live value";
    expect(a.warnings).toContain(warning);
    expect(a.record.warnings).toContain(warning);

    const strict = node([...POLICY, 'on-param-conflict refuse'], modprobe);
    strict.kernel
      .setState('nf_conntrack', 'live')
      .setParameter('nf_conntrack', 'hashsize', '65536');
    const b = await strict.start('B', 'ip_vs');
    expect(b.exitStatus).toBe(EXIT.refused);
    expect(b.message).toBe(
      "cannot load ip_vs: nf_conntrack is live with hashsize=65536, the host's options (modprobe.d) ask 262144 (unload it first, or make the host's options match)",
    );
  });

  it("on-param-conflict warn: a container's other value is a warning, and the module stays as it is", async () => {
    const n = node([...POLICY, 'on-param-conflict warn']);
    n.kernel.setState('nf_conntrack', 'live').setParameter('nf_conntrack', 'hashsize', '65536');
    const a = await n.start('A', 'nf_conntrack hashsize=262144');
    expect(a.exitStatus).toBe(0);
    expect(a.warnings).toContain(
      'nf_conntrack: live with hashsize=65536, asked 262144: the kernel keeps the live value',
    );
    expect(n.kernel.calls).toEqual([]);
  });

  it('the hook refuses a hostile request before anything is read', async () => {
    const n = node();
    const r = await n.start('A', 'dummy numdummies=$(reboot)');
    expect(r.exitStatus).toBe(EXIT.refused);
    expect(r.message).toMatch(
      /^cannot load dummy: invalid parameter "numdummies=\$\(reboot\)" in KERNEL_MODULES entry/,
    );
    expect(r.record.plan).toEqual([]);
  });
});
