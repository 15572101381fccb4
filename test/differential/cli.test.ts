// The command itself: `kmodload load --show-depends` prints what `modprobe -a --show-depends`
// prints and exits with modprobe's status (0, or 1 for a name that cannot be found).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { writeConfigFixture, type ConfigFixture } from './configs';
import { installSources } from '../helpers/build';
import { kernelTree, type KernelTree } from '../helpers/trees';
import { lineDiff } from './oracle';

// bin/kmodload.js of an installation compiled from src/ for this file alone (never a stale
// or half-written dist/).
let buildDir: string;
let cli: string;
beforeAll(() => {
  buildDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-differential-cli-'));
  cli = installSources(buildDir);
});
afterAll(() => fs.rmSync(buildDir, { recursive: true, force: true }));

function run(command: string, args: string[]): { stdout: string; status: number | null } {
  const r = spawnSync(command, args, { encoding: 'utf8' });
  return { stdout: r.stdout, status: r.status };
}

describe.each(['6.1', '6.12'])('kmodload load --show-depends (%s tree)', (flavour) => {
  let tree: KernelTree;
  let fixture: ConfigFixture;

  beforeAll(() => {
    tree = kernelTree(flavour);
    fixture = writeConfigFixture(tree);
  });
  afterAll(() => fixture?.cleanup());

  const cases: Array<{ title: string; args: (f: ConfigFixture) => string[]; names: string[] }> = [
    { title: 'the seed set', args: () => [], names: ['ip_vs', 'ip_vs_wrr'] },
    { title: 'aliases and dashes', args: () => [], names: ['crc32c', 'fs-xfs', 'crc32c-intel'] },
    {
      title: 'an unknown name among known ones',
      args: () => [],
      names: ['ext4', 'no_such_mod', 'xfs'],
    },
    { title: 'an invalid name', args: () => [], names: ['snd-[a'] },
    {
      title: 'a configuration (-C) with install rules',
      args: (f) => f.configPaths.flatMap((p) => ['-C', p]),
      names: ['dummy', 'ifb', 'nlmon', 'ip_vs', 'my-net', 'install-only-name'],
    },
    {
      title: 'the blacklist applied to names (-b)',
      args: (f) => [...f.configPaths.flatMap((p) => ['-C', p]), '-b'],
      names: ['igb', 'wild-net-x', 'crc16'],
    },
  ];

  it.each(cases)('$title', ({ args, names }) => {
    const common = ['-d', tree.root, '-S', tree.version, ...args(fixture)];
    const theirs = run('modprobe', [...common, '-a', '--show-depends', ...names]);
    const ours = run(process.execPath, [cli, 'load', '--show-depends', ...common, ...names]);
    expect(ours.stdout, lineDiff(theirs.stdout, ours.stdout)).toBe(theirs.stdout);
    expect(ours.status).toBe(theirs.status);
  });
});
