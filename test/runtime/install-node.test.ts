// `kmodload install-node` and the Kubernetes manifests that run it: into a temporary root,
// then as the DaemonSet runs it, inside a podman container with the host's directories
// bind-mounted, followed by a podman container whose hook is the one just installed.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { EXIT } from '../../src/errors';
import type { AuditRecord } from '../../src/container/audit';
import {
  busyboxImage,
  repo,
  type Fixture,
  type Installation,
  removeScratch,
  setUpInstallation,
} from './harness';

let scratch: string;
let fixture: Fixture;
let kmodload: Installation;

beforeAll(() => {
  ({ scratch, fixture, kmodload } = setUpInstallation('install-node'));
}, 120_000);
afterAll(() => removeScratch(scratch));

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [kmodload.cli, ...args], { encoding: 'utf8' });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** Every file under `dir`, relative, sorted (the package's dist/ counted, not listed). */
function files(dir: string): string[] {
  const found: string[] = [];
  const walk = (sub: string): void => {
    for (const entry of fs.readdirSync(path.join(dir, sub), { withFileTypes: true })) {
      const rel = path.join(sub, entry.name);
      if (entry.isDirectory() && !rel.endsWith('lib/dist')) walk(rel);
      else found.push(rel);
    }
  };
  walk('');
  return found.sort();
}

describe('kmodload install-node', () => {
  it('installs into a root, idempotently, and uninstalls', () => {
    const root = path.join(scratch, 'root');
    const policy = path.join(scratch, 'policy.conf');
    fs.writeFileSync(policy, 'default deny\nallow ip_vs*\n');
    const installed = cli(['install-node', '--root', root, '--policy', policy]);
    expect([installed.status, installed.stderr]).toEqual([0, '']);
    const hooksFile = path.join(root, 'etc/containers/oci/hooks.d/kmodload.json');
    const config = JSON.parse(fs.readFileSync(hooksFile, 'utf8')) as {
      hook: { path: string; args: string[]; timeout: number };
      stages: string[];
    };
    expect(config.hook.path).toBe('/usr/local/libexec/kmodload/kmodload-hook');
    expect(config.hook.args).toEqual([
      'kmodload',
      'hook',
      '--state',
      'prestart',
      '--log',
      '/var/log/kmodload/hook.log',
    ]);
    expect(config.hook.timeout).toBe(30);
    const hook = path.join(root, config.hook.path);
    expect(fs.statSync(hook).mode & 0o777).toBe(0o755);
    expect(fs.readFileSync(hook, 'utf8')).toContain(
      "exec '/usr/local/libexec/kmodload/node' '/usr/local/libexec/kmodload/lib/bin/kmodload.js' \"$@\"",
    );
    expect(fs.readFileSync(path.join(root, 'etc/kmodload/policy.conf'), 'utf8')).toBe(
      'default deny\nallow ip_vs*\n',
    );
    // The copy runs on its own: its node, its package, its addon.
    const libexec = path.join(root, 'usr/local/libexec/kmodload');
    const version = spawnSync(
      path.join(libexec, 'node'),
      [path.join(libexec, 'lib/bin/kmodload.js'), '--version'],
      { encoding: 'utf8', env: {} },
    );
    expect(version.stdout).toMatch(/^kmodload \d+\.\d+\.\d+\n$/);

    const before = files(root);
    const again = cli(['install-node', '--root', root, '--policy', policy]);
    expect(again.status).toBe(0);
    expect(files(root)).toEqual(before);

    expect(cli(['install-node', '--root', root, '--uninstall']).status).toBe(0);
    expect(fs.existsSync(hooksFile)).toBe(false);
    expect(fs.existsSync(libexec)).toBe(false);
    expect(cli(['install-node', '--root', root, '--uninstall']).status).toBe(0);
  });

  it('--unload-on-stop: a second hooks.d file for poststop; every entry names its stage', () => {
    const root = path.join(scratch, 'unload-root');
    const hooksDir = path.join(root, 'etc/containers/oci/hooks.d');
    const read = (name: string) =>
      JSON.parse(fs.readFileSync(path.join(hooksDir, name), 'utf8')) as {
        hook: { args: string[] };
        stages: string[];
      };
    const installed = cli(['install-node', '--root', root, '--log', 'none', '--unload-on-stop']);
    expect([installed.status, installed.stderr]).toEqual([0, '']);
    expect(fs.readdirSync(hooksDir).sort()).toEqual(['kmodload-poststop.json', 'kmodload.json']);
    expect(read('kmodload.json')).toMatchObject({
      hook: { args: ['kmodload', 'hook', '--state', 'prestart'] },
      stages: ['prestart'],
    });
    expect(read('kmodload-poststop.json')).toMatchObject({
      hook: { args: ['kmodload', 'hook', '--state', 'poststop', '--unload-on-stop'] },
      stages: ['poststop'],
    });
    // Installed again without the flag: the poststop file goes.
    expect(cli(['install-node', '--root', root, '--log', 'none']).status).toBe(0);
    expect(fs.readdirSync(hooksDir)).toEqual(['kmodload.json']);
    expect(cli(['install-node', '--root', root, '--unload-on-stop']).status).toBe(0);
    expect(cli(['install-node', '--root', root, '--uninstall']).status).toBe(0);
    expect(fs.readdirSync(hooksDir)).toEqual([]);
  });

  it('a broken policy installs nothing (exit 4)', () => {
    const root = path.join(scratch, 'broken-root');
    const policy = path.join(scratch, 'broken.conf');
    fs.writeFileSync(policy, 'allow ip_vs\nalow x\n');
    const run = cli(['install-node', '--root', root, '--policy', policy]);
    expect(run.status).toBe(EXIT.environment);
    expect(run.stderr).toBe(
      `kmodload: invalid policy: ${policy}:2: unknown directive "alow" (expected default, max-modules, allow, deny, params or on-param-conflict)\n`,
    );
    expect(fs.existsSync(root)).toBe(false);
  });

  it('the manifests are valid YAML and run install-node with the flags it has', () => {
    const text = fs.readFileSync(path.join(repo, 'deploy/kubernetes/kmodload-node.yaml'), 'utf8');
    const documents = parseAllDocuments(text).map((doc) => {
      expect(doc.errors).toEqual([]);
      return doc.toJSON() as Record<string, unknown>;
    });
    expect(documents.map((d) => d['kind'])).toEqual(['ConfigMap', 'DaemonSet']);
    const [configMap, daemonSet] = documents as [
      { data: Record<string, string> },
      {
        spec: {
          template: {
            spec: {
              containers: Array<{
                command: string[];
                lifecycle: { preStop: { exec: { command: string[] } } };
                volumeMounts: Array<{ name: string; mountPath: string }>;
              }>;
              volumes: Array<{ name: string; hostPath?: { path: string } }>;
            };
          };
        };
      },
    ];
    // The ConfigMap's policy is one install-node accepts.
    const policy = path.join(scratch, 'configmap-policy.conf');
    fs.writeFileSync(policy, configMap.data['policy.conf'] ?? '');
    expect(cli(['policy', 'lint', '--policy', policy]).status).toBe(0);
    const pod = daemonSet.spec.template.spec;
    const container = pod.containers[0];
    if (!container) throw new Error('no container');
    const script = container.command.join(' ').replace(/\\\n/g, ' ');
    const words = (re: RegExp) => re.exec(script)?.[1]?.split(/\s+/).filter(Boolean) ?? [];
    const install = words(/kmodload (install-node [^}]*)\}/);
    const nfd = words(/kmodload (nfd [^}]*)\}/);
    const uninstall = container.lifecycle.preStop.exec.command.slice(1);
    const value = (args: string[], flagName: string) => args[args.indexOf(flagName) + 1];
    // Every host path the installer writes is a hostPath volume mounted under --root.
    for (const args of [install, uninstall]) {
      expect(args[0]).toBe('install-node');
      const root = value(args, '--root') as string;
      for (const hostDir of [value(args, '--libexec'), value(args, '--hooks-dir')]) {
        const mount = container.volumeMounts.find(
          (m) => m.mountPath === path.join(root, hostDir as string),
        );
        expect(mount, `a mount for ${hostDir}`).toBeDefined();
        expect(pod.volumes.find((v) => v.name === mount?.name)?.hostPath?.path).toBe(hostDir);
      }
    }
    expect(container.volumeMounts.some((m) => m.mountPath === '/host/etc/kmodload')).toBe(true);
    expect(uninstall).toContain('--uninstall');
    // The flags exist: the installer's help names each.
    const help = cli(['install-node', '--help']).stdout;
    for (const word of install.filter((w) => w.startsWith('--'))) expect(help).toContain(word);
    // The labels: kmodload nfd with flags it has, each directory it names a mount of the
    // host's (the features.d written, the tree and modprobe.d read-only).
    expect(nfd[0]).toBe('nfd');
    const nfdHelp = cli(['nfd', '--help']).stdout;
    for (const word of nfd.filter((w) => w.startsWith('-'))) expect(nfdHelp).toContain(word);
    const hostDirs = [value(nfd, '--output'), path.join(value(nfd, '-d') as string, 'lib/modules')];
    nfd.forEach((word, i) => {
      if (word === '-C' || word === '--hooks-dir') hostDirs.push(nfd[i + 1]);
    });
    for (const dir of hostDirs) {
      const mount = container.volumeMounts.find((m) => m.mountPath === dir);
      expect(mount, `a mount for ${dir}`).toBeDefined();
      expect(pod.volumes.find((v) => v.name === mount?.name)?.hostPath?.path).toBe(
        path.join('/', path.relative('/host', dir as string)),
      );
    }
  });

  it('as the DaemonSet runs it: inside a podman container, then a podman container uses it', () => {
    // The host directories the DaemonSet mounts, here under one scratch directory that the
    // installer container sees at the same path.
    const host = path.join(scratch, 'host');
    fs.mkdirSync(host);
    const image = busyboxImage(scratch);
    const podman = (args: string[]) =>
      spawnSync('podman', ['--runtime', 'runc', '--cgroup-manager', 'cgroupfs', ...args], {
        encoding: 'utf8',
        timeout: 120_000,
      });
    const common = [
      'run',
      '--rm',
      '--network',
      'none',
      '--ulimit',
      'nofile=1024:1024',
      '--ulimit',
      'nproc=1024:1024',
    ];
    const libexec = path.join(host, 'libexec');
    const hooksDir = path.join(host, 'hooks.d');
    const log = path.join(host, 'hook.log');
    // The installer's image: node and its libraries from this machine, kmodload's package,
    // and the host's directories.
    const installNode = (args: string[]) =>
      podman([
        ...common,
        ...['-v', '/usr:/usr:ro', '-v', '/lib64:/lib64:ro', '-v', '/lib:/lib:ro'],
        ...['-v', `${repo}:${repo}:ro`, '-v', `${kmodload.dir}:${kmodload.dir}:ro`],
        ...['-v', `${host}:${host}`],
        image,
        process.execPath,
        kmodload.cli,
        'install-node',
        ...['--root', '/', '--libexec', libexec, '--hooks-dir', hooksDir],
        ...args,
      ]);
    const installer = installNode([
      ...['--log', log, '-d', fixture.root, '-S', fixture.version, '--dry-run'],
    ]);
    expect([installer.status, installer.stderr]).toEqual([0, '']);
    expect(installer.stdout).toBe(
      `installed ${libexec}/kmodload-hook and ${hooksDir}/kmodload.json\n`,
    );

    const container = podman([
      '--hooks-dir',
      hooksDir,
      ...common,
      '--annotation',
      'org.kmodload.kernel-modules=ip_vs ip_vs_wrr',
      image,
      '/bin/echo',
      'container-ran',
    ]);
    expect(container.stdout).toBe('container-ran\n');
    const records = fs
      .readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as AuditRecord);
    expect(records.map((r) => [r.stage, r.request, r.exitStatus, r.dryRun])).toEqual([
      ['prestart', ['ip_vs', 'ip_vs_wrr'], 0, true],
    ]);
    // doctor finds the installed hook and runs it.
    const doctor = cli(['doctor', '--hooks-dir', hooksDir]);
    expect(doctor.stdout).toContain(
      `ok   hook ${hooksDir}/kmodload.json: ${libexec}/kmodload-hook`,
    );

    // The DaemonSet's preStop: uninstall, again from inside a container.
    const uninstall = installNode(['--uninstall']);
    expect(uninstall.status).toBe(0);
    expect(fs.readdirSync(hooksDir)).toEqual([]);
    expect(fs.existsSync(path.join(libexec, 'kmodload-hook'))).toBe(false);
  });
});
