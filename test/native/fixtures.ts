// Real module trees for the native tests (scripts/fetch-kernels.sh prepares and caches them).
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

export interface KernelTree {
  flavour: string;
  root: string;
  version: string;
  /** root/lib/modules/version */
  moduleDir: string;
}

const repoRoot = path.resolve(__dirname, '..', '..');

let trees: KernelTree[] | undefined;

/** The environment for helper tools (modprobe, compressors, the fixture script): without the
 *  sanitizer runtime that scripts/test-asan.sh preloads into node, which they do not need. */
export function toolEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  return env;
}

export function kernelTrees(): KernelTree[] {
  if (trees) return trees;
  const out = execFileSync('bash', [path.join(repoRoot, 'scripts', 'fetch-kernels.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: toolEnv(),
  });
  trees = out
    .trim()
    .split('\n')
    .map((line) => {
      const [flavour, root, version] = line.split(' ');
      if (!flavour || !root || !version) throw new Error(`fetch-kernels: bad line "${line}"`);
      return { flavour, root, version, moduleDir: path.join(root, 'lib', 'modules', version) };
    });
  return trees;
}

export function kernelTree(flavour: string): KernelTree {
  const tree = kernelTrees().find((t) => t.flavour === flavour);
  if (!tree) throw new Error(`no ${flavour} kernel tree from fetch-kernels.sh`);
  return tree;
}

/** depmod's key normalisation: '-' becomes '_', except inside a [...] class. */
export function normalizeAlias(alias: string): string {
  let out = '';
  let inClass = false;
  for (const ch of alias) {
    if (ch === '[') inClass = true;
    else if (ch === ']') inClass = false;
    out += !inClass && ch === '-' ? '_' : ch;
  }
  return out;
}

/** Module name from a path in modules.dep / modules.builtin: basename without .ko[.xz|...]. */
export function moduleNameFromPath(relpath: string): string {
  const base = path.basename(relpath);
  const dot = base.indexOf('.ko');
  return (dot >= 0 ? base.slice(0, dot) : base).replace(/-/g, '_');
}
