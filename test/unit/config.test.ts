// modprobe.d parsing corner cases (kmod 30's behaviour; test/differential/config.test.ts checks
// the same parser against `modprobe -c`).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import {
  aliasNormalize,
  emptyConfig,
  listConfigFiles,
  loadModprobeConfig,
  modnameNormalize,
  parseConfigFile,
  parseKernelCommandLine,
  type ModprobeConfig,
} from '../../src/config';
import { logicalLines } from '../../src/config/lines';

function parse(text: string): ModprobeConfig {
  const config = emptyConfig();
  parseConfigFile(text, 'test.conf', config);
  return config;
}

function cmdline(text: string): ModprobeConfig {
  const config = emptyConfig();
  parseKernelCommandLine(text, config);
  return config;
}

describe('names', () => {
  it('treats - and _ alike, except inside brackets', () => {
    expect(aliasNormalize('snd-hda-intel')).toBe('snd_hda_intel');
    expect(aliasNormalize('pci:v*d[0-9]-x')).toBe('pci:v*d[0-9]_x');
    expect(aliasNormalize('a]b')).toBeUndefined();
    expect(aliasNormalize('a[b')).toBeUndefined();
  });

  it('cuts module names at the first dot', () => {
    expect(modnameNormalize('crc32c-intel.ko.xz')).toBe('crc32c_intel');
    expect(modnameNormalize('ip_vs')).toBe('ip_vs');
    expect(modnameNormalize('.ko')).toBe('');
  });

  it('cuts names at 4095 characters, as kmod reads them into PATH_MAX buffers', () => {
    expect(aliasNormalize(`${'a-'.repeat(3000)}`)).toBe('a_'.repeat(3000).slice(0, 4095));
    expect(modnameNormalize(`${'a-'.repeat(3000)}.ko`)).toBe('a_'.repeat(3000).slice(0, 4095));
    // A bracket cut off by the limit is unbalanced.
    expect(aliasNormalize(`${'x'.repeat(4094)}[0-9]`)).toBeUndefined();
  });

  it('modprobe.d softdep rules: words split on any white space, pre: and post: lists', () => {
    const config = parse('softdep a-b pre: x\v y post:\fz\r\nsoftdep c\n');
    expect(config.softdeps).toEqual([{ module: 'a_b', pre: ['x', 'y'], post: ['z'] }]);
  });
});

describe('logical lines', () => {
  it('joins backslash-newline and drops a backslash before any other character', () => {
    expect(logicalLines('a \\\n b\nc\\d \\\\e\nlast')).toEqual([
      { text: 'a  b', lineNumber: 2 },
      { text: 'cd \\e', lineNumber: 3 },
      { text: 'last', lineNumber: 4 },
    ]);
  });

  it('counts empty lines, ignores the text after a final newline, and ends a join at EOF', () => {
    expect(logicalLines('\n\nx\n')).toEqual([
      { text: '', lineNumber: 1 },
      { text: '', lineNumber: 2 },
      { text: 'x', lineNumber: 3 },
    ]);
    // A backslash-newline at the very end joins the empty line after it.
    expect(logicalLines('a\\\n')).toEqual([{ text: 'a', lineNumber: 2, unterminated: true }]);
    // A lone backslash at the end of a file without a final newline joins nothing.
    expect(logicalLines('a\nb\\')).toEqual([
      { text: 'a', lineNumber: 1 },
      { text: 'b', lineNumber: 2, unterminated: true },
    ]);
    expect(logicalLines('a\\\nb\\\nc')).toEqual([{ text: 'abc', lineNumber: 3 }]);
    expect(logicalLines('')).toEqual([]);
  });
});

describe('directives', () => {
  it('parses each directive with normalised names', () => {
    const c = parse(
      [
        'alias my-alias snd-pcm',
        'alias pci:v0000*d[0-9]-* e1000-e',
        'blacklist floppy-x',
        'install ip-vs /bin/true  arg',
        'remove ip-vs /bin/false',
        'options foo-bar  a=1\tb=2 # not a comment',
        'softdep ext4 pre: a-b  c post: d pre: e',
      ].join('\n'),
    );
    expect(c.aliases).toEqual([
      { pattern: 'my_alias', module: 'snd_pcm' },
      { pattern: 'pci:v0000*d[0-9]_*', module: 'e1000_e' },
    ]);
    expect(c.blacklist).toEqual(['floppy_x']);
    expect(c.install).toEqual([{ module: 'ip_vs', command: '/bin/true  arg' }]);
    expect(c.remove).toEqual([{ module: 'ip_vs', command: '/bin/false' }]);
    // The rest of the line after ONE separator: a second space stays, tabs become spaces.
    expect(c.options).toEqual([{ module: 'foo_bar', options: ' a=1 b=2 # not a comment' }]);
    expect(c.softdeps).toEqual([{ module: 'ext4', pre: ['a-b', 'c', 'e'], post: ['d'] }]);
    expect(c.warnings).toEqual([]);
  });

  it('ignores comments and blank lines, warns about the lines kmod rejects', () => {
    const c = parse(
      [
        '# comment',
        '',
        '   # indented: a bad line for kmod',
        'alias only-one',
        'alias bad] x',
        'blacklist',
        'options mod',
        'options mod ',
        'softdep jbd2',
        'weakdep ext4 crc16',
        'frobnicate x',
        'include /etc/x.conf',
      ].join('\n'),
    );
    expect(c).toMatchObject({ aliases: [], blacklist: [], options: [], softdeps: [] });
    expect(c.warnings.map((w) => w.replace(/ starting.*/, ''))).toEqual(
      [3, 4, 5, 6, 7, 8, 9, 10, 11].map((n) => `test.conf line ${n}: ignoring bad line`),
    );
  });

  it('keeps a softdep rule without pre:/post: words (it still shadows later rules)', () => {
    expect(parse('softdep x pre:a foo\n').softdeps).toEqual([{ module: 'x', pre: [], post: [] }]);
  });
});

describe('kernel command line', () => {
  it('turns mod.param=value into options and modprobe.blacklist= into blacklist entries', () => {
    const c = cmdline(
      'quiet root=/dev/sda ext-4.x=1 modprobe.blacklist=a-b,c ext4.flag -- m.p=2\n',
    );
    expect(c.options).toEqual([
      { module: 'ext_4', options: 'x=1' },
      { module: 'ext4', options: 'flag' },
      { module: 'm', options: 'p=2' },
    ]);
    expect(c.blacklist).toEqual(['a-b', 'c']); // kept as written
  });

  it('keeps quoted values whole and re-quotes a word quoted as a whole', () => {
    const c = cmdline('a.b="x y" "c.d=e f" g"h.i=1" j.k.l=2 =3 m.=4');
    expect(c.options).toEqual([
      { module: 'a', options: 'b="x y"' },
      { module: 'c', options: 'd="e f"' },
      { module: 'm', options: '=4' }, // as modprobe -c shows it
    ]);
  });
});

describe('configuration files', () => {
  let dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
    dirs = [];
  });
  const tmp = (): string => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-cfg-'));
    dirs.push(d);
    return d;
  };

  it('orders files by name across directories; the first directory hides the same name', async () => {
    const a = tmp();
    const b = tmp();
    const moduleDir = tmp();
    fs.writeFileSync(path.join(a, 'z.conf'), '');
    fs.writeFileSync(path.join(a, 'same.conf'), '');
    fs.writeFileSync(path.join(b, 'same.conf'), '');
    fs.writeFileSync(path.join(b, 'a.conf'), '');
    fs.writeFileSync(path.join(b, 'notes.txt'), '');
    fs.writeFileSync(path.join(b, '.hidden.conf'), '');
    fs.mkdirSync(path.join(b, 'dir.conf'));
    const file = path.join(tmp(), 'rules');
    fs.writeFileSync(file, '');
    const listed = await listConfigFiles([a, b, '/no/such/dir', file], moduleDir);
    expect(listed.map((f) => f.file)).toEqual([
      `${b}/a.conf`,
      `${moduleDir}/modules.softdep`,
      file,
      `${a}/same.conf`,
      `${a}/z.conf`,
    ]);
  });

  it('reads modules.softdep of the tree as configuration, and the given command line', async () => {
    const moduleDir = tmp();
    const conf = tmp();
    fs.writeFileSync(path.join(moduleDir, 'modules.softdep'), 'softdep ext4 pre: crc32c\n');
    fs.writeFileSync(path.join(conf, 'a.conf'), 'softdep ext4 pre: first\n');
    const config = await loadModprobeConfig({
      configDirs: [conf],
      moduleDir,
      kernelCommandLine: 'x.y=1',
    });
    expect(config.softdeps.map((s) => s.pre[0])).toEqual(['first', 'crc32c']);
    expect(config.options).toEqual([{ module: 'x', options: 'y=1' }]);
  });
});
