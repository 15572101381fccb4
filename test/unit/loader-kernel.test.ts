import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LinuxKernel } from '../../src/kernel/linux';
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

describe('LinuxKernel syscalls on this machine', () => {
  it('an insert reaches the kernel, which has no module support: ENOSYS', async () => {
    const tree = kernelTree('6.1');
    const file = path.join(tree.moduleDir, 'kernel/drivers/net/dummy.ko');
    const kernel = new LinuxKernel();
    // finit_module says ENOSYS, so the addon falls back to init_module, which says it too.
    await expect(kernel.insertModule(file, '', { kernelFormats: [] })).rejects.toMatchObject({
      code: 'ENOSYS',
      syscall: 'init_module',
      attempts: ['finit_module', 'init_module'],
    });
    await expect(kernel.deleteModule('dummy', 0)).rejects.toMatchObject({ code: 'ENOSYS' });
  });
});
