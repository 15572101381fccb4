// The TypeScript sources compiled into a directory of the test's own, so that a test never
// runs a stale dist/ and parallel test files never race on one.

import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from './trees';

/** Compiles src/ into `outDir` (as dist/ is laid out: outDir/cli/main.js ...). */
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
}
