// `kmodload cdi generate` on the Debian 6.1 tree: the specs for three policies against golden
// files (this machine's paths replaced by @ROOT@, @VERSION@ and @FIXTURES@; regenerate them
// with KMODLOAD_UPDATE_GOLDEN=1), names that start with a digit, --set, --check, and how the
// files are written.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { specProblems, type CdiSpec } from '../../src/cdi/index';
import { main } from '../../src/cli/main';
import { EXIT } from '../../src/errors';
import { memoryIO } from '../helpers/cli-io';
import { REPO_ROOT, kernelTree, type KernelTree } from '../helpers/trees';

const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'cdi');
const BINARY = '/opt/kmodload/kmodload';

let tree: KernelTree;
let scratch: string;
let treeModules: number;
beforeAll(() => {
  tree = kernelTree('6.1');
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-cdi-'));
  treeModules = fs
    .readFileSync(path.join(tree.moduleDir, 'modules.dep'), 'utf8')
    .split('\n')
    .filter((line) => line.includes(':')).length;
});
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

let count = 0;
function newDir(): string {
  const dir = path.join(scratch, `d${count++}`);
  fs.mkdirSync(dir);
  return dir;
}

async function cli(argv: string[]): Promise<{ status: number; out: string; err: string }> {
  const memory = memoryIO();
  const status = await main(argv, memory.io);
  return { status, out: memory.out(), err: memory.err() };
}

/** `cdi generate` on the 6.1 tree, the hooks naming BINARY. */
function generate(output: string, args: string[]): ReturnType<typeof cli> {
  return cli([
    'cdi',
    'generate',
    '-d',
    tree.root,
    '-S',
    tree.version,
    '--binary',
    BINARY,
    '--output',
    output,
    ...args,
  ]);
}

function readSpec(file: string): CdiSpec {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as CdiSpec;
}

function names(file: string): string[] {
  return readSpec(file).devices.map((device) => device.name);
}

/** The file as golden files keep it: this machine's paths as placeholders. */
function portable(text: string): string {
  return text
    .split(tree.root)
    .join('@ROOT@')
    .split(tree.version)
    .join('@VERSION@')
    .split(FIXTURES)
    .join('@FIXTURES@');
}

function expectGolden(file: string, golden: string): void {
  const text = portable(fs.readFileSync(file, 'utf8'));
  const goldenFile = path.join(FIXTURES, golden);
  if (process.env['KMODLOAD_UPDATE_GOLDEN'] === '1') fs.writeFileSync(goldenFile, text);
  expect(text).toBe(fs.readFileSync(goldenFile, 'utf8'));
}

const fixture = (name: string): string => path.join(FIXTURES, name);

describe('golden specs for the 6.1 tree', () => {
  it('default deny: what the allow rules let through, less denies, host blocks and install commands; digits apart', async () => {
    const dir = newDir();
    const output = path.join(dir, 'kmodload.json');
    const run = await generate(output, [
      '--policy',
      fixture('policy-deny.conf'),
      '-C',
      fixture('modprobe.d'),
      '--set',
      'ipvs=ip_vs,ip_vs_rr,ip_vs_lblc',
    ]);
    expect(run.err).toBe(
      `kmodload: note: ${BINARY} does not exist yet; copy build/kmodload, made by npm run build:binary, to ${BINARY}\n`,
    );
    expect(run.status).toBe(EXIT.ok);
    const digits = path.join(dir, 'kmodload-digits.json');
    expect(run.out).toBe(
      `written ${output} (14 devices, cdiVersion 0.3.0)\nwritten ${digits} (1 device, cdiVersion 0.5.0)\n`,
    );
    expectGolden(output, 'deny.json');
    expectGolden(digits, 'deny-digits.json');
    expect(names(digits)).toEqual(['8021q']);
    const main = names(output);
    expect(main).toContain('ipvs');
    expect(main).toContain('ip_vs_rr');
    // Denied; blacklisted by name; install /bin/true; an install command (never for a container).
    for (const gone of ['ip_vs_wrr', 'ip_vs_sh', 'ip_vs_lc', 'ip_vs_dh']) {
      expect(main).not.toContain(gone);
    }
    expect(specProblems(readSpec(output))).toEqual([]);
    expect(specProblems(readSpec(digits))).toEqual([]);
  });

  it('conditions taken as a CDI request meets them; poststop hooks, timeout, -n, --log none', async () => {
    const dir = newDir();
    const output = path.join(dir, 'kmodload.json');
    const run = await generate(output, [
      '--policy',
      fixture('policy-conditions.conf'),
      '--unload-on-stop',
      '--timeout',
      '10',
      '--state-dir',
      '/run/kmodload-test',
      '--log',
      'none',
      '-n',
    ]);
    expect(run.status).toBe(EXIT.ok);
    expectGolden(output, 'conditions.json');
    expect(fs.existsSync(path.join(dir, 'kmodload-digits.json'))).toBe(false);
    // dummy: a pod-label deny always applies under the hook; xfs: only from the env;
    // vxlan: only with a namespace the hook never has; tun: denied for CDI requests;
    // bonding and veth: the container's annotations decide, at run time.
    expect(names(output)).toEqual(['bonding', 'veth']);
    const hooks = readSpec(output).devices[1]?.containerEdits.hooks;
    expect(hooks?.map((hook) => [hook.hookName, hook.args, hook.timeout])).toEqual([
      [
        'createRuntime',
        [
          'kmodload',
          'hook',
          '--state',
          'createRuntime',
          '--module',
          'veth',
          '--policy',
          fixture('policy-conditions.conf'),
          '--state-dir',
          '/run/kmodload-test',
          '-d',
          tree.root,
          '-S',
          tree.version,
          '--dry-run',
        ],
        10,
      ],
      [
        'poststop',
        [
          'kmodload',
          'hook',
          '--state',
          'poststop',
          '--policy',
          fixture('policy-conditions.conf'),
          '--state-dir',
          '/run/kmodload-test',
          '-d',
          tree.root,
          '-S',
          tree.version,
          '--dry-run',
          '--unload-on-stop',
        ],
        10,
      ],
    ]);
  });

  it('default allow: every module whose whole plan no deny reaches, and how many on stderr', async () => {
    const dir = newDir();
    const output = path.join(dir, 'kmodload.json');
    const run = await generate(output, ['--policy', fixture('policy-allow.conf')]);
    expect(run.status).toBe(EXIT.ok);
    expectGolden(output, 'allow.json');
    const published = names(output);
    // ip_vs is not there: its dependency nf_conntrack is denied.
    expect(published).toEqual([
      'ip6_udp_tunnel',
      'ip_tunnel',
      'ipmi_devintf',
      'ipmi_msghandler',
      'ipmi_poweroff',
      'ipmi_si',
      'ipmi_ssif',
      'ipmi_watchdog',
      'ipvlan',
    ]);
    expect(run.err).toContain(
      `kmodload: note: default allow: 9 of the tree's ${treeModules} modules are devices`,
    );
    const hook = readSpec(output).devices[0]?.containerEdits.hooks[0];
    expect(hook).toEqual({
      hookName: 'createRuntime',
      path: BINARY,
      args: [
        'kmodload',
        'hook',
        '--state',
        'createRuntime',
        '--module',
        'ip6_udp_tunnel',
        '--log',
        '/var/log/kmodload/hook.log',
        '--policy',
        fixture('policy-allow.conf'),
        '-d',
        tree.root,
        '-S',
        tree.version,
      ],
      env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'],
      timeout: 30,
    });
  });
});

describe('the whole tree', () => {
  it('no rule but default allow: every module is a device, the digit names in their own file', async () => {
    const dir = newDir();
    const policy = path.join(dir, 'policy.conf');
    fs.writeFileSync(policy, 'default allow\n');
    const output = path.join(dir, 'all.json');
    const run = await generate(output, ['--policy', policy, '--log', 'none']);
    expect(run.status).toBe(EXIT.ok);
    const main = names(output);
    const digits = names(path.join(dir, 'all-digits.json'));
    expect(main.length + digits.length).toBe(treeModules);
    expect(run.err).toContain(
      `default allow: ${treeModules} of the tree's ${treeModules} modules are devices`,
    );
    expect(digits).toContain('8021q');
    expect(digits.every((name) => /^[0-9]/.test(name))).toBe(true);
    expect(main.some((name) => /^[0-9]/.test(name))).toBe(false);
    expect(specProblems(readSpec(output))).toEqual([]);
    expect(readSpec(path.join(dir, 'all-digits.json')).cdiVersion).toBe('0.5.0');
  });
});

describe('names', () => {
  it('a module whose name no CDI device can carry gets no device, and a note', async () => {
    const dir = newDir();
    // A hand-made tree (depmod never makes such a name from a kernel module).
    const moduleDir = path.join(dir, 'root', 'lib', 'modules', '1.0');
    fs.mkdirSync(path.join(moduleDir, 'kernel'), { recursive: true });
    for (const name of ['foo_', 'dummy']) {
      fs.writeFileSync(path.join(moduleDir, 'kernel', `${name}.ko`), '');
    }
    fs.writeFileSync(path.join(moduleDir, 'modules.dep'), 'kernel/foo_.ko:\nkernel/dummy.ko:\n');
    fs.mkdirSync(path.join(dir, 'modprobe.d'));
    const policy = path.join(dir, 'policy.conf');
    fs.writeFileSync(policy, 'default allow\n');
    const output = path.join(dir, 'kmodload.json');
    const run = await cli([
      'cdi',
      'generate',
      '-d',
      path.join(dir, 'root'),
      '-S',
      '1.0',
      '-C',
      path.join(dir, 'modprobe.d'),
      '--policy',
      policy,
      '--binary',
      BINARY,
      '--output',
      output,
    ]);
    expect(run.status).toBe(EXIT.ok);
    expect(names(output)).toEqual(['dummy']);
    expect(run.err).toContain(
      'kmodload: note: no device for foo_: not a name a CDI device and the hook both take\n',
    );
  });
});

describe('--set', () => {
  const deny = ['--policy', path.join(FIXTURES, 'policy-deny.conf'), '--log', 'none'];

  it('one device for several modules, --module for each in order; a digit name goes to 0.5.0', async () => {
    const dir = newDir();
    const output = path.join(dir, 'kmodload.json');
    const run = await generate(output, [...deny, '--set', '4lb=ip_vs_rr,ip_vs_fo']);
    expect(run.status).toBe(EXIT.ok);
    const set = readSpec(path.join(dir, 'kmodload-digits.json')).devices.find(
      (device) => device.name === '4lb',
    );
    expect(set?.containerEdits.hooks[0]?.args.slice(0, 8)).toEqual([
      'kmodload',
      'hook',
      '--state',
      'createRuntime',
      '--module',
      'ip_vs_rr',
      '--module',
      'ip_vs_fo',
    ]);
  });

  it('a set the hook would always refuse is an error (exit 3), nothing written', async () => {
    const dir = newDir();
    const output = path.join(dir, 'kmodload.json');
    const run = await generate(output, [...deny, '--set', 'lb=ip_vs_rr,ip_vs_wrr']);
    expect(run.status).toBe(EXIT.refused);
    expect(run.err).toBe(
      `kmodload: --set lb: cannot load ip_vs_wrr: ip_vs_wrr is denied by ${fixture('policy-deny.conf')}:4 (deny ip_vs_wrr) (the hook would refuse it for every container)\n`,
    );
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('bad sets: bad usage (exit 2), one line each', async () => {
    const output = path.join(newDir(), 'kmodload.json');
    for (const [set, message] of [
      ['lb', /^kmodload: --set "lb": NAME=MODULE,MODULE\.\.\./],
      ['-lb=ip_vs', /^kmodload: --set "-lb=ip_vs": NAME=MODULE/],
      ['lb=', /^kmodload: --set lb: names no module/],
      [
        'lb=ip_vs,$(reboot)',
        /^kmodload: cannot load "\$\(reboot\)": invalid module name in --set lb/,
      ],
      ['ip_vs=ip_vs,ip_vs_rr', /^kmodload: --set ip_vs: a module of the tree has that name/],
    ] as const) {
      const run = await generate(output, [...deny, '--set', set]);
      expect(run.err).toMatch(message);
      expect(run.err.split('\n')).toHaveLength(2);
      expect(run.status).toBe(EXIT.usage);
    }
    const twice = await generate(output, [...deny, '--set', 'a=ip_vs', '--set', 'a=ip_vs_rr']);
    expect(twice.status).toBe(EXIT.usage);
    expect(twice.err).toBe('kmodload: --set a is given twice\n');
  });
});

describe('--check', () => {
  it('fresh: exit 0; after a policy edit: exit 1 naming the stale file, which stays as it was', async () => {
    const dir = newDir();
    const policy = path.join(dir, 'policy.conf');
    fs.writeFileSync(policy, 'default deny\nallow ip_vs ip_vs_rr\n');
    const output = path.join(dir, 'kmodload.json');
    const args = ['--policy', policy, '--log', 'none'];
    expect((await generate(output, args)).status).toBe(EXIT.ok);
    const fresh = await generate(output, [...args, '--check']);
    expect(fresh).toEqual({
      status: EXIT.ok,
      out: `fresh: ${output}, ${path.join(dir, 'kmodload-digits.json')}\n`,
      err: '',
    });

    const before = fs.readFileSync(output, 'utf8');
    fs.writeFileSync(policy, 'default deny\nallow ip_vs\n');
    const stale = await generate(output, [...args, '--check']);
    expect(stale.status).toBe(1);
    expect(stale.out).toBe('');
    expect(stale.err).toBe(
      `kmodload: stale: ${output} differs from what the policy and the module tree give now\n`,
    );
    expect(fs.readFileSync(output, 'utf8')).toBe(before);

    // Written again: fresh; a run that changes nothing leaves the file alone.
    expect((await generate(output, args)).out).toBe(
      `written ${output} (1 device, cdiVersion 0.3.0)\n`,
    );
    const inode = fs.statSync(output).ino;
    expect((await generate(output, args)).out).toBe(
      `unchanged ${output} (1 device, cdiVersion 0.3.0)\n`,
    );
    expect(fs.statSync(output).ino).toBe(inode);
    expect((await generate(output, [...args, '--check'])).status).toBe(EXIT.ok);
  });

  it('a digits file the policy no longer fills is stale, and removed when written', async () => {
    const dir = newDir();
    const policy = path.join(dir, 'policy.conf');
    fs.writeFileSync(policy, 'default deny\nallow 8021q dummy\n');
    const output = path.join(dir, 'kmodload.json');
    const digits = path.join(dir, 'kmodload-digits.json');
    const args = ['--policy', policy, '--log', 'none'];
    await generate(output, args);
    expect(names(digits)).toEqual(['8021q']);
    fs.writeFileSync(policy, 'default deny\nallow dummy\n');
    const stale = await generate(output, [...args, '--check']);
    expect(stale.status).toBe(1);
    expect(stale.err).toBe(
      `kmodload: stale: ${digits} should not exist (it would publish no device)\n`,
    );
    const written = await generate(output, args);
    expect(written.out).toBe(
      `unchanged ${output} (1 device, cdiVersion 0.3.0)\nremoved ${digits} (no device)\n`,
    );
    expect(fs.existsSync(digits)).toBe(false);
    // Nothing allowed at all: no file (the engines refuse a spec without devices).
    fs.writeFileSync(policy, 'default deny\n');
    const none = await generate(output, args);
    expect(none.out).toBe(`removed ${output} (no device)\n`);
    expect(none.err).toContain(
      'kmodload: note: the policy lets no module of the tree through: no device\n',
    );
    expect(fs.readdirSync(dir)).toEqual(['policy.conf']);
  });

  it('a spec that is missing is stale', async () => {
    const dir = newDir();
    const output = path.join(dir, 'kmodload.json');
    const run = await generate(output, ['--policy', fixture('policy-allow.conf'), '--check']);
    expect(run.status).toBe(1);
    expect(run.err).toBe(`kmodload: stale: ${output} does not exist\n`);
  });
});

describe('writing', () => {
  it('0644 whatever the umask, no temporary file left, the directory made', async () => {
    const dir = path.join(newDir(), 'etc', 'cdi');
    const output = path.join(dir, 'kmodload.json');
    const umask = process.umask(0o077);
    try {
      const run = await generate(output, ['--policy', fixture('policy-deny.conf')]);
      expect(run.status).toBe(EXIT.ok);
    } finally {
      process.umask(umask);
    }
    expect(fs.readdirSync(dir).sort()).toEqual(['kmodload-digits.json', 'kmodload.json']);
    for (const name of fs.readdirSync(dir)) {
      expect(fs.statSync(path.join(dir, name)).mode & 0o777).toBe(0o644);
    }
  });

  it('bad usage and unusable inputs: one line, documented exit status', async () => {
    const dir = newDir();
    const cases: Array<[string[], number, RegExp]> = [
      [
        ['--output', path.join(dir, 'spec.txt')],
        EXIT.usage,
        /engines read only files ending in \.json or \.yaml/,
      ],
      [['--timeout', '0'], EXIT.usage, /--timeout needs a positive whole number/],
      [['extra'], EXIT.usage, /unexpected argument "extra"/],
      [
        ['--binary', '/x', '--wrapper', '/y'],
        EXIT.usage,
        /--binary and --wrapper exclude each other/,
      ],
      [['--policy', path.join(dir, 'missing.conf')], EXIT.environment, /missing\.conf/],
    ];
    const broken = path.join(dir, 'broken.conf');
    fs.writeFileSync(broken, 'allow ip_vs when sourc cdi\n');
    cases.push([
      ['--policy', broken],
      EXIT.environment,
      /broken\.conf:1: unknown condition "sourc"/,
    ]);
    const blocker = path.join(dir, 'file');
    fs.writeFileSync(blocker, '');
    cases.push([
      ['--policy', fixture('policy-deny.conf'), '--output', path.join(blocker, 'kmodload.json')],
      EXIT.environment,
      /^kmodload: cannot write .*file\/kmodload\.json: /,
    ]);
    for (const [args, status, message] of cases) {
      const run = await cli([
        'cdi',
        'generate',
        '-d',
        tree.root,
        '-S',
        tree.version,
        '--output',
        path.join(dir, 'kmodload.json'),
        ...args,
      ]);
      expect([args, run.status]).toEqual([args, status]);
      expect(run.err).toMatch(message);
      expect(run.err.trimEnd().split('\n')).toHaveLength(1);
    }
    const noTree = await cli([
      'cdi',
      'generate',
      '-d',
      dir,
      '-S',
      '0.0',
      '--output',
      path.join(dir, 'x.json'),
    ]);
    expect(noTree.status).toBe(EXIT.environment);
    expect(noTree.err).toMatch(/^kmodload: cannot read .*\/lib\/modules\/0\.0\/modules\.dep: /);
  });

  it('cdi without generate, and help', async () => {
    expect((await cli(['cdi'])).status).toBe(EXIT.usage);
    expect((await cli(['cdi', 'publish'])).err).toBe(
      'kmodload: unknown subcommand "publish" (expected generate) (see kmodload cdi --help)\n',
    );
    const help = await cli(['cdi', 'generate', '--help']);
    expect(help.status).toBe(EXIT.ok);
    expect(help.out).toMatch(/^Usage: kmodload cdi generate /);
    expect((await cli(['help', 'cdi'])).out).toBe(help.out);
  });
});
