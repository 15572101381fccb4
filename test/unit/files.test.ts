// Bounded reads of host files: regular files only, read to their end (not to st_size), capped;
// the asynchronous reader and the synchronous one alike.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readRegularFile, readRegularFileSync, type FileReadError } from '../../src/files';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-files-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

const readers: Array<[string, (file: string, limit: number) => Promise<Buffer>]> = [
  ['readRegularFile', readRegularFile],
  ['readRegularFileSync', async (file, limit) => readRegularFileSync(file, limit)],
];

describe.each(readers)('%s', (_, read) => {
  async function failure(file: string, limit = 1024): Promise<FileReadError> {
    try {
      await read(file, limit);
    } catch (error) {
      return error as FileReadError;
    }
    throw new Error(`${file} was read`);
  }

  it('reads /proc files whole, though their size says 0', async () => {
    // /proc/version has a fixed content and says 0 (a real kernel says 0 for /proc/cmdline).
    expect(fs.statSync('/proc/version').size).toBe(0);
    const version = await read('/proc/version', 64 * 1024);
    expect(version.toString('utf8')).toBe(fs.readFileSync('/proc/version', 'utf8'));
    expect(version.length).toBeGreaterThan(1);
    // Past the first buffer's size: this process's memory map, some pages long.
    const maps = (await read('/proc/self/maps', 1024 * 1024)).toString('utf8');
    expect(maps.length).toBeGreaterThan(8192);
    expect(maps).toMatch(/\[stack\]\n/);
  });

  it('takes a file at the cap and refuses one byte more; reads across chunks', async () => {
    const file = path.join(scratch, 'cap');
    const content = Buffer.alloc(200 * 1024, 'x');
    fs.writeFileSync(file, content);
    expect((await read(file, content.length)).equals(content)).toBe(true);
    const over = await failure(file, content.length - 1);
    expect([over.code, over.message]).toEqual(['EFBIG', `larger than ${content.length - 1} bytes`]);
  });

  it('refuses what is not a regular file, without blocking', async () => {
    const fifo = path.join(scratch, 'fifo');
    if (!fs.existsSync(fifo)) execFileSync('mkfifo', [fifo]);
    expect((await failure(fifo)).code).toBe('EFTYPE');
    const zero = path.join(scratch, 'zero');
    if (!fs.existsSync(zero)) fs.symlinkSync('/dev/zero', zero);
    expect((await failure(zero)).code).toBe('EFTYPE');
    expect((await failure(scratch)).code).toBe('EISDIR');
    expect((await failure(path.join(scratch, 'missing'))).message).toBe(
      'ENOENT: no such file or directory',
    );
  });
});
