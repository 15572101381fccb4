// deploy/kubernetes/kmodload-nri.yaml against the code: valid YAML, a command `kmodload nri`
// takes, a policy that lints, and a mount for every host path the plugin uses: the paths its
// flags name, the module tree and the modprobe.d directories it reads.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { main } from '../../src/cli/main';
import { DEFAULT_CONFIG_DIRS } from '../../src/config/files';
import { memoryIO } from '../helpers/cli-io';
import { helpMentions } from '../helpers/docs';
import { REPO_ROOT, kernelTree } from '../helpers/trees';

interface Mount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}
interface Volume {
  name: string;
  hostPath?: { path: string; type?: string };
  configMap?: { name: string };
}
interface Container {
  image: string;
  command: string[];
  securityContext?: { privileged?: boolean };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  volumeMounts: Mount[];
}
interface PodSpec {
  priorityClassName?: string;
  tolerations?: unknown[];
  containers: Container[];
  volumes: Volume[];
}
interface Manifest {
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
  spec?: { template: { spec: PodSpec } };
}

function manifests(file: string): Manifest[] {
  const text = fs.readFileSync(path.join(REPO_ROOT, 'deploy', 'kubernetes', file), 'utf8');
  return parseAllDocuments(text).map((doc) => {
    expect(doc.errors).toEqual([]);
    return doc.toJSON() as Manifest;
  });
}

async function run(argv: string[]): Promise<{ status: number; out: string; err: string }> {
  const memory = memoryIO();
  const status = await main(argv, memory.io);
  return { status, out: memory.out(), err: memory.err() };
}

/** The mount under which `file` is, the deepest one. */
function mountOf(container: Container, file: string): Mount | undefined {
  return container.volumeMounts
    .filter((m) => !path.relative(m.mountPath, file).startsWith('..'))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
}

describe('deploy/kubernetes/kmodload-nri.yaml', () => {
  const [configMap, daemonSet] = manifests('kmodload-nri.yaml') as [Manifest, Manifest];
  const pod = daemonSet.spec?.template.spec as PodSpec;
  const container = pod.containers[0] as Container;
  const volume = (mount: Mount | undefined) => pod.volumes.find((v) => v.name === mount?.name);
  const value = (flagName: string) => container.command[container.command.indexOf(flagName) + 1];

  it('is a ConfigMap and a DaemonSet whose policy lints', async () => {
    expect([configMap.kind, daemonSet.kind]).toEqual(['ConfigMap', 'DaemonSet']);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-nri-manifest-'));
    const policy = path.join(dir, 'policy.conf');
    fs.writeFileSync(policy, configMap.data?.['policy.conf'] ?? '');
    try {
      expect(await run(['policy', 'lint', '--policy', policy])).toMatchObject({ status: 0 });
      // The namespace rule works: the runtime gives the plugin the pod's namespace.
      const tree = kernelTree('6.1');
      const check = async (namespace: string, name: string) =>
        (
          await run([
            ...['policy', 'check', '--policy', policy, '-d', tree.root, '-S', tree.version],
            ...['--namespace', namespace, name],
          ])
        ).status;
      expect(await check('kube-system', 'xfs')).toBe(0);
      expect(await check('default', 'xfs')).toBe(3);
      expect(await check('default', 'ip_vs')).toBe(0);
      expect(await check('kube-system', 'sctp')).toBe(3);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs kmodload nri with flags it takes, from the installer image, privileged', async () => {
    expect(container.command.slice(0, 2)).toEqual(['kmodload', 'nri']);
    const args = container.command.slice(2);
    const help = (await run(['nri', '--help'])).out;
    for (const word of args.filter((w) => w.startsWith('-'))) {
      expect(helpMentions(help, word), word).toBe(true);
    }
    // The parser takes them all, values where values go (--help then answers, exit 0).
    expect(await run(['nri', ...args, '--help'])).toEqual({ status: 0, out: help, err: '' });
    // An external plugin on the runtime's socket, never one the runtime starts.
    expect(value('--socket')).toBe('/var/run/nri/nri.sock');
    expect(container.securityContext?.privileged).toBe(true);
    expect(pod.priorityClassName).toBe('system-node-critical');
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(container.resources?.requests).toBeDefined();
    const [, installer] = manifests('kmodload-node.yaml') as [Manifest, Manifest];
    expect(container.image).toBe(installer.spec?.template.spec.containers[0]?.image);
  });

  it('mounts every host path the plugin uses, the host tree and modprobe.d read-only', () => {
    // What the flags name: the host's own socket, holds and log directories.
    for (const flagName of ['--socket', '--state-dir', '--log']) {
      const file = value(flagName) as string;
      const mount = mountOf(container, file);
      expect(mount, `a mount for ${flagName} ${file}`).toBeDefined();
      expect(mount?.readOnly ?? false).toBe(false);
      expect(volume(mount)?.hostPath?.path).toBe(mount?.mountPath);
    }
    // The policy from the ConfigMap, under the key the flag names.
    const policy = value('--policy') as string;
    const policyMount = mountOf(container, policy);
    expect(volume(policyMount)?.configMap?.name).toBe(configMap.metadata.name);
    expect(Object.keys(configMap.data ?? {})).toContain(
      path.relative(policyMount?.mountPath ?? '/', policy),
    );
    // What it reads without a flag: the running kernel's tree and kmod's modprobe.d, the
    // host's, at the same paths.
    for (const dir of ['/lib/modules', ...DEFAULT_CONFIG_DIRS]) {
      const mount = container.volumeMounts.find((m) => m.mountPath === dir);
      expect(mount, `a mount for ${dir}`).toBeDefined();
      expect(mount?.readOnly).toBe(true);
      expect(volume(mount)?.hostPath?.path).toBe(dir);
    }
  });
});
