// The module syscalls reach this machine's kernel, which has no module support: every call
// must come back as a proper ENOSYS error, not a crash or a silent success, and must have
// handed the kernel exactly the arguments it was given.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { addonPath, loadBinding } from '../../src/native/addon';
import type { NativeBinding } from '../../src/native/binding';
import { rejection, requireNoModuleSupport } from './fixtures';
import { kernelTree, toolEnv } from '../helpers/trees';

const O_NONBLOCK = 0o4000;
const O_TRUNC = 0o1000;
const ENOSYS = 38;

let binding: NativeBinding;
let modulePath: string;

beforeAll(() => {
  binding = loadBinding();
  requireNoModuleSupport(binding);
  const tree = kernelTree('6.1');
  const dep = fs.readFileSync(path.join(tree.moduleDir, 'modules.dep'), 'utf8');
  const line = dep.split('\n').find((l) => l.startsWith('kernel/lib/crc') && l.includes('.ko:'));
  if (!line) throw new Error('no kernel/lib/crc* module in the 6.1 tree');
  modulePath = path.join(tree.moduleDir, line.slice(0, line.indexOf(':')));
});

describe('module syscalls on a kernel without module support', () => {
  it('insertModule tries finit_module, then init_module, and rejects with ENOSYS', async () => {
    const error = await rejection(binding.insertModule(modulePath, '', 0, []));
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe('ENOSYS');
    expect(error.errno).toBe(ENOSYS);
    expect(error.syscall).toBe('init_module');
    expect(error.path).toBe(modulePath);
    expect((error as unknown as { attempts: string[] }).attempts).toEqual([
      'finit_module',
      'init_module',
    ]);
    expect(error.message).toBe(`ENOSYS: function not implemented, init_module '${modulePath}'`);
  });

  it('hands the file, parameters and flags to the kernel unchanged (seen by strace)', () => {
    // The calls run in a child under strace, which shows the raw syscall arguments even
    // though this kernel refuses them all.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-strace-'));
    const trace = path.join(dir, 'trace');
    const script = [
      'const [addon, file] = process.argv.slice(1);',
      'const b = require(addon);',
      "const settle = (p) => p.then(() => 'ok', (e) => `${e.syscall}:${e.errno}`);",
      '(async () => {',
      '  const codes = [];',
      `  codes.push(await settle(b.insertModule(file, 'debug=1 x="a b"', 3, [])));`,
      `  codes.push(await settle(b.deleteModule('crc_demo', ${O_NONBLOCK | O_TRUNC})));`,
      "  process.stdout.write(codes.join(' '));",
      '})();',
    ].join('\n');
    // strace itself must not get the sanitizer runtime scripts/test/test-asan.sh preloads into
    // node; the traced node must.
    const preload = process.env.LD_PRELOAD ? ['-E', `LD_PRELOAD=${process.env.LD_PRELOAD}`] : [];
    try {
      const out = execFileSync(
        'strace',
        [
          ...['-f', '-qq', '-X', 'raw', '-y', '-s', '4096', '-e', 'signal=none'],
          ...['-e', 'trace=finit_module,init_module,delete_module', '-o', trace, ...preload],
          ...[process.execPath, '-e', script, addonPath(), modulePath],
        ],
        { encoding: 'utf8', env: toolEnv() },
      );
      expect(out).toBe(`init_module:${ENOSYS} delete_module:${ENOSYS}`);
      const calls = fs
        .readFileSync(trace, 'utf8')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) =>
          line
            .replace(/^\d+ +/, '')
            .replace(/^finit_module\(\d+</, 'finit_module(FD<')
            .replace(/^init_module\(0x[0-9a-f]+,/, 'init_module(ADDR,')
            .replace(/\) +=/, ') ='),
        );
      const enosys = '= -1 ENOSYS (Function not implemented)';
      expect(calls).toEqual([
        `finit_module(FD<${modulePath}>, "debug=1 x=\\"a b\\"", 0x3) ${enosys}`,
        `init_module(ADDR, ${fs.statSync(modulePath).size}, "debug=1 x=\\"a b\\"") ${enosys}`,
        `delete_module("crc_demo", 0xa00) ${enosys}`,
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('insertModule of a missing file fails in open with ENOENT', async () => {
    const missing = path.join(os.tmpdir(), `kmodload-missing-${process.pid}.ko`);
    const error = await rejection(binding.insertModule(missing, '', 0, []));
    expect(error.code).toBe('ENOENT');
    expect(error.errno).toBe(2);
    expect(error.syscall).toBe('open');
    expect(error.path).toBe(missing);
    expect(error.message).toBe(`ENOENT: no such file or directory, open '${missing}'`);
  });

  it('deleteModule rejects with ENOSYS and names the module', async () => {
    const error = await rejection(binding.deleteModule('nonexistent', O_NONBLOCK));
    expect(error.code).toBe('ENOSYS');
    expect(error.errno).toBe(ENOSYS);
    expect(error.syscall).toBe('delete_module');
    expect(error.path).toBe('nonexistent');
    expect(error.message).toBe("ENOSYS: function not implemented, delete_module 'nonexistent'");
  });

  it('many concurrent calls all settle', async () => {
    const calls = Array.from({ length: 32 }, (_, i) =>
      rejection(
        i % 2 === 0
          ? binding.insertModule(modulePath, '', 0, [])
          : binding.deleteModule(`m${i}`, O_NONBLOCK),
      ),
    );
    const errors = await Promise.all(calls);
    expect(errors.map((e) => e.code)).toEqual(Array(32).fill('ENOSYS'));
  });
});

describe('argument checks', () => {
  it('rejects wrong types with TypeError instead of calling the kernel', async () => {
    const b = binding as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    for (const [fn, args] of [
      ['insertModule', [42, '', 0, []]],
      ['insertModule', ['/x', '', -1, []]],
      ['insertModule', ['/x', '', 1.5, []]],
      ['insertModule', ['/x\0y', '', 0, []]],
      ['insertModule', ['/x', undefined, 0, []]],
      ['insertModule', ['/x', 7, 0, []]],
      ['insertModule', ['/x', 'a=1\0b=2', 0, []]],
      ['insertModule', ['/x', '', 2 ** 32, []]],
      ['insertModule', ['/x', '', Number.NaN, []]],
      ['insertModule', ['/x', '', '3', []]],
      ['insertModule', ['/x', '', 0, 'xz']],
      ['insertModule', ['/x', '', 0, [4]]],
      ['insertModule', ['/x', '', 0]],
      ['readModuleImage', [7]],
      ['deleteModule', ['na\0me', 0]],
      ['deleteModule', ['name', 'flags']],
      ['openIndex', [undefined]],
    ] as const) {
      const error = await rejection(b[fn]!(...args));
      expect(error, `${fn}(${JSON.stringify(args)})`).toBeInstanceOf(TypeError);
      expect(error.code).toBe('ERR_INVALID_ARG_TYPE');
    }
  });

  it('says which argument is wrong', async () => {
    const nul = await rejection(binding.insertModule('/x', 'a=1\0b=2', 0, []));
    expect(nul.message).toBe('params must not contain NUL bytes');
    const formats = await rejection(binding.insertModule('/x', '', 0, [1 as unknown as string]));
    expect(formats.message).toBe('kernelFormats must hold strings');
    const flags = await rejection(binding.insertModule('/x', '', 2 ** 32, []));
    expect(flags.message).toBe('flags must be an unsigned 32-bit integer');
  });
});

describe('fnmatch', () => {
  it('is libc fnmatch without flags', () => {
    expect(binding.fnmatch('pci:v*d*', 'pci:v00008086d00001533')).toBe(true);
    expect(binding.fnmatch('usb:v13FDp3940d0[0-2]*', 'usb:v13FDp3940d01xx')).toBe(true);
    expect(binding.fnmatch('usb:v13FDp3940d0[0-2]*', 'usb:v13FDp3940d03xx')).toBe(false);
    expect(binding.fnmatch('a?c', 'abc')).toBe(true);
    expect(binding.fnmatch('a?c', 'ac')).toBe(false);
    // Without FNM_PATHNAME / FNM_PERIOD, '*' crosses '/' and matches a leading '.'.
    expect(binding.fnmatch('*', 'a/b')).toBe(true);
    expect(binding.fnmatch('*', '.hidden')).toBe(true);
    // Without FNM_NOESCAPE, backslash escapes.
    expect(binding.fnmatch('a\\*', 'a*')).toBe(true);
    expect(binding.fnmatch('a\\*', 'ab')).toBe(false);
    expect(binding.fnmatch('a[b', 'a[b')).toBe(true);
    expect(binding.fnmatch('ABC', 'abc')).toBe(false);
  });
});
