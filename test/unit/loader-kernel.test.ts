import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT, KmodloadError } from '../../src/errors';
import { InsertError } from '../../src/kernel/kernel';
import { LinuxKernel } from '../../src/kernel/linux';
import type { NativeBinding } from '../../src/native/binding';
import { systemError } from '../helpers/fake-kernel';
import { kernelTree } from '../helpers/trees';

let sysfs: string;

beforeAll(() => {
  sysfs = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-sysfs-'));
  const module = (name: string, files: Record<string, string>, holders: string[] = []) => {
    const dir = path.join(sysfs, 'module', name);
    fs.mkdirSync(path.join(dir, 'holders'), { recursive: true });
    for (const [file, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, file), text);
    for (const holder of holders) fs.mkdirSync(path.join(dir, 'holders', holder));
  };
  module('nf_conntrack', { initstate: 'live\n', refcnt: '3\n' }, ['ip_vs', 'nf_nat']);
  module('ip_vs', { initstate: 'going\n', refcnt: '0\n' });
  module('loading', {});
  fs.writeFileSync(path.join(sysfs, 'module', 'compression'), 'xz\n');
});

afterAll(() => fs.rmSync(sysfs, { recursive: true, force: true }));

describe('LinuxKernel /sys reads', () => {
  it('reads initstate; a directory without it is coming; nothing is undefined', async () => {
    const kernel = new LinuxKernel({ sysfsRoot: sysfs });
    expect(await kernel.initState('nf_conntrack')).toBe('live');
    expect(await kernel.initState('ip_vs')).toBe('going');
    expect(await kernel.initState('loading')).toBe('coming');
    expect(await kernel.initState('absent')).toBeUndefined();
  });

  it('reads refcnt and holders', async () => {
    const kernel = new LinuxKernel({ sysfsRoot: sysfs });
    expect(await kernel.refcount('nf_conntrack')).toBe(3);
    expect(await kernel.refcount('absent')).toBeUndefined();
    expect(await kernel.holders('nf_conntrack')).toEqual(['ip_vs', 'nf_nat']);
    expect(await kernel.holders('absent')).toEqual([]);
  });

  it('reads /sys/module/compression, and [] without it', async () => {
    expect(await new LinuxKernel({ sysfsRoot: sysfs }).compression()).toEqual(['xz']);
    expect(await new LinuxKernel({ sysfsRoot: path.join(sysfs, 'none') }).compression()).toEqual(
      [],
    );
  });

  it('refuses names that would leave /sys/module', async () => {
    const kernel = new LinuxKernel({ sysfsRoot: sysfs });
    await expect(kernel.initState('../module')).rejects.toThrow(/invalid module name/);
  });

  it('never loads the addon for /sys reads', async () => {
    const kernel = new LinuxKernel({
      sysfsRoot: sysfs,
      binding: () => {
        throw new Error('addon loaded');
      },
    });
    await kernel.initState('nf_conntrack');
    await kernel.refcount('nf_conntrack');
    await kernel.holders('nf_conntrack');
    await kernel.compression();
  });
});

describe('LinuxKernel insert errors', () => {
  /** A LinuxKernel whose addon rejects every insert with `error`. */
  const failingWith = (error: unknown) =>
    new LinuxKernel({
      sysfsRoot: sysfs,
      binding: () => ({ insertModule: () => Promise.reject(error) }) as unknown as NativeBinding,
    });
  const insert = (error: unknown) =>
    failingWith(error)
      .insertModule('/m/x.ko', '', { kernelFormats: [] })
      .then(
        () => undefined,
        (rejection: unknown) => rejection,
      );

  it("says what the addon's error means: the kernel's answer, a missing file, an unusable one", async () => {
    for (const [code, syscall, failure] of [
      ['ENOEXEC', 'finit_module', 'kernel'],
      ['EKEYREJECTED', 'init_module', 'kernel'],
      ['ENOENT', 'open', 'missing-file'],
      ['EISDIR', 'fstat', 'unusable-file'],
      ['EFBIG', 'read', 'unusable-file'],
      ['EBADMSG', 'decompress', 'unusable-file'],
    ] as const) {
      const error = systemError(code, syscall, '/m/x.ko');
      const rejection = await insert(error);
      expect(rejection).toBeInstanceOf(InsertError);
      expect(rejection).toMatchObject({ failure, cause: error, message: `${code}: fake kernel` });
    }
  });

  it('passes on what is not about the module: the addon missing, a bug', async () => {
    const missing = new KmodloadError('native addon not built', EXIT.environment);
    expect(await insert(missing)).toBe(missing);
    const bug = new TypeError('x is not a function');
    expect(await insert(bug)).toBe(bug);
    // An errno from a step the addon never names on the module file.
    const other = systemError('EIO', 'mmap', '/m/x.ko');
    expect(await insert(other)).toBe(other);
  });
});

describe('LinuxKernel syscalls on this machine', () => {
  it('an insert reaches the kernel, which has no module support: ENOSYS', async () => {
    const tree = kernelTree('6.1');
    const file = path.join(tree.moduleDir, 'kernel/drivers/net/dummy.ko');
    const kernel = new LinuxKernel();
    // finit_module says ENOSYS, so the addon falls back to init_module, which says it too.
    await expect(kernel.insertModule(file, '', { kernelFormats: [] })).rejects.toMatchObject({
      failure: 'kernel',
      cause: {
        code: 'ENOSYS',
        syscall: 'init_module',
        attempts: ['finit_module', 'init_module'],
      },
    });
    await expect(kernel.deleteModule('dummy', 0)).rejects.toMatchObject({ code: 'ENOSYS' });
  });
});
