// The shared test helpers whose mistakes would hide others': the reader of fetch-kernels.sh's
// output, the bundle writer and the in-memory CliIO.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeBundle } from '../helpers/bundle';
import { memoryIO } from '../helpers/cli-io';
import { parseKernelTrees } from '../helpers/trees';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-helpers-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

describe('parseKernelTrees', () => {
  it('one tree per "<flavour> <root> <version>" line, blank lines skipped', () => {
    expect(parseKernelTrees('6.1 /c/a 6.1.0-56-amd64\n\n6.12  /c/b  6.12.1+deb12-amd64\n')).toEqual(
      [
        {
          flavour: '6.1',
          root: '/c/a',
          version: '6.1.0-56-amd64',
          moduleDir: '/c/a/lib/modules/6.1.0-56-amd64',
          vmlinuz: '/c/a/boot/vmlinuz-6.1.0-56-amd64',
        },
        {
          flavour: '6.12',
          root: '/c/b',
          version: '6.12.1+deb12-amd64',
          moduleDir: '/c/b/lib/modules/6.12.1+deb12-amd64',
          vmlinuz: '/c/b/boot/vmlinuz-6.12.1+deb12-amd64',
        },
      ],
    );
  });

  it('refuses a line of another shape, and no tree at all', () => {
    expect(() => parseKernelTrees('6.1 /c/a\n')).toThrow(
      'fetch-kernels.sh: unexpected line "6.1 /c/a"',
    );
    expect(() => parseKernelTrees('6.1 /c/a v extra\n')).toThrow(/unexpected line/);
    expect(() => parseKernelTrees('\n')).toThrow('fetch-kernels.sh printed no trees');
  });
});

describe('writeBundle', () => {
  it('writes config.json as JSON, as given text or bytes, or not at all', () => {
    const read = (dir: string) => fs.readFileSync(path.join(dir, 'config.json'), 'utf8');
    expect(read(writeBundle(path.join(scratch, 'a', 'b'), { process: { env: ['X=1'] } }))).toBe(
      '{"process":{"env":["X=1"]}}',
    );
    expect(read(writeBundle(path.join(scratch, 'text'), '{"not json'))).toBe('{"not json');
    expect(read(writeBundle(path.join(scratch, 'bytes'), Buffer.from([0x7b, 0xff])))).toBe(
      '{\ufffd',
    );
    const none = writeBundle(path.join(scratch, 'none'));
    expect(fs.readdirSync(none)).toEqual([]);
  });
});

describe('memoryIO', () => {
  it('stdin yields what it was given; stdout and stderr keep what was written, at once', async () => {
    const streams = memoryIO('state', { A: '1' });
    const chunks: Buffer[] = [];
    for await (const chunk of streams.io.stdin) chunks.push(Buffer.from(chunk));
    expect(Buffer.concat(chunks).toString()).toBe('state');
    streams.io.stdout.write('out ');
    streams.io.stdout.write(Buffer.from('\u00e9'));
    streams.io.stderr.write('err\n');
    expect(streams.out()).toBe('out \u00e9');
    expect(streams.err()).toBe('err\n');
    expect(streams.io.env).toEqual({ A: '1' });
    const empty: unknown[] = [];
    for await (const chunk of memoryIO().io.stdin) empty.push(chunk);
    expect(empty).toEqual([]);
  });
});
