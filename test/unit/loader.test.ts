import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT, KmodloadError } from '../../src/errors';
import { executePlan } from '../../src/loader/load';
import { failureSummary } from '../../src/loader/summary';
import type { InitState } from '../../src/kernel/kernel';
import type { ModuleResult } from '../../src/loader/types';
import type { ProbeStep } from '../../src/planner/plan';
import { FakeKernel, insertFailure, systemError } from '../helpers/fake-kernel';
import {
  insmod,
  install,
  ipVsPlan,
  ipVsSteps,
  ipVsWrrSteps,
  plan,
  probe,
  request,
} from '../helpers/plans';
import type { KernelTree } from '../helpers/trees';
import { kernelTree } from '../helpers/trees';

let tree: KernelTree;
let tmp: string;

beforeAll(() => {
  tree = kernelTree('6.1');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-loader-'));
});

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function statuses(modules: ModuleResult[]): string[] {
  return modules.map((m) => `${m.status} ${m.name}`);
}

const IP_VS_ORDER = [
  'crc32c_intel',
  'crc32c_generic',
  'libcrc32c',
  'nf_defrag_ipv4',
  'nf_defrag_ipv6',
  'nf_conntrack',
  'ip_vs',
];

describe('executePlan: order and kernel state', () => {
  it('inserts every module in plan order, flags 0, with the options', async () => {
    const kernel = new FakeKernel();
    const p = ipVsPlan(tree);
    const target = p.requests[0]?.probes[0]?.steps.at(-1) as ProbeStep;
    target.options = 'conn_tab_bits=12';
    const result = await executePlan(p, { kernel });
    expect(result.ok).toBe(true);
    expect(kernel.inserted()).toEqual(IP_VS_ORDER);
    expect(kernel.calls.every((c) => c.op === 'insertModule' && c.flags === 0)).toBe(true);
    expect(kernel.calls.at(-1)).toMatchObject({ params: 'conn_tab_bits=12', path: target.path });
    expect(statuses(result.modules)).toEqual(IP_VS_ORDER.map((n) => `loaded ${n}`));
    expect(result.modules[0]).toMatchObject({ request: 'ip_vs', required: false });
    expect(result.modules.at(-1)).toMatchObject({ required: true, options: 'conn_tab_bits=12' });
  });

  it('skips live modules and reports them as already live', async () => {
    const kernel = new FakeKernel().setState('libcrc32c', 'live').setState('nf_conntrack', 'live');
    const result = await executePlan(ipVsPlan(tree), { kernel });
    expect(result.ok).toBe(true);
    expect(kernel.inserted()).not.toContain('nf_conntrack');
    expect(kernel.inserted()).not.toContain('libcrc32c');
    expect(statuses(result.modules)).toContain('already-live nf_conntrack');
  });

  it('does nothing at all when the requested module itself is live (as modprobe)', async () => {
    const kernel = new FakeKernel().setState('ip_vs', 'live');
    const result = await executePlan(ipVsPlan(tree), { kernel });
    expect(result.ok).toBe(true);
    expect(kernel.calls).toEqual([]);
    expect(statuses(result.modules)).toEqual(['already-live ip_vs']);
  });

  it('inserts a coming module anyway; the kernel answers EEXIST when it is done', async () => {
    const kernel = new FakeKernel()
      .setState('nf_conntrack', 'coming')
      .fail('nf_conntrack', 'EEXIST');
    const result = await executePlan(ipVsPlan(tree), { kernel });
    expect(kernel.inserted()).toContain('nf_conntrack');
    expect(result.ok).toBe(true);
    expect(statuses(result.modules)).toContain('already-live nf_conntrack');
    expect(statuses(result.modules)).toContain('loaded ip_vs');
  });

  it('takes EEXIST from a loader that won the race as success and goes on', async () => {
    const kernel = new FakeKernel().raceOn('libcrc32c').raceOn('ip_vs');
    const result = await executePlan(ipVsPlan(tree), { kernel });
    expect(result.ok).toBe(true);
    expect(kernel.inserted()).toEqual(IP_VS_ORDER);
    expect(statuses(result.modules)).toContain('already-live libcrc32c');
    expect(statuses(result.modules)).toContain('already-live ip_vs');
    expect(result.modules.every((m) => m.error === undefined)).toBe(true);
  });

  it('reports builtin steps without a syscall', async () => {
    const kernel = new FakeKernel();
    const steps: ProbeStep[] = [
      { name: 'crc32c', kind: 'builtin', options: '', required: true, target: true },
    ];
    const result = await executePlan(plan(tree, [request('crc32c', [probe('crc32c', steps)])]), {
      kernel,
    });
    expect(result.ok).toBe(true);
    expect(kernel.calls).toEqual([]);
    expect(statuses(result.modules)).toEqual(['builtin crc32c']);
  });

  it('does nothing for a builtin target, not even its softdeps (as modprobe)', async () => {
    const kernel = new FakeKernel();
    const steps: ProbeStep[] = [
      insmod(tree, 'crc32c_generic', { required: false }),
      { name: 'ext4', kind: 'builtin', options: '', required: true, target: true },
    ];
    const result = await executePlan(plan(tree, [request('ext4', [probe('ext4', steps)])]), {
      kernel,
    });
    expect(result.ok).toBe(true);
    expect(kernel.calls).toEqual([]);
    expect(statuses(result.modules)).toEqual(['builtin ext4']);
  });

  it('loads a module shared by several requests once', async () => {
    const kernel = new FakeKernel();
    const p = plan(tree, [
      request('ip_vs', [probe('ip_vs', ipVsSteps(tree))]),
      request('ip_vs_wrr', [probe('ip_vs_wrr', ipVsWrrSteps(tree))]),
    ]);
    const result = await executePlan(p, { kernel });
    expect(result.ok).toBe(true);
    expect(kernel.inserted()).toEqual([...IP_VS_ORDER, 'ip_vs_wrr']);
    expect(result.modules.map((m) => m.name)).toEqual([...IP_VS_ORDER, 'ip_vs_wrr']);
    expect(result.modules.at(-1)?.request).toBe('ip_vs_wrr');
  });
});

describe('executePlan: failures', () => {
  it('a soft dependency failing (ENODEV) is recorded and not fatal', async () => {
    const kernel = new FakeKernel().fail('crc32c_intel', 'ENODEV');
    const result = await executePlan(ipVsPlan(tree), { kernel });
    expect(result.ok).toBe(true);
    expect(kernel.inserted()).toEqual(IP_VS_ORDER);
    const intel = result.modules[0];
    expect(intel).toMatchObject({ name: 'crc32c_intel', status: 'failed', required: false });
    expect(intel?.error).toMatchObject({ code: 'ENODEV', errno: 19 });
    expect(intel?.error?.message).toMatch(/No such device/);
    expect(statuses(result.modules).at(-1)).toBe('loaded ip_vs');
  });

  it('a hard dependency failing (ENOEXEC) stops its probe and fails the call', async () => {
    const kernel = new FakeKernel().fail('nf_conntrack', 'ENOEXEC');
    const result = await executePlan(ipVsPlan(tree), { kernel });
    expect(result.ok).toBe(false);
    expect(kernel.inserted()).toEqual(IP_VS_ORDER.slice(0, 6));
    const failed = result.modules.find((m) => m.status === 'failed');
    expect(failed).toMatchObject({ name: 'nf_conntrack', required: true });
    expect(failed?.error).toMatchObject({ code: 'ENOEXEC', errno: 8 });
    expect(failed?.error?.message).toMatch(/Exec format error/);
    expect(result.modules.map((m) => m.name)).not.toContain('ip_vs');
  });

  it('EPERM says what permission is missing', async () => {
    const kernel = new FakeKernel().fail('ip_vs', 'EPERM');
    const result = await executePlan(ipVsPlan(tree), { kernel });
    expect(result.ok).toBe(false);
    const failed = result.modules.find((m) => m.status === 'failed');
    expect(failed?.error?.code).toBe('EPERM');
    expect(failed?.error?.message).toMatch(/CAP_SYS_MODULE/);
  });

  it('ENOSYS (no module support) ends the whole call', async () => {
    const kernel = new FakeKernel();
    for (const name of [...IP_VS_ORDER, 'ip_vs_wrr']) kernel.fail(name, 'ENOSYS');
    const p = plan(tree, [
      request('ip_vs', [probe('ip_vs', ipVsSteps(tree))]),
      request('ip_vs_wrr', [probe('ip_vs_wrr', ipVsWrrSteps(tree))]),
    ]);
    const result = await executePlan(p, { kernel });
    expect(result.ok).toBe(false);
    expect(kernel.calls.map((c) => `${c.op} ${c.name}`)).toEqual(['insertModule crc32c_intel']);
    expect(result.modules).toHaveLength(1);
    expect(result.modules[0]?.error).toMatchObject({ code: 'ENOSYS', errno: 38 });
    expect(result.modules[0]?.error?.message).toMatch(/no module support/);
  });

  it('a failed softdep that a later request requires fails that request', async () => {
    const kernel = new FakeKernel().fail('crc32c_generic', 'ENODEV');
    const p = plan(tree, [
      request('ip_vs', [probe('ip_vs', ipVsSteps(tree))]),
      request('crc32c_generic', [
        probe('crc32c_generic', [insmod(tree, 'crc32c_generic', { target: true })]),
      ]),
    ]);
    const result = await executePlan(p, { kernel });
    expect(result.ok).toBe(false);
    expect(kernel.inserted().filter((n) => n === 'crc32c_generic')).toHaveLength(1);
    expect(result.modules.find((m) => m.name === 'crc32c_generic')).toMatchObject({
      status: 'failed',
      required: true,
    });
  });

  it('tries every match of a name; the last match decides, as modprobe', async () => {
    const intel = insmod(tree, 'crc32c_intel', { target: true });
    const generic = insmod(tree, 'crc32c_generic', { target: true });
    const aliasPlan = (first: ProbeStep, second: ProbeStep) =>
      plan(tree, [request('crc32c', [probe(first.name, [first]), probe(second.name, [second])])]);

    const intelFails = new FakeKernel().fail('crc32c_intel', 'ENODEV');
    const ok = await executePlan(aliasPlan(intel, generic), { kernel: intelFails });
    expect(intelFails.inserted()).toEqual(['crc32c_intel', 'crc32c_generic']);
    expect(ok.ok).toBe(true);

    const lastFails = new FakeKernel().fail('crc32c_intel', 'ENODEV');
    const notOk = await executePlan(aliasPlan(generic, intel), { kernel: lastFails });
    expect(lastFails.inserted()).toEqual(['crc32c_generic', 'crc32c_intel']);
    expect(notOk.ok).toBe(false);
  });

  it('goes on with the other names after one fails, and reports ok: false', async () => {
    const kernel = new FakeKernel().fail('ip_vs', 'EKEYREJECTED');
    const p = plan(tree, [
      request('ip_vs', [probe('ip_vs', ipVsSteps(tree))]),
      request('dummy', [probe('dummy', [insmod(tree, 'dummy', { target: true })])]),
    ]);
    const result = await executePlan(p, { kernel });
    expect(result.ok).toBe(false);
    expect(kernel.inserted().at(-1)).toBe('dummy');
    expect(statuses(result.modules).at(-1)).toBe('loaded dummy');
    expect(result.modules.find((m) => m.name === 'ip_vs')?.error?.message).toMatch(/signature/);
  });

  it('a module file that is missing fails with a message naming it', async () => {
    const kernel = new FakeKernel();
    const missing = path.join(tmp, 'missing.ko');
    const steps = [insmod(tree, 'dummy', { target: true, path: missing })];
    const result = await executePlan(plan(tree, [request('dummy', [probe('dummy', steps)])]), {
      kernel,
    });
    expect(result.ok).toBe(false);
    expect(kernel.calls).toEqual([]);
    expect(result.modules[0]?.error?.code).toBe('ENOENT');
    expect(result.modules[0]?.error?.message).toContain(missing);
  });
});

describe('executePlan: /sys that cannot be read', () => {
  /** A kernel whose /sys/module/NAME cannot be read for the given modules. */
  class UnreadableSys extends FakeKernel {
    constructor(private readonly unreadable: string[]) {
      super();
    }
    override async initState(name: string): Promise<InitState> {
      if (this.unreadable.includes(name)) throw systemError('EACCES', 'open', name);
      return super.initState(name);
    }
  }

  it('fails that module, keeps the results, and goes on with the other names', async () => {
    for (const broken of ['nf_conntrack', 'ip_vs']) {
      const kernel = new UnreadableSys([broken]);
      const p = plan(tree, [
        request('ip_vs', [probe('ip_vs', ipVsSteps(tree))]),
        request('dummy', [probe('dummy', [insmod(tree, 'dummy', { target: true })])]),
      ]);
      const result = await executePlan(p, { kernel });
      expect(result.ok).toBe(false);
      expect(result.modules.find((m) => m.name === broken)).toMatchObject({
        status: 'failed',
        required: true,
        error: { code: 'EACCES', message: expect.stringContaining(`state of module ${broken}`) },
      });
      expect(kernel.inserted()).not.toContain(broken);
      expect(kernel.inserted()).not.toContain('ip_vs');
      expect(statuses(result.modules).at(-1)).toBe('loaded dummy');
    }
  });
});

describe('failureSummary', () => {
  const twoRequests = () =>
    plan(tree, [
      request('ip_vs', [probe('ip_vs', ipVsSteps(tree))]),
      request('ip_vs_wrr', [probe('ip_vs_wrr', ipVsWrrSteps(tree))]),
    ]);

  it('no module support: names the requested names, not the softdep that met it first', async () => {
    const kernel = new FakeKernel();
    for (const name of IP_VS_ORDER) kernel.fail(name, 'ENOSYS');
    const result = await executePlan(twoRequests(), { kernel });
    expect(result.modules[0]?.name).toBe('crc32c_intel');
    expect(failureSummary(result)).toBe(
      'cannot load ip_vs,ip_vs_wrr: Function not implemented: the running kernel has no module ' +
        'support (ENOSYS)',
    );
  });

  it('names the required module that failed, not a softdep that failed first', async () => {
    const kernel = new FakeKernel().fail('crc32c_intel', 'ENODEV').fail('nf_conntrack', 'ENOEXEC');
    const result = await executePlan(twoRequests(), { kernel });
    expect(failureSummary(result)).toMatch(
      /^cannot load ip_vs: loading nf_conntrack: Exec format error: .*\(ENOEXEC\)$/,
    );
    const target = await executePlan(ipVsPlan(tree), {
      kernel: new FakeKernel().fail('crc32c_intel', 'ENODEV').fail('ip_vs', 'EPERM'),
    });
    expect(failureSummary(target)).toMatch(/^cannot load ip_vs: Operation not permitted: /);
  });

  it('is undefined when the result is ok, softdep failures included', async () => {
    const kernel = new FakeKernel().fail('crc32c_intel', 'ENODEV');
    expect(failureSummary(await executePlan(ipVsPlan(tree), { kernel }))).toBeUndefined();
  });
});

describe('executePlan: refusal, dry run, install rules', () => {
  const notFound = () => request('nosuch', []) as ReturnType<typeof request> & { error?: unknown };

  it('refuses the whole request before any syscall when a name cannot be planned', async () => {
    const kernel = new FakeKernel();
    const bad = {
      ...notFound(),
      error: { reason: 'not-found' as const, message: 'module nosuch not found in /x' },
    };
    const p = plan(tree, [request('ip_vs', [probe('ip_vs', ipVsSteps(tree))]), bad]);
    const error = await executePlan(p, { kernel }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KmodloadError);
    expect((error as KmodloadError).exitStatus).toBe(EXIT.refused);
    expect((error as KmodloadError).message).toBe(
      'cannot load nosuch: module nosuch not found in /x',
    );
    expect(kernel.calls).toEqual([]);
    expect(kernel.reads).toEqual([]);
  });

  it('refuses install /bin/false and shell install rules unless allowed', async () => {
    for (const command of ['/bin/false', 'modprobe --ignore-install dummy']) {
      const kernel = new FakeKernel();
      const steps: ProbeStep[] = [
        ...ipVsSteps(tree).map((s) => ({ ...s, target: false })),
        install('dummy', command, { target: true }),
      ];
      const dummy = request('dummy', [probe('dummy', steps)]);
      // A forbidding rule is the planner's verdict; whether shell rules may run is the caller's.
      if (command === '/bin/false') {
        dummy.error = {
          reason: 'forbidden',
          message: `the rule 'install dummy ${command}' forbids loading module dummy`,
        };
      }
      const p = plan(tree, [dummy]);
      const error = await executePlan(p, { kernel }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(KmodloadError);
      expect((error as KmodloadError).exitStatus).toBe(EXIT.refused);
      expect((error as KmodloadError).message).toContain(`install dummy ${command}`);
      expect(kernel.calls).toEqual([]);
    }
  });

  it('a plan made allowing shell install rules is refused when run without', async () => {
    const steps = [install('dummy', 'modprobe --ignore-install dummy', { target: true })];
    const p = plan(tree, [request('dummy', [probe('dummy', steps)])]);
    const error = await executePlan(p, { kernel: new FakeKernel() }).catch((e: unknown) => e);
    expect((error as KmodloadError).message).toBe(
      "cannot load dummy: the rule 'install dummy modprobe --ignore-install dummy' needs a " +
        'shell to run (not allowed)',
    );
  });

  it('reads the rule from the step: one the planner did not classify counts as needing a shell', async () => {
    const step: ProbeStep = {
      name: 'dummy',
      kind: 'install',
      command: '/bin/true',
      options: '',
      required: true,
      target: true,
    };
    const p = plan(tree, [request('dummy', [probe('dummy', [step])])]);
    const error = await executePlan(p, { kernel: new FakeKernel() }).catch((e: unknown) => e);
    expect((error as KmodloadError).message).toBe(
      "cannot load dummy: the rule 'install dummy /bin/true' needs a shell to run (not allowed)",
    );
  });

  it('a rule the planner reads as forbidding (/bin/false with arguments) never runs a shell', async () => {
    const marker = path.join(tmp, 'false-ran');
    const runCommand = async () => {
      fs.writeFileSync(marker, '');
      return { status: 0, lastErrorLine: '' };
    };
    const steps = [
      install('crc32c_intel', '/usr/bin/false x', { required: false }),
      insmod(tree, 'dummy', { target: true }),
    ];
    expect(steps[0]?.installAction).toBe('forbid');
    const kernel = new FakeKernel();
    const p = plan(tree, [request('dummy', [probe('dummy', steps)])]);
    const result = await executePlan(p, { kernel, allowInstallCommands: true, runCommand });
    expect(fs.existsSync(marker)).toBe(false);
    expect(result.ok).toBe(true);
    expect(statuses(result.modules)).toEqual(['failed crc32c_intel', 'loaded dummy']);
    expect(result.modules[0]?.error?.code).toBe('EPERM');
  });

  it('install /bin/true means nothing to load', async () => {
    const kernel = new FakeKernel();
    const steps = [install('dummy', '/bin/true', { target: true })];
    const result = await executePlan(plan(tree, [request('dummy', [probe('dummy', steps)])]), {
      kernel,
    });
    expect(result.ok).toBe(true);
    expect(kernel.calls).toEqual([]);
    expect(statuses(result.modules)).toEqual(['skipped dummy']);
  });

  it('runs an allowed install command with $CMDLINE_OPTS and MODPROBE_MODULE, as modprobe', async () => {
    const out = path.join(tmp, 'install-out');
    const command = `printf '%s|%s' "$MODPROBE_MODULE" '$CMDLINE_OPTS' > ${out}`;
    const steps = [install('dummy', command, { options: 'numdummies=2 x=1', target: true })];
    const kernel = new FakeKernel();
    const p = plan(tree, [request('dummy', [probe('dummy', steps)])]);
    const result = await executePlan(p, { kernel, allowInstallCommands: true });
    expect(result.ok).toBe(true);
    expect(fs.readFileSync(out, 'utf8')).toBe('dummy|numdummies=2 x=1');
    expect(statuses(result.modules)).toEqual(['loaded dummy']);

    const failing = [install('dummy', 'echo broken >&2; exit 3', { target: true })];
    const failed = await executePlan(plan(tree, [request('dummy', [probe('dummy', failing)])]), {
      kernel: new FakeKernel(),
      allowInstallCommands: true,
    });
    expect(failed.ok).toBe(false);
    expect(failed.modules[0]?.error?.message).toMatch(/exited with status 3: broken$/);
  });

  it('dry run makes no syscall and runs no command, but reports live modules', async () => {
    const kernel = new FakeKernel().setState('nf_conntrack', 'live');
    const marker = path.join(tmp, 'dry-run-marker');
    const steps: ProbeStep[] = [
      ...ipVsSteps(tree),
      install('dummy', `touch ${marker}`, { target: true }),
    ];
    steps[6] = { ...(steps[6] as ProbeStep), target: false };
    const p = plan(tree, [request('dummy', [probe('dummy', steps)])]);
    const result = await executePlan(p, { kernel, dryRun: true, allowInstallCommands: true });
    expect(result.ok).toBe(true);
    expect(kernel.calls).toEqual([]);
    expect(fs.existsSync(marker)).toBe(false);
    expect(statuses(result.modules)).toEqual([
      'would-load crc32c_intel',
      'would-load crc32c_generic',
      'would-load libcrc32c',
      'would-load nf_defrag_ipv4',
      'would-load nf_defrag_ipv6',
      'already-live nf_conntrack',
      'would-load ip_vs',
      'would-load dummy',
    ]);
  });
});

describe('executePlan: the insert', () => {
  // Which syscall and which decompression are the addon's choice (test/native/insert.test.ts);
  // the loader passes the kernel's formats and reports what failed.
  it("passes the kernel's own decompressors to every insert, read once", async () => {
    const kernel = new FakeKernel();
    kernel.compressionList = ['xz', 'zstd'];
    const result = await executePlan(ipVsPlan(tree), { kernel });
    expect(result.ok).toBe(true);
    expect(kernel.calls.length).toBeGreaterThan(1);
    for (const call of kernel.calls) expect(call).toMatchObject({ kernelFormats: ['xz', 'zstd'] });
  });

  it('a module file that cannot be read or decompressed stops the run: exit 4, naming the file', async () => {
    const file = path.join(tmp, 'corrupt', 'dummy.ko.xz');
    const kernel = new FakeKernel();
    kernel.insertModule = () =>
      Promise.reject(insertFailure('unusable-file', 'EBADMSG', 'decompress', file));
    const p = plan(tree, [
      request('dummy', [probe('dummy', [insmod(tree, 'dummy', { target: true, path: file })])]),
    ]);
    const error = (await executePlan(p, { kernel }).catch((e: unknown) => e)) as KmodloadError;
    expect(error).toBeInstanceOf(KmodloadError);
    expect(error.exitStatus).toBe(EXIT.environment);
    expect(error.message).toBe(`cannot read module file ${file}: EBADMSG: fake kernel`);
  });
});
