// The package as npm publishes it: `npm pack` of this checkout (its dist/ and prebuilds/, which
// scripts/test/test-all.sh builds first), and its dependencies packed from node_modules, so that a
// host can install all of it with `npm install --offline`.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { REPO_ROOT, toolEnv } from '../helpers/trees';

/** Builds the prebuilds that prebuilds/ lacks (scripts/make/prebuild.sh --if-missing). */
export function ensurePrebuilds(): void {
  execFileSync('bash', [path.join(REPO_ROOT, 'scripts', 'make', 'prebuild.sh'), '--if-missing'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: toolEnv(),
  });
}

interface PackEntry {
  filename: string;
  files: { path: string }[];
}

function npmPack(spec: string, destination: string): PackEntry[] {
  const output = execFileSync(
    'npm',
    ['pack', '--ignore-scripts', '--json', '--pack-destination', destination, spec],
    { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: toolEnv() },
  );
  return JSON.parse(output) as PackEntry[];
}

/** `npm pack` of the checkout into `destination`: the tarball's path and the files it holds.
 *  Its scripts (prepack: prebuild.sh, prepare: tsc) are not run again here. */
export function packTarball(destination: string): { tarball: string; files: string[] } {
  if (!fs.existsSync(path.join(REPO_ROOT, 'dist', 'cli', 'main.js'))) {
    throw new Error('dist/ is not built (npx tsc -p tsconfig.build.json)');
  }
  const [entry] = npmPack('.', destination);
  if (!entry) throw new Error('npm pack printed no entry');
  return {
    tarball: path.join(destination, entry.filename),
    files: entry.files.map((f) => f.path),
  };
}

/** The package's runtime dependencies, each packed from the checkout's node_modules. */
export function packDependencies(destination: string): string[] {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
    dependencies?: Record<string, string>;
  };
  return Object.keys(pkg.dependencies ?? {}).map((name) => {
    const [entry] = npmPack(`./node_modules/${name}`, destination);
    if (!entry) throw new Error(`npm pack of ${name} printed no entry`);
    return path.join(destination, entry.filename);
  });
}
