// The exported ValidatingAdmissionPolicy against the node: each pod is evaluated by a real CEL
// implementation as the API server would, and each of its containers is decided by the node's
// own path (the NRI plugin's request, admit() on the Debian 6.1 tree, dry run); the pod is
// admitted exactly when every container would load, and the refusal is the node's reason.

import { run } from '@bufbuild/cel';
import { strings } from '@bufbuild/cel/ext';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admit } from '../../src/container/index';
import { parseModuleRequest } from '../../src/container/request';
import type { NriContainer, NriPod } from '../../src/nri/messages';
import { nriRequest } from '../../src/nri/service';
import {
  admissionCostBound,
  exportAdmissionPolicy,
  globToRegex,
  namesCel,
} from '../../src/policy/admission';
import { fnmatch } from '../../src/db/fnmatch';
import { parsePolicy } from '../../src/policy/index';
import { admitPod, metered, type Pod } from '../helpers/admission';
import { kernelTree, type KernelTree } from '../helpers/trees';

const POLICY = [
  'default deny',
  'max-modules 12',
  'allow ip_vs ip_vs_* dummy',
  'allow tun when namespace vpn-*',
  'allow veth when pod-label app=net*',
  'allow bonding when annotation team=infra',
  'allow nf_nat when source env',
  'deny sctp* when source annotation',
  'allow sctp*',
  'deny xfs dccp*',
  'allow geneve when annotation io.kubernetes.pod.namespace=kube-system',
  '',
].join('\n');

let tree: KernelTree;
let scratch: string;
let policyFile: string;
let modprobeDir: string;
let exported: string;

beforeAll(() => {
  tree = kernelTree('6.1');
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-admission-'));
  policyFile = path.join(scratch, 'policy.conf');
  fs.writeFileSync(policyFile, POLICY);
  modprobeDir = path.join(scratch, 'modprobe.d');
  fs.mkdirSync(modprobeDir);
  exported = exportAdmissionPolicy(parsePolicy(POLICY, policyFile), { name: 'kmodload' }).text;
});
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

interface ContainerSpec {
  name: string;
  env?: Array<Record<string, unknown>>;
}

interface PodSpec {
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  containers: ContainerSpec[];
  initContainers?: ContainerSpec[];
}

const modulesEnv = (value: string): Array<Record<string, unknown>> => [
  { name: 'KERNEL_MODULES', value },
];

function podObject(spec: PodSpec): Pod {
  const pod: Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', labels: spec.labels ?? {}, annotations: spec.annotations ?? {} },
    spec: { containers: spec.containers },
  };
  if (spec.initContainers)
    (pod.spec as Record<string, unknown>).initContainers = spec.initContainers;
  return pod;
}

/** The env a runtime gets from the kubelet: the last literal entry of each name. */
function runtimeEnv(container: ContainerSpec): string[] {
  const values = new Map<string, string>();
  for (const entry of container.env ?? []) {
    if (typeof entry.value === 'string') values.set(entry.name as string, entry.value);
  }
  return [...values].map(([k, v]) => `${k}=${v}`);
}

/** The node's verdict on each container, in the order admission reads them. */
async function nodeVerdicts(spec: PodSpec): Promise<Array<{ name: string; message?: string }>> {
  const namespace = spec.namespace ?? 'default';
  const pod: NriPod = {
    id: 'sandbox',
    name: 'p',
    uid: 'u',
    namespace,
    labels: spec.labels ?? {},
    annotations: spec.annotations ?? {},
  };
  const verdicts: Array<{ name: string; message?: string }> = [];
  for (const container of [...spec.containers, ...(spec.initContainers ?? [])]) {
    const nri: NriContainer = {
      id: `c-${container.name}`,
      podSandboxId: 'sandbox',
      name: container.name,
      state: 0,
      labels: {},
      annotations: {},
      args: [],
      env: runtimeEnv(container),
    };
    const decided = await admit(nriRequest(pod, nri), {
      dryRun: true,
      root: tree.root,
      kernelVersion: tree.version,
      configDirs: [modprobeDir],
      policyFiles: [policyFile],
      stateDir: path.join(scratch, 'state'),
    });
    verdicts.push(
      decided.ok
        ? { name: container.name }
        : { name: container.name, message: decided.message as string },
    );
  }
  return verdicts;
}

/** The node's message for the first refused container, as admission words it: the names of
 *  a count refusal are not listed at admission. */
function expectedMessage(verdicts: Array<{ name: string; message?: string }>): string | undefined {
  const refused = verdicts.find((v) => v.message !== undefined);
  if (!refused) return undefined;
  const message = (refused.message as string).replace(
    /^cannot load [^:]*: (the request names)/,
    'cannot load: $1',
  );
  return `container ${refused.name}: ${message}`;
}

interface Case {
  what: string;
  pod: PodSpec;
  allowed: boolean;
}

const CASES: Case[] = [
  {
    what: 'allowed',
    pod: { containers: [{ name: 'lb', env: modulesEnv('ip_vs,ip-vs-wrr') }] },
    allowed: true,
  },
  {
    what: 'allowed from the annotation, every container',
    pod: {
      annotations: { 'org.kmodload.kernel-modules': 'ip_vs_rr dummy' },
      containers: [{ name: 'a' }, { name: 'b', env: modulesEnv('ip_vs') }],
    },
    allowed: true,
  },
  {
    what: 'denied by name',
    pod: { containers: [{ name: 'fs', env: modulesEnv('dummy,xfs') }] },
    allowed: false,
  },
  {
    what: 'denied by a glob',
    pod: { containers: [{ name: 'app', env: modulesEnv('dummy dccp') }] },
    allowed: false,
  },
  {
    what: 'default deny',
    pod: { containers: [{ name: 'x', env: modulesEnv('vxlan') }] },
    allowed: false,
  },
  {
    what: 'too many names',
    pod: {
      containers: [
        {
          name: 'many',
          env: modulesEnv(
            'ip_vs_dh ip_vs_fo ip_vs_lblc ip_vs_lblcr ip_vs_lc ip_vs_mh ip_vs_nq ip_vs_ovf ip_vs_rr ip_vs_sed ip_vs_sh ip_vs_wlc ip_vs_wrr',
          ),
        },
      ],
    },
    allowed: false,
  },
  {
    what: 'a name written many times counts once',
    pod: { containers: [{ name: 'd', env: modulesEnv(Array(20).fill('dummy').join(',')) }] },
    allowed: true,
  },
  {
    what: 'namespace rule: applies',
    pod: { namespace: 'vpn-a', containers: [{ name: 'v', env: modulesEnv('tun') }] },
    allowed: true,
  },
  {
    what: 'namespace rule: does not apply',
    pod: { namespace: 'web', containers: [{ name: 'v', env: modulesEnv('tun') }] },
    allowed: false,
  },
  {
    what: 'label rule: applies',
    pod: { labels: { app: 'network' }, containers: [{ name: 'n', env: modulesEnv('veth') }] },
    allowed: true,
  },
  {
    what: 'label rule: does not apply',
    pod: { labels: { app: 'web' }, containers: [{ name: 'n', env: modulesEnv('veth') }] },
    allowed: false,
  },
  {
    what: 'annotation rule: applies',
    pod: {
      annotations: { team: 'infra' },
      containers: [{ name: 'b', env: modulesEnv('bonding') }],
    },
    allowed: true,
  },
  {
    what: 'annotation rule: absent',
    pod: { containers: [{ name: 'b', env: modulesEnv('bonding') }] },
    allowed: false,
  },
  {
    what: 'the pod namespace as the runtime annotates it',
    pod: { namespace: 'kube-system', containers: [{ name: 'g', env: modulesEnv('geneve') }] },
    allowed: true,
  },
  {
    what: 'an init container',
    pod: {
      containers: [{ name: 'main', env: modulesEnv('dummy') }],
      initContainers: [{ name: 'setup', env: modulesEnv('xfs') }],
    },
    allowed: false,
  },
  {
    what: 'source env: allowed from env',
    pod: { containers: [{ name: 's', env: modulesEnv('sctp,nf_nat') }] },
    allowed: true,
  },
  {
    what: 'source annotation: denied from the annotation',
    pod: { annotations: { 'org.kmodload.kernel-modules': 'sctp' }, containers: [{ name: 's' }] },
    allowed: false,
  },
  {
    what: 'both sources: an allow needs each',
    pod: {
      annotations: { 'org.kmodload.kernel-modules': 'nf_nat' },
      containers: [{ name: 's', env: modulesEnv('nf_nat') }],
    },
    allowed: false,
  },
  {
    what: "the NRI plugin's per-container annotation",
    pod: {
      annotations: { 'org.kmodload.kernel-modules/container.two': 'xfs' },
      containers: [{ name: 'one', env: modulesEnv('dummy') }, { name: 'two' }],
    },
    allowed: false,
  },
  {
    what: 'the last KERNEL_MODULES entry counts',
    pod: {
      containers: [{ name: 'e', env: [...modulesEnv('xfs'), ...modulesEnv('dummy')] }],
    },
    allowed: true,
  },
  {
    what: 'nothing asked',
    pod: { containers: [{ name: 'plain', env: [{ name: 'A', value: 'b' }] }] },
    allowed: true,
  },
];

describe('the exported admission policy decides as the node', () => {
  it.each(CASES)('$what', async (c) => {
    const verdicts = await nodeVerdicts(c.pod);
    const message = expectedMessage(verdicts);
    expect(message === undefined).toBe(c.allowed);
    const admission = admitPod(exported, podObject(c.pod), c.pod.namespace ?? 'default');
    expect(admission).toEqual(c.allowed ? { allowed: true } : { allowed: false, message });
  });

  it('an invalid name is refused at both', async () => {
    const spec: PodSpec = {
      annotations: { 'org.kmodload.kernel-modules': 'dummy,bad;name' },
      containers: [{ name: 'c' }],
    };
    const [verdict] = await nodeVerdicts(spec);
    expect(verdict?.message).toMatch(/invalid module name/);
    const admission = admitPod(exported, podObject(spec), 'default');
    expect(admission.allowed).toBe(false);
    expect(admission.message).toMatch(/^container c: invalid module name in KERNEL_MODULES/);
  });

  it('a request over 64 KiB is refused at both', async () => {
    const spec: PodSpec = {
      containers: [{ name: 'big', env: modulesEnv('dummy,'.repeat(11_000)) }],
    };
    expect((await nodeVerdicts(spec))[0]?.message).toMatch(/too long/);
    expect(admitPod(exported, podObject(spec), 'default').message).toMatch(
      /^container big: a request is longer than 65536 characters/,
    );
  });

  it('an update is judged again only when it changes the annotations or the containers', () => {
    // Admitted before the policy denied xfs: removing its finalizer must not be refused.
    const old = podObject({ containers: [{ name: 'c', env: modulesEnv('xfs') }] });
    const meta = old.metadata as Record<string, unknown>;
    const finalized = { ...old, metadata: { ...meta, finalizers: ['x/y'] } };
    expect(admitPod(exported, old, 'default', finalized)).toEqual({ allowed: true });
    const annotated = {
      ...old,
      metadata: { ...meta, annotations: { 'org.kmodload.kernel-modules': 'xfs' } },
    };
    expect(admitPod(exported, annotated, 'default', old).allowed).toBe(false);
    expect(admitPod(exported, old, 'default').allowed).toBe(false);
  });

  it('what admission cannot see, the node still refuses', async () => {
    // A denied dependency (the tree), an alias, a value from elsewhere: admitted here.
    const text = 'deny libcrc32c\nallow *\n';
    const file = path.join(scratch, 'deps.conf');
    fs.writeFileSync(file, text);
    const yaml = exportAdmissionPolicy(parsePolicy(text, file), { name: 'k' }).text;
    const pod = (env: Array<Record<string, unknown>>): Pod =>
      podObject({ containers: [{ name: 'c', env }] });
    expect(admitPod(yaml, pod(modulesEnv('ip_vs')), 'default')).toEqual({ allowed: true });
    const fromConfigMap = [
      { name: 'KERNEL_MODULES', valueFrom: { configMapKeyRef: { name: 'm', key: 'k' } } },
    ];
    expect(admitPod(exported, pod(fromConfigMap), 'default')).toEqual({ allowed: true });
    const expanded = modulesEnv('$(MODULES)');
    expect(admitPod(exported, pod(expanded), 'default')).toEqual({ allowed: true });
  });
});

describe('globs as RE2 regexes', () => {
  it('match what fnmatch matches (RE2, as the API server runs it)', () => {
    const globs = ['ip_vs*', 'nf_?at', 'x[!a-c]y', 'x[]a]y', 'a[[:digit:]]', '[^a]*', 'kube-*'];
    globs.push('a\\*b', 'a[', 'a.b', 'c(d)|e+', 'q[z-a]', '[[:punct:]]', 'x\\');
    const texts = ['ip_vs', 'ip_vs_wrr', 'nf_nat', 'nf_xat', 'xdy', 'xby', 'x]y', 'xay', 'a1'];
    texts.push('ab', 'b', 'kube-system', 'a*b', 'axb', 'a[', 'a.b', 'c(d)|e+', 'cd', '-', 'x\\');
    texts.push('line\nbreak', '', 'qz', 'qa');
    for (const glob of globs) {
      const regex = `^(?s:${globToRegex(glob)})$`;
      for (const text of texts) {
        const matched = run('t.matches(r)', { t: text, r: regex } as never);
        expect([glob, text, matched]).toEqual([glob, text, fnmatch(glob, text)]);
      }
    }
  });
});

describe('the CEL runtime cost', () => {
  it('stays under the per-expression limit for 64 names with the starter policy', () => {
    const starter = fs.readFileSync(
      path.join(__dirname, '..', '..', 'deploy', 'kubernetes', 'kmodload-node.yaml'),
      'utf8',
    );
    const text =
      /policy\.conf: \|\n((?: {4}.*\n)+)/.exec(starter)?.[1]?.replace(/^ {4}/gm, '') ?? '';
    const bound = admissionCostBound(parsePolicy(text));
    expect(bound).toBeGreaterThan(10_000);
    expect(bound).toBeLessThan(1_000_000);
  });
});

describe('the exported YAML', () => {
  it('beside the DaemonSet is the export of its ConfigMap policy', () => {
    const deploy = path.join(__dirname, '..', '..', 'deploy', 'kubernetes');
    const node = fs.readFileSync(path.join(deploy, 'kmodload-node.yaml'), 'utf8');
    const text = /policy\.conf: \|\n((?: {4}.*\n)+)/.exec(node)?.[1]?.replace(/^ {4}/gm, '') ?? '';
    const policy = parsePolicy(text, 'policy.conf');
    expect(fs.readFileSync(path.join(deploy, 'kmodload-admission.yaml'), 'utf8')).toBe(
      exportAdmissionPolicy(policy, { name: 'kmodload' }).text,
    );
  });

  it('quotes and backslashes of the policy reach CEL intact', () => {
    const text = [
      'default deny',
      'allow dummy when annotation note=it\'s\\*"x"',
      "deny tun when annotation note=a'b",
      'allow tun',
    ].join('\n');
    const yaml = exportAdmissionPolicy(parsePolicy(text, "we'ird\\name.conf"), { name: 'k' }).text;
    const pod = (note: string, modules: string): Pod =>
      podObject({
        annotations: { note, 'org.kmodload.kernel-modules': modules },
        containers: [{ name: 'c' }],
      });
    expect(admitPod(yaml, pod('it\'s*"x"', 'dummy'), 'default')).toEqual({ allowed: true });
    expect(admitPod(yaml, pod('its*"x"', 'dummy'), 'default').allowed).toBe(false);
    expect(admitPod(yaml, pod("a'b", 'tun'), 'default')).toEqual({
      allowed: false,
      message: `container c: cannot load tun: tun is denied by we'ird\\name.conf:3 (deny tun when annotation note=a'b)`,
    });
  });

  it('takes the first word of each NAME PARAM=VALUE... entry, as the node does', () => {
    const names = (value: string): string[] => [
      ...(run(`${namesCel('v')}`, { v: value } as never, { funcs: strings }) as Iterable<string>),
    ];
    for (const value of [
      'ip_vs, dummy',
      'e1000e InterruptThrottleRate=3000,3000 EEE=1; i915 enable_ppgtt=0;;\tdummy ',
      'dummy numdummies=3',
      'ip_vs;tun',
      'ip_vs,dummy x',
    ]) {
      expect(names(value), value).toEqual(parseModuleRequest(value).map((entry) => entry.name));
    }
    // A list with an entry's separator is entries: the node refuses the name, so does the CEL.
    expect(names('ip_vs, dummy;x')).toEqual(['ip_vs,', 'x']);
    expect(() => parseModuleRequest('ip_vs, dummy;x')).toThrow(/invalid module name/);
  });
});

describe('the CEL runtime cost, as evaluated', () => {
  it('64 names refused by default deny: the regex and string work stays under the bound', () => {
    const deploy = path.join(__dirname, '..', '..', 'deploy', 'kubernetes', 'kmodload-node.yaml');
    const text =
      /policy\.conf: \|\n((?: {4}.*\n)+)/
        .exec(fs.readFileSync(deploy, 'utf8'))?.[1]
        ?.replace(/^ {4}/gm, '') ?? '';
    const policy = parsePolicy(text.replace('max-modules 32', 'max-modules 64'), 'policy.conf');
    const yaml = exportAdmissionPolicy(policy, { name: 'k' }).text;
    // 64 names of 55 characters that no rule matches: every deny and allow is tried for each.
    const names = Array.from({ length: 64 }, (_, i) =>
      `m${String(i).padStart(2, '0')}`.padEnd(55, 'x'),
    );
    const pod = podObject({ containers: [{ name: 'c', env: modulesEnv(names.join(',')) }] });
    let result: ReturnType<typeof admitPod> | undefined;
    const meter = metered(() => {
      result = admitPod(yaml, pod, 'default');
    });
    expect(result?.message).toMatch(/^container c: cannot load m00x+: m00x+ is not allowed/);
    // Each name: its validity check, 2 denies, 2 allows and the third's namespace condition,
    // and once more for the message; the values parsed (2 contains to tell a list from
    // entries, then 6 replaces and a split each, the container's, its annotation's, the
    // pod's), each name's '-' read as '_'.
    expect(meter.calls).toEqual({
      matches: 64 + 64 * 5 + 5,
      replace: 3 * 6 + 64 + 1,
      split: 3,
      contains: 3 * 2 + 1,
    });
    expect(meter.cost).toBeGreaterThan(50_000);
    expect(meter.cost).toBeLessThan(admissionCostBound(policy));
    expect(admissionCostBound(policy)).toBeLessThan(1_000_000);
  });
});
