// The host policy: the parser (every directive, every problem with FILE:LINE) and the
// evaluator against real plans of the Debian 6.1 tree.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolve } from '../../src/api';
import { EXIT } from '../../src/errors';
import { assertPlanRunnable } from '../../src/loader/load';
import {
  addPolicyText,
  checkPolicy,
  emptyPolicy,
  parsePolicy,
  readPolicy,
  readPolicyFiles,
  type Policy,
  type PolicyVerdict,
  type Requester,
} from '../../src/policy';
import { thrown } from '../helpers/errors';
import { kernelTree } from '../helpers/trees';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-policy-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

function problemsOf(text: string | Uint8Array, file = 'p.conf'): string[] {
  return addPolicyText(emptyPolicy(), text, file).map((p) => `${p.file}:${p.line}: ${p.message}`);
}

describe('policy parser', () => {
  it('reads every directive, with continuation, comments and normalised names', () => {
    const policy = parsePolicy(
      [
        '# a cluster policy',
        'default deny',
        'max-modules 12   # small',
        'allow ip-vs* nf_[a-z]* \\',
        '      libcrc32c',
        '',
        '\tdeny xfs dccp when source annotation',
        'allow dummy when annotation io.kubernetes.pod.namespace=kube-* source env',
      ].join('\n'),
      '/etc/kmodload/policy.conf',
    );
    expect(policy.files).toEqual(['/etc/kmodload/policy.conf']);
    expect(policy.default).toEqual({ value: 'deny', origin: '/etc/kmodload/policy.conf:2' });
    expect(policy.maxModules).toEqual({ value: 12, origin: '/etc/kmodload/policy.conf:3' });
    expect(policy.rules).toEqual([
      {
        verdict: 'allow',
        patterns: ['ip_vs*', 'nf_[a-z]*', 'libcrc32c'],
        conditions: [],
        origin: '/etc/kmodload/policy.conf:5',
        text: 'allow ip-vs* nf_[a-z]* libcrc32c',
      },
      {
        verdict: 'deny',
        patterns: ['xfs', 'dccp'],
        conditions: [{ kind: 'source', source: 'annotation' }],
        origin: '/etc/kmodload/policy.conf:7',
        text: 'deny xfs dccp when source annotation',
      },
      {
        verdict: 'allow',
        patterns: ['dummy'],
        conditions: [
          { kind: 'annotation', key: 'io.kubernetes.pod.namespace', value: 'kube-*' },
          { kind: 'source', source: 'env' },
        ],
        origin: '/etc/kmodload/policy.conf:8',
        text: 'allow dummy when annotation io.kubernetes.pod.namespace=kube-* source env',
      },
    ]);
  });

  it('has built-in defaults: allow, 64 modules', () => {
    const policy = parsePolicy('', 'empty.conf');
    expect(policy.default).toEqual({ value: 'allow' });
    expect(policy.maxModules).toEqual({ value: 64 });
    expect(policy.rules).toEqual([]);
  });

  it('default and max-modules may be set once across all files', () => {
    const policy = emptyPolicy();
    expect(addPolicyText(policy, 'default deny\nmax-modules 5\n', 'a.conf')).toEqual([]);
    expect(addPolicyText(policy, 'max-modules 6\ndefault allow\n', 'b.conf')).toEqual([
      { file: 'b.conf', line: 1, message: "'max-modules' is set twice (first at a.conf:2)" },
      { file: 'b.conf', line: 2, message: "'default' is set twice (first at a.conf:1)" },
    ]);
  });

  it('reports every problem with FILE:LINE', () => {
    const text = [
      'bogus x',
      'allow',
      'allow a when',
      'allow a when annotation x',
      'allow [ab',
      'allow a**',
      'default maybe',
      'max-modules 0',
      'max-modules many',
      'allow x.y',
      'allow a when source pod',
      'allow a when owner root',
      'allow a when annotation =v',
      'deny a]',
      'deny !ip_vs',
      'deny ip_vs^',
      'allow ok \\',
    ].join('\n');
    expect(problemsOf(text)).toEqual([
      'p.conf:1: unknown directive "bogus" (expected default, max-modules, allow, deny, params or on-param-conflict)',
      "p.conf:2: 'allow' needs at least one module pattern",
      "p.conf:3: 'when' needs at least one condition",
      "p.conf:4: 'annotation x' needs KEY=GLOB (no '=')",
      "p.conf:5: bad pattern \"[ab\": '[' without its ']'",
      "p.conf:6: bad pattern \"a**\": '**' means the same as '*' in fnmatch: write '*'",
      "p.conf:7: 'default' takes one word: allow or deny",
      "p.conf:8: 'max-modules' takes one whole number, 1 or more",
      "p.conf:9: 'max-modules' takes one whole number, 1 or more",
      'p.conf:10: "x.y" is not a module name pattern ("." is not allowed; module names use letters, digits, "_" and "-")',
      'p.conf:11: \'source\' takes env, annotation or cdi, not "pod"',
      'p.conf:12: unknown condition "owner" (expected annotation KEY=GLOB, source env|annotation|cdi, namespace GLOB or pod-label KEY=GLOB)',
      'p.conf:13: "" is not an annotation key',
      "p.conf:14: bad pattern \"a]\": ']' without '['",
      "p.conf:15: bad pattern \"!ip_vs\": '!' outside '[...]' matches itself, and no module name has one: the pattern never matches ('[!x]' is one character other than x)",
      "p.conf:16: bad pattern \"ip_vs^\": '^' outside '[...]' matches itself, and no module name has one: the pattern never matches ('[!x]' is one character other than x)",
      'p.conf:17: the line ends with "\\" but no line follows to continue it',
    ]);
    // Inside brackets '!' and '^' negate, also after a leading ']' member.
    expect(problemsOf('deny ip_vs_[!w]* ip_vs_[^s]* x[!]]y\n')).toEqual([]);
  });

  it('parsePolicy refuses with the first problem and a count (exit 4)', () => {
    const error = thrown(() => parsePolicy('allow ip_vs\nnonsense\ndeny\n', '/p.conf'));
    expect(error.exitStatus).toBe(EXIT.environment);
    expect(error.message).toBe(
      'invalid policy: /p.conf:2: unknown directive "nonsense" (expected default, max-modules, allow, deny, params or on-param-conflict) (and 1 more: kmodload policy lint)',
    );
  });

  it('the default location: nothing there is no policy; policy.conf then policy.d/*.conf', async () => {
    const root = path.join(scratch, 'root');
    fs.mkdirSync(root);
    expect(await readPolicyFiles(undefined, root)).toEqual({
      policy: null,
      problems: [],
      skipped: [],
    });
    const dir = path.join(root, 'etc', 'kmodload', 'policy.d');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'b.conf'), 'deny b\n');
    fs.writeFileSync(path.join(dir, 'a.conf'), 'deny a\n');
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'not a policy\n');
    fs.writeFileSync(path.join(root, 'etc', 'kmodload', 'policy.conf'), 'default deny\n');
    const policy = await readPolicy(undefined, root);
    expect(policy?.files).toEqual([
      path.join(root, 'etc/kmodload/policy.conf'),
      path.join(dir, 'a.conf'),
      path.join(dir, 'b.conf'),
    ]);
    expect(policy?.rules.map((r) => r.text)).toEqual(['deny a', 'deny b']);
    // Names without .conf are not read, but reported (lint); hidden files are nobody's.
    fs.writeFileSync(path.join(dir, '99-deny'), 'deny c\n');
    fs.writeFileSync(path.join(dir, 'deny.CONF'), 'deny d\n');
    fs.writeFileSync(path.join(dir, '.a.conf.swp'), 'x\n');
    const read = await readPolicyFiles(undefined, root);
    expect(read.problems).toEqual([]);
    expect(read.policy?.rules.map((r) => r.text)).toEqual(['deny a', 'deny b']);
    expect(read.skipped).toEqual([
      path.join(dir, '99-deny'),
      path.join(dir, 'deny.CONF'),
      path.join(dir, 'notes.txt'),
    ]);
  });

  it('a named file that is missing, a directory or a FIFO is a problem, not an empty policy', async () => {
    const fifo = path.join(scratch, 'fifo.conf');
    const { execFileSync } = await import('node:child_process');
    execFileSync('mkfifo', [fifo]);
    const { problems } = await readPolicyFiles([path.join(scratch, 'missing.conf'), scratch, fifo]);
    expect(problems.map((p) => p.message)).toEqual([
      'cannot read the policy: ENOENT: no such file or directory',
      'cannot read the policy: not a regular file (a directory)',
      'cannot read the policy: not a regular file',
    ]);
  });
});

// Real plans: the Debian 6.1 tree, planned as the hook plans (blacklist on names, no install
// commands, strict modprobe.d), with a modprobe.d of the test's own.
describe('params rules and on-param-conflict', () => {
  it('reads params rules: one module pattern, PARAM=VALUE-GLOB words, conditions', () => {
    const policy = parsePolicy(
      [
        'params dummy numdummies=[1-8]',
        'params ip-vs conn-tab-bits=1? conn_tab_bits=20 when annotation team=net* source env',
        'params nf_conntrack hashsize=* ',
        'on-param-conflict warn',
      ].join('\n'),
      'p.conf',
    );
    expect(policy.rules).toEqual([]);
    expect(policy.paramRules).toEqual([
      {
        pattern: 'dummy',
        params: [{ name: 'numdummies', value: '[1-8]' }],
        conditions: [],
        origin: 'p.conf:1',
        text: 'params dummy numdummies=[1-8]',
      },
      {
        pattern: 'ip_vs',
        params: [
          { name: 'conn_tab_bits', value: '1?' },
          { name: 'conn_tab_bits', value: '20' },
        ],
        conditions: [
          { kind: 'annotation', key: 'team', value: 'net*' },
          { kind: 'source', source: 'env' },
        ],
        origin: 'p.conf:2',
        text: 'params ip-vs conn-tab-bits=1? conn_tab_bits=20 when annotation team=net* source env',
      },
      {
        pattern: 'nf_conntrack',
        params: [{ name: 'hashsize', value: '*' }],
        conditions: [],
        origin: 'p.conf:3',
        text: 'params nf_conntrack hashsize=*',
      },
    ]);
    expect(policy.paramConflict).toEqual({ value: 'warn', origin: 'p.conf:4' });
    expect(emptyPolicy().paramConflict).toBeUndefined();
  });

  it('reports every problem of a params rule with FILE:LINE', () => {
    expect(
      problemsOf(
        [
          'params dummy',
          'params numdummies=3',
          'params dummy ip_vs x=1',
          'params dummy =3',
          'params dummy 1x=3',
          'params dummy numdummies=',
          'params dummy numdummies=$(reboot)',
          'params dummy numdummies=[1-',
          'params dummy numdummies=!3',
          'params du;mmy numdummies=3',
          'params dummy x=1 when',
          'on-param-conflict',
          'on-param-conflict ignore',
          'on-param-conflict warn',
          'on-param-conflict refuse',
        ].join('\n'),
      ),
    ).toEqual([
      "p.conf:1: 'params' takes one module pattern, then PARAM=VALUE-GLOB words",
      "p.conf:2: 'params' takes one module pattern, then PARAM=VALUE-GLOB words",
      `p.conf:3: 'params' takes one module pattern, then PARAM=VALUE-GLOB words, not "ip_vs"`,
      `p.conf:4: "=3": no parameter name before '='`,
      'p.conf:5: "1x=3": a parameter name is a letter or "_", then letters, digits, "_" or "-"',
      `p.conf:6: "numdummies=" needs a value pattern ('*' for any value)`,
      `p.conf:7: "numdummies=$(reboot)": a value pattern uses letters, digits and . , : + - / @ % _ and fnmatch's * ? [ ] (a container's values use no other)`,
      `p.conf:8: bad pattern "[1-": '[' without its ']'`,
      `p.conf:9: bad pattern "!3": '!' outside '[...]' matches itself, and no module name has one: the pattern never matches ('[!x]' is one character other than x)`,
      `p.conf:10: "du;mmy" is not a module name pattern (";" is not allowed; module names use letters, digits, "_" and "-")`,
      "p.conf:11: 'when' needs at least one condition",
      "p.conf:12: 'on-param-conflict' takes one word: refuse or warn",
      "p.conf:13: 'on-param-conflict' takes one word: refuse or warn",
      "p.conf:15: 'on-param-conflict' is set twice (first at p.conf:14)",
    ]);
  });
});

describe('policy verdicts on the Debian 6.1 tree', () => {
  const tree = kernelTree('6.1');
  let configCount = 0;

  function modprobeDir(content: string): string {
    const dir = path.join(scratch, `modprobe-${configCount++}`);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'host.conf'), content);
    return dir;
  }

  async function verdict(
    names: string[],
    policy: Policy | null,
    requester: Requester = {},
    modprobe = '',
  ): Promise<{ verdict: PolicyVerdict; refusal: string | undefined }> {
    const checked = await resolve(names, {
      root: tree.root,
      kernelVersion: tree.version,
      configDirs: [modprobeDir(modprobe)],
      kernelCommandLine: '',
      useBlacklist: true,
      strictConfig: true,
      policy,
      requester,
    });
    let refusal: string | undefined;
    try {
      assertPlanRunnable(checked.plan, { verdict: checked.verdict });
    } catch (error) {
      refusal = (error as Error).message;
    }
    return { verdict: checked.verdict, refusal };
  }

  const policy = (text: string): Policy => parsePolicy(text, '/etc/kmodload/policy.conf');

  it('allows the seed request with everything it brings', async () => {
    const { verdict: v, refusal } = await verdict(
      ['ip_vs', 'ip_vs_wrr'],
      policy('default deny\nallow ip_vs*\n'),
    );
    expect(refusal).toBeUndefined();
    expect(v.ok).toBe(true);
    expect(v.modules).toBe(8);
    const wrr = v.decisions.filter((d) => d.request === 'ip_vs_wrr');
    expect(wrr.map((d) => `${d.verdict} ${d.module} ${d.role} ${d.rule}`)).toEqual([
      'allow crc32c_intel softdep with ip_vs_wrr',
      'allow crc32c_generic softdep with ip_vs_wrr',
      'allow libcrc32c dependency with ip_vs_wrr',
      'allow nf_defrag_ipv4 dependency with ip_vs_wrr',
      'allow nf_defrag_ipv6 dependency with ip_vs_wrr',
      'allow nf_conntrack dependency with ip_vs_wrr',
      'allow ip_vs dependency with ip_vs_wrr',
      'allow ip_vs_wrr target /etc/kmodload/policy.conf:2 (allow ip_vs*)',
    ]);
  });

  it('an alias cannot launder a denied target', async () => {
    const { refusal, verdict: v } = await verdict(['fs-xfs'], policy('deny xfs\n'));
    expect(refusal).toBe(
      'cannot load fs-xfs: xfs is denied by /etc/kmodload/policy.conf:1 (deny xfs)',
    );
    expect(v.decisions.find((d) => d.module === 'xfs')).toMatchObject({
      request: 'fs-xfs',
      role: 'target',
      verdict: 'deny',
    });
  });

  it('a denied hard dependency refuses the module that needs it', async () => {
    const { refusal } = await verdict(['ip_vs'], policy('allow ip_vs\ndeny nf_conntrack\n'));
    expect(refusal).toBe(
      'cannot load ip_vs: nf_conntrack (a dependency of ip_vs) is denied by /etc/kmodload/policy.conf:2 (deny nf_conntrack)',
    );
  });

  it('a softdep cannot smuggle in a denied alternative', async () => {
    const { refusal } = await verdict(['ip_vs'], policy('deny crc32c_intel\n'));
    expect(refusal).toBe(
      'cannot load ip_vs: crc32c_intel (a soft dependency of ip_vs) is denied by /etc/kmodload/policy.conf:1 (deny crc32c_intel)',
    );
  });

  it('a module that is a softdep of one alias match and itself a match must pass as a target', async () => {
    // modprobe.d aliases: "both" is ip_vs (whose plan has crc32c_generic as a softdep) and
    // crc32c_generic itself.
    const host = 'alias both ip_vs\nalias both crc32c_generic\n';
    const { refusal } = await verdict(['both'], policy('default deny\nallow ip_vs\n'), {}, host);
    expect(refusal).toBe(
      'cannot load both: crc32c_generic is not allowed for this container (default deny, /etc/kmodload/policy.conf:1)',
    );
  });

  it('deny beats allow, whatever the order', async () => {
    for (const text of ['allow dummy\ndeny dum*\n', 'deny dum*\nallow dummy\n']) {
      const { refusal } = await verdict(['dummy'], policy(text));
      expect(refusal).toMatch(/^cannot load dummy: dummy is denied by .*\(deny dum\*\)$/);
    }
  });

  it('default deny refuses a module no rule names, and says which default', async () => {
    const { refusal } = await verdict(['dummy'], policy('default deny\nallow ip_vs\n'));
    expect(refusal).toBe(
      'cannot load dummy: dummy is not allowed for this container (default deny, /etc/kmodload/policy.conf:1)',
    );
  });

  it('an allow scoped by annotation: applies on a match only', async () => {
    const text = 'default deny\nallow dummy when annotation io.kubernetes.pod.namespace=kube-*\n';
    const kube = { annotations: { 'io.kubernetes.pod.namespace': 'kube-system' } };
    const other = { annotations: { 'io.kubernetes.pod.namespace': 'default' } };
    expect((await verdict(['dummy'], policy(text), kube)).refusal).toBeUndefined();
    expect((await verdict(['dummy'], policy(text), other)).refusal).toMatch(/default deny/);
    expect((await verdict(['dummy'], policy(text), {})).refusal).toMatch(/default deny/);
    // An annotation that only exists on Object.prototype is not an annotation.
    const proto = policy('default deny\nallow dummy when annotation constructor=*\n');
    expect((await verdict(['dummy'], proto, {})).refusal).toMatch(/default deny/);
  });

  it("namespace and pod-label: the runtime's typed facts; where missing, allow no, deny yes", async () => {
    const text = [
      'default deny',
      'allow dummy when namespace kube-*',
      'allow tun when pod-label app=vpn*',
      'deny tun when namespace restricted',
    ].join('\n');
    const nri = (namespace: string, podLabels: Record<string, string> = {}): Requester => ({
      namespace,
      podLabels,
    });
    expect((await verdict(['dummy'], policy(text), nri('kube-system'))).refusal).toBeUndefined();
    expect((await verdict(['dummy'], policy(text), nri('default'))).refusal).toMatch(
      /default deny/,
    );
    expect(
      (await verdict(['tun'], policy(text), nri('a', { app: 'vpn-1' }))).refusal,
    ).toBeUndefined();
    expect((await verdict(['tun'], policy(text), nri('a', { app: 'web' }))).refusal).toMatch(
      /default deny/,
    );
    expect(
      (await verdict(['tun'], policy(text), nri('restricted', { app: 'vpn-1' }))).refusal,
    ).toMatch(/denied by .*namespace restricted/);
    // The hook has neither fact: the allows do not apply, the deny does.
    const hook = { annotations: { 'io.kubernetes.pod.namespace': 'kube-system' } };
    expect((await verdict(['dummy'], policy(text), hook)).refusal).toMatch(/default deny/);
    const allowAll = policy('allow tun\ndeny tun when namespace restricted\n');
    expect((await verdict(['tun'], allowAll, hook)).refusal).toMatch(/denied by/);
    expect((await verdict(['tun'], allowAll, nri('default'))).refusal).toBeUndefined();
    // A label only on Object.prototype is not a label.
    const proto = policy('default deny\nallow dummy when pod-label constructor=*\n');
    expect((await verdict(['dummy'], proto, nri('a'))).refusal).toMatch(/default deny/);
  });

  it('source conditions: a name from both sources needs the allow for each', async () => {
    const text = 'default deny\nallow dummy when source env\ndeny tipc when source annotation\n';
    const p = policy(text);
    expect((await verdict(['dummy'], p, { source: 'env' })).refusal).toBeUndefined();
    expect((await verdict(['dummy'], p, { source: 'annotation' })).refusal).toMatch(/default/);
    expect(
      (await verdict(['dummy'], p, { source: { dummy: ['env', 'annotation'] } })).refusal,
    ).toMatch(/default deny/);
    // A deny holds when any source matches.
    const both = { source: { tipc: ['env', 'annotation'] as const } } as unknown as Requester;
    expect(
      (await verdict(['tipc'], policy('deny tipc when source annotation\n'), both)).refusal,
    ).toMatch(/tipc is denied/);
    expect(
      (await verdict(['tipc'], policy('deny tipc when source annotation\n'), { source: 'env' }))
        .refusal,
    ).toBeUndefined();
  });

  it("the host's blacklist and install /bin/true|false deny anywhere in the plan, policy or not", async () => {
    const host = [
      'blacklist dccp',
      'install sctp /bin/false',
      'install rds /bin/true',
      'blacklist af_alg',
      // kmod ignores an install rule of a module with softdeps (libcrc32c has one).
      'install libcrc32c /bin/true',
    ].join('\n');
    const cases: Array<[string, RegExp]> = [
      [
        'dccp_ipv4',
        /^cannot load dccp_ipv4: dccp \(a dependency of dccp_ipv4\) is blocked by the host \(blacklist dccp, .*host\.conf:1\)$/,
      ],
      ['sctp_diag', /^cannot load sctp_diag: .*sctp/],
      [
        'rds_tcp',
        /^cannot load rds_tcp: rds \(a dependency of rds_tcp\) is blocked by the host \(install rds \/bin\/true, .*host\.conf:3\)$/,
      ],
      [
        'algif_aead',
        /^cannot load algif_aead: af_alg \(a dependency of algif_aead\) is blocked by the host \(blacklist af_alg/,
      ],
      [
        'ip_vs',
        /^cannot load ip_vs: libcrc32c \(a dependency of ip_vs\) is blocked by the host \(install libcrc32c \/bin\/true/,
      ],
    ];
    for (const [name, message] of cases) {
      for (const p of [null, policy('allow *\n')]) {
        expect((await verdict([name], p, {}, host)).refusal).toMatch(message);
      }
    }
  });

  it('max-modules caps one request; the default is 64, also without a policy file', async () => {
    const { refusal, verdict: v } = await verdict(
      ['ip_vs', 'ip_vs_wrr'],
      policy('max-modules 7\n'),
    );
    expect(v.modules).toBe(8);
    expect(refusal).toBe(
      'cannot load ip_vs,ip_vs_wrr: the request needs 8 modules, more than max-modules 7 (/etc/kmodload/policy.conf:1)',
    );
    const all = fs
      .readFileSync(path.join(tree.moduleDir, 'modules.dep'), 'utf8')
      .split('\n')
      .filter((line) => line.includes(':'))
      .slice(0, 200)
      .map((line) => path.basename(line.slice(0, line.indexOf(':'))).replace(/\.ko.*$/, ''));
    const many = await verdict(all, null);
    expect(many.verdict.maxModules).toBe(64);
    expect(many.refusal).toMatch(
      /^cannot load [^,]+,[^,]+,[^,]+,\.\.\. \(200 names\): the request needs \d+ modules, more than max-modules 64 \(the default\)$/,
    );
  });

  it('checkPolicy is pure and typed: a verdict from a plan alone', async () => {
    const plan = await resolve(['dummy'], {
      root: tree.root,
      kernelVersion: tree.version,
      configDirs: [modprobeDir('')],
    });
    // Without a policy, the plan alone; checking it changes nothing in it.
    expect(Object.keys(plan)).toEqual(['moduleDir', 'kernelVersion', 'requests']);
    const before = JSON.stringify(plan);
    const v = checkPolicy(plan, policy('deny dummy\n'));
    expect(JSON.stringify(plan)).toBe(before);
    expect(v).toEqual({
      ok: false,
      policy: ['/etc/kmodload/policy.conf'],
      modules: 1,
      maxModules: 64,
      decisions: [
        {
          request: 'dummy',
          module: 'dummy',
          role: 'target',
          verdict: 'deny',
          rule: '/etc/kmodload/policy.conf:1 (deny dummy)',
        },
      ],
      violations: [
        { request: 'dummy', reason: 'dummy is denied by /etc/kmodload/policy.conf:1 (deny dummy)' },
      ],
    });
  });

  describe('parameters', () => {
    const rules = [
      'allow dummy ip_vs nf_conntrack fs-xfs xfs',
      'params dummy numdummies=[1-8]',
      'params ip_vs conn_tab_bits=1? when source env',
      'params x* nodiscard=1',
      'params nf_conntrack hashsize=65536',
      'params nf_conntrack hashsize=131072 when annotation team=net',
    ].join('\n');

    async function paramVerdict(
      names: string[],
      extraOptions: Record<string, string>,
      requester: Requester = {},
      text: string | null = rules,
    ) {
      const checked = await resolve(names, {
        root: tree.root,
        kernelVersion: tree.version,
        configDirs: [modprobeDir('options dummy numdummies=2\n')],
        kernelCommandLine: '',
        useBlacklist: true,
        strictConfig: true,
        extraOptions,
        policy: text === null ? null : policy(text),
        requester,
      });
      let refusal: string | undefined;
      try {
        assertPlanRunnable(checked.plan, { verdict: checked.verdict });
      } catch (error) {
        refusal = (error as Error).message;
      }
      const params = checked.verdict.decisions.filter((d) => d.param !== undefined);
      return { verdict: checked.verdict, refusal, params, plan: checked.plan };
    }

    it("a parameter a params rule names with a matching value is allowed; modprobe.d's go first", async () => {
      const { refusal, params, plan } = await paramVerdict(['dummy'], { dummy: 'numdummies=3' });
      expect(refusal).toBeUndefined();
      expect(params).toEqual([
        {
          request: 'dummy',
          module: 'dummy',
          role: 'target',
          param: 'numdummies=3',
          verdict: 'allow',
          rule: '/etc/kmodload/policy.conf:2 (params dummy numdummies=[1-8])',
        },
      ]);
      // Appended after the host's options, as modprobe appends its command line's.
      expect(plan.requests[0]?.probes[0]?.steps[0]).toMatchObject({
        options: 'numdummies=2 numdummies=3',
        extraOptions: 'numdummies=3',
      });
    });

    it('a value the rule does not match, or a parameter no rule names: refused, with the rule needed', async () => {
      const other = await paramVerdict(['dummy'], { dummy: 'numdummies=9' });
      expect(other.refusal).toBe(
        'cannot load dummy: parameter numdummies=9 is not allowed for this container (/etc/kmodload/policy.conf:2 (params dummy numdummies=[1-8]) allows other values; needed: params dummy numdummies=9)',
      );
      const unnamed = await paramVerdict(['dummy'], { dummy: 'numdummies=3 "label=a b"' });
      expect(unnamed.refusal).toBe(
        'cannot load dummy: parameter label="a b" is not allowed for this container (no params rule names it; needed: params dummy label=a?b)',
      );
      expect(unnamed.params.map((d) => `${d.verdict} ${d.param}`)).toEqual([
        'allow numdummies=3',
        'deny label="a b"',
      ]);
    });

    it('no policy file: no parameter may be passed', async () => {
      const { refusal } = await paramVerdict(['dummy'], { dummy: 'numdummies=3' }, {}, null);
      expect(refusal).toBe(
        'cannot load dummy: parameter numdummies=3 is not allowed for this container (no params rule names it; needed: params dummy numdummies=3)',
      );
    });

    it('an alias: the rule names the module, the message both', async () => {
      const { refusal, params } = await paramVerdict(['fs-xfs'], { 'fs-xfs': 'nodiscard=1 x=1' });
      expect(params.map((d) => `${d.verdict} ${d.module} ${d.param}`)).toEqual([
        'allow xfs nodiscard=1',
        'deny xfs x=1',
      ]);
      expect(refusal).toBe(
        'cannot load fs-xfs: parameter x=1 of xfs is not allowed for this container (no params rule names it; needed: params xfs x=1)',
      );
    });

    it("conditions: source and annotation, as an allow's", async () => {
      const asked = { ip_vs: 'conn_tab_bits=12' };
      expect((await paramVerdict(['ip_vs'], asked, { source: 'env' })).refusal).toBeUndefined();
      expect((await paramVerdict(['ip_vs'], asked, { source: 'annotation' })).refusal).toMatch(
        /parameter conn_tab_bits=12 is not allowed for this container \(no params rule names it/,
      );
      const both = { source: { ip_vs: ['env', 'annotation'] as const } };
      expect((await paramVerdict(['ip_vs'], asked, both)).refusal).toMatch(/not allowed/);
      const hash = { nf_conntrack: 'hashsize=131072' };
      expect((await paramVerdict(['nf_conntrack'], hash)).refusal).toMatch(
        /\(\/etc\/kmodload\/policy.conf:5 \(params nf_conntrack hashsize=65536\) allows other values;/,
      );
      const team = { annotations: { team: 'net' } };
      expect((await paramVerdict(['nf_conntrack'], hash, team)).refusal).toBeUndefined();
    });
  });

  it('resolve() reads policy files itself; a broken one refuses with exit 4', async () => {
    const file = path.join(scratch, 'broken.conf');
    fs.writeFileSync(file, 'allow ip_vs\ndeny [\n');
    await expect(
      resolve(['ip_vs'], { root: tree.root, kernelVersion: tree.version, policy: [file] }),
    ).rejects.toMatchObject({
      exitStatus: EXIT.environment,
      message: `invalid policy: ${file}:2: bad pattern "[": '[' without its ']'`,
    });
  });
});
