// The real module trees from scripts/fetch-kernels.sh (cached under /var/cache/kmodload).

import { execFileSync } from 'node:child_process';
import path from 'node:path';

export interface KernelTree {
  flavour: string;
  root: string;
  version: string;
  moduleDir: string;
}

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

let cached: KernelTree[] | undefined;

/** Runs scripts/fetch-kernels.sh (it caches) and returns the trees it prints. */
export function kernelTrees(): KernelTree[] {
  if (cached) return cached;
  const out = execFileSync('bash', [path.join(REPO_ROOT, 'scripts', 'fetch-kernels.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  cached = out
    .trim()
    .split('\n')
    .map((line) => {
      const [flavour = '', root = '', version = ''] = line.trim().split(/\s+/);
      return { flavour, root, version, moduleDir: path.join(root, 'lib', 'modules', version) };
    });
  return cached;
}

export function kernelTree(flavour: string): KernelTree {
  const tree = kernelTrees().find((t) => t.flavour === flavour);
  if (!tree) throw new Error(`no ${flavour} tree from scripts/fetch-kernels.sh`);
  return tree;
}
