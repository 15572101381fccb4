// The Kubernetes manifests as kubectl reads them: `kubectl create --dry-run=client` (kubectl
// from Debian's kubernetes-client) on every file of deploy/kubernetes and on a fresh export.
// kubectl asks a server which kinds exist even for a client-side dry run: a local stand-in
// answers the discovery requests (the API groups and resources these files use) and nothing
// else; schema validation is off (it needs the server's OpenAPI document).

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportAdmissionPolicy } from '../../src/policy/admission';
import { parsePolicy } from '../../src/policy/index';
import { policyDocuments } from '../helpers/admission';
import { REPO_ROOT, toolEnv } from '../helpers/trees';

const DEPLOY = path.join(REPO_ROOT, 'deploy', 'kubernetes');

type Resource = [name: string, kind: string, namespaced: boolean];
const GROUPS: Record<string, Resource[]> = {
  v1: [
    ['pods', 'Pod', true],
    ['configmaps', 'ConfigMap', true],
  ],
  'apps/v1': [['daemonsets', 'DaemonSet', true]],
  'admissionregistration.k8s.io/v1': [
    ['validatingadmissionpolicies', 'ValidatingAdmissionPolicy', false],
    ['validatingadmissionpolicybindings', 'ValidatingAdmissionPolicyBinding', false],
  ],
};

function discovery(url: string): unknown {
  if (url === '/api') return { kind: 'APIVersions', versions: ['v1'] };
  if (url === '/apis') {
    const groups = Object.keys(GROUPS)
      .filter((gv) => gv.includes('/'))
      .map((gv) => {
        const [name, version] = gv.split('/') as [string, string];
        const entry = { groupVersion: gv, version };
        return { name, versions: [entry], preferredVersion: entry };
      });
    return { kind: 'APIGroupList', apiVersion: 'v1', groups };
  }
  const groupVersion = url === '/api/v1' ? 'v1' : url.replace(/^\/apis\//, '');
  const resources = GROUPS[groupVersion];
  if (!resources) return undefined;
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion,
    resources: resources.map(([name, kind, namespaced]) => ({
      name,
      singularName: kind.toLowerCase(),
      namespaced,
      kind,
      verbs: ['create', 'get', 'list'],
    })),
  };
}

let server: http.Server;
let serverUrl: string;
let kubectl: string;

beforeAll(async () => {
  kubectl = execFileSync('bash', [path.join(REPO_ROOT, 'scripts/test/fetch-kubectl.sh')], {
    encoding: 'utf8',
    env: toolEnv(),
  }).trim();
  server = http.createServer((request, response) => {
    const body = discovery((request.url ?? '').split('?')[0] as string);
    response.writeHead(body === undefined ? 404 : 200, { 'content-type': 'application/json' });
    response.end(JSON.stringify(body ?? { kind: 'Status', code: 404 }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  serverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 600_000);
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** `kubectl create --dry-run=client -f -` on `yaml`: its exit status and output. */
function dryRun(yaml: string): Promise<{ status: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const args = ['--server', serverUrl, 'create', '--dry-run=client', '--validate=false'];
    const child = spawn(kubectl, [...args, '-f', '-', '-o', 'name'], {
      env: { ...toolEnv(), HOME: '/nonexistent', KUBECONFIG: '/dev/null' },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, out, err }));
    child.stdin.end(yaml);
  });
}

describe('kubectl create --dry-run=client', () => {
  it('takes every manifest of deploy/kubernetes', async () => {
    const expected: Record<string, string[]> = {
      'kmodload-node.yaml': ['configmap/kmodload-policy', 'daemonset.apps/kmodload-node'],
      'kmodload-nri.yaml': ['configmap/kmodload-nri-policy', 'daemonset.apps/kmodload-nri'],
      'kmodload-admission.yaml': [
        'validatingadmissionpolicy.admissionregistration.k8s.io/kmodload',
        'validatingadmissionpolicybinding.admissionregistration.k8s.io/kmodload',
      ],
      'example-pod.yaml': ['pod/ipvs-example'],
    };
    const files = fs.readdirSync(DEPLOY).filter((name) => name.endsWith('.yaml'));
    expect(files.sort()).toEqual(Object.keys(expected).sort());
    for (const file of files) {
      const result = await dryRun(fs.readFileSync(path.join(DEPLOY, file), 'utf8'));
      expect({ file, ...result, err: result.err.trim() }).toEqual({
        file,
        status: 0,
        out: `${(expected[file] as string[]).join('\n')}\n`,
        err: '',
      });
    }
  });

  it('takes an export with every kind of rule, and refuses a broken file', async () => {
    const policy = parsePolicy(
      [
        "default deny # a comment's quote",
        'max-modules 300',
        'allow ip_vs* [a-c]x? when namespace kube-* pod-label app=a\\b source env',
        'deny x when annotation team=it\'s" source annotation',
      ].join('\n'),
      '/etc/kmodload/policy.conf',
    );
    const yaml = exportAdmissionPolicy(policy, { name: 'modules.example.com' }).text;
    const result = await dryRun(yaml);
    expect(result.err).toBe('');
    expect(result.status).toBe(0);
    const broken = await dryRun(yaml.replace('  variables:', '  variables: ['));
    expect(broken.status).not.toBe(0);
    expect(broken.err).toMatch(/error/);
  });
});

describe("the installer's loop (kmodload-node.yaml)", () => {
  it('installs and labels at start, again only when the policy changes, keeps going when an install fails', () => {
    const text = fs.readFileSync(path.join(DEPLOY, 'kmodload-node.yaml'), 'utf8');
    const daemonSet = policyDocuments(text)[1] as unknown as {
      spec: { template: { spec: { containers: Array<{ command: string[] }> } } };
    };
    const command = daemonSet.spec.template.spec.containers[0]?.command ?? [];
    expect(command.slice(0, 2)).toEqual(['/bin/sh', '-c']);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-loop-'));
    try {
      const policy = path.join(dir, 'policy.conf');
      fs.writeFileSync(policy, 'allow a\n');
      const calls = path.join(dir, 'calls');
      const bin = path.join(dir, 'bin');
      fs.mkdirSync(bin);
      // kmodload records its subcommand, failing install-node while the policy says "broken";
      // sleep changes the policy on some rounds and ends the loop after the fifth.
      fs.writeFileSync(
        path.join(bin, 'kmodload'),
        `#!/bin/sh\necho "$1" >> ${calls}\n[ "$1" != install-node ] || ! grep -q broken ${policy}\n`,
        { mode: 0o755 },
      );
      const rounds = path.join(dir, 'rounds');
      fs.writeFileSync(
        path.join(bin, 'sleep'),
        [
          '#!/bin/sh',
          `n=$(($(cat ${rounds} 2>/dev/null || echo 0) + 1)); echo $n > ${rounds}`,
          `case $n in 2) echo 'allow b' > ${policy} ;; 3) echo broken > ${policy} ;; 5) echo 'allow c' > ${policy} ;; 6) exit 1 ;; esac`,
          '',
        ].join('\n'),
        { mode: 0o755 },
      );
      const script = (command[2] as string).replaceAll('/config/policy.conf', policy);
      const run = spawnSync('/bin/sh', ['-c', script], {
        encoding: 'utf8',
        env: { PATH: `${bin}:/usr/bin:/bin` },
        timeout: 30_000,
      });
      expect(run.status).toBe(0);
      // Start; round 1 unchanged; 2 changed; 3 broken (install fails, no labels); 4 still
      // broken: tried again; 5 changed again.
      expect(fs.readFileSync(calls, 'utf8').trim().split('\n')).toEqual([
        'install-node',
        'nfd',
        'install-node',
        'nfd',
        'install-node',
        'install-node',
        'install-node',
        'nfd',
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
