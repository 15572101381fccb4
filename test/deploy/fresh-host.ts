// A fresh host to install kmodload on: the Debian 11 minbase root from scripts/test/fetch-roots.sh
// (glibc 2.31; no compiler, make, python or Node), entered with chroot in a private mount
// namespace (unshare), so its /dev, /proc and module-tree mounts vanish with the process.
// Each FreshHost gets its own scratch directory inside the root; the cached root is not
// otherwise changed. Nothing run inside reaches the network: npm installs offline from
// tarballs put into the scratch directory.

import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import type { KernelTree } from '../helpers/trees';
import { REPO_ROOT, toolEnv } from '../helpers/trees';

export interface FreshHost {
  /** The root directory on this machine. */
  root: string;
  /** The scratch directory, as this machine sees it (root + inside). */
  dir: string;
  /** The scratch directory as seen inside the root. */
  inside: string;
  /** The module tree bound (read-only) into the root, and where: inside + '/tree'. */
  tree: KernelTree;
  treeInside: string;
}

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** The cached Debian 11 root (built on first use by scripts/test/fetch-roots.sh). */
export function bullseyeRoot(): string {
  const output = execFileSync('bash', [path.join(REPO_ROOT, 'scripts', 'test', 'fetch-roots.sh')], {
    encoding: 'utf8',
    env: toolEnv(),
  });
  const [suite, root] = output.trim().split(' ');
  if (suite !== 'bullseye' || !root) throw new Error(`fetch-roots.sh printed: ${output}`);
  return root;
}

/** A scratch directory in the root, with `tree` to be bound at <scratch>/tree. Without Node:
 *  copyNode() adds it. */
export function freshHost(tree: KernelTree): FreshHost {
  const root = bullseyeRoot();
  const dir = fs.mkdtempSync(path.join(root, 'tmp', 'kmodload-fresh-'));
  fs.chmodSync(dir, 0o755);
  fs.mkdirSync(path.join(dir, 'bin'));
  fs.mkdirSync(path.join(dir, 'tree'));
  fs.mkdirSync(path.join(dir, 'home'));
  const inside = `/${path.relative(root, dir)}`;
  return { root, dir, inside, tree, treeInside: `${inside}/tree` };
}

export function removeFreshHost(host: FreshHost | undefined): void {
  if (!host) return;
  // The bind mounts lived in the namespace of each run; nothing is mounted here now.
  fs.rmSync(host.dir, { recursive: true, force: true });
}

/** Puts a file into the scratch directory (e.g. a single executable); returns its path inside. */
export function copyIntoHost(host: FreshHost, file: string, name = path.basename(file)): string {
  fs.copyFileSync(file, path.join(host.dir, 'bin', name));
  fs.chmodSync(path.join(host.dir, 'bin', name), 0o755);
  return `${host.inside}/bin/${name}`;
}

/** This machine's Node binary (nothing newer than glibc 2.28 needed) and its npm, into
 *  <scratch>/bin and <scratch>/npm. */
export function copyNode(host: FreshHost): void {
  copyIntoHost(host, process.execPath, 'node');
  const npmRoot = path.resolve(
    path.dirname(fs.realpathSync(process.execPath)),
    '..',
    'lib',
    'node_modules',
    'npm',
  );
  if (!fs.existsSync(path.join(npmRoot, 'bin', 'npm-cli.js'))) {
    throw new Error(`no npm next to ${process.execPath} (${npmRoot})`);
  }
  fs.cpSync(npmRoot, path.join(host.dir, 'npm'), { recursive: true });
  fs.symlinkSync('../npm/bin/npm-cli.js', path.join(host.dir, 'bin', 'npm'));
}

/** Runs a shell script inside the root: PATH is <scratch>/bin then the root's own, HOME
 *  <scratch>/home, no other variable. */
export function runInHost(host: FreshHost, script: string, input?: string): RunResult {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const setup = [
    `mount --rbind /dev ${q(path.join(host.root, 'dev'))}`,
    `mount -t proc proc ${q(path.join(host.root, 'proc'))}`,
    `mount --bind -o ro ${q(host.tree.root)} ${q(path.join(host.dir, 'tree'))}`,
    [
      'exec chroot',
      q(host.root),
      'env -i',
      q(`PATH=${host.inside}/bin:/usr/sbin:/usr/bin:/sbin:/bin`),
      q(`HOME=${host.inside}/home`),
      'LANG=C.UTF-8 sh -c',
      q(script),
    ].join(' '),
  ].join(' && ');
  const result = spawnSync(
    'unshare',
    ['--mount', '--propagation', 'private', '--fork', 'sh', '-c', setup],
    { encoding: 'utf8', input: input ?? '', env: toolEnv(), maxBuffer: 64 * 1024 * 1024 },
  );
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}
