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
import { rejection } from './fixtures';
import { kernelTree, toolEnv } from '../helpers/trees';

const O_NONBLOCK = 0o4000;
const O_TRUNC = 0o1000;
const ENOSYS = 38;

let binding: NativeBinding;
let modulePath: string;

beforeAll(() => {
  binding = loadBinding();
  const tree = kernelTree('6.1');
  const dep = fs.readFileSync(path.join(tree.moduleDir, 'modules.dep'), 'utf8');
  const line = dep.split('\n').find((l) => l.startsWith('kernel/lib/crc') && l.includes('.ko:'));
  if (!line) throw new Error('no kernel/lib/crc* module in the 6.1 tree');
  modulePath = path.join(tree.moduleDir, line.slice(0, line.indexOf(':')));
});

describe('module syscalls on a kernel without module support', () => {
  it('finitModule rejects with ENOSYS from finit_module', async () => {
    const error = await rejection(binding.finitModule(modulePath, '', 0));
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe('ENOSYS');
    expect(error.errno).toBe(ENOSYS);
    expect(error.syscall).toBe('finit_module');
    expect(error.path).toBe(modulePath);
    expect(error.message).toBe(`ENOSYS: Function not implemented, finit_module '${modulePath}'`);
  });

  it('hands the file, parameters and flags to the kernel unchanged (seen by strace)', () => {
    // The calls run in a child under strace, which shows the raw syscall arguments even
    // though this kernel refuses them all.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-strace-'));
    const trace = path.join(dir, 'trace');
    const script = [
      "const fs = require('fs');",
      'const [addon, file] = process.argv.slice(1);',
      'const b = require(addon);',
      "const settle = (p) => p.then(() => 'ok', (e) => e.code);",
      '(async () => {',
      '  const codes = [];',
      `  codes.push(await settle(b.finitModule(file, 'debug=1 x="a b"', 3)));`,
      "  codes.push(await settle(b.initModule(fs.readFileSync(file), 'a=1 b=2', file)));",
      `  codes.push(await settle(b.deleteModule('crc_demo', ${O_NONBLOCK | O_TRUNC})));`,
      "  process.stdout.write(codes.join(' '));",
      '})();',
    ].join('\n');
    // strace itself must not get the sanitizer runtime scripts/test-asan.sh preloads into
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
      expect(out).toBe('ENOSYS ENOSYS ENOSYS');
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
        `init_module(ADDR, ${fs.statSync(modulePath).size}, "a=1 b=2") ${enosys}`,
        `delete_module("crc_demo", 0xa00) ${enosys}`,
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('finitModule of a missing file fails in open with ENOENT', async () => {
    const missing = path.join(os.tmpdir(), `kmodload-missing-${process.pid}.ko`);
    const error = await rejection(binding.finitModule(missing, '', 0));
    expect(error.code).toBe('ENOENT');
    expect(error.errno).toBe(2);
    expect(error.syscall).toBe('open');
    expect(error.path).toBe(missing);
    expect(error.message).toBe(`ENOENT: No such file or directory, open '${missing}'`);
  });

  it('initModule rejects with ENOSYS from init_module, named by its label', async () => {
    const image = fs.readFileSync(modulePath);
    const error = await rejection(binding.initModule(image, 'a=1', modulePath));
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe('ENOSYS');
    expect(error.errno).toBe(ENOSYS);
    expect(error.syscall).toBe('init_module');
    expect(error.path).toBe(modulePath);
    expect(error.message).toBe(`ENOSYS: Function not implemented, init_module '${modulePath}'`);
  });

  it('initModule without a label says so without a name', async () => {
    const error = await rejection(binding.initModule(fs.readFileSync(modulePath), ''));
    expect(error.code).toBe('ENOSYS');
    expect(error.path).toBeUndefined();
    expect(error.message).toBe('ENOSYS: Function not implemented, init_module');
  });

  it('initModule accepts a plain Uint8Array and survives the caller reusing it', async () => {
    const image = new Uint8Array(fs.readFileSync(modulePath));
    const pending = binding.initModule(image, '');
    image.fill(0);
    const error = await rejection(pending);
    expect(error.code).toBe('ENOSYS');
  });

  it('deleteModule rejects with ENOSYS and names the module', async () => {
    const error = await rejection(binding.deleteModule('nonexistent', O_NONBLOCK));
    expect(error.code).toBe('ENOSYS');
    expect(error.errno).toBe(ENOSYS);
    expect(error.syscall).toBe('delete_module');
    expect(error.path).toBe('nonexistent');
    expect(error.message).toBe("ENOSYS: Function not implemented, delete_module 'nonexistent'");
  });

  it('many concurrent calls all settle', async () => {
    const calls = Array.from({ length: 32 }, (_, i) =>
      rejection(
        i % 2 === 0
          ? binding.finitModule(modulePath, '', 0)
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
      ['finitModule', [42, '', 0]],
      ['finitModule', ['/x', '', -1]],
      ['finitModule', ['/x', '', 1.5]],
      ['finitModule', ['/x\0y', '', 0]],
      ['finitModule', ['/x', undefined, 0]],
      ['finitModule', ['/x', 7, 0]],
      ['finitModule', ['/x', 'a=1\0b=2', 0]],
      ['finitModule', ['/x', '', 2 ** 32]],
      ['finitModule', ['/x', '', Number.NaN]],
      ['finitModule', ['/x', '', '3']],
      ['initModule', ['not bytes', '']],
      ['initModule', [new Uint16Array(4), '']],
      ['initModule', [new Uint8Array(4), 'a=1\0b=2']],
      ['initModule', [new Uint8Array(4), '', 42]],
      ['initModule', [new Uint8Array(4), '', 'mod\0name']],
      ['deleteModule', ['na\0me', 0]],
      ['deleteModule', ['name', 'flags']],
      ['openIndex', [undefined]],
      ['decompress', [new Uint8Array(1), 'lz4']],
    ] as const) {
      const error = await rejection(b[fn]!(...args));
      expect(error, `${fn}(${JSON.stringify(args)})`).toBeInstanceOf(TypeError);
      expect(error.code).toBe('ERR_INVALID_ARG_TYPE');
    }
  });

  it('says which argument is wrong', async () => {
    const nul = await rejection(binding.finitModule('/x', 'a=1\0b=2', 0));
    expect(nul.message).toBe('params must not contain NUL bytes');
    const label = await rejection(
      binding.initModule(new Uint8Array(4), '', 7 as unknown as string),
    );
    expect(label.message).toBe('label must be a string');
    const flags = await rejection(binding.finitModule('/x', '', 2 ** 32));
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
