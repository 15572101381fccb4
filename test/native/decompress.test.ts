// User-space decompression against real compressed copies of a fixture module made with the
// gzip, xz and zstd command-line tools.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { addonPath, loadBinding } from '../../src/native/addon';
import type { CompressionFormat, NativeBinding, SystemError } from '../../src/native/binding';
import { rejection } from './fixtures';
import { kernelTree, toolEnv } from '../helpers/trees';

let binding: NativeBinding;
let tmp: string;
let original: Buffer;
let modulePath: string;

/** Compresses file with a CLI (writing to stdout) and returns the bytes. */
function compress(tool: string, args: string[], file: string): Buffer {
  return execFileSync(tool, [...args, '-c', file], { maxBuffer: 1 << 28, env: toolEnv() });
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
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-decompress-'));
  const dir = kernelTree('6.1').moduleDir;
  modulePath = path.join(dir, 'kernel', 'fs', 'fat', 'fat.ko');
  original = fs.readFileSync(modulePath);
});

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('decompress', () => {
  for (const { label, format, tool, args } of variants) {
    it(`${label}: gives back the original module bytes`, async () => {
      const packed = compress(tool, args, modulePath);
      expect(packed.length).toBeLessThan(original.length);
      const out = await binding.decompress(packed, format);
      expect(Buffer.isBuffer(out)).toBe(true);
      expect(out.length).toBe(original.length);
      expect(out.equals(original)).toBe(true);
    });

    it(`${label}: truncated input is an error`, async () => {
      const packed = compress(tool, args, modulePath);
      for (const length of [1, 10, packed.length >> 1, packed.length - 1]) {
        const error = await rejection(binding.decompress(packed.subarray(0, length), format));
        expect(error.code, `${label} cut to ${length}: ${error.message}`).toBe('EBADMSG');
        expect(error.errno).toBe(74);
        expect(error.syscall).toBe('decompress');
        expect(error.message).toMatch(/^EBADMSG: .*, decompress$/);
      }
    });
  }

  it('the Debian 6.12 tree ships .ko.xz modules it can read', async () => {
    const dir = kernelTree('6.12').moduleDir;
    const dep = fs.readFileSync(path.join(dir, 'modules.dep'), 'utf8');
    const rel = dep.split('\n').find((l) => l.includes('/xfs.ko.xz:'))!;
    const packed = fs.readFileSync(path.join(dir, rel.slice(0, rel.indexOf(':'))));
    const out = await binding.decompress(packed, 'xz');
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
      const out = await binding.decompress(Buffer.concat([one, one, one]), format);
      expect(out.equals(Buffer.concat([small, small, small])), format).toBe(true);
    }
  });

  it('garbage, empty input and the wrong format are errors', async () => {
    const garbage = Buffer.from('this is not compressed data at all'.repeat(10));
    const gz = compress('gzip', [], modulePath);
    for (const format of ['gzip', 'xz', 'zstd'] as const) {
      expect((await rejection(binding.decompress(garbage, format))).code).toBe('EBADMSG');
      expect((await rejection(binding.decompress(new Uint8Array(0), format))).code).toBe('EBADMSG');
    }
    expect((await rejection(binding.decompress(gz, 'xz'))).code).toBe('EBADMSG');
    expect((await rejection(binding.decompress(gz, 'zstd'))).code).toBe('EBADMSG');
    // A valid member followed by junk is not silently accepted.
    const junk = Buffer.concat([gz, Buffer.from('junk')]);
    expect((await rejection(binding.decompress(junk, 'gzip'))).message).toMatch(/trailing/);
  });

  it('corrupted (bit-flipped) data is an error, not wrong bytes', async () => {
    for (const [format, tool, args] of [
      ['gzip', 'gzip', []],
      ['xz', 'xz', ['--check=crc32']],
      ['zstd', 'zstd', ['-q', '--check']],
    ] as const) {
      const packed = compress(tool, [...args], modulePath);
      packed[packed.length >> 1]! ^= 0x10;
      const error = await rejection(binding.decompress(packed, format));
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
      const out = await binding.decompress(compress(tool, [...args], empty), format);
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
    const error = await rejection(binding.decompress(bomb, 'zstd'));
    expect(error.code).toBe('EFBIG');
    expect(error.message).toBe('EFBIG: zstd data expands beyond 1024 MiB, decompress');
  });

  it('a missing codec library is ENOTSUP naming the library', () => {
    // A private mount namespace hides libzstd from one child node process only.
    const libzstd = fs.realpathSync(
      execFileSync('bash', ['-c', 'ldconfig -p | awk \'/libzstd\\.so\\.1 /{print $NF; exit}\''], {
        encoding: 'utf8',
        env: toolEnv(),
      }).trim(),
    );
    const child = [
      `const b = require(${JSON.stringify(addonPath())});`,
      "b.decompress(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0]), 'zstd').then(",
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
      /^ENOTSUP: zstd decompression needs libzstd\.so\.1, which cannot be loaded \(.*\), decompress$/,
    );
  });
});
