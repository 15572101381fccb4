// The import cycle rule of `npm run lint` (dependency-cruiser, .dependency-cruiser.cjs).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/trees';

const DEPCRUISE = path.join(REPO_ROOT, 'node_modules', '.bin', 'depcruise');
const CONFIG = path.join(REPO_ROOT, '.dependency-cruiser.cjs');
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

/** Runs the rule over `dir`, as `npm run lint` does over src/. */
function check(dir: string, cwd = dir) {
  const run = spawnSync(DEPCRUISE, ['--config', CONFIG, dir], { cwd, encoding: 'utf8' });
  return { status: run.status, output: run.stdout + run.stderr };
}

describe('import cycle rule', () => {
  it('fails on a cycle made of a type import, a dynamic import() and a require()', () => {
    const dir = tree('cycle', {
      'a.ts': "import type { B } from './b';\nexport type A = B;\n",
      'b.ts': "export type B = 1;\nexport const c = () => import('./sub/c.js');\n",
      'sub/c.ts': "// require('../b') in a comment is no edge\nexport const a = require('../a');\n",
      'd.ts': "import { c } from './b';\nexport const d = c;\n",
    });
    const result = check(dir);
    expect(result.status).toBe(1);
    expect(result.output).toMatch(
      /no-circular: \S*a\.ts →\s+\S*b\.ts →\s+\S*sub\/c\.ts →\s+\S*a\.ts/,
    );
    expect(result.output).toContain('1 dependency violations');
  });

  it('fails on a file that imports itself through its directory index', () => {
    const result = check(tree('self', { 'x/index.ts': "export * from '../x';\n" }));
    expect(result.status).toBe(1);
    expect(result.output).toContain('no-circular');
  });

  it('fails on `typeof import()` types and `import x = require()`', () => {
    const dir = tree('type-nodes', {
      'a.ts': "export type A = typeof import('./b');\nexport const a = 1;\n",
      'b.ts': "import c = require('./c');\nexport type B = typeof c;\n",
      'c.ts': "export type C = import('./a').A;\n",
    });
    expect(check(dir).status).toBe(1);
  });

  it('passes without a cycle: strings, comments and packages make no edge', () => {
    const dir = tree('acyclic', {
      'a.ts': "import fs from 'node:fs';\nimport { b } from './b';\nexport const a = [fs, b];\n",
      'b.ts': "export const b = \"import './a'\"; /* require('./a') */\n",
    });
    const result = check(dir);
    expect(result.output).toContain('no dependency violations found');
    expect(result.status).toBe(0);
  });

  it('src/ has no import cycle, and npm run lint checks it', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts.lint).toContain('depcruise --config .dependency-cruiser.cjs src');
    const result = check('src', REPO_ROOT);
    expect(result.output).toContain('no dependency violations found');
    expect(result.status).toBe(0);
  });
});
