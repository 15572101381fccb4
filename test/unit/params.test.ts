// Module parameters: the request syntax (Kata's examples and hostile ones), the kernel's
// reading of a parameter string and its way of showing values in /sys/module, the live check
// against a /sys/module made here with every parameter type, and the loader's refusals and
// warnings.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MAX_REQUEST_LENGTH,
  parseKernelModules,
  parseModuleRequest,
  requestedNames,
} from '../../src/container/request';
import { EXIT, KmodloadError } from '../../src/errors';
import { LinuxKernel } from '../../src/kernel/linux';
import { executePlan } from '../../src/loader/load';
import { compareWithLive, type ParamConflictPolicy } from '../../src/loader/live-params';
import {
  MAX_PARAM_VALUE_LENGTH,
  kernelBool,
  kernelInteger,
  kernelParams,
  sameSetting,
  sameValue,
} from '../../src/params';
import type { ProbeStep } from '../../src/planner/plan';
import { thrown } from '../helpers/errors';
import { FakeKernel } from '../helpers/fake-kernel';
import { insmod, ipVsPlan, plan, probe, request } from '../helpers/plans';
import { kernelTree, type KernelTree } from '../helpers/trees';

const REFUSE: ParamConflictPolicy = { caller: 'refuse', host: 'warn' };

describe('the request syntax with parameters', () => {
  it("reads Kata's kernel_modules examples", () => {
    expect(
      parseModuleRequest('e1000e InterruptThrottleRate=3000,3000,3000 EEE=1; i915 enable_ppgtt=0'),
    ).toEqual([
      { name: 'e1000e', params: 'InterruptThrottleRate=3000,3000,3000 EEE=1' },
      { name: 'i915', params: 'enable_ppgtt=0' },
    ]);
    expect(parseModuleRequest('e1000e EEE=1')).toEqual([{ name: 'e1000e', params: 'EEE=1' }]);
    // Entries without parameters, empty entries, blanks of any kind between words.
    expect(parseModuleRequest(' ip_vs ;; nf_conntrack\thashsize=262144 ;')).toEqual([
      { name: 'ip_vs', params: '' },
      { name: 'nf_conntrack', params: 'hashsize=262144' },
    ]);
  });

  it('keeps the comma and blank list as it was', () => {
    expect(parseModuleRequest('ip_vs,ip_vs_wrr nf_conntrack')).toEqual([
      { name: 'ip_vs', params: '' },
      { name: 'ip_vs_wrr', params: '' },
      { name: 'nf_conntrack', params: '' },
    ]);
    expect(parseKernelModules('ip_vs,ip_vs_wrr')).toEqual(['ip_vs', 'ip_vs_wrr']);
  });

  it('takes quoted values with blanks, and the characters values need', () => {
    expect(
      parseModuleRequest('m path=/lib/firmware/x.bin addr=0000:00:1f.0 mask=0xff@%+ s="a b"'),
    ).toEqual([
      {
        name: 'm',
        params: 'path=/lib/firmware/x.bin addr=0000:00:1f.0 mask=0xff@%+ s="a b"',
      },
    ]);
  });

  const refused = (value: string, source?: string): KmodloadError => {
    const error = thrown(() => parseModuleRequest(value, source));
    expect(error.exitStatus).toBe(EXIT.refused);
    expect(error.message).not.toMatch(/[\n\r\0]/);
    return error;
  };

  it('refuses hostile values, naming the entry', () => {
    // A newline separates words: the word after it is not PARAM=VALUE.
    expect(refused('dummy numdummies=3\nreboot').message).toBe(
      'cannot load dummy: invalid parameter "reboot" in KERNEL_MODULES entry "dummy numdummies=3\\x0areboot": a parameter is PARAM=VALUE',
    );
    expect(refused('dummy numdummies="3\n4"').message).toMatch(
      /^cannot load dummy: invalid parameter "numdummies=\\"3\\x0a4\\"" in KERNEL_MODULES entry .*: a value uses only letters, digits and \. , : \+ - \/ @ % _ and spaces$/,
    );
    expect(refused('dummy numdummies=3\0').message).toContain(
      'invalid parameter "numdummies=3\\x00"',
    );
    expect(refused('dummy\0 numdummies=3').message).toMatch(
      /^cannot load "dummy\\x00": invalid module name in KERNEL_MODULES entry/,
    );
    expect(refused('dummy =').message).toBe(
      'cannot load dummy: invalid parameter "=" in KERNEL_MODULES entry "dummy =": no parameter name before \'=\'',
    );
    expect(refused('=').message).toBe(
      'cannot load "=": invalid module name in KERNEL_MODULES entry "=" (only letters, digits, "_" and "-" are allowed)',
    );
    expect(refused('dummy numdummies=').message).toContain("no value after '='");
    expect(refused('dummy 1x=3').message).toContain('a parameter name is a letter or "_"');
    for (const value of ['$(reboot)', '`reboot`', 'a|b', 'a&b', 'a>b', "'a'", 'a\\b', 'a*', '~']) {
      expect(refused(`dummy numdummies=${value}`).message).toContain(
        'a value uses only letters, digits and . , : + - / @ % _ (blanks only inside "...")',
      );
    }
    // `;` ends an entry: what follows must be an entry of its own.
    expect(refused('dummy numdummies=3;$(reboot)').message).toMatch(
      /^cannot load "\$\(reboot\)": invalid module name/,
    );
    expect(refused('dummy s="a').message).toBe(
      'unterminated quote in KERNEL_MODULES entry "dummy s=\\"a"',
    );
    expect(refused('dummy a=1 a=2').message).toBe(
      'cannot load dummy: parameter "a" is given twice in KERNEL_MODULES entry "dummy a=1 a=2"',
    );
    expect(refused('dummy a_b=1 a-b=2').message).toContain('parameter "a_b" is given twice');
    expect(refused('dummy a=1; dummy a=2').message).toBe(
      'cannot load dummy: dummy is named twice in KERNEL_MODULES: name a module with parameters once',
    );
    expect(refused('ip_vs,ip_vs_wrr x=1', 'annotation a').message).toMatch(
      /^cannot load "ip_vs,ip_vs_wrr": invalid module name in annotation a entry/,
    );
  });

  it('bounds lengths: a value, and the whole request (a 64 KiB value)', () => {
    const longest = 'v'.repeat(MAX_PARAM_VALUE_LENGTH);
    expect(parseModuleRequest(`m p=${longest}`)).toEqual([{ name: 'm', params: `p=${longest}` }]);
    expect(refused(`m p=${longest}v`).message).toContain(
      `value longer than ${MAX_PARAM_VALUE_LENGTH} characters`,
    );
    expect(refused(`m p="${'v'.repeat(MAX_PARAM_VALUE_LENGTH + 1)}"`).message).toContain(
      'value longer than',
    );
    expect(refused(`m p=${'v'.repeat(64 * 1024)}`).message).toBe(
      `KERNEL_MODULES is too long (${64 * 1024 + 4} characters, at most ${MAX_REQUEST_LENGTH})`,
    );
    expect(refused(`m ${'p'.repeat(65)}=1`).message).toContain(
      'parameter name longer than 64 characters',
    );
  });

  it('the names-only parser refuses parameters', () => {
    expect(thrown(() => parseKernelModules('dummy numdummies=3', '--module')).message).toBe(
      'cannot load dummy: --module takes module names without parameters',
    );
  });

  it('env and annotation: the same parameters, or in one place only', () => {
    const parts = (env: string, annotation: string) => [
      { value: env, source: 'env' as const, what: 'KERNEL_MODULES' },
      { value: annotation, source: 'annotation' as const, what: 'annotation a' },
    ];
    expect(requestedNames(parts('dummy numdummies=3', 'dummy; tun'))).toMatchObject({
      modules: ['dummy', 'tun'],
      params: { dummy: 'numdummies=3' },
      sources: { dummy: ['env', 'annotation'], tun: ['annotation'] },
    });
    expect(requestedNames(parts('dummy numdummies=3', 'dummy numdummies=3')).params).toEqual({
      dummy: 'numdummies=3',
    });
    expect(
      thrown(() => requestedNames(parts('dummy numdummies=3', 'dummy numdummies=4'))).message,
    ).toBe(
      'cannot load dummy: KERNEL_MODULES asks "numdummies=3" and annotation a "numdummies=4": ask the same, or in one place',
    );
  });
});

describe("the kernel's reading of parameters", () => {
  it('splits at blanks, groups quotes, drops them around a value (next_arg)', () => {
    expect(kernelParams('  a=1 b="x y"\tc "d=e f" g= h ')).toEqual([
      { name: 'a', value: '1' },
      { name: 'b', value: 'x y' },
      { name: 'c' },
      { name: 'd', value: 'e f' },
      { name: 'g', value: '' },
      { name: 'h' },
    ]);
    expect(kernelParams('a="')).toEqual([{ name: 'a', value: '' }]);
    expect(kernelParams('=x y')).toEqual([{ name: '=x' }, { name: 'y' }]);
    expect(kernelParams('')).toEqual([]);
  });

  it('kstrtobool: the first character, or on/off', () => {
    for (const text of ['1', 'y', 'Y', 'yes', 'on', 'ON']) expect(kernelBool(text)).toBe(true);
    for (const text of ['0', 'n', 'N', 'no', 'off', 'OfF']) expect(kernelBool(text)).toBe(false);
    for (const text of ['', '2', 'true', 'o', 'ox']) expect(kernelBool(text)).toBeUndefined();
  });

  it('kstrto*() with base 0: sign, hex, octal, one trailing newline', () => {
    expect(kernelInteger('16')).toBe(16n);
    expect(kernelInteger('+16')).toBe(16n);
    expect(kernelInteger('-16')).toBe(-16n);
    expect(kernelInteger('0x10')).toBe(16n);
    expect(kernelInteger('0X1f')).toBe(31n);
    expect(kernelInteger('020')).toBe(16n);
    expect(kernelInteger('0')).toBe(0n);
    expect(kernelInteger('16\n')).toBe(16n);
    expect(kernelInteger('18446744073709551615')).toBe(18446744073709551615n);
    for (const text of ['', '08', '0x', '1e3', '1 ', ' 1', '--1', '0x1g', '16\n\n']) {
      expect(kernelInteger(text)).toBeUndefined();
    }
  });

  it('two asked spellings of one value are the same setting', () => {
    expect(sameSetting('0x10', '16')).toBe(true);
    expect(sameSetting('16', '020')).toBe(true);
    expect(sameSetting('a', 'b')).toBe(false);
    expect(sameSetting(undefined, undefined)).toBe(true);
    expect(sameSetting('1', undefined)).toBe(false);
  });
});

// What param_get_* print for a value set from `asked`, as a loaded kernel shows it.
const TYPES: Array<{ type: string; shown: string; same: string[]; other: string[] }> = [
  { type: 'int', shown: '16', same: ['16', '0x10', '020', '+16'], other: ['17', 'sixteen', ''] },
  { type: 'int (negative)', shown: '-5', same: ['-5', '-0x5'], other: ['5'] },
  { type: 'uint', shown: '4294967295', same: ['4294967295', '0xffffffff'], other: ['-1'] },
  {
    type: 'long',
    shown: '-9223372036854775808',
    same: ['-9223372036854775808', '-0x8000000000000000'],
    other: ['9223372036854775808'],
  },
  {
    type: 'ulong',
    shown: '18446744073709551615',
    same: ['0xffffffffffffffff'],
    other: ['18446744073709551614'],
  },
  { type: 'short', shown: '-32768', same: ['-0x8000'], other: ['32768'] },
  { type: 'ushort', shown: '65535', same: ['65535', '0177777'], other: ['65536'] },
  { type: 'byte', shown: '255', same: ['0377', '0xff'], other: ['256'] },
  { type: 'hexint', shown: '0x0000ff', same: ['255', '0xff', '0xFF'], other: ['0x100'] },
  { type: 'hexint (zero)', shown: '00000000', same: ['0', '0x0'], other: ['1'] },
  { type: 'bool (Y)', shown: 'Y', same: ['1', 'y', 'Y', 'yes', 'on'], other: ['0', 'off', '2'] },
  { type: 'bool (N)', shown: 'N', same: ['0', 'n', 'N', 'no', 'off'], other: ['1', 'on', 'x'] },
  // invbool: the kernel stores the opposite and shows it back the way it was set.
  { type: 'invbool', shown: 'Y', same: ['1', 'on'], other: ['0'] },
  // bint: set as a bool, shown as an int.
  { type: 'bint', shown: '1', same: ['1', 'y', 'on'], other: ['0', 'n', 'off'] },
  { type: 'charp', shown: 'hello world', same: ['hello world'], other: ['hello', 'Hello world'] },
  { type: 'charp (number-like text)', shown: '08', same: ['08'], other: ['8', '010'] },
  { type: 'string', shown: 'eth0', same: ['eth0'], other: ['eth1'] },
  {
    type: 'array of int',
    shown: '3000,3000,3000',
    same: ['3000,3000,0xbb8'],
    other: ['3000,3000', '3000', '3000,3000,3000,3000'],
  },
  { type: 'array of int (none set)', shown: '', same: [''], other: ['3000'] },
  { type: 'array of bool', shown: 'Y,N,Y', same: ['1,0,on'], other: ['1,1,1', 'Y,N'] },
  { type: 'array of charp', shown: 'a,b', same: ['a,b'], other: ['a', 'a,c'] },
];

describe('live values against a /sys/module with every parameter type', () => {
  let sysfs: string;
  let kernel: LinuxKernel;
  const params: Record<string, string> = {};

  beforeAll(() => {
    sysfs = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-params-sysfs-'));
    const dir = path.join(sysfs, 'module', 'm', 'parameters');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(sysfs, 'module', 'm', 'initstate'), 'live\n');
    TYPES.forEach(({ shown }, i) => {
      params[`p${i}`] = shown;
      fs.writeFileSync(path.join(dir, `p${i}`), `${shown}\n`);
    });
    // Not a value sysfs could show: a directory in its place (an unreadable one is the same).
    fs.mkdirSync(path.join(dir, 'odd'));
    kernel = new LinuxKernel({ sysfsRoot: sysfs });
  });
  afterAll(() => fs.rmSync(sysfs, { recursive: true, force: true }));

  const step = (options: string, extra?: string): ProbeStep => ({
    name: 'm',
    kind: 'insmod',
    path: '/nonexistent/m.ko',
    options,
    ...(extra === undefined ? {} : { extraOptions: extra }),
    required: true,
    target: true,
  });
  const findings = (options: string, extra?: string) =>
    compareWithLive('m', step(options, extra), kernel, REFUSE);

  it('LinuxKernel reads a parameter without its newline; none for what sysfs does not show', async () => {
    expect(await kernel.parameter('m', 'p0')).toBe('16');
    expect(await kernel.parameter('m', 'absent')).toBeUndefined();
    expect(await kernel.parameter('m', 'odd')).toBeUndefined();
    expect(await kernel.parameter('other', 'p0')).toBeUndefined();
    await expect(kernel.parameter('m', '../initstate')).rejects.toThrow(/invalid parameter name/);
  });

  for (const [i, { type, shown, same, other }] of TYPES.entries()) {
    it(`${type}: shown ${JSON.stringify(shown)}`, async () => {
      for (const value of same) {
        const asked = `p${i}="${value}"`;
        expect(await findings(asked, asked), `${value} sets ${shown}`).toEqual([]);
        expect(sameValue(shown, value)).toBe(true);
      }
      for (const value of other) {
        const asked = `p${i}="${value}"`;
        const found = await findings(asked, asked);
        expect(found, `${value} does not set ${shown}`).toHaveLength(1);
        expect(found[0]).toMatchObject({ module: 'm', action: 'refuse' });
        expect(found[0]?.reason).toMatch(new RegExp(`^live with p${i}=`));
      }
    });
  }

  it('the refusal line: what is live, what was asked, what to do', async () => {
    const [conflict] = await findings('p0=262144', 'p0=262144');
    expect(conflict?.reason).toBe(
      'live with p0=16, asked 262144 (unload it first, or ask for the live value)',
    );
  });

  it('a parameter sysfs does not show cannot be verified: refused for the caller, a warning for the host', async () => {
    const [caller] = await findings('numdummies=5', 'numdummies=5');
    expect(caller).toMatchObject({ action: 'refuse' });
    expect(caller?.reason).toBe(
      'live, and /sys/module/m/parameters does not show numdummies: cannot verify numdummies=5 (unload it first, or ask without it)',
    );
    const [host] = await findings('numdummies=5');
    expect(host).toMatchObject({ action: 'warn' });
    expect((await findings('odd=1', 'odd=1'))[0]?.action).toBe('refuse');
  });

  it("the host's options (modprobe.d) are compared too, with their own action; the caller's win a name", async () => {
    const [host] = await findings('p0=17 p1=-5');
    expect(host).toMatchObject({ action: 'warn' });
    expect(host?.reason).toBe(
      "live with p0=16, the host's options (modprobe.d) ask 17 (unload it first, or make the host's options match)",
    );
    // modprobe.d says 17, the caller 16: the kernel would take the last, the caller's.
    expect(await findings('p0=17 p0=16', 'p0=16')).toEqual([]);
    const strict = await compareWithLive('m', step('p0=17'), kernel, {
      caller: 'refuse',
      host: 'refuse',
    });
    expect(strict[0]?.action).toBe('refuse');
  });

  it('load-time arguments that are not parameters are not compared', async () => {
    expect(await findings('dyndbg=+p async_probe')).toEqual([]);
  });

  it('a value a container holds decides where sysfs shows nothing', async () => {
    const held = { m: { id: 'c1', params: 'numdummies=3 verbose=y' } };
    const check = (asked: string) => compareWithLive('m', step(asked, asked), kernel, REFUSE, held);
    expect(await check('numdummies=3')).toEqual([]);
    // Both are asked values: either may be the other's spelling.
    expect(await check('numdummies=0x3 verbose=1')).toEqual([]);
    expect((await check('numdummies=5'))[0]?.reason).toBe(
      'live with numdummies=3 (as kmodload loaded it for container c1), asked 5 (unload it first, or ask for the live value)',
    );
    // sysfs first: what it shows is what the kernel has.
    expect(
      await compareWithLive('m', step('p0=16', 'p0=16'), kernel, REFUSE, {
        m: { id: 'c1', params: 'p0=99' },
      }),
    ).toEqual([]);
  });
});

describe('the loader with parameters', () => {
  let tree: KernelTree;
  beforeAll(() => {
    tree = kernelTree('6.1');
  });

  /** ip_vs asked with `extra` (the caller's) after `config` (modprobe.d's). */
  const ipVs = (config: string, extra?: string) => {
    const p = ipVsPlan(tree);
    const target = p.requests[0]?.probes[0]?.steps.at(-1) as ProbeStep;
    target.options = extra === undefined ? config : `${config} ${extra}`.trim();
    if (extra !== undefined) target.extraOptions = extra;
    return p;
  };

  it('a live module with other values: refused before any insert, exit 3, one line', async () => {
    const kernel = new FakeKernel()
      .setState('nf_conntrack', 'live')
      .setState('ip_vs', 'live')
      .setParameter('ip_vs', 'conn_tab_bits', '12');
    const error = await executePlan(ipVs('', 'conn_tab_bits=14'), {
      kernel,
      paramConflict: REFUSE,
    }).then(
      () => undefined,
      (caught: unknown) => caught as KmodloadError,
    );
    expect(error).toBeInstanceOf(KmodloadError);
    expect(error?.exitStatus).toBe(EXIT.refused);
    expect(error?.message).toBe(
      'cannot load ip_vs: live with conn_tab_bits=12, asked 14 (unload it first, or ask for the live value)',
    );
    expect(kernel.calls).toEqual([]);
    // The same value (another spelling) is what is live: nothing to do.
    const same = await executePlan(ipVs('', 'conn_tab_bits=0xc'), {
      kernel,
      paramConflict: REFUSE,
    });
    expect(same.modules.map((m) => `${m.status} ${m.name}`)).toEqual(['already-live ip_vs']);
    expect(same.warnings).toBeUndefined();
  });

  it('warn: the module stays as it is, the result says why (the modprobe CLI)', async () => {
    const kernel = new FakeKernel()
      .setState('ip_vs', 'live')
      .setParameter('ip_vs', 'conn_tab_bits', '12');
    const result = await executePlan(ipVs('', 'conn_tab_bits=14'), { kernel });
    expect(result.ok).toBe(true);
    expect(result.warnings).toEqual([
      'ip_vs: live with conn_tab_bits=12, asked 14: the kernel keeps the live value',
    ]);
  });

  it('a live dependency with other modprobe.d options is a warning, named with its request', async () => {
    const p = ipVsPlan(tree);
    const conntrack = p.requests[0]?.probes[0]?.steps.find((s) => s.name === 'nf_conntrack');
    (conntrack as ProbeStep).options = 'hashsize=262144';
    const host = () =>
      new FakeKernel()
        .setState('nf_conntrack', 'live')
        .setParameter('nf_conntrack', 'hashsize', '65536');
    const result = await executePlan(p, { kernel: host(), paramConflict: REFUSE });
    expect(result.ok).toBe(true);
    expect(result.warnings).toEqual([
      "ip_vs: nf_conntrack is live with hashsize=65536, the host's options (modprobe.d) ask 262144: the kernel keeps the live value",
    ]);
    const strict = executePlan(p, {
      kernel: host(),
      paramConflict: { caller: 'refuse', host: 'refuse' },
    });
    await expect(strict).rejects.toThrow(
      "cannot load ip_vs: nf_conntrack is live with hashsize=65536, the host's options (modprobe.d) ask 262144 (unload it first, or make the host's options match)",
    );
  });

  it('a module an earlier step of the plan inserts without the values asked later', async () => {
    // ip_vs first (it inserts nf_conntrack as a dependency), then nf_conntrack with a value.
    const ip = ipVsPlan(tree).requests[0]!;
    const conntrack = insmod(tree, 'nf_conntrack', {
      target: true,
      options: 'hashsize=262144',
      extraOptions: 'hashsize=262144',
    });
    const p = plan(tree, [ip, request('nf_conntrack', [probe('nf_conntrack', [conntrack])])]);
    const kernel = new FakeKernel();
    await expect(executePlan(p, { kernel, paramConflict: REFUSE })).rejects.toThrow(
      'cannot load nf_conntrack: loaded earlier in this request (for ip_vs) without hashsize, asked 262144 (name nf_conntrack first, or ask the same)',
    );
    expect(kernel.calls).toEqual([]);
    // Named first, it is inserted with its value, and ip_vs finds it done.
    const first = plan(tree, [request('nf_conntrack', [probe('nf_conntrack', [conntrack])]), ip]);
    const result = await executePlan(first, { kernel, paramConflict: REFUSE });
    expect(result.ok).toBe(true);
    expect(kernel.calls.find((c) => c.name === 'nf_conntrack')).toMatchObject({
      params: 'hashsize=262144',
    });
  });

  it('another loader wins the race with other values: that module fails, the rest is reported', async () => {
    const kernel = new FakeKernel().raceOn('ip_vs').exposeParameters('ip_vs', ['conn_tab_bits']);
    kernel.setParameter('ip_vs', 'conn_tab_bits', '12');
    const result = await executePlan(ipVs('', 'conn_tab_bits=14'), {
      kernel,
      paramConflict: REFUSE,
    });
    expect(result.ok).toBe(false);
    expect(result.modules.at(-1)).toMatchObject({
      name: 'ip_vs',
      status: 'failed',
      error: {
        code: 'EEXIST',
        message:
          'live with conn_tab_bits=12, asked 14 (unload it first, or ask for the live value)',
      },
    });
  });

  it('a dry run says the same before anything would load', async () => {
    const kernel = new FakeKernel().setState('ip_vs', 'live');
    await expect(
      executePlan(ipVs('', 'conn_tab_bits=14'), { kernel, dryRun: true, paramConflict: REFUSE }),
    ).rejects.toThrow(/cannot verify conn_tab_bits=14/);
  });

  it('without parameters anywhere, no parameter is read', async () => {
    const kernel = new FakeKernel().setState('ip_vs', 'live');
    await executePlan(ipVsPlan(tree), { kernel, paramConflict: REFUSE });
    expect(kernel.reads.filter((r) => r.startsWith('parameter'))).toEqual([]);
  });
});
