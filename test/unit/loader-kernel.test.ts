import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LinuxKernel } from '../../src/kernel/linux';
import { compressionOf, detectCompression } from '../../src/loader/compression';
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
  it('finit_module reaches the kernel, which has no module support: ENOSYS', async () => {
    const tree = kernelTree('6.1');
    const file = path.join(tree.moduleDir, 'kernel/drivers/net/dummy.ko');
    const kernel = new LinuxKernel();
    await expect(kernel.finitModule(file, '', 0)).rejects.toMatchObject({
      code: 'ENOSYS',
      syscall: 'finit_module',
    });
    await expect(kernel.initModule(fs.readFileSync(file), '')).rejects.toMatchObject({
      code: 'ENOSYS',
    });
    await expect(kernel.deleteModule('dummy', 0)).rejects.toMatchObject({ code: 'ENOSYS' });
  });
});

describe('compression detection', () => {
  it('recognises gzip, xz and zstd by their magic bytes only', () => {
    expect(compressionOf(Uint8Array.from([0x1f, 0x8b, 8, 0]))).toBe('gzip');
    expect(compressionOf(Uint8Array.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))).toBe('xz');
    expect(compressionOf(Uint8Array.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x01]))).toBeUndefined();
    expect(compressionOf(Uint8Array.from([0x28, 0xb5, 0x2f, 0xfd, 0]))).toBe('zstd');
    expect(compressionOf(Uint8Array.from([0x7f, 0x45, 0x4c, 0x46]))).toBeUndefined();
    expect(compressionOf(Uint8Array.from([0x1f]))).toBeUndefined();
  });

  it('reads a real .ko.xz of the 6.12 tree as xz and a 6.1 .ko as plain', async () => {
    const old = kernelTree('6.1');
    const recent = kernelTree('6.12');
    expect(
      await detectCompression(path.join(old.moduleDir, 'kernel/drivers/net/dummy.ko')),
    ).toBeUndefined();
    expect(
      await detectCompression(path.join(recent.moduleDir, 'kernel/drivers/net/dummy.ko.xz')),
    ).toEqual({ format: 'xz', kernelDecodable: true });
  });

  it('sends xz with a CRC64 check to user space: the kernel decoder only takes CRC32', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-xzcheck-'));
    try {
      const source = path.join(kernelTree('6.1').moduleDir, 'kernel/drivers/net/dummy.ko');
      const detect = async (check: string) => {
        const out = path.join(dir, `dummy-${check}.ko.xz`);
        fs.writeFileSync(out, execFileSync('xz', [`--check=${check}`, '-c', source]));
        return detectCompression(out);
      };
      expect(await detect('crc32')).toEqual({ format: 'xz', kernelDecodable: true });
      expect(await detect('none')).toEqual({ format: 'xz', kernelDecodable: true });
      expect(await detect('crc64')).toEqual({ format: 'xz', kernelDecodable: false });
      expect(await detect('sha256')).toEqual({ format: 'xz', kernelDecodable: false });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
