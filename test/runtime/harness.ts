// A real installation of kmodload in a temporary directory (compiled from this tree, so the
// tests never run a stale dist/), its hook wrapper, and runc bundles that call it.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AuditRecord } from '../../src/container/audit';
import { installSources } from '../helpers/build';
import { writeBundle } from '../helpers/bundle';
import { REPO_ROOT, kernelTree, toolEnv, type KernelTree } from '../helpers/trees';

export const repo = path.resolve(__dirname, '..', '..');

/** A tree of scripts/test/fetch-kernels.sh (test/helpers/trees.ts reads it). */
export type Fixture = KernelTree;

export interface Installation {
  dir: string;
  /** bin/kmodload.js of the installation. */
  cli: string;
  /** The wrapper written by `hook-config --install-wrapper`. */
  wrapper: string;
}

/**
 * Compiles src/ into DIR/dist and lays out DIR like an installed package: bin/kmodload.js,
 * package.json, and the addon's build/ and node_modules/ linked from the checkout. Then
 * installs the hook wrapper with the installation's own CLI.
 */
export function install(dir: string): Installation {
  const cli = installSources(dir);
  for (const file of ['dist/cli/main.js', 'dist/cli/hook-command.js', 'dist/index.js']) {
    if (!fs.existsSync(path.join(dir, file))) throw new Error(`build produced no ${file}`);
  }
  const wrapper = path.join(dir, 'libexec', 'kmodload', 'kmodload-hook');
  execFileSync(process.execPath, [cli, 'hook-config', '--install-wrapper', wrapper], {
    stdio: 'ignore',
  });
  return { dir, cli, wrapper };
}

export interface OciHook {
  path: string;
  args: string[];
  env?: string[];
  timeout?: number;
}

/** `kmodload hook-config ARGS` of the installation, parsed. */
export function hookConfig(installation: Installation, args: string[]): unknown {
  const output = execFileSync(
    process.execPath,
    [installation.cli, 'hook-config', '--wrapper', installation.wrapper, ...args],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return JSON.parse(output);
}

let bundleCount = 0;

export interface BundleOptions {
  env: string[];
  hooks: Record<string, OciHook[]>;
  annotations?: Record<string, string>;
  args?: string[];
}

/** A runc bundle: `runc spec`'s config.json with a static busybox rootfs. */
export function makeBundle(parent: string, options: BundleOptions): string {
  const dir = path.join(parent, `bundle-${bundleCount++}`);
  const bin = path.join(dir, 'rootfs', 'bin');
  fs.mkdirSync(bin, { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(bin, 'busybox'));
  fs.chmodSync(path.join(bin, 'busybox'), 0o755);
  fs.symlinkSync('busybox', path.join(bin, 'sh'));
  execFileSync('runc', ['spec', '--bundle', dir]);
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as {
    process: { terminal: boolean; args: string[]; env: string[] };
    hooks?: unknown;
    annotations?: Record<string, string>;
  };
  config.process.terminal = false;
  config.process.args = options.args ?? ['/bin/sh', '-c', 'echo started'];
  config.process.env = options.env;
  config.hooks = options.hooks;
  if (options.annotations) config.annotations = options.annotations;
  return writeBundle(dir, config);
}

export interface RuncRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

let idCount = 0;
/** A container id nobody else uses, even across parallel test files. */
export function uniqueId(label: string): string {
  return `kmodload-${label}-${process.pid}-${idCount++}`;
}

/** `runc run` in the foreground, then `runc delete -f` whatever happened. */
export async function runcRun(stateRoot: string, bundle: string, id: string): Promise<RuncRun> {
  try {
    return await new Promise<RuncRun>((resolve, reject) => {
      const child = spawn('runc', ['--root', stateRoot, 'run', '--bundle', bundle, id], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('error', reject);
      child.on('close', (status) => {
        clearTimeout(timer);
        resolve({ status, stdout, stderr });
      });
    });
  } finally {
    spawnSync('runc', ['--root', stateRoot, 'delete', '-f', id], { stdio: 'ignore' });
  }
}

/** The module files `modprobe -a --show-depends` would insmod, in order (the oracle). */
export function modprobeInsmods(fixture: Fixture, names: string[], configDir?: string): string[] {
  const args = ['-d', fixture.root, '-S', fixture.version];
  if (configDir) args.push('-C', configDir);
  const output = execFileSync('modprobe', [...args, '-a', '--show-depends', ...names], {
    encoding: 'utf8',
  });
  return output
    .split('\n')
    .filter((line) => line.startsWith('insmod '))
    .map((line) => line.slice('insmod '.length).trim());
}

export function tempDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `kmodload-${label}-`));
}

/** A root file system with a static busybox (sh, echo), as a tar archive. */
export function busyboxTar(scratch: string): Buffer {
  const rootfs = fs.mkdtempSync(path.join(scratch, 'rootfs-'));
  fs.mkdirSync(path.join(rootfs, 'bin'));
  fs.copyFileSync('/bin/busybox', path.join(rootfs, 'bin', 'busybox'));
  for (const applet of ['sh', 'echo']) fs.symlinkSync('busybox', path.join(rootfs, 'bin', applet));
  return spawnSync('tar', ['-C', rootfs, '-c', '.'], { maxBuffer: 64 << 20 }).stdout;
}

/** A podman image from a static busybox (sh, echo), made offline with `podman import`. */
export function busyboxImage(scratch: string, name = 'localhost/kmodload-test-busybox'): string {
  const imported = spawnSync('podman', ['import', '-', name], { input: busyboxTar(scratch) });
  if (imported.status !== 0) throw new Error(`podman import failed: ${String(imported.stderr)}`);
  return name;
}

/** `podman run --rm IMAGE /bin/echo container-ran` with runc, as this host runs it (cgroupfs,
 *  no network, limits it need not raise), `options` before the image; `hooksDir`: its
 *  --hooks-dir. */
export function podmanRun(
  image: string,
  options: string[],
  hooksDir?: string,
): ReturnType<typeof spawnSync> {
  const [command, ...args] = podmanRunCommand(image, options, hooksDir);
  return spawnSync(command as string, args, { encoding: 'utf8', timeout: 60_000 });
}

/** podmanRun's command line. */
export function podmanRunCommand(image: string, options: string[], hooksDir?: string): string[] {
  return [
    'podman',
    '--runtime',
    'runc',
    '--cgroup-manager',
    'cgroupfs',
    ...(hooksDir === undefined ? [] : ['--hooks-dir', hooksDir]),
    'run',
    '--rm',
    '--network',
    'none',
    '--ulimit',
    'nofile=1024:1024',
    '--ulimit',
    'nproc=1024:1024',
    ...options,
    image,
    '/bin/echo',
    'container-ran',
  ];
}

/** The hook's log, one record per line; none when the file is not there. */
export function readLog(file: string): AuditRecord[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as AuditRecord);
}

export interface TestInstallation {
  scratch: string;
  fixture: Fixture;
  kmodload: Installation;
}

/** A scratch directory (removed by `removeScratch`), the 6.1 tree and an installation in it. */
export function setUpInstallation(label: string): TestInstallation {
  const scratch = tempDir(label);
  return { scratch, fixture: kernelTree('6.1'), kmodload: install(path.join(scratch, 'install')) };
}

export function removeScratch(scratch: string | undefined): void {
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
}

/** The cached Debian 13 root with its podman, runc and crun (scripts/test/fetch-roots.sh). */
export function trixiePodmanRoot(): string {
  const output = execFileSync(
    'bash',
    [path.join(REPO_ROOT, 'scripts', 'test', 'fetch-roots.sh'), 'trixie-podman'],
    { encoding: 'utf8', env: toolEnv() },
  );
  const [name, root] = output.trim().split(' ');
  if (name !== 'trixie-podman' || !root) throw new Error(`fetch-roots.sh printed: ${output}`);
  return root;
}

// In a mount namespace of its own: the root a mount point (podman's storage remounts "/"), the
// host's /proc, /sys and /dev, a fresh /run and /tmp, then each bind (its mount point made as
// a directory or an empty file: outside /tmp and /run they stay in the cached root, empty),
// then chroot.
const IN_ROOT = `set -e
R=$1; shift
mount --bind "$R" "$R"
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys"
mount --rbind /dev "$R/dev"
mount -t tmpfs tmpfs "$R/run"
mount -t tmpfs tmpfs "$R/tmp"
while [ "$1" != -- ]; do
  source=$1 target=$R$2; shift 2
  if [ -d "$source" ]; then mkdir -p "$target"
  else mkdir -p "$(dirname "$target")"; [ -e "$target" ] || : > "$target"; fi
  mount --bind "$source" "$target"
done
shift
exec chroot "$R" "$@"`;

/** Host path -> path inside the root. */
export type RootBind = [string, string];

/** Runs `command` chrooted into `root` (see IN_ROOT), with `binds`; nothing stays mounted. */
export function runInRoot(
  root: string,
  binds: readonly RootBind[],
  command: string[],
  input?: Buffer,
): ReturnType<typeof spawnSync> {
  return spawnSync(
    'unshare',
    [
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      IN_ROOT,
      'sh',
      root,
      ...binds.flat(),
      '--',
      ...command,
    ],
    {
      encoding: 'utf8',
      timeout: 120_000,
      maxBuffer: 64 << 20,
      ...(input ? { input } : {}),
      env: { ...toolEnv(), PODMAN_IGNORE_CGROUPSV1_WARNING: '1' },
    },
  );
}

/** What the installation's hook needs inside another root at the paths it has here: this
 *  node, the checkout the installation links to (and where its links lead), the kernel trees. */
export function installationBinds(fixture: Fixture, scratch: string): RootBind[] {
  const paths = [scratch, REPO_ROOT, process.execPath, path.dirname(fixture.root)];
  for (const link of ['node_modules', 'build']) {
    const target = fs.realpathSync(path.join(REPO_ROOT, link));
    if (!target.startsWith(`${REPO_ROOT}/`)) paths.push(target);
  }
  return paths.map((file) => [file, file]);
}
