// scripts/check-cycles.js (part of `npm run lint`): import cycles, whatever the kind of edge.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/trees';

const SCRIPT = path.join(REPO_ROOT, 'scripts', 'check-cycles.js');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-cycles-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** A directory of source files (name -> text); returns its path. */
function tree(name: string, files: Record<string, string>): string {
  const dir = path.join(scratch, name);
  for (const [file, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), text);
  }
  return dir;
}

function check(dir: string) {
  const run = spawnSync(process.execPath, [SCRIPT, '.'], { cwd: dir, encoding: 'utf8' });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('scripts/check-cycles.js', () => {
  it('finds a cycle made of a type import, a dynamic import() and a require()', () => {
    const dir = tree('cycle', {
      'a.ts': "import type { B } from './b';\nexport type A = B;\n",
      'b.ts': "export type B = 1;\nexport const c = () => import('./sub/c.js');\n",
      'sub/c.ts': "// require('../b') in a comment is no edge\nexport const a = require('../a');\n",
      'd.ts': "import { c } from './b';\nexport const d = c;\n",
    });
    const result = check(dir);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('import cycle: a.ts -> b.ts -> sub/c.ts -> a.ts\n');
    expect(result.stderr).toBe('check-cycles: 1 import cycle(s) among 4 files\n');
  });

  it('a file that imports itself, through its directory index, is a cycle', () => {
    const dir = tree('self', { 'x/index.ts': "export * from '../x';\n" });
    expect(check(dir).stdout).toBe('import cycle: x/index.ts -> x/index.ts\n');
  });

  it('exit 0 without a cycle: strings, comments and packages make no edge', () => {
    const dir = tree('acyclic', {
      'a.ts': "import fs from 'node:fs';\nimport { b } from './b';\nexport const a = [fs, b];\n",
      'b.ts': "export const b = \"import './a'\"; /* require('./a') */\n",
    });
    expect(check(dir)).toEqual({
      status: 0,
      stdout: 'check-cycles: no import cycle among 2 files\n',
      stderr: '',
    });
  });

  it('src/ has no import cycle', () => {
    const run = spawnSync(process.execPath, [SCRIPT], { cwd: REPO_ROOT, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });
});
