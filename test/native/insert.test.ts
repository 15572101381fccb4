// The one insert path (native/src/module_file.cc, InsertModuleWorker): files sniffed by their
// magic, decompressed in user space from the same descriptor, against real compressed copies of
// a fixture module made with the gzip, xz and zstd tools. This machine's kernel answers ENOSYS
// to both module syscalls, so every insert ends in init_module's ENOSYS; `attempts` shows the
// way it took there.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadBinding } from '../../src/native/addon';
import type { CompressionFormat, NativeBinding, SystemError } from '../../src/native/binding';
import { rejection, requireNoModuleSupport } from './fixtures';
import { kernelTree, toolEnv } from '../helpers/trees';

let binding: NativeBinding;
let tmp: string;
let original: Buffer;
let modulePath: string;

/** Compresses file with a CLI (writing to stdout) and returns the bytes. */
function compress(tool: string, args: string[], file: string): Buffer {
  return execFileSync(tool, [...args, '-c', file], { maxBuffer: 1 << 28, env: toolEnv() });
}

let written = 0;
/** Writes bytes to a new module file and returns its path. */
function moduleFile(bytes: Uint8Array, name = 'dummy.ko'): string {
  const dir = path.join(tmp, String(written++));
  fs.mkdirSync(dir);
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  return file;
}

/** What readModuleImage gives for these file bytes. */
async function image(bytes: Uint8Array): Promise<Buffer> {
  return (await binding.readModuleImage(moduleFile(bytes))).image;
}

/** The steps an insert took, from the ENOSYS (or other) error it ends in here. */
async function attempts(
  file: string,
  kernelFormats: string[],
): Promise<{ attempts: string[]; code: string; syscall: string }> {
  const error = await rejection(binding.insertModule(file, '', 0, kernelFormats));
  const { code, syscall } = error;
  return { attempts: (error as unknown as { attempts: string[] }).attempts, code, syscall };
}

const variants: Array<{ label: string; format: CompressionFormat; tool: string; args: string[] }> =
  [
    { label: 'gzip', format: 'gzip', tool: 'gzip', args: ['-9'] },
    { label: 'xz --check=crc32 (as the kernel needs)', format: 'xz', tool: 'xz', args: ['--check=crc32'] },
    { label: 'xz with the default crc64', format: 'xz', tool: 'xz', args: [] },
    { label: 'xz --check=sha256', format: 'xz', tool: 'xz', args: ['--check=sha256'] },
    { label: 'zstd', format: 'zstd', tool: 'zstd', args: ['-q', '-19'] },
  ];

beforeAll(() => {
  binding = loadBinding();
  requireNoModuleSupport(binding);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-decompress-'));
  const dir = kernelTree('6.1').moduleDir;
  modulePath = path.join(dir, 'kernel', 'fs', 'fat', 'fat.ko');
  original = fs.readFileSync(modulePath);
});

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('the image init_module gets', () => {
  for (const { label, format, tool, args } of variants) {
    it(`${label}: gives back the original module bytes`, async () => {
      const packed = compress(tool, args, modulePath);
      expect(packed.length).toBeLessThan(original.length);
      const out = await binding.readModuleImage(moduleFile(packed));
      expect(out.format).toBe(format);
      expect(Buffer.isBuffer(out.image)).toBe(true);
      expect(out.image.length).toBe(original.length);
      expect(out.image.equals(original)).toBe(true);
    });

    it(`${label}: truncated input is an error, and nothing reaches the kernel`, async () => {
      const packed = compress(tool, args, modulePath);
      // Cut at least past the magic (shorter is a plain, if odd, file).
      for (const length of [8, 10, packed.length >> 1, packed.length - 1]) {
        const file = moduleFile(packed.subarray(0, length));
        const error = await rejection(binding.insertModule(file, '', 0, []));
        expect(error.code, `${label} cut to ${length}: ${error.message}`).toBe('EBADMSG');
        expect(error.errno).toBe(74);
        expect(error.syscall).toBe('decompress');
        expect(error.path).toBe(file);
        expect(error.message).toMatch(new RegExp(`^EBADMSG: .*, decompress '${file}'$`));
        expect((error as unknown as { attempts: string[] }).attempts).toEqual([
          `decompress(${format})`,
        ]);
      }
    });
  }

  it('a plain module is read as it is', async () => {
    const out = await binding.readModuleImage(modulePath);
    expect(out.format).toBeNull();
    expect(out.image.equals(original)).toBe(true);
  });

  it('the Debian 6.12 tree ships .ko.xz modules it can read', async () => {
    const dir = kernelTree('6.12').moduleDir;
    const dep = fs.readFileSync(path.join(dir, 'modules.dep'), 'utf8');
    const rel = dep.split('\n').find((l) => l.includes('/xfs.ko.xz:'))!;
    const out = (await binding.readModuleImage(path.join(dir, rel.slice(0, rel.indexOf(':')))))
      .image;
    // An ELF relocatable object.
    expect([...out.subarray(0, 4)]).toEqual([0x7f, 0x45, 0x4c, 0x46]);
    expect(out.readUInt16LE(16)).toBe(1);
  });

  it('concatenated members, streams and frames all come out', async () => {
    const small = fs.readFileSync(modulePath).subarray(0, 50_000);
    const file = path.join(tmp, 'part');
    fs.writeFileSync(file, small);
    for (const [format, tool, args] of [
      ['gzip', 'gzip', []],
      ['xz', 'xz', ['--check=crc32']],
      ['zstd', 'zstd', ['-q']],
    ] as const) {
      const one = compress(tool, [...args], file);
      const out = await image(Buffer.concat([one, one, one]));
      expect(out.equals(Buffer.concat([small, small, small])), format).toBe(true);
    }
  });

  it('a magic followed by garbage, or a member followed by junk, is an error', async () => {
    const garbage = Buffer.from('this is not compressed data at all'.repeat(10));
    for (const { magic } of [
      { magic: [0x1f, 0x8b] },
      { magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
      { magic: [0x28, 0xb5, 0x2f, 0xfd] },
    ]) {
      const bytes = Buffer.concat([Buffer.from(magic), garbage]);
      const error = await rejection(binding.readModuleImage(moduleFile(bytes)));
      expect(error.code).toBe('EBADMSG');
    }
    // A valid member followed by junk is not silently accepted.
    const gz = compress('gzip', [], modulePath);
    const junk = Buffer.concat([gz, Buffer.from('junk')]);
    const error = await rejection(binding.readModuleImage(moduleFile(junk)));
    expect(error.message).toMatch(/trailing/);
  });

  it('corrupted (bit-flipped) data is an error, not wrong bytes', async () => {
    for (const [format, tool, args] of [
      ['gzip', 'gzip', []],
      ['xz', 'xz', ['--check=crc32']],
      ['zstd', 'zstd', ['-q', '--check']],
    ] as const) {
      const packed = compress(tool, [...args], modulePath);
      packed[packed.length >> 1]! ^= 0x10;
      const error = await rejection(binding.readModuleImage(moduleFile(packed)));
      expect(error.code, format).toBe('EBADMSG');
    }
  });

  it('an empty original decompresses to an empty Buffer', async () => {
    const empty = path.join(tmp, 'empty');
    fs.writeFileSync(empty, '');
    for (const [format, tool, args] of [
      ['gzip', 'gzip', []],
      ['xz', 'xz', []],
      ['zstd', 'zstd', ['-q']],
    ] as const) {
      const out = await image(compress(tool, [...args], empty));
      expect(out.length, format).toBe(0);
    }
  });

  it('stops a decompression bomb at 1 GiB', async () => {
    // 17 concatenated zstd frames of 64 MiB of zeros: 1088 MiB from a few KiB.
    const frame = execFileSync(
      'bash',
      ['-c', 'head -c $((64*1024*1024)) /dev/zero | zstd -q -1 -c'],
      { env: toolEnv() },
    );
    const bomb = Buffer.concat(Array(17).fill(frame));
    expect(bomb.length).toBeLessThan(1 << 20);
    const file = moduleFile(bomb);
    const error = await rejection(binding.readModuleImage(file));
    expect(error.code).toBe('EFBIG');
    expect(error.message).toBe(`EFBIG: zstd data expands beyond 1024 MiB, decompress '${file}'`);
  });

  it('a missing codec library is ENOTSUP naming the library', () => {
    // A private mount namespace hides libzstd from one child node process only.
    const libzstd = fs.realpathSync(
      execFileSync('bash', ['-c', 'ldconfig -p | awk \'/libzstd\\.so\\.1 /{print $NF; exit}\''], {
        encoding: 'utf8',
        env: toolEnv(),
      }).trim(),
    );
    const file = moduleFile(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0]));
    const child = [
      `const { loadBinding } = require(${JSON.stringify(path.resolve('dist/native/addon.js'))});`,
      `loadBinding().insertModule(${JSON.stringify(file)}, '', 0, []).then(`,
      "  () => console.log('{}'),",
      '  (e) => console.log(JSON.stringify({ code: e.code, errno: e.errno, syscall: e.syscall, message: e.message })));',
    ].join('\n');
    const result = spawnSync(
      'unshare',
      ['-m', 'sh', '-c', 'mount --bind /dev/null "$1" && exec node -e "$2"', 'sh', libzstd, child],
      { encoding: 'utf8' },
    );
    expect(result.status, result.stderr).toBe(0);
    const error = JSON.parse(result.stdout) as SystemError;
    expect(error.code).toBe('ENOTSUP');
    expect(error.errno).toBe(95);
    expect(error.syscall).toBe('decompress');
    expect(error.message).toMatch(
      /^ENOTSUP: zstd decompression needs libzstd\.so\.1, which cannot be loaded \(.*\), decompress '.*'$/,
    );
  });
});

describe('the way an insert takes', () => {
  const packed = (tool: string, args: string[]) => moduleFile(compress(tool, args, modulePath));

  it('a plain module: finit_module, then init_module when finit_module says ENOSYS', async () => {
    expect(await attempts(modulePath, ['xz'])).toEqual({
      attempts: ['finit_module', 'init_module'],
      code: 'ENOSYS',
      syscall: 'init_module',
    });
  });

  it('a plain module named .ko.xz is plain: the magic decides, not the name', async () => {
    const file = moduleFile(original, 'dummy.ko.xz');
    expect((await attempts(file, ['xz'])).attempts).toEqual(['finit_module', 'init_module']);
  });

  for (const [format, tool, args] of [
    ['gzip', 'gzip', []],
    ['xz', 'xz', ['--check=crc32']],
    ['zstd', 'zstd', ['-q']],
  ] as const) {
    it(`${format}: the kernel's own decompressor when it has one, else user space`, async () => {
      const file = packed(tool, [...args]);
      expect((await attempts(file, [format])).attempts).toEqual([
        'finit_module(compressed)',
        `decompress(${format})`,
        'init_module',
      ]);
      const other = format === 'xz' ? 'zstd' : 'xz';
      expect((await attempts(file, [other])).attempts).toEqual([
        `decompress(${format})`,
        'init_module',
      ]);
    });
  }

  it('xz with a check the kernel cannot verify goes through user space', async () => {
    for (const check of ['crc64', 'sha256']) {
      const file = packed('xz', [`--check=${check}`]);
      expect((await attempts(file, ['xz'])).attempts, check).toEqual([
        'decompress(xz)',
        'init_module',
      ]);
    }
    const none = packed('xz', ['--check=none']);
    expect((await attempts(none, ['xz'])).attempts[0]).toBe('finit_module(compressed)');
  });

  it('refuses what is not a regular file, without blocking on it', async () => {
    const fifo = path.join(tmp, 'fifo.ko');
    execFileSync('mkfifo', [fifo]);
    const zero = path.join(tmp, 'zero.ko');
    fs.symlinkSync('/dev/zero', zero);
    for (const file of [fifo, zero, tmp]) {
      const error = await rejection(binding.insertModule(file, '', 0, []));
      expect(error.code, file).toBe('EINVAL');
      expect(error.syscall).toBe('open');
      expect(error.message).toBe(`EINVAL: not a regular file, open '${file}'`);
      expect((error as unknown as { attempts: string[] }).attempts).toEqual([]);
    }
  });

  it('opens the file once: a file replaced meanwhile never mixes two files', async () => {
    // Two files, plain and gzip, swapped in place under one name while inserts run. Sniffing
    // one file and reading the other would end in EBADMSG or a wrong first step.
    const target = path.join(tmp, 'swapped.ko');
    const plain = moduleFile(original);
    const gzip = packed('gzip', []);
    fs.copyFileSync(plain, target);
    let swapping = true;
    const swapper = (async () => {
      for (let i = 0; swapping; i++) {
        const next = `${target}.${i % 2}`;
        fs.copyFileSync(i % 2 === 0 ? gzip : plain, next);
        fs.renameSync(next, target);
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const seen = new Set<string>();
    for (let round = 0; round < 20; round++) {
      const results = await Promise.all(
        Array.from({ length: 8 }, () => attempts(target, [])),
      );
      for (const result of results) {
        expect(result.code).toBe('ENOSYS');
        seen.add(result.attempts.join(' '));
      }
    }
    swapping = false;
    await swapper;
    for (const way of seen) {
      expect(['finit_module init_module', 'decompress(gzip) init_module']).toContain(way);
    }
  });
});
