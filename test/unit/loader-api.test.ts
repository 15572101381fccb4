// The public API end to end over the real trees and the real planner, with a fake kernel.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EXIT,
  KmodloadError,
  load,
  loadPlan,
  moduleState,
  openModuleTree,
  parsePolicy,
  resolve,
  unload,
} from '../../src/index';
import { FakeKernel } from '../helpers/fake-kernel';
import type { KernelTree } from '../helpers/trees';
import { kernelTree } from '../helpers/trees';

let old: KernelTree;
let recent: KernelTree;
let emptyConfig: string;

beforeAll(() => {
  old = kernelTree('6.1');
  recent = kernelTree('6.12');
  emptyConfig = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-api-'));
});

afterAll(() => fs.rmSync(emptyConfig, { recursive: true, force: true }));

const on = (tree: KernelTree) => ({
  root: tree.root,
  kernelVersion: tree.version,
  configDirs: [emptyConfig],
  kernelCommandLine: '',
});

/** Module files in the order modprobe --show-depends lists them, each once. */
function modprobeOrder(tree: KernelTree, names: string[]): string[] {
  const out = spawnSync(
    'modprobe',
    ['-C', emptyConfig, '-d', tree.root, '-S', tree.version, '-a', '--show-depends', ...names],
    { encoding: 'utf8' },
  ).stdout;
  const paths = out
    .split('\n')
    .filter((line) => line.startsWith('insmod '))
    .map((line) => line.split(' ')[1] as string);
  return [...new Set(paths)];
}

describe('load() with a host policy', () => {
  it('a denied dependency: refused before any syscall; an allowed request loads', async () => {
    const kernel = new FakeKernel();
    const policy = parsePolicy(
      'default deny\nallow ip_vs*\ndeny nf_conntrack when source annotation\n',
    );
    await expect(
      load(['ip_vs'], { ...on(old), kernel, policy, requester: { source: 'annotation' } }),
    ).rejects.toMatchObject({
      exitStatus: EXIT.refused,
      message: /nf_conntrack \(a dependency of ip_vs\) is denied/,
    });
    expect(kernel.calls).toEqual([]);
    const result = await load(['ip_vs'], {
      ...on(old),
      kernel,
      policy,
      requester: { source: 'env' },
    });
    expect(result.ok).toBe(true);
    expect(result.verdict?.ok).toBe(true);
    expect(kernel.inserted()).toContain('ip_vs');
  });

  it('max-modules counts the module files of the plan, already loaded ones included', async () => {
    const plan = await resolve(['ip_vs', 'ip_vs_wrr'], on(old));
    const files = new Set(
      plan.requests.flatMap((r) =>
        r.probes.flatMap((p) => p.steps.filter((s) => s.kind === 'insmod').map((s) => s.name)),
      ),
    );
    // Every module but ip_vs_wrr is live: one insert is left, yet the plan names them all.
    const kernel = new FakeKernel();
    for (const name of files) if (name !== 'ip_vs_wrr') kernel.setState(name, 'live');
    const policy = parsePolicy(`max-modules ${files.size - 1}\n`);
    await expect(
      load(['ip_vs', 'ip_vs_wrr'], { ...on(old), kernel, policy }),
    ).rejects.toMatchObject({
      exitStatus: EXIT.refused,
      message: `cannot load ip_vs,ip_vs_wrr: the request needs ${files.size} modules, more than max-modules ${files.size - 1} (policy:1)`,
    });
    expect(kernel.calls).toEqual([]);
    const limit = parsePolicy(`max-modules ${files.size}\n`);
    const result = await load(['ip_vs', 'ip_vs_wrr'], { ...on(old), kernel, policy: limit });
    expect(result.verdict?.modules).toBe(files.size);
    expect(kernel.inserted()).toEqual(['ip_vs_wrr']);
  });

  it('resolve() gives the verdict beside the plan; loadPlan() takes it back', async () => {
    const policy = parsePolicy('deny nf_conntrack\n');
    const checked = await resolve(['ip_vs'], { ...on(old), policy });
    expect(Object.keys(checked)).toEqual(['plan', 'verdict']);
    // The plan is the same pure data as without a policy.
    expect(checked.plan).toEqual(await resolve(['ip_vs'], on(old)));
    expect(checked.verdict.ok).toBe(false);
    const kernel = new FakeKernel();
    await expect(
      loadPlan(checked.plan, { kernel, verdict: checked.verdict }),
    ).rejects.toMatchObject({
      exitStatus: EXIT.refused,
      message: /^cannot load ip_vs: nf_conntrack \(a dependency of ip_vs\) is denied/,
    });
    expect(kernel.calls).toEqual([]);
    // An open tree answers the same pair.
    const tree = await openModuleTree(on(old));
    expect(tree.resolve(['ip_vs'], { policy })).toEqual(checked);
    tree.close();
  });
});

describe('load()', () => {
  it('inserts what modprobe would, in its order, each module once (6.1, plain .ko)', async () => {
    const kernel = new FakeKernel();
    const result = await load(['ip_vs', 'ip_vs_wrr'], { ...on(old), kernel });
    expect(result.ok).toBe(true);
    const paths = kernel.calls.map((c) => (c.op === 'insertModule' ? c.path : ''));
    expect(paths).toEqual(modprobeOrder(old, ['ip_vs', 'ip_vs_wrr']));
    expect(result.plan.requests.map((r) => r.request)).toEqual(['ip_vs', 'ip_vs_wrr']);
  });

  it("6.12 .ko.xz: every insert gets the kernel's decompressors and the .ko.xz path", async () => {
    const kernel = new FakeKernel();
    kernel.compressionList = ['xz'];
    const result = await load(['ip_vs'], { ...on(recent), kernel });
    expect(result.ok).toBe(true);
    expect(kernel.calls.length).toBeGreaterThan(1);
    for (const call of kernel.calls) {
      expect(call).toMatchObject({ op: 'insertModule', flags: 0, kernelFormats: ['xz'] });
      expect(call.op === 'insertModule' && call.path.endsWith('.ko.xz')).toBe(true);
    }
  });

  it('the caller options go to the requested module only, after the configured ones', async () => {
    const kernel = new FakeKernel();
    await load(['ip_vs'], { ...on(old), kernel, extraOptions: { ip_vs: 'conn_tab_bits=12' } });
    const ipVs = kernel.calls.find((c) => c.name === 'ip_vs') as { params: string };
    expect(ipVs.params).toBe('conn_tab_bits=12');
    expect(
      kernel.calls.filter((c) => c.name !== 'ip_vs').every((c) => 'params' in c && c.params === ''),
    ).toBe(true);
  });

  it('rejects, loading nothing, when one name is unknown', async () => {
    const kernel = new FakeKernel();
    const error = await load(['ip_vs', 'ip_vs_nosuch'], { ...on(old), kernel }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(KmodloadError);
    expect((error as KmodloadError).exitStatus).toBe(EXIT.refused);
    expect((error as KmodloadError).message).toMatch(
      /^cannot load ip_vs_nosuch: module ip_vs_nosuch not found/,
    );
    expect(kernel.calls).toEqual([]);
  });

  it('rejects with EXIT.environment when the tree is missing', async () => {
    const error = await load(['ip_vs'], {
      root: path.join(emptyConfig, 'nothing'),
      kernelVersion: old.version,
      kernel: new FakeKernel(),
    }).catch((e: unknown) => e);
    expect((error as KmodloadError).exitStatus).toBe(EXIT.environment);
  });

  it('resolve() plans without touching the kernel', async () => {
    const plan = await resolve(['ip_vs'], on(old));
    expect(plan.kernelVersion).toBe(old.version);
    expect(plan.requests[0]?.probes[0]?.steps.at(-1)).toMatchObject({
      name: 'ip_vs',
      target: true,
    });
  });
});

describe('loadPlan() and openModuleTree()', () => {
  it('loadPlan performs a resolved plan exactly as load() would', async () => {
    const plan = await resolve(['ip_vs', 'ip_vs_wrr'], on(old));
    const viaPlan = new FakeKernel();
    const result = await loadPlan(plan, { kernel: viaPlan });
    expect(result.ok).toBe(true);
    expect(result.plan).toBe(plan);
    const viaLoad = new FakeKernel();
    await load(['ip_vs', 'ip_vs_wrr'], { ...on(old), kernel: viaLoad });
    expect(viaPlan.calls).toEqual(viaLoad.calls);
  });

  it('loadPlan refuses a plan with an error before any syscall', async () => {
    const plan = await resolve(['ip_vs', 'nosuch'], on(old));
    const kernel = new FakeKernel();
    const error = await loadPlan(plan, { kernel }).catch((e: unknown) => e);
    expect((error as KmodloadError).exitStatus).toBe(EXIT.refused);
    expect((error as KmodloadError).message).toMatch(
      /^cannot load nosuch: module nosuch not found/,
    );
    expect(kernel.calls).toEqual([]);
  });

  it('a tree opened once plans as resolve() does, until closed', async () => {
    const tree = await openModuleTree(on(old));
    expect(tree.kernelVersion).toBe(old.version);
    const expected = await resolve(['ip_vs', 'ip_vs_wrr'], on(old));
    expect(tree.resolve(['ip_vs', 'ip_vs_wrr'])).toEqual(expected);
    expect(tree.resolve(['ip_vs', 'ip_vs_wrr'])).toEqual(expected);
    tree.close();
    expect(() => tree.resolve(['ip_vs'])).toThrow(/closed/);
  });

  it("a kernel's compression list that cannot be read fails the compressed modules only", async () => {
    const kernel = new FakeKernel();
    kernel.compression = () =>
      Promise.reject(Object.assign(new Error('EIO: read'), { code: 'EIO' }));
    const result = await load(['ip_vs'], { ...on(recent), kernel });
    expect(result.ok).toBe(false);
    expect(kernel.calls).toEqual([]);
    expect(result.modules[0]?.error).toMatchObject({
      code: 'EIO',
      message: expect.stringContaining("cannot read the kernel's module compression"),
    });
  });
});

describe('unload() and moduleState()', () => {
  it('unload removes the module and the dependencies it left unused', async () => {
    const kernel = new FakeKernel();
    await load(['ip_vs'], { ...on(old), kernel });
    kernel.setRefcount('nf_conntrack', 1).setHolders('nf_conntrack', ['ip_vs']);
    for (const dep of ['nf_defrag_ipv4', 'nf_defrag_ipv6', 'libcrc32c']) {
      kernel.setRefcount(dep, 1).setHolders(dep, ['nf_conntrack']);
    }
    const result = await unload(['ip_vs'], { ...on(old), kernel });
    expect(result.ok).toBe(true);
    expect(kernel.deleted()).toEqual([
      'ip_vs',
      'nf_conntrack',
      'nf_defrag_ipv6',
      'nf_defrag_ipv4',
      'libcrc32c',
    ]);
    // libcrc32c was removed as a dependency, not probed: its crc32c softdeps stay, as modprobe.
    expect(kernel.state('crc32c_generic')).toBe('live');
  });

  it('unload refuses an unknown name', async () => {
    const error = await unload(['nosuch'], { ...on(old), kernel: new FakeKernel() }).catch(
      (e: unknown) => e,
    );
    expect((error as KmodloadError).exitStatus).toBe(EXIT.refused);
  });

  it('moduleState: builtin from the tree, else initstate, else absent', async () => {
    const builtin = fs
      .readFileSync(path.join(old.moduleDir, 'modules.builtin'), 'utf8')
      .split('\n')[0] as string;
    const name = path.basename(builtin, '.ko');
    const kernel = new FakeKernel().setState('ip_vs', 'live').setState('dummy', 'coming');
    expect(await moduleState(name, { ...on(old), kernel })).toBe('builtin');
    expect(await moduleState('ip_vs', { ...on(old), kernel })).toBe('live');
    expect(await moduleState('dummy', { ...on(old), kernel })).toBe('coming');
    expect(await moduleState('nf_conntrack', { ...on(old), kernel })).toBe('absent');
    await expect(moduleState('../x', { ...on(old), kernel })).rejects.toThrow(
      /invalid module name/,
    );
  });
});
