// End to end on real Debian kernels under qemu: kmodload as installed (compiled JS + addon)
// and as the single executable in a root without node, its hook run by runc, kmod's modprobe
// as the oracle in the same guest. Each kernel boots twice: `main` (-cpu max: scenarios 1, 2,
// 5, 6, 7, 8, 10, 12, 13, 15, on 6.12 also 14: Debian 13's containerd driven through CRI, with
// kmodload as its NRI plugin, and 17: Debian 13's crun running the hook from config.json and from
// containerd's CDI edits, and on 6.1 also 16: the start/stop race of holds with real
// containers, set `main_race`) and `qemu64` (no SSE4.2: scenario 9, plus 3, 4, 11 and 18,
// which do not depend on the CPU). All four guests run at once; the guest scripts are
// scripts/test/qemu/guest/, the checks are here.

import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/container/audit';
import {
  boot,
  buildImage,
  difference,
  fetchKernels,
  type GuestImage,
  type GuestRecord,
  type GuestRun,
  type KernelTree,
} from './harness';

const FLAVOURS = ['6.1', '6.12'] as const;
type Flavour = (typeof FLAVOURS)[number];
/** The kernel whose `main` boot runs scenarios 14 (containerd) and 17 (crun); Debian 13's
 *  series. */
const CRI_FLAVOUR: Flavour = '6.12';
/** The kernel whose `main` boot also runs scenario 16 (the start/stop race, minutes under TCG):
 *  6.1's, the main boot that finished first without it. */
const RACE_FLAVOUR: Flavour = '6.1';

interface KernelRuns {
  kernel: KernelTree;
  image: GuestImage;
  main: GuestRun;
  qemu64: GuestRun;
}

const runs = new Map<Flavour, KernelRuns>();
let setupError: Error | undefined;

/** The seed's request and what it must leave live (a crc32c implementation besides). */
const SEED_MODULES = [
  'ip_vs_wrr',
  'ip_vs',
  'nf_conntrack',
  'nf_defrag_ipv4',
  'nf_defrag_ipv6',
  'libcrc32c',
];

/** ip_vs and its dependencies (a crc32c implementation besides). */
const IP_VS_MODULES = SEED_MODULES.filter((m) => m !== 'ip_vs_wrr');

/** A module option on the kernel command line (scenario 4): only a loader passes it on,
 *  since loop is a module, not builtin. */
const APPEND = 'loop.max_loop=9';

beforeAll(async () => {
  try {
    const kernels = await fetchKernels();
    const prepared: Array<{ flavour: Flavour; kernel: KernelTree; image: GuestImage }> = [];
    for (const flavour of FLAVOURS) {
      const kernel = kernels.find((k) => k.flavour === flavour);
      if (!kernel) throw new Error(`scripts/test/fetch-kernels.sh gave no ${flavour} kernel`);
      // Only 6.12's image carries containerd (about 100 MB more to unpack at boot).
      const image = await buildImage(kernel, { containerd: flavour === CRI_FLAVOUR });
      prepared.push({ flavour, kernel, image });
    }
    // Four guests at once: each spends most of its time in one vCPU (one command at a time),
    // so together they keep two host cores busy.
    const booted = await Promise.all(
      prepared.map(async ({ flavour, kernel, image }) => {
        const [main, qemu64] = await Promise.all([
          boot({
            kernel,
            image,
            set: flavour === RACE_FLAVOUR ? 'main_race' : 'main',
            cpu: 'max',
            append: APPEND,
            timeoutSeconds: flavour === RACE_FLAVOUR ? 1140 : 840,
          }),
          boot({
            kernel,
            image,
            set: 'qemu64',
            cpu: 'qemu64',
            append: APPEND,
            timeoutSeconds: 840,
          }),
        ]);
        return { flavour, kernel, image, main, qemu64 };
      }),
    );
    for (const { flavour, ...rest } of booted) {
      runs.set(flavour, rest);
      for (const run of [rest.main, rest.qemu64]) {
        console.log(`${run.name}: ${run.seconds.toFixed(0)} s from qemu start to power-off`);
      }
    }
  } catch (error) {
    setupError = error as Error;
  }
}, 1_500_000);

function kernelRuns(flavour: Flavour): KernelRuns {
  if (setupError) throw setupError;
  const found = runs.get(flavour);
  if (!found) throw new Error(`no guest runs for ${flavour}`);
  return found;
}

function sorted(names: Iterable<string>): string[] {
  return [...names].sort();
}

/** Collects failures of one scenario so that one message tells all of them. */
class Problems {
  private readonly items: string[] = [];
  constructor(private readonly run: GuestRun) {}
  check(ok: boolean, what: string, ...keys: string[]): void {
    if (!ok) this.items.push(`- ${what}\n${this.run.describe(...keys)}`);
  }
  assertNone(): void {
    expect(this.items, `${this.run.name}:\n${this.items.join('\n\n')}`).toEqual([]);
  }
}

function sameModules(a: GuestRecord, b: GuestRecord): boolean {
  return sorted(a.mods).join(' ') === sorted(b.mods).join(' ');
}

function oneKmodloadLine(record: GuestRecord): boolean {
  const lines = record.err.split('\n').filter((l) => l !== '');
  return lines.length === 1 && lines[0]!.startsWith('kmodload: ');
}

/** The hook's log lines a record printed (lines that are not JSON are left out). */
function hookLog(record: GuestRecord): Array<Partial<AuditRecord>> {
  return record.out.split('\n').flatMap((line) => {
    try {
      return [JSON.parse(line) as Partial<AuditRecord>];
    } catch {
      return [];
    }
  });
}

/** xz's integrity check of a file in the built tree (CRC32, CRC64, ...). */
function xzCheck(file: string): string {
  const robot = execFileSync('xz', ['--robot', '--list', file], { encoding: 'utf8' });
  const line = robot.split('\n').find((l) => l.startsWith('file\t'));
  return line?.split('\t')[6] ?? '';
}

describe.each(FLAVOURS)('Debian %s kernel under qemu', (flavour) => {
  it('boots, runs every scenario and reports on a clean channel', () => {
    const { main, qemu64 } = kernelRuns(flavour);
    for (const run of [main, qemu64]) {
      expect(run.garbled, `${run.name}: garbled result lines`).toEqual([]);
      expect(run.completed, run.consoleTail()).toBe(true);
    }
    // The image is what the scenarios claim: kmod's modprobe works there, the CPU models differ.
    expect(main.get('begin').out).toContain('cpu_sse4_2=2');
    expect(qemu64.get('begin').out).toContain('cpu_sse4_2=0');
  });

  it('1: runc starts the seed example; the prestart hook loaded ip_vs, ip_vs_wrr and deps', () => {
    const { main } = kernelRuns(flavour);
    const p = new Problems(main);
    const before = main.get('s1.before');
    const runc = main.get('s1.runc');
    p.check(before.mods.length === 0, 'the guest must start with no module loaded', 's1.before');
    p.check(runc.rc === 0 && runc.out.includes('container-ran'), 'the container ran', 's1.runc');
    const live = new Set(runc.mods);
    const missing = SEED_MODULES.filter((m) => !live.has(m));
    p.check(
      missing.length === 0,
      `modules missing after the hook: ${missing.join(' ')}`,
      's1.runc',
    );
    p.check(
      live.has('crc32c_intel') || live.has('crc32c_generic'),
      'a crc32c implementation (libcrc32c softdep) is live',
      's1.runc',
    );
    // The same set kmod's modprobe -a loads for the seed's request, in this boot (scenario 2).
    p.check(
      sameModules(runc, main.get('s2.0.modprobe')),
      'same set as modprobe -a',
      's1.runc',
      's2.0.modprobe',
    );
    const logged = hookLog(main.get('s1.hooklog'));
    p.check(
      logged.some((entry) => entry.id === 'e2e-s1' && entry.stage === 'prestart'),
      'the hook logged its prestart run for the container',
      's1.hooklog',
    );
    p.assertNone();
  });

  it('2: the same modules are live after kmodload load as after modprobe -a, request by request', () => {
    const { main } = kernelRuns(flavour);
    const p = new Problems(main);
    const pairs = main.matching('s2.').filter((r) => r.key.endsWith('.modprobe'));
    expect(pairs.length, 'scenario 2 requests reported').toBeGreaterThanOrEqual(13);
    for (const oracle of pairs) {
      const base = oracle.key.slice(0, -'.modprobe'.length);
      const ours = main.get(`${base}.kmodload`);
      const pre = main.get(`${base}.pre`);
      const mid = main.get(`${base}.mid`);
      p.check(
        pre.mods.length === 0 && mid.mods.length === 0,
        `${base}: both runs must start from the boot state`,
        `${base}.pre`,
        `${base}.mid`,
      );
      p.check(oracle.rc === 0, `${base}: modprobe loads the request`, oracle.key);
      p.check(ours.rc === oracle.rc, `${base}: same exit status as modprobe`, oracle.key, ours.key);
      const diff = difference(oracle.mods, ours.mods);
      p.check(
        diff.added.length === 0 && diff.removed.length === 0,
        `${base}: only kmodload: [${diff.added.join(' ')}], only modprobe: [${diff.removed.join(' ')}]`,
        oracle.key,
        ours.key,
      );
    }
    p.assertNone();
  });

  it('3: compressed modules load (in-kernel xz where the kernel can, user space otherwise)', () => {
    const { qemu64: main, image } = kernelRuns(flavour);
    const p = new Problems(main);
    const kernelXz = main.get('begin').out.includes('compression=xz');
    expect(kernelXz, 'only 6.12 decompresses xz in the kernel').toBe(flavour === '6.12');

    // The tree holds what the scenario claims: one format per module, by magic bytes.
    const magic: Record<string, string> = {
      tcp_bic: 'fd 37 7a 58 5a 00',
      tcp_htcp: 'fd 37 7a 58 5a 00',
      tcp_highspeed: '28 b5 2f fd',
      tcp_hybla: '1f 8b',
    };
    const files = main.get('s3.files').out;
    for (const [module, bytes] of Object.entries(magic)) {
      const line = files.split('\n').find((l) => l.includes(`/${module}.ko`));
      p.check(line?.includes(bytes) === true, `${module} is stored as ${bytes}...`, 's3.files');
    }
    const fileOf = (module: string): string =>
      path.join(
        image.tree,
        'lib/modules',
        kernelRuns(flavour).kernel.version,
        image.modules.find((m) => path.basename(m).startsWith(`${module}.ko`)) ?? '',
      );
    p.check(xzCheck(fileOf('tcp_htcp')) === 'CRC64', 'tcp_htcp is xz with CRC64', 's3.files');
    p.check(xzCheck(fileOf('tcp_bic')) === 'CRC32', 'tcp_bic is xz with CRC32', 's3.files');

    for (const module of Object.keys(magic)) {
      const load = main.get(`s3.${module}`);
      p.check(
        load.rc === 0 && load.mods.includes(module),
        `${module} loads`,
        `s3.${module}.pre`,
        `s3.${module}`,
        `s3.${module}.modprobe`,
      );
    }
    // liblzma hidden from kmodload: only the kernel can decompress tcp_bic now.
    const hidden = main.get('s3.kernel_xz');
    if (kernelXz) {
      p.check(
        hidden.rc === 0 && hidden.mods.includes('tcp_bic'),
        'the kernel decompressed xz',
        's3.kernel_xz',
      );
    } else {
      p.check(
        hidden.rc !== 0 &&
          !hidden.mods.includes('tcp_bic') &&
          oneKmodloadLine(hidden) &&
          /liblzma/.test(hidden.err),
        'without liblzma, user-space xz fails with a one-line reason and loads nothing',
        's3.kernel_xz',
      );
    }
    p.assertNone();
  });

  it('4: options from modprobe.d, the CLI/API and the kernel command line reach /sys/module', () => {
    const { qemu64: main } = kernelRuns(flavour);
    const p = new Problems(main);
    const params = (key: string): Record<string, string> =>
      Object.fromEntries(
        main
          .get(key)
          .out.split('\n')
          .filter((l) => l.includes(':'))
          .map((l) => {
            const [file, value] = l.split(':');
            return [path.basename(file ?? ''), value ?? ''];
          }),
      );
    const expected = (queue: string) => ({ max_loop: '9', max_part: '7', hw_queue_depth: queue });
    p.check(
      JSON.stringify(params('s4.modprobe.params')) === JSON.stringify(expected('64')),
      'modprobe (oracle) sees all three sources',
      's4.modprobe',
      's4.modprobe.params',
    );
    p.check(main.get('s4.cli').rc === 0, 'kmodload load -o loop=hw_queue_depth=64 loop', 's4.cli');
    p.check(
      JSON.stringify(params('s4.cli.params')) === JSON.stringify(expected('64')),
      'CLI: modprobe.d, command line and -o options',
      's4.cli',
      's4.cli.params',
    );
    p.check(main.get('s4.api').rc === 0, 'API load() with extraOptions', 's4.api');
    p.check(
      JSON.stringify(params('s4.api.params')) === JSON.stringify(expected('32')),
      'API: modprobe.d, command line and extraOptions',
      's4.api',
      's4.api.params',
    );
    p.assertNone();
  });

  it('5: loading what is already live, or builtin, succeeds and changes nothing', () => {
    const { main } = kernelRuns(flavour);
    const p = new Problems(main);
    const before = main.get('s5.before');
    p.check(before.mods.includes('ip_vs'), 'the seed set is live before (scenario 1)', 's5.before');
    for (const key of ['s5.live', 's5.builtin']) {
      const r = main.get(key);
      p.check(
        r.rc === 0 && sameModules(r, before),
        `${key}: exit 0, /proc/modules unchanged`,
        's5.before',
        key,
      );
    }
    p.check(
      main.get('s5.builtin.modprobe').rc === 0,
      'modprobe agrees on the builtin',
      's5.builtin.modprobe',
    );
    p.assertNone();
  });

  it('6: refused requests load nothing, with one clear line', () => {
    const { main } = kernelRuns(flavour);
    const p = new Problems(main);
    const before = main.get('s6.before');
    for (const key of ['s6.unknown', 's6.install_false', 's6.invalid', 's6.invalid_path']) {
      const r = main.get(key);
      p.check(r.rc !== 0, `${key}: refused (non-zero exit)`, key);
      p.check(oneKmodloadLine(r), `${key}: one "kmodload: ..." line on stderr`, key);
      p.check(sameModules(r, before), `${key}: /proc/modules unchanged`, 's6.before', key);
    }
    // modprobe loads nothing for a blacklisted alias and says nothing; either that, or an
    // explicit refusal, but never the module.
    const blacklisted = main.get('s6.blacklisted');
    p.check(
      sameModules(blacklisted, before),
      's6.blacklisted: minix not loaded',
      's6.before',
      's6.blacklisted',
    );
    p.check(
      blacklisted.rc === main.get('s6.blacklisted.modprobe').rc || blacklisted.rc === 3,
      's6.blacklisted: exit status as modprobe, or refused',
      's6.blacklisted',
      's6.blacklisted.modprobe',
    );
    const runc = main.get('s6.runc');
    p.check(
      runc.rc !== 0 &&
        !runc.out.includes('container-ran') &&
        /kmodload: cannot load no_such_module_e2e/.test(runc.err),
      "runc refuses to start the container and shows the hook's reason",
      's6.runc',
    );
    p.check(
      sameModules(runc, before),
      's6.runc: nothing loaded (not even ip_vs_rr)',
      's6.before',
      's6.runc',
    );
    p.assertNone();
  });

  it('7: unload removes the modules and the dependencies left unused; refuses in-use and builtin', () => {
    const { main } = kernelRuns(flavour);
    const p = new Problems(main);
    const before = main.get('s7.before');
    const inUse = main.get('s7.in_use');
    p.check(
      inUse.rc !== 0 &&
        oneKmodloadLine(inUse) &&
        inUse.err.includes('ip_vs_wrr') &&
        sameModules(inUse, before),
      'unload ip_vs while ip_vs_wrr holds it: refused, holder named, nothing removed',
      's7.before',
      's7.in_use',
    );
    const builtin = main.get('s7.builtin');
    p.check(
      builtin.rc !== 0 &&
        oneKmodloadLine(builtin) &&
        /builtin/.test(builtin.err) &&
        sameModules(builtin, before),
      'unload of a builtin: refused, nothing removed',
      's7.builtin',
    );
    const unload = main.get('s7.unload');
    const left = SEED_MODULES.filter((m) => unload.mods.includes(m));
    p.check(
      unload.rc === 0,
      'kmodload unload ip_vs_wrr ip_vs succeeds',
      's7.before',
      's7.unload',
      's7.modprobe.unload',
    );
    p.check(
      left.length === 0,
      `still live after unload: ${left.join(' ')}`,
      's7.before',
      's7.unload',
    );
    const removedOthers = difference(before.mods, unload.mods).removed.filter(
      (m) => !SEED_MODULES.includes(m) && !m.startsWith('crc32c_'),
    );
    p.check(
      removedOthers.length === 0,
      `removed unrelated modules: ${removedOthers.join(' ')}`,
      's7.unload',
    );
    p.assertNone();
  });

  it('8: sixteen hooks at once: all succeed, every module live once', () => {
    const { main } = kernelRuns(flavour);
    const p = new Problems(main);
    const hooks = main.matching('s8.hook.');
    expect(hooks.length).toBe(16);
    p.check(
      hooks.filter((h) => h.cmd.includes('KERNEL_MODULES=ip_vs,ip_vs_wrr')).length === 8,
      'half of the hooks ask for the seed set',
      ...hooks.map((h) => h.key),
    );
    for (const hook of hooks) {
      p.check(hook.rc === 0 && hook.err.trim() === '', `${hook.key}: exit 0, no error`, hook.key);
    }
    const after = main.get('s8.after');
    p.check(main.get('s8.before').mods.length === 0, 'starts from the boot state', 's8.before');
    p.check(new Set(after.mods).size === after.mods.length, 'no module twice', 's8.after');
    p.check(
      after.mods.every((m) => !m.includes('(')),
      'every module Live',
      's8.after',
    );
    p.check(
      sameModules(after, main.get('s8.modprobe')),
      'same set as modprobe -a of all requests',
      's8.after',
      's8.modprobe',
    );
    p.assertNone();
  });

  it('9: -cpu qemu64: crc32c_intel fails with ENODEV, and kmodload does what modprobe does', () => {
    const { qemu64 } = kernelRuns(flavour);
    const p = new Problems(qemu64);
    const oracle = qemu64.get('s9.modprobe');
    p.check(
      oracle.rc === 0 &&
        oracle.mods.includes('ip_vs') &&
        oracle.mods.includes('crc32c_generic') &&
        !oracle.mods.includes('crc32c_intel'),
      'modprobe: crc32c_generic and ip_vs load, crc32c_intel does not, exit 0',
      's9.modprobe',
    );
    const ours = qemu64.get('s9.kmodload');
    p.check(
      ours.rc === oracle.rc,
      'kmodload: same exit status as modprobe',
      's9.modprobe',
      's9.kmodload',
    );
    p.check(
      sameModules(ours, oracle),
      'kmodload: same modules as modprobe',
      's9.modprobe',
      's9.kmodload',
    );
    p.check(
      qemu64.get('s9.modprobe.clean').mods.length === 0 &&
        qemu64.get('s9.kmodload.clean').mods.length === 0,
      'each run starts from the boot state',
      's9.modprobe.clean',
      's9.kmodload.clean',
    );
    const runc = qemu64.get('s9.runc');
    p.check(
      runc.rc === 0 && runc.out.includes('container-ran'),
      'runc + createRuntime hook: the container ran',
      's9.runc',
    );
    p.check(
      sameModules(runc, qemu64.get('s9.modprobe.seed')),
      'hook: same modules as modprobe -a',
      's9.runc',
      's9.modprobe.seed',
    );
    p.assertNone();
  });

  it('10: a host policy (allow ip_vs*, deny xfs): the seed loads as modprobe does, fs-xfs nothing', () => {
    const { main } = kernelRuns(flavour);
    const p = new Problems(main);
    const before = main.get('s10.before');
    p.check(before.mods.length === 0, 'the scenario starts with no module loaded', 's10.before');
    p.check(main.get('s10.hooks').rc === 0, 'hook-config --policy', 's10.hooks');
    const seed = main.get('s10.seed');
    p.check(
      seed.rc === 0 && seed.out.includes('container-ran'),
      'the seed container ran',
      's10.seed',
    );
    p.check(
      sameModules(seed, main.get('s10.modprobe')),
      'the seed under the policy: same modules as modprobe -a',
      's10.seed',
      's10.modprobe',
    );
    const xfs = main.get('s10.xfs');
    p.check(
      xfs.rc !== 0 &&
        !xfs.out.includes('container-ran') &&
        /kmodload: cannot load fs-xfs: xfs is denied by \/run\/policy\.conf:3 \(deny xfs\)/.test(
          xfs.err,
        ),
      "runc refuses the fs-xfs container and shows the policy's rule",
      's10.xfs',
    );
    p.check(
      sameModules(xfs, main.get('s10.mid')) && !xfs.mods.includes('libcrc32c'),
      'fs-xfs: /proc/modules unchanged (not even its dependencies)',
      's10.mid',
      's10.xfs',
    );
    const log = hookLog(main.get('s10.hooklog'));
    p.check(
      log.some(
        (r) => r.id === 'e2e-s10x' && r.exitStatus === 3 && r.policy?.[0] === '/run/policy.conf',
      ),
      'the log records the refusal and the policy file',
      's10.hooklog',
    );
    p.assertNone();
  });

  it("15: the kernel's own autoload follows the policy once it is exported to modprobe.d", () => {
    const { main } = kernelRuns(flavour);
    const p = new Problems(main);
    p.check(!main.get('s15.before').mods.includes('dummy'), 'dummy is not loaded', 's15.before');
    p.check(
      /warn\s+kernel autoload:.*dummy/.test(main.get('s15.doctor.before').out),
      'doctor warns: the policy denies dummy, the kernel could still autoload it',
      's15.doctor.before',
    );
    const without = main.get('s15.without');
    p.check(
      without.rc === 0 && without.mods.includes('dummy'),
      'without the file: a dummy link makes the kernel load dummy',
      's15.without',
    );
    p.check(main.get('s15.export').rc === 0, 'policy export --format modprobe.d', 's15.export');
    const file = main.get('s15.file');
    p.check(
      file.out.startsWith('644\n') && /^install dummy \/bin\/false$/m.test(file.out),
      'the exported file: 0644, install dummy /bin/false',
      's15.file',
    );
    const withFile = main.get('s15.with');
    p.check(
      withFile.rc !== 0 && !withFile.mods.includes('dummy'),
      'with the file: the dummy link fails and dummy is not loaded',
      's15.with',
    );
    p.check(
      /ok\s+kernel autoload/.test(main.get('s15.doctor.after').out),
      'doctor: ok once the file is there',
      's15.doctor.after',
    );
    p.assertNone();
  });

  it('12: no node: runc runs the single executable as the hook; it loads what modprobe -a loads', () => {
    const { main } = kernelRuns(flavour);
    const p = new Problems(main);
    p.check(main.get('s12.before').mods.length === 0, 'starts with no module', 's12.before');
    const root = main.get('s12.no_node');
    p.check(
      root.rc === 0 && root.out.includes('kmodload') && !/\bnode\b/.test(root.out),
      'the chroot has the single executable and no node',
      's12.no_node',
    );
    const hooks = main.get('s12.hooks');
    let paths: string[] = [];
    try {
      const printed = JSON.parse(hooks.out) as { hooks: Record<string, Array<{ path: string }>> };
      paths = Object.values(printed.hooks).flatMap((entries) => entries.map((e) => e.path));
    } catch {
      // reported below
    }
    p.check(
      hooks.rc === 0 && paths.length === 2 && paths.every((file) => file === '/usr/bin/kmodload'),
      'hook-config run from the executable names the executable itself',
      's12.hooks',
    );
    const runc = main.get('s12.runc');
    p.check(runc.rc === 0 && runc.out.includes('container-ran'), 'the container ran', 's12.runc');
    p.check(
      sameModules(runc, main.get('s12.modprobe')) && runc.mods.includes('ip_vs_wrr'),
      'same modules as modprobe -a',
      's12.runc',
      's12.modprobe',
    );
    p.check(
      hookLog(main.get('s12.hooklog')).some(
        (r) => r.id === 'e2e-s12' && r.stage === 'createRuntime' && r.exitStatus === 0,
      ),
      'the hook logged its createRuntime run',
      's12.hooklog',
    );
    p.assertNone();
  });

  it('13: the seed request as whole processes: kmodload load, the single executable, modprobe -a, node -e 0', () => {
    const { main } = kernelRuns(flavour);
    const p = new Problems(main);
    const rounds = [1, 2, 3];
    const kinds = ['modprobe', 'kmodload', 'binary', 'node'] as const;
    for (const i of rounds) {
      for (const kind of kinds) {
        const record = main.get(`s13.${i}.${kind}`);
        p.check(record.rc === 0, `${kind} succeeded`, `s13.${i}.${kind}`);
      }
      for (const kind of ['kmodload', 'binary']) {
        p.check(
          sameModules(main.get(`s13.${i}.${kind}`), main.get(`s13.${i}.modprobe`)),
          `${kind}: same modules as modprobe -a`,
          `s13.${i}.${kind}`,
          `s13.${i}.modprobe`,
        );
      }
    }
    // Figures only (TCG, one boot): the median of the three rounds of each.
    const median = (kind: string) =>
      rounds.map((i) => main.get(`s13.${i}.${kind}`).ms).sort((a, b) => a - b)[1];
    console.log(
      `${main.name}: seed request in the guest, median of 3 (ms): ` +
        kinds.map((kind) => `${kind} ${median(kind)}`).join(', '),
    );
    p.assertNone();
  });

  it('11: containers hold their modules; --unload-on-stop unloads what the last holder needed', () => {
    const { qemu64 } = kernelRuns(flavour);
    const p = new Problems(qemu64);
    const before = qemu64.get('s11.before');
    p.check(before.mods.length === 0, 'the scenario starts with no module loaded', 's11.before');
    const withDummy = qemu64.get('s11.dummy');
    p.check(withDummy.rc === 0 && withDummy.mods.includes('dummy'), 'modprobe dummy', 's11.dummy');
    for (const key of ['s11.a.start', 's11.b.start']) {
      p.check(qemu64.get(key).rc === 0, `${key}: the container started`, key);
    }
    const both = qemu64.get('s11.b.start');
    p.check(
      ['ip_vs_wrr', 'ip_vs', 'ip_vs_sh', 'nf_conntrack', 'libcrc32c', 'dummy'].every((m) =>
        both.mods.includes(m),
      ),
      'both containers: their modules are live',
      's11.b.start',
    );
    const afterA = qemu64.get('s11.a.stop');
    p.check(
      afterA.rc === 0 &&
        !afterA.mods.includes('ip_vs_wrr') &&
        ['ip_vs', 'ip_vs_sh', 'nf_conntrack', 'libcrc32c', 'dummy'].every((m) =>
          afterA.mods.includes(m),
        ),
      'A stopped: ip_vs_wrr gone; ip_vs and its dependencies (held by B) and dummy stay',
      's11.a.stop',
      's11.status.a',
    );
    p.check(
      /ip_vs: live, refcnt \d+; inserted by kmodload; held by e2e-s11b/.test(
        qemu64.get('s11.status.a').out,
      ),
      'status names B as the holder of ip_vs',
      's11.status.a',
    );
    const afterB = qemu64.get('s11.b.stop');
    p.check(
      afterB.rc === 0 && sameModules(afterB, withDummy),
      'B killed (-9) and deleted: /proc/modules is what it was before A started',
      's11.dummy',
      's11.b.kill',
      's11.b.stop',
    );
    for (let round = 0; round < 3; round++) {
      const up = qemu64.get(`s11.round${round}.up`);
      const down = qemu64.get(`s11.round${round}.down`);
      p.check(
        up.mods.includes('ip_vs') && up.mods.length > withDummy.mods.length + 5,
        `round ${round}: eight containers started, their modules live`,
        `s11.round${round}.up`,
      );
      p.check(
        sameModules(down, withDummy),
        `round ${round}: all stopped, /proc/modules back to its start`,
        `s11.round${round}.down`,
        's11.dummy',
      );
    }
    for (const key of ['s11.status.b', 's11.status.end']) {
      let report: { modules?: unknown[]; stale?: unknown[] } = {};
      try {
        report = JSON.parse(qemu64.get(key).out) as typeof report;
      } catch {
        // reported below
      }
      p.check(
        Array.isArray(report.modules) && report.modules.length === 0 && report.stale?.length === 0,
        `${key}: status shows no module and no hold`,
        key,
      );
    }
    p.assertNone();
  });

  it('18: containers pass the parameters the policy names; a live or held module with other values refuses them; --unload-on-stop unloads', () => {
    const { qemu64 } = kernelRuns(flavour);
    const p = new Problems(qemu64);
    const record = (key: string) => qemu64.get(`s18.${key}`);
    const dummies = (key: string) =>
      record(key)
        .out.split('\n')
        .filter((name) => name.startsWith('dummy'));
    p.check(record('before').mods.length === 0, 'starts with no module', 's18.before');
    p.check(record('hooks').rc === 0, 'hook-config --policy --unload-on-stop', 's18.hooks');

    // A: dummy numdummies=3 makes three interfaces (the module's default is one).
    const a = record('a.start');
    p.check(
      a.rc === 0 && a.mods.join(' ') === 'dummy',
      'A (dummy numdummies=3) starts; the hook loaded dummy',
      's18.a.start',
    );
    p.check(
      dummies('net.before').length === 0 && dummies('a.net').join(' ') === 'dummy0 dummy1 dummy2',
      '/sys/class/net has exactly dummy0 dummy1 dummy2',
      's18.net.before',
      's18.a.net',
    );
    // B: ip_vs conn_tab_bits=11, not the kernel's default 12: sysfs shows the container's value.
    const b = record('b.start');
    const bAdded = difference(a.mods, b.mods);
    p.check(
      b.rc === 0 &&
        IP_VS_MODULES.every((m) => bAdded.added.includes(m)) &&
        bAdded.removed.length === 0,
      'B (ip_vs conn_tab_bits=11) starts; ip_vs and its dependencies loaded',
      's18.a.start',
      's18.b.start',
    );
    p.check(
      record('b.param').out === '11\n',
      '/sys/module/ip_vs/parameters/conn_tab_bits reads 11',
      's18.b.param',
    );

    // Refused: runc shows the hook's line, the log has it, nothing is loaded.
    const logged = hookLog(record('hooklog'));
    const refusals: Array<[string, string, string]> = [
      [
        'c.start',
        'e2e-s18c',
        'cannot load ip_vs: live with conn_tab_bits=11, asked 14 (container e2e-s18b holds it with that value: wait until it stops, or ask for the same)',
      ],
      [
        'd.start',
        'e2e-s18d',
        'cannot load dummy: live with numdummies=3, asked 5 (container e2e-s18a holds it with that value: wait until it stops, or ask for the same)',
      ],
      [
        'e.start',
        'e2e-s18e',
        'cannot load dummy: parameter foo=1 is not allowed for this container (no params rule names it; needed: params dummy foo=1)',
      ],
      [
        'f.start',
        'e2e-s18f',
        'cannot load dummy: live, and /sys/module/dummy/parameters does not show numdummies: cannot verify numdummies=5 (unload it first, or ask without it)',
      ],
      [
        'g.start',
        'e2e-s18g',
        'cannot load ip_vs: live with conn_tab_bits=13, asked 14 (unload it first, or ask for the live value)',
      ],
    ];
    const before: Record<string, string> = {
      'c.start': 'b.start',
      'd.start': 'b.start',
      'e.start': 'b.start',
      'f.start': 'dummy',
      'g.start': 'ipvs',
    };
    for (const [key, id, line] of refusals) {
      const refused = record(key);
      p.check(
        refused.rc !== 0 && refused.err.includes(`stderr: kmodload: ${line}\\n`),
        `${id} does not start; runc shows "kmodload: ${line}"`,
        `s18.${key}`,
      );
      p.check(
        sameModules(refused, record(before[key]!)),
        `${id}: nothing loaded`,
        `s18.${before[key]}`,
        `s18.${key}`,
      );
      p.check(
        logged.some(
          (r) => r.id === id && r.stage === 'prestart' && r.exitStatus === 3 && r.error === line,
        ),
        `${id}: the log has the refusal, exit 3`,
        's18.hooklog',
      );
    }

    // status: who asked which values.
    const status = record('status').out;
    p.check(
      /^dummy: live, refcnt \d+; inserted by kmodload with numdummies=3 \(asked by e2e-s18a\); held by e2e-s18a \(since [^,]+, for dummy, with numdummies=3\)$/m.test(
        status,
      ) &&
        /^ip_vs: live, refcnt \d+; inserted by kmodload with conn_tab_bits=11 \(asked by e2e-s18b\); held by e2e-s18b \(since [^,]+, for ip_vs, with conn_tab_bits=11\)$/m.test(
          status,
        ),
      'status: dummy inserted with numdummies=3 asked by A, ip_vs with conn_tab_bits=11 asked by B',
      's18.status',
    );

    // A and B deleted: what they loaded goes.
    const aStop = record('a.stop');
    const aGone = difference(b.mods, aStop.mods);
    p.check(
      aStop.rc === 0 && aGone.removed.join(' ') === 'dummy' && aGone.added.length === 0,
      'A deleted: dummy unloaded, ip_vs (held by B) stays',
      's18.b.start',
      's18.a.stop',
    );
    const bStop = record('b.stop');
    p.check(
      bStop.rc === 0 && sameModules(bStop, record('before')),
      'B deleted: /proc/modules as at the start',
      's18.before',
      's18.b.stop',
    );

    // Loaded by modprobe (no hold): F above is refused as unverifiable; ip_vs at 13 runs H.
    p.check(
      record('dummy').rc === 0 && record('dummy').mods.includes('dummy'),
      'modprobe dummy',
      's18.dummy',
    );
    p.check(record('dummy.remove').rc === 0, 'rmmod dummy', 's18.dummy.remove');
    const ipvs = record('ipvs');
    p.check(
      ipvs.rc === 0 && ipvs.mods.includes('ip_vs'),
      'modprobe ip_vs conn_tab_bits=13',
      's18.ipvs',
    );
    const h = record('h.start');
    p.check(
      h.rc === 0 && sameModules(h, ipvs),
      'H (conn_tab_bits=13, the live value) starts; nothing loaded',
      's18.ipvs',
      's18.h.start',
    );
    p.check(
      record('h.stop').rc === 0 && sameModules(record('h.stop'), ipvs),
      "H deleted: ip_vs stays (modprobe's, not kmodload's)",
      's18.ipvs',
      's18.h.stop',
    );
    const cli = record('cli');
    p.check(
      cli.rc === 0 &&
        cli.out === 'already live ip_vs\n' &&
        cli.err ===
          'kmodload: warning: ip_vs: live with conn_tab_bits=13, asked 14: the kernel keeps the live value\n' &&
        record('cli.param').out === '13\n',
      'kmodload load -o ip_vs=conn_tab_bits=14 ip_vs: exit 0, one warning line; sysfs still 13',
      's18.cli',
      's18.cli.param',
    );
    const seconds = Number(/ms=(\d+)/.exec(record('time').out)?.[1]) / 1000;
    console.log(`${qemu64.name}: scenario 18 took ${seconds.toFixed(1)} s of the boot`);
    p.assertNone();
  });
});

describe(`Debian ${RACE_FLAVOUR} kernel under qemu: the start/stop race of holds`, () => {
  it('16: A stops (--unload-on-stop) while B starts asking for what A held, 50 rounds: B always finds its modules live', () => {
    const { main } = kernelRuns(RACE_FLAVOUR);
    const p = new Problems(main);
    const before = main.get('s16.before');
    p.check(main.get('s16.hooks').rc === 0, 'hook-config --unload-on-stop', 's16.hooks');
    const first = main.get('s16.a');
    p.check(
      first.rc === 0 && first.mods.includes('ip_vs_wrr'),
      'the first A (ip_vs_wrr) started and its module is live',
      's16.a',
    );
    const rounds = main.matching('s16.').filter((r) => /^s16\.\d+$/.test(r.key));
    expect(rounds.length, 'rounds reported').toBe(50);
    for (const round of rounds) {
      p.check(
        round.rc === 0 && /^live-check=0$/m.test(round.out),
        `${round.key}: B's process found ip_vs_wrr and tun in /sys/module (test -d: status 0)`,
        round.key,
      );
      p.check(
        /^start=0 stop=0$/m.test(round.out),
        `${round.key}: runc started B and deleted A (both exit 0)`,
        round.key,
      );
      p.check(
        ['ip_vs_wrr', 'ip_vs', 'tun'].every((m) => round.mods.includes(m)),
        `${round.key}: once both are done, B's modules are live`,
        round.key,
      );
    }
    const last = main.get('s16.last');
    p.check(
      last.rc === 0 && !['ip_vs_wrr', 'ip_vs', 'tun'].some((m) => last.mods.includes(m)),
      'the last B deleted: ip_vs_wrr, ip_vs and tun unloaded',
      's16.last',
    );
    p.check(
      sameModules(last, before),
      '/proc/modules is back to where the scenario began',
      's16.before',
      's16.last',
    );
    let report: { modules?: unknown[]; stale?: unknown[] } = {};
    try {
      report = JSON.parse(main.get('s16.status').out) as typeof report;
    } catch {
      // reported below
    }
    p.check(
      Array.isArray(report.modules) && report.modules.length === 0 && report.stale?.length === 0,
      'status shows no module and no hold',
      's16.status',
    );
    const seconds = Number(/ms=(\d+)/.exec(main.get('s16.time').out)?.[1]) / 1000;
    console.log(`${main.name}: scenario 16 (50 rounds) took ${seconds.toFixed(1)} s of the boot`);
    p.assertNone();
  });
});

/** The JSON object a `cri.js up|down` step printed on stdout ({} when it printed none). */
function criOutput(record: GuestRecord): Record<string, unknown> {
  try {
    return JSON.parse(record.out) as Record<string, unknown>;
  } catch {
    return {};
  }
}

describe(`Debian ${CRI_FLAVOUR} kernel under qemu: containerd 1.7 through CRI, with NRI`, () => {
  /** Added to each failure: containerd's own last log lines. */
  const LOG = 's14.containerd.log';

  it('14a: with no plugin, a host-network pod runs, stops and is removed; KERNEL_MODULES loads nothing', () => {
    const { main } = kernelRuns(CRI_FLAVOUR);
    const p = new Problems(main);
    p.check(
      main.get('s14.containerd').rc === 0,
      'containerd answers on its CRI socket',
      's14.containerd',
      LOG,
    );
    const version = criOutput(main.get('s14.version'));
    p.check(
      version['runtimeName'] === 'containerd' && /^1\.7\./.test(String(version['runtimeVersion'])),
      'CRI Version: containerd 1.7.x',
      's14.version',
    );
    p.check(
      main.get('s14.import').rc === 0,
      'ctr imports the busybox OCI image',
      's14.import',
      LOG,
    );
    const up = main.get('s14.plain.up');
    const started = criOutput(up);
    p.check(
      up.rc === 0 && typeof started['container'] === 'string' && started['state'] === 'RUNNING',
      'RunPodSandbox, CreateContainer, StartContainer: the container is RUNNING',
      's14.plain.up',
      LOG,
    );
    p.check(
      up.mods.length === 0 && main.get('s14.before').mods.length === 0,
      'without a plugin, KERNEL_MODULES loads nothing',
      's14.before',
      's14.plain.up',
    );
    const down = main.get('s14.plain.down');
    const removed = criOutput(down);
    p.check(
      down.rc === 0 &&
        JSON.stringify(removed['containers']) === JSON.stringify([started['container']]) &&
        removed['left'] === 0,
      'StopContainer, RemoveContainer, StopPodSandbox, RemovePodSandbox: the runtime lists no such pod after',
      's14.plain.down',
      LOG,
    );
    const seconds = Number(/ms=(\d+)/.exec(main.get('s14.time').out)?.[1]) / 1000;
    console.log(`${main.name}: scenario 14 took ${seconds.toFixed(1)} s of the boot`);
    p.assertNone();
  });

  it('14: kmodload nri loads what pods ask for, refuses what the policy denies, survives kill -9, unloads at stop', () => {
    const { main } = kernelRuns(CRI_FLAVOUR);
    const p = new Problems(main);
    const started = main.get('s14.plugin');
    p.check(
      started.rc === 0 && /\bregistered\b/.test(started.err),
      'the plugin connects and says "registered" within 30 s',
      's14.plugin',
      LOG,
    );
    const start = main.get('s14.start');
    p.check(start.mods.length === 0, 'no module loaded before pod A', 's14.start');

    // A: KERNEL_MODULES in the container's environment, the seed's request.
    const a = main.get('s14.a.up');
    const aId = String(criOutput(a)['container'] ?? '');
    p.check(a.rc === 0 && criOutput(a)['state'] === 'RUNNING', 'pod A runs', 's14.a.up', LOG);
    p.check(
      sameModules(a, main.get('s2.0.modprobe')),
      "pod A: the same modules as modprobe -a ip_vs ip_vs_wrr (scenario 2's oracle)",
      's14.a.up',
      's2.0.modprobe',
    );
    // B: the pod annotation, one module more than A.
    const b = main.get('s14.b.up');
    const bId = String(criOutput(b)['container'] ?? '');
    p.check(b.rc === 0 && criOutput(b)['state'] === 'RUNNING', 'pod B runs', 's14.b.up', LOG);
    const added = difference(a.mods, b.mods);
    p.check(
      added.added.join(' ') === 'ip_vs_sh' && added.removed.length === 0,
      `pod B's annotation loaded ip_vs_sh and nothing else: added [${added.added.join(' ')}], removed [${added.removed.join(' ')}]`,
      's14.a.up',
      's14.b.up',
    );
    // C: a denied module; the runtime refuses the container with the plugin's reason.
    const c = main.get('s14.c.up');
    p.check(
      c.rc === 1 &&
        criOutput(c)['container'] === undefined &&
        /cri: CreateContainer: .*denied by.*/.test(c.err) &&
        /\bxfs\b/.test(c.err),
      "CreateContainer fails and the CRI error carries the plugin's reason (denied by ..., xfs)",
      's14.c.up',
      LOG,
    );
    p.check(sameModules(c, b), 'pod C: nothing loaded', 's14.b.up', 's14.c.up');
    p.check(main.get('s14.c.down').rc === 0, "pod C's sandbox is removed", 's14.c.down', LOG);

    // kill -9 and a new start: the holds come back from Synchronize; nothing loads or unloads.
    const restart = main.get('s14.restart');
    p.check(
      restart.rc === 0 && /\bregistered\b/.test(restart.err),
      'after kill -9, the plugin registers again',
      's14.kill',
      's14.restart',
      LOG,
    );
    p.check(sameModules(restart, b), 'the restart changed no module', 's14.b.up', 's14.restart');
    const holds = main.get('s14.holds');
    p.check(
      holds.rc === 0 &&
        aId !== '' &&
        bId !== '' &&
        holds.out.includes(aId) &&
        holds.out.includes(bId),
      'hold files name the containers of A and B',
      's14.holds',
    );

    // Stop: A first (B still needs every module A asked for), then B.
    const aDown = main.get('s14.a.down');
    p.check(
      aDown.rc === 0 && sameModules(aDown, b),
      'A stopped and removed: nothing unloaded (B holds ip_vs and ip_vs_wrr)',
      's14.b.up',
      's14.a.down',
      's14.restart.err',
    );
    const bDown = main.get('s14.b.down');
    p.check(
      bDown.rc === 0 && sameModules(bDown, start),
      'B stopped and removed: /proc/modules is what it was before pod A',
      's14.start',
      's14.b.down',
      's14.restart.err',
    );
    // D: the seed's request by the pod annotation alone, with nothing loaded before it.
    const d = main.get('s14.d.up');
    p.check(
      d.rc === 0 &&
        criOutput(d)['state'] === 'RUNNING' &&
        sameModules(d, main.get('s2.0.modprobe')),
      'pod D (the annotation alone): runs, with the same modules as modprobe -a ip_vs ip_vs_wrr',
      's14.b.down',
      's14.d.up',
      's2.0.modprobe',
      LOG,
    );
    const dDown = main.get('s14.d.down');
    p.check(
      dDown.rc === 0 && sameModules(dDown, start),
      'D stopped and removed: /proc/modules is what it was before pod A',
      's14.d.down',
    );

    // One JSON line per decision, naming the containers.
    const log = main.get('s14.log');
    const lines = log.out.split('\n').filter((line) => line.trim() !== '');
    const parsed = lines.filter((line) => {
      try {
        return typeof JSON.parse(line) === 'object';
      } catch {
        return false;
      }
    });
    p.check(
      lines.length >= 3 && parsed.length === lines.length,
      'the log has one JSON line per decision (at least A, B and C)',
      's14.log',
    );
    p.check(
      aId !== '' && bId !== '' && log.out.includes(aId) && log.out.includes(bId),
      "the log names A's and B's containers",
      's14.log',
    );
    p.check(
      lines.some((line) => /\bxfs\b/.test(line) && /denied/.test(line)),
      'the log records the refusal of xfs',
      's14.log',
    );
    p.assertNone();
  });
});

/** A hook state as the guest's observer hook saved it (scenario 17). */
interface HookState {
  ociVersion?: string;
  id?: string;
  pid?: number;
  status?: string;
  bundle?: string;
  root?: string;
}

/** The `STAGE STATE` lines of `s17.a.states`, by stage. */
function observedStates(record: GuestRecord): Map<string, HookState> {
  const states = new Map<string, HookState>();
  for (const line of record.out.split('\n')) {
    const at = line.indexOf(' ');
    if (at <= 0) continue;
    try {
      states.set(line.slice(0, at), JSON.parse(line.slice(at + 1)) as HookState);
    } catch {
      // a line that is not a state fails the checks below
    }
  }
  return states;
}

describe(`Debian ${CRI_FLAVOUR} kernel under qemu: Debian 13's crun beside runc`, () => {
  it('17a: crun runs the hooks hook-config prints: the seed loads as modprobe -a does, the container sees it, crun delete unloads it', () => {
    const { main } = kernelRuns(CRI_FLAVOUR);
    const p = new Problems(main);
    p.check(
      main.get('s17.version').rc === 0 && /^crun version 1\.21\b/.test(main.get('s17.version').out),
      "Debian 13's crun 1.21 runs in the guest (its own loader and libraries)",
      's17.version',
    );
    p.check(main.get('s17.before').mods.length === 0, 'starts with no module', 's17.before');
    p.check(main.get('s17.hooks').rc === 0, 'hook-config --format oci', 's17.hooks');
    const start = main.get('s17.a.start');
    p.check(
      start.rc === 0 && sameModules(start, main.get('s17.modprobe')),
      'crun run -d: the createRuntime hook loaded what modprobe -a ip_vs ip_vs_wrr loads',
      's17.a.start',
      's17.modprobe',
    );
    const seen = main.get('s17.a.seen');
    const listed = seen.out
      .split('\n')
      .map((line) => line.split(' ')[0]!)
      .filter((name) => name !== '' && name !== 'listed');
    p.check(
      seen.out.includes('listed') && SEED_MODULES.every((m) => listed.includes(m)),
      "the container's /proc/modules lists the seed's modules",
      's17.a.seen',
    );
    p.check(
      main.get('s17.a.state').rc === 0 && /"status":\s*"running"/.test(main.get('s17.a.state').out),
      'crun state: running',
      's17.a.state',
    );
    const deleted = main.get('s17.a.delete');
    p.check(
      deleted.rc === 0 && deleted.mods.length === 0,
      'crun delete -f: the poststop hook (--unload-on-stop) unloaded everything',
      's17.a.delete',
    );
    const logged = hookLog(main.get('s17.log')).filter((r) => r.id === 'e2e-s17a');
    p.check(
      logged.some(
        (r) => r.stage === 'createRuntime' && r.status === 'created' && r.exitStatus === 0,
      ) &&
        logged.some(
          (r) =>
            r.stage === 'poststop' &&
            r.status === 'stopped' &&
            r.release?.released === true &&
            r.exitStatus === 0,
        ),
      'the log has the createRuntime run (status "created") and the poststop release',
      's17.log',
    );
    p.assertNone();
  });

  it('17: what crun 1.21 sends its hooks: "created" at prestart and createRuntime, pid 0 and "stopped" at poststop; no library path in their environment', () => {
    const { main } = kernelRuns(CRI_FLAVOUR);
    const p = new Problems(main);
    const states = observedStates(main.get('s17.a.states'));
    const bundle = '/run/s17/e2e-s17a';
    for (const stage of ['prestart', 'createRuntime']) {
      const state = states.get(stage);
      p.check(
        state?.ociVersion === '1.0' &&
          state.id === 'e2e-s17a' &&
          state.status === 'created' &&
          typeof state.pid === 'number' &&
          state.pid > 0 &&
          state.bundle === bundle &&
          state.root === '/opt/e2e/rootfs',
        `${stage}: ociVersion "1.0", status "created", the container's pid, the bundle, root`,
        's17.a.states',
      );
    }
    const poststop = states.get('poststop');
    p.check(
      poststop?.status === 'stopped' && poststop.pid === 0 && poststop.bundle === bundle,
      'poststop: status "stopped", pid 0',
      's17.a.states',
    );
    // crun runs from /opt/crun through its loader's --library-path, which no child inherits.
    const env = main.get('s17.a.env');
    p.check(
      env.rc === 0 &&
        !/^LD_(LIBRARY_PATH|PRELOAD)=/m.test(env.out) &&
        !env.out.includes('/opt/crun'),
      "a hook's environment names none of crun's libraries",
      's17.a.env',
    );
    p.assertNone();
  });

  it('17c: a denied module under crun: the container does not start, crun prints only the exit code, the reason is in the log', () => {
    const { main } = kernelRuns(CRI_FLAVOUR);
    const p = new Problems(main);
    const refused = main.get('s17.c.run');
    p.check(
      refused.rc !== 0 &&
        !refused.out.includes('container-ran') &&
        /error executing hook .*kmodload-hook.* \(exit code: 3\)/.test(refused.err),
      'crun run fails: "error executing hook ... (exit code: 3)"',
      's17.c.run',
    );
    // crun sends hooks' stdout and stderr to /dev/null: the log is where the reason is.
    p.check(
      !/denied/.test(refused.err),
      "crun's error does not carry the hook's line",
      's17.c.run',
    );
    p.check(refused.mods.length === 0, 'nothing loaded', 's17.c.run');
    p.check(
      main.get('s17.c.list').rc === 0 && !main.get('s17.c.list').out.includes('e2e-s17c'),
      'crun list: no such container',
      's17.c.list',
    );
    const line = hookLog(main.get('s17.log')).find((r) => r.id === 'e2e-s17c');
    p.check(
      line?.stage === 'createRuntime' &&
        line.exitStatus === 3 &&
        /\bxfs\b.*denied by .*policy\.conf/.test(line.error ?? ''),
      'the log has the refusal: xfs denied by the policy, exit 3',
      's17.log',
    );
    const stderrFile = main.get('s17.c2.stderr');
    p.check(
      main.get('s17.c2.run').rc !== 0 &&
        stderrFile.rc === 0 &&
        /^kmodload: .*\bxfs\b.*denied/m.test(stderrFile.out),
      "with the annotation run.oci.hooks.stderr, crun appends the hook's line to that file",
      's17.c2.run',
      's17.c2.stderr',
    );
    p.assertNone();
  });

  it('17b: containerd 1.7 applies the CDI devices of cdi generate to a pod that crun runs: ip_vs and ip_vs_wrr load as modprobe -a, go at stop; an unpublished device is refused', () => {
    const { main } = kernelRuns(CRI_FLAVOUR);
    const p = new Problems(main);
    const LOG = 's17.containerd.log';
    p.check(
      main.get('s17.cdi').rc === 0 &&
        /written \/etc\/cdi\/kmodload\.json/.test(main.get('s17.cdi').out),
      'cdi generate writes /etc/cdi/kmodload.json',
      's17.cdi',
    );
    const devices = main.get('s17.spec').out.trim().split(' ');
    p.check(
      devices[0] === 'kmodload.io/module' &&
        devices.includes('ip_vs') &&
        devices.includes('ip_vs_wrr') &&
        !devices.includes('xfs'),
      'the spec publishes ip_vs and ip_vs_wrr (allow ip_vs*), not xfs',
      's17.spec',
    );
    p.check(
      main.get('s17.containerd').rc === 0,
      'containerd answers on CRI',
      's17.containerd',
      LOG,
    );
    const before = main.get('s17.b.before');
    p.check(before.mods.length === 0, 'no module before the pod', 's17.b.before');
    const up = main.get('s17.b.up');
    const container = String(criOutput(up)['container'] ?? '');
    p.check(
      up.rc === 0 && criOutput(up)['state'] === 'RUNNING',
      'the pod (runtime handler crun) runs',
      's17.b.up',
      LOG,
    );
    p.check(
      sameModules(up, main.get('s17.modprobe')),
      'the CDI devices loaded what modprobe -a ip_vs ip_vs_wrr loads',
      's17.b.up',
      's17.modprobe',
    );
    p.check(
      container !== '' && main.get('s17.b.crun').out.includes(container),
      "crun's own list (the shim's --root) has the container: crun ran it",
      's17.b.crun',
    );
    const down = main.get('s17.b.down');
    p.check(
      down.rc === 0 && sameModules(down, before),
      "stopping the pod ran the devices' poststop hooks: /proc/modules as before",
      's17.b.down',
      LOG,
    );
    const logged = hookLog(main.get('s17.cdilog')).filter((r) => r.id === container);
    const created = logged.filter((r) => r.stage === 'createRuntime' && r.exitStatus === 0);
    p.check(
      created.length === 2 &&
        created.some((r) => r.request?.join() === 'ip_vs' && r.sources?.['ip_vs']?.[0] === 'cdi') &&
        created.some(
          (r) => r.request?.join() === 'ip_vs_wrr' && r.sources?.['ip_vs_wrr']?.[0] === 'cdi',
        ),
      "one createRuntime hook per device, each asking for its module (source cdi): the CDI_devices field's and the annotation's",
      's17.cdilog',
    );
    p.check(
      logged.filter((r) => r.stage === 'poststop' && r.release?.released === true).length === 1,
      'one poststop hook released the hold (the other found none)',
      's17.cdilog',
    );
    const unknown = main.get('s17.unknown.up');
    p.check(
      unknown.rc === 1 &&
        criOutput(unknown)['container'] === undefined &&
        /unresolvable CDI devices kmodload\.io\/module=xfs/.test(unknown.err) &&
        unknown.mods.length === 0,
      'a device the spec does not publish: containerd refuses the container, nothing runs',
      's17.unknown.up',
      LOG,
    );
    p.check(
      main.get('s17.unknown.down').rc === 0,
      "the refused pod's sandbox is removed",
      's17.unknown.down',
    );
    const seconds = Number(/ms=(\d+)/.exec(main.get('s17.time').out)?.[1]) / 1000;
    console.log(`${main.name}: scenario 17 took ${seconds.toFixed(1)} s of the boot`);
    p.assertNone();
  });
});
