// The TypeScript sources compiled into a directory of the test's own, so that a test never
// runs a stale dist/ and parallel test files never race on one.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './trees';

/** Compiles src/ into `outDir` as `npm run build` lays out dist/: outDir/cli/main.js ...
 *  (tsc), and outDir/kmodload.js, the CLI in one file (scripts/make/bundle.js), which
 *  bin/kmodload.js runs. */
export function compileSources(outDir: string): void {
  const build = spawnSync(
    process.execPath,
    [
      path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
      '-p',
      path.join(REPO_ROOT, 'tsconfig.build.json'),
      '--outDir',
      outDir,
      '--sourceMap',
      'false',
      '--declaration',
      'false',
    ],
    { cwd: REPO_ROOT, encoding: 'utf8' },
  );
  if (build.status !== 0) {
    throw new Error(`tsc failed (status ${build.status}):\n${build.stdout}${build.stderr}`);
  }
  const bundle = spawnSync(
    process.execPath,
    [path.join(REPO_ROOT, 'scripts', 'make', 'bundle.js'), path.join(outDir, 'kmodload.js')],
    { cwd: REPO_ROOT, encoding: 'utf8' },
  );
  if (bundle.status !== 0) {
    throw new Error(`bundle failed (status ${bundle.status}):\n${bundle.stdout}${bundle.stderr}`);
  }
  // The code caches fall back to the top levels' when their training fails: a build that
  // works but starts slower, which only this says.
  if (/^code-cache:/m.test(bundle.stderr)) {
    throw new Error(`the code cache training failed:\n${bundle.stderr}`);
  }
}

/** Lays out `dir` as an installed package built from this tree: dist/ compiled by
 *  compileSources, bin/kmodload.js and package.json copied, and the addon's build/ and
 *  node_modules/ linked from the checkout. Returns the path of its bin/kmodload.js. */
export function installSources(dir: string): string {
  compileSources(path.join(dir, 'dist'));
  fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
  const cli = path.join(dir, 'bin', 'kmodload.js');
  fs.copyFileSync(path.join(REPO_ROOT, 'bin', 'kmodload.js'), cli);
  fs.copyFileSync(path.join(REPO_ROOT, 'package.json'), path.join(dir, 'package.json'));
  fs.symlinkSync(path.join(REPO_ROOT, 'build'), path.join(dir, 'build'));
  fs.symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  return cli;
}
