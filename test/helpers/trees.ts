// The real module trees from scripts/test/fetch-kernels.sh (cached under /var/cache/kmodload).
// The one reader of that script's output: every test directory gets its trees from here.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface KernelTree {
  /** '6.1' (plain .ko) or '6.12' (.ko.xz), as the script names them. */
  flavour: string;
  /** Give it to `modprobe -d` / `kmodload -d`. */
  root: string;
  version: string;
  /** root/lib/modules/version */
  moduleDir: string;
  /** root/boot/vmlinuz-version, the kernel image qemu boots. */
  vmlinuz: string;
}

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const FETCH_KERNELS = path.join(REPO_ROOT, 'scripts', 'test', 'fetch-kernels.sh');

let cached: KernelTree[] | undefined;

/** The environment for external tools (modprobe, compressors, the fixture script): without the
 *  sanitizer runtime that scripts/test/test-asan.sh preloads into node, which they do not need. */
export function toolEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  return env;
}

/** Parses the script's stdout: one "<flavour> <root> <version>" line per tree. */
export function parseKernelTrees(stdout: string): KernelTree[] {
  const trees = stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const fields = line.trim().split(/\s+/);
      const [flavour, root, version] = fields;
      if (fields.length !== 3 || !flavour || !root || !version) {
        throw new Error(`fetch-kernels.sh: unexpected line "${line}"`);
      }
      return {
        flavour,
        root,
        version,
        moduleDir: path.join(root, 'lib', 'modules', version),
        vmlinuz: path.join(root, 'boot', `vmlinuz-${version}`),
      };
    });
  if (trees.length === 0) throw new Error('fetch-kernels.sh printed no trees');
  return trees;
}

/** Runs scripts/test/fetch-kernels.sh (it caches, and is safe to run concurrently) and returns the
 *  trees it prints. */
export function kernelTrees(): KernelTree[] {
  if (cached) return cached;
  const out = execFileSync('bash', [FETCH_KERNELS], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: toolEnv(),
  });
  cached = parseKernelTrees(out);
  return cached;
}

export function kernelTree(flavour: string): KernelTree {
  const tree = kernelTrees().find((t) => t.flavour === flavour);
  if (!tree) throw new Error(`no ${flavour} tree from scripts/test/fetch-kernels.sh`);
  return tree;
}

/** Dependencies of the tree's modules (modules.dep), for the fake kernel's holders. */
export function treeDependencies(tree: KernelTree): Record<string, string[]> {
  const deps: Record<string, string[]> = {};
  const name = (file: string) =>
    path
      .basename(file)
      .replace(/\.ko.*$/, '')
      .replace(/-/g, '_');
  for (const line of fs
    .readFileSync(path.join(tree.moduleDir, 'modules.dep'), 'utf8')
    .split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    deps[name(line.slice(0, colon))] = line
      .slice(colon + 1)
      .split(' ')
      .filter((f) => f !== '')
      .map(name);
  }
  return deps;
}
