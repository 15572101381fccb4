// The configuration parser against `modprobe -c`, which prints what kmod parsed: blacklists,
// install and remove rules, aliases and options, in kmod's order, from the same files and the
// same kernel command line (bind-mounted over /proc/cmdline in a private mount namespace).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModprobeConfig, type ModprobeConfig } from '../../src/config';
import { TEST_CMDLINE, writeConfigFixture, type ConfigFixture } from './configs';
import { kernelTree, type KernelTree } from '../helpers/trees';
import { lineDiff } from './oracle';

/** Our configuration in `modprobe -c` form (softdeps left out: kmod 30 prints them garbled). */
function showConfig(config: ModprobeConfig): string {
  return [
    ...config.blacklist.map((m) => `blacklist ${m}`),
    ...config.install.map((r) => `install ${r.module} ${r.command}`),
    ...config.remove.map((r) => `remove ${r.module} ${r.command}`),
    ...config.aliases.map((a) => `alias ${a.pattern} ${a.module}`),
    ...config.options.map((o) => `options ${o.module} ${o.options}`),
  ]
    .map((l) => `${l}\n`)
    .join('');
}

/** modprobe -c up to its index dump, without the softdep lines. */
function modprobeShowConfig(tree: KernelTree, configPaths: string[], cmdline: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-cmdline-'));
  const file = path.join(dir, 'cmdline');
  fs.writeFileSync(file, cmdline);
  try {
    const args = [
      ...configPaths.flatMap((p) => ['-C', p]),
      '-d',
      tree.root,
      '-S',
      tree.version,
      '-c',
    ];
    const r = spawnSync(
      'unshare',
      ['-m', 'sh', '-c', 'mount --bind "$0" /proc/cmdline && exec modprobe "$@"', file, ...args],
      { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 },
    );
    if (r.status !== 0) throw new Error(`modprobe -c failed: ${r.stderr.trim()}`);
    const end = r.stdout.indexOf('\n# End of configuration files.');
    return r.stdout
      .slice(0, end + 1)
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('softdep '))
      .map((l) => `${l}\n`)
      .join('');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('modprobe.d and kernel command line parsing = modprobe -c', () => {
  let tree: KernelTree;
  let fixture: ConfigFixture;

  beforeAll(() => {
    tree = kernelTree('6.1');
    fixture = writeConfigFixture(tree);
  });
  afterAll(() => fixture?.cleanup());

  const cmdlines = [
    TEST_CMDLINE,
    '',
    'a.b=1 "c.d=e f" g.h="i j" k.l="m n"o p."q=r" s"t.u=v" w.x.y=z =1 .=2 m.=3 .p=4',
    'modprobe.blacklist=one,,two-x,three_y modprobe.blacklist= modprobe.other=1 x-y.z-w=1',
    'tab\t.sep=1\ttab2.p=2\nafter.newline=3',
    `${'long.p=1 '.repeat(500)}end.p=1`,
  ];

  it.each(cmdlines.map((c) => [JSON.stringify(c.slice(0, 60)), c]))(
    'the every-directive fixture with cmdline %s',
    async (_title, cmdline) => {
      const ours = showConfig(
        await loadModprobeConfig({
          configDirs: fixture.configPaths,
          moduleDir: `${tree.root}/lib/modules/${tree.version}`,
          kernelCommandLine: cmdline as string,
        }),
      );
      const theirs = modprobeShowConfig(tree, fixture.configPaths, cmdline as string);
      expect(ours, lineDiff(theirs, ours)).toBe(theirs);
    },
  );

  it('the host default directories', async () => {
    const cmdline = fs.readFileSync('/proc/cmdline', 'utf8');
    const ours = showConfig(
      await loadModprobeConfig({
        moduleDir: `${tree.root}/lib/modules/${tree.version}`,
        kernelCommandLine: cmdline,
      }),
    );
    const theirs = modprobeShowConfig(tree, [], cmdline);
    expect(ours, lineDiff(theirs, ours)).toBe(theirs);
  });
});
