// The installed package's root directory (where package.json, bin/ and build/ are), found from
// this file wherever it runs from: src/ under the tests, dist/ after tsc, or the one-file
// bundle dist/kmodload.js, whose directory depth differs.
import fs from 'node:fs';
import path from 'node:path';

let cached: string | undefined;

export function packageRoot(): string {
  if (cached !== undefined) return cached;
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'bin'))) {
      cached = dir;
      return dir;
    }
    if (path.dirname(dir) === dir) {
      cached = path.resolve(__dirname, '..');
      return cached;
    }
  }
}
