// Bounded reads of host files: regular files only, read to their end (not to st_size), capped.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readRegularFile, type FileReadError } from '../../src/files';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-files-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

async function failure(file: string, limit = 1024): Promise<FileReadError> {
  try {
    await readRegularFile(file, limit);
  } catch (error) {
    return error as FileReadError;
  }
  throw new Error(`${file} was read`);
}

describe('readRegularFile', () => {
  it('reads /proc files whole, though their size says 0', async () => {
    // /proc/version has a fixed content and says 0 (a real kernel says 0 for /proc/cmdline).
    expect(fs.statSync('/proc/version').size).toBe(0);
    const read = await readRegularFile('/proc/version', 64 * 1024);
    expect(read.toString('utf8')).toBe(fs.readFileSync('/proc/version', 'utf8'));
    expect(read.length).toBeGreaterThan(1);
  });

  it('takes a file at the cap and refuses one byte more; reads across chunks', async () => {
    const file = path.join(scratch, 'cap');
    const content = Buffer.alloc(200 * 1024, 'x');
    fs.writeFileSync(file, content);
    expect((await readRegularFile(file, content.length)).equals(content)).toBe(true);
    const over = await failure(file, content.length - 1);
    expect([over.code, over.message]).toEqual(['EFBIG', `larger than ${content.length - 1} bytes`]);
  });

  it('refuses what is not a regular file, without blocking', async () => {
    const fifo = path.join(scratch, 'fifo');
    execFileSync('mkfifo', [fifo]);
    expect((await failure(fifo)).code).toBe('EFTYPE');
    const zero = path.join(scratch, 'zero');
    fs.symlinkSync('/dev/zero', zero);
    expect((await failure(zero)).code).toBe('EFTYPE');
    expect((await failure(scratch)).code).toBe('EISDIR');
    expect((await failure(path.join(scratch, 'missing'))).message).toBe(
      'ENOENT: no such file or directory',
    );
  });
});
