// Truncated, bit-flipped and hand-crafted hostile index files: openIndex rejects or lookups
// return or throw EBADMSG, never a crash (this file runs in a forked worker, so a crash
// would fail it) and never a hang on cyclic offsets; the same for an index read on demand
// (openIndexOnDemand), block by block as lookups reach them. The reader reaches each node at most
// once per lookup, so shared or cyclic child offsets fail at the second visit: the hostile
// cases below end after a few hundred node reads by construction, whatever the machine.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadBinding } from '../../src/native/addon';
import type { NativeBinding, NativeIndex, SystemError } from '../../src/native/binding';
import { kernelTree } from '../helpers/trees';

const INDEX_FILES = [
  'modules.dep.bin',
  'modules.alias.bin',
  'modules.symbols.bin',
  'modules.builtin.bin',
  'modules.builtin.alias.bin',
];
const FLIPPED_COPIES = 24;

const PREFIX = 0x80000000;
const VALUES = 0x40000000;
const CHILDS = 0x20000000;

let binding: NativeBinding;
let tmp: string;
let counter = 0;

type Open = (file: string) => Promise<NativeIndex>;
const OPENERS: Array<[string, Open, boolean]> = [
  ['read whole (openIndex)', (file) => binding.openIndex(file), false],
  ['read on demand (openIndexOnDemand)', async (file) => binding.openIndexOnDemand(file), true],
];
/** The opener of the describe block running. */
let open: Open;

/** Deterministic PRNG (mulberry32) so a failure can be reproduced. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function writeTemp(data: Uint8Array): string {
  const file = path.join(tmp, `index-${counter++}.bin`);
  fs.writeFileSync(file, data);
  return file;
}

function expectIndexError(error: unknown, what: string): void {
  expect(error, what).toBeInstanceOf(Error);
  const e = error as SystemError;
  expect(e.code, `${what}: ${e.message}`).toBe('EBADMSG');
  expect(e.errno).toBe(74);
  expect(typeof e.syscall).toBe('string');
  expect(e.message).toMatch(/^EBADMSG: /);
}

/** Every operation either answers or throws EBADMSG. Returns how many threw. */
function exercise(index: NativeIndex, keys: string[], what: string): number {
  let threw = 0;
  const attempt = (fn: () => unknown, label: string): void => {
    try {
      fn();
    } catch (error) {
      expectIndexError(error, `${what} ${label}`);
      threw++;
    }
  };
  attempt(() => index.entries(), 'entries');
  for (const key of keys) {
    attempt(() => index.exact(key), `exact ${key}`);
    attempt(() => index.wildcard(key), `wildcard ${key}`);
  }
  return threw;
}

/** Opens data from a temp file; null when openIndex rejected (with EBADMSG). */
async function tryOpen(data: Uint8Array, what: string): Promise<NativeIndex | null> {
  try {
    return await open(writeTemp(data));
  } catch (error) {
    expectIndexError(error, what);
    return null;
  }
}

/** A hand-made index: header, then nodes placed at the given offsets. */
function craft(size: number, root: number, parts: Array<[number, number[]]>): Uint8Array {
  const buf = Buffer.alloc(size);
  buf.writeUInt32BE(0xb007f457, 0);
  buf.writeUInt32BE(0x00020001, 4);
  buf.writeUInt32BE(root >>> 0, 8);
  for (const [offset, bytes] of parts) Buffer.from(bytes).copy(buf, offset);
  return buf;
}

/** What fn throws; fails the test when it returns. */
function thrown(fn: () => unknown): SystemError {
  try {
    fn();
  } catch (error) {
    return error as SystemError;
  }
  throw new Error('expected an exception');
}

function be32(n: number): number[] {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

beforeAll(() => {
  binding = loadBinding();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-corrupt-'));
});

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe.each(OPENERS)('%s', (_, opener, onDemand) => {
  beforeAll(() => {
    open = opener;
  });

  describe('damaged copies of the real 6.1 indexes', () => {
    for (const name of INDEX_FILES) {
      it(`${name}: truncated and bit-flipped copies never crash`, async () => {
        const original = fs.readFileSync(path.join(kernelTree('6.1').moduleDir, name));
        const healthy = await open(path.join(kernelTree('6.1').moduleDir, name));
        const allKeys = healthy.entries().map((e) => e.key);
        healthy.close();
        const random = prng(0x6b6d6f64 ^ original.length);
        const keys = [
          ...Array.from({ length: 12 }, () => allKeys[Math.floor(random() * allKeys.length)]!),
          'pci:v00008086d00001533sv00000000sd00000000bc02sc00i00',
          '',
        ];

        const size = original.length;
        const lengths = new Set([0, 1, 4, 8, 11, 12, 13, 16, size >> 2, size >> 1, size - 1]);
        for (let i = 0; i < 8; i++) lengths.add(Math.floor(random() * size));
        let failures = 0;
        for (const length of lengths) {
          const what = `${name} truncated to ${length}`;
          const index = await tryOpen(original.subarray(0, length), what);
          // 0 bytes is depmod's empty index; anything else shorter than the header is corrupt.
          if (length === 0) expect(index?.entries(), what).toEqual([]);
          else if (length < 12) expect(index, what).toBeNull();
          if (index) {
            failures += exercise(index, keys, what);
            index.close();
          } else failures++;
        }
        // Cutting off the end loses nodes that real lookups reach.
        expect(failures).toBeGreaterThan(lengths.size / 2);

        for (let copy = 0; copy < FLIPPED_COPIES; copy++) {
          const damaged = Buffer.from(original);
          const flips = 1 + Math.floor(random() * 16);
          for (let f = 0; f < flips; f++) {
            // Mostly anywhere; sometimes the header, which holds the root offset.
            const at = random() < 0.15 ? Math.floor(random() * 12) : Math.floor(random() * size);
            damaged[at]! ^= 1 << Math.floor(random() * 8);
          }
          const what = `${name} copy ${copy} with ${flips} flipped bits`;
          const index = await tryOpen(damaged, what);
          if (index) {
            exercise(index, keys, what);
            index.close();
          }
        }
      });
    }
  });

  describe('hostile hand-made indexes', () => {
    it('rejects files with a bad magic, a bad major version or a short header', async () => {
      const good = craft(16, 0, []);
      expect(await tryOpen(good, 'empty root')).not.toBeNull();
      const badMagic = Buffer.from(good);
      badMagic[0] = 0;
      expect(await tryOpen(badMagic, 'bad magic')).toBeNull();
      const badVersion = Buffer.from(good);
      badVersion.writeUInt32BE(0x00010001, 4);
      expect(await tryOpen(badVersion, 'version 1')).toBeNull();
      expect(await tryOpen(good.subarray(0, 11), 'short')).toBeNull();
    });

    it('reports a missing file as ENOENT and a directory as EISDIR', async () => {
      const missing = path.join(tmp, 'missing.bin');
      await expect(open(missing)).rejects.toMatchObject({
        code: 'ENOENT',
        errno: 2,
        syscall: 'open',
        path: missing,
        message: `ENOENT: no such file or directory, open '${missing}'`,
      });
      await expect(open(tmp)).rejects.toMatchObject({ code: 'EISDIR', path: tmp });
    });

    it("depmod's empty indexes are valid and empty: 0 bytes, and a header whose root is an empty node at the end", async () => {
      for (const [label, data] of [
        ['0 bytes', Buffer.alloc(0)],
        ['12 bytes, root at 0xc without flags', craft(12, 12, [])],
      ] as const) {
        const index = (await tryOpen(data, label))!;
        expect(index, label).not.toBeNull();
        expect(index.entries()).toEqual([]);
        expect(index.exact('libcrc32c')).toEqual([]);
        expect(index.exact('')).toEqual([]);
        expect(index.wildcard('crc32c')).toEqual([]);
        index.close();
      }
      // With flags, a node needs bytes: the same offset is then beyond the end of the file.
      const flagged = (await tryOpen(craft(12, VALUES | 12, []), 'flagged root at end'))!;
      expect(() => flagged.exact('a')).toThrow(/EBADMSG.*beyond end of file/);
    });

    it('an index with a null root is empty', async () => {
      const index = (await tryOpen(craft(12, 0, []), 'null root'))!;
      expect(index.entries()).toEqual([]);
      expect(index.exact('a')).toEqual([]);
      expect(index.wildcard('a')).toEqual([]);
    });

    it('a root offset past the end of the file is EBADMSG on lookup', async () => {
      const index = (await tryOpen(craft(16, VALUES | 0x1000, []), 'far root'))!;
      expect(() => index.exact('a')).toThrow(/EBADMSG/);
      expect(() => index.entries()).toThrow(/EBADMSG/);
    });

    it('a node that is its own child is caught, not followed forever', async () => {
      // Node at 12: children 'a'..'a' and '*' .. '*' both pointing back at itself.
      const self = CHILDS | VALUES | 12;
      const node = [0x2a, 0x2a, ...be32(self), ...be32(0)];
      const cyclicStar = (await tryOpen(craft(64, self, [[12, node]]), 'star cycle'))!;
      for (const op of [() => cyclicStar.entries(), () => cyclicStar.wildcard('abc')]) {
        try {
          op();
        } catch (error) {
          expectIndexError(error, 'star cycle');
          continue;
        }
        throw new Error('a cyclic index must not answer');
      }
      const chain = [0x61, 0x61, ...be32(self), ...be32(0)];
      const cyclicA = (await tryOpen(craft(64, self, [[12, chain]]), 'a cycle'))!;
      // The root answers for the empty key; the second step reaches the root again.
      expect(cyclicA.exact('')).toEqual([]);
      expectIndexError(thrown(() => cyclicA.exact('a')), 'exact a');
      expectIndexError(thrown(() => cyclicA.exact('a'.repeat(1000))), 'exact a x 1000');
      expectIndexError(thrown(() => cyclicA.entries()), 'entries');
    });

    it('a longer cycle (root -> a -> b -> root) is EBADMSG at the second visit', async () => {
      // root@12 --'a'--> n1@22 --'b'--> root
      const root = CHILDS | VALUES | 12;
      const n1 = CHILDS | VALUES | 22;
      const data = craft(64, root, [
        [12, [0x61, 0x61, ...be32(n1), ...be32(0)]],
        [22, [0x62, 0x62, ...be32(root), ...be32(0)]],
      ]);
      const index = (await tryOpen(data, 'long cycle'))!;
      expect(index.exact('a')).toEqual([]);
      for (const [label, op] of [
        ['exact', () => index.exact('aba')],
        ['wildcard', () => index.wildcard('abab')],
        ['entries', () => index.entries()],
      ] as const) {
        const error = thrown(op);
        expectIndexError(error, label);
        expect(error.message).toMatch(/reached twice/);
      }
    });

    it('child slots all pointing at one node holding 4,000 values fail at once (EBADMSG)', async () => {
      // The crafted class: a 21 KB file whose root has 96 child slots (' '..'\x7f') that all
      // point at one node with 4,000 values. Followed naively, every slot yields the 4,000
      // values again (and again at each level when the node points at itself); here the
      // second slot reaches a node already seen.
      const valueBytes: number[] = [];
      for (let i = 0; i < 4000; i++) valueBytes.push(...be32(4000 - i), 0x6d, 0);
      const shared = 12 + 2 + 4 * 96;
      const sharedRaw = CHILDS | VALUES | shared;
      const rootChildren: number[] = [];
      for (let c = 0; c < 96; c++) rootChildren.push(...be32(sharedRaw));
      const data = craft(shared + 2 + 4 * 96 + 4 + valueBytes.length, CHILDS | 12, [
        [12, [0x20, 0x7f, ...rootChildren]],
        [shared, [0x20, 0x7f, ...rootChildren, ...be32(4000), ...valueBytes]],
      ]);
      expect(data.length).toBeGreaterThan(20_000);
      expect(data.length).toBeLessThan(40_000);
      const index = (await tryOpen(data, 'shared children'))!;
      // One path reaches the node once: its 4,000 values, in file order.
      const values = index.exact('*');
      expect(values).toHaveLength(4000);
      expect(values[0]).toEqual({ value: 'm', priority: 4000 });
      for (const [label, op] of [
        ['entries', () => index.entries()],
        ['wildcard *', () => index.wildcard('x')],
        ['wildcard', () => index.wildcard('pci:v00008086d00001533sv00000000sd00000000bc02')],
        ['exact twice', () => index.exact('**')],
      ] as const) {
        const error = thrown(op);
        expectIndexError(error, label);
        expect(error.message).toMatch(/reached twice/);
      }
    });

    it('a node with a huge value count, reached once, is sorted by priority', async () => {
      // 20,000 values with priorities cycling 0..9 under a '*' pattern: the wildcard result is
      // sorted by priority and, among equal priorities, the value stored last comes first
      // (kmod's add_value()).
      const valueBytes: number[] = [];
      const count = 20_000;
      for (let i = 0; i < count; i++) {
        valueBytes.push(...be32(i % 10), ...Buffer.from(`v${i}`), 0);
      }
      const node = CHILDS | 12;
      const star = VALUES | 22;
      const data = craft(22 + 4 + valueBytes.length, node, [
        [12, [0x2a, 0x2a, ...be32(star), ...be32(0)]],
        [22, [...be32(count), ...valueBytes]],
      ]);
      const index = (await tryOpen(data, 'many values'))!;
      const found = index.wildcard('anything');
      expect(found).toHaveLength(count);
      expect(found[0]).toEqual({ value: `v${count - 10}`, priority: 0 });
      expect(found[1]).toEqual({ value: `v${count - 20}`, priority: 0 });
      expect(found[count - 1]).toEqual({ value: 'v9', priority: 9 });
      for (let i = 1; i < count; i++) {
        expect(found[i]!.priority >= found[i - 1]!.priority).toBe(true);
      }
      expect(index.exact('*').map((v) => v.value)).toEqual(
        Array.from({ length: count }, (_, i) => `v${i}`),
      );
    });

    it('a DAG that shares children exponentially fails at the first shared node', async () => {
      // 24 levels of nodes whose 96 children all point at the next level: 96^24 paths.
      const parts: Array<[number, number[]]> = [];
      const levels = 24;
      const nodeSize = 2 + 4 * 96 + 4;
      for (let level = 0; level < levels; level++) {
        const next = level + 1 < levels ? CHILDS | VALUES | (12 + (level + 1) * nodeSize) : 0;
        const children: number[] = [];
        for (let c = 0; c < 96; c++) children.push(...be32(next));
        parts.push([12 + level * nodeSize, [0x20, 0x7f, ...children, ...be32(0)]]);
      }
      const data = craft(12 + levels * nodeSize, CHILDS | VALUES | 12, parts);
      const index = (await tryOpen(data, 'dag'))!;
      expect(() => index.entries()).toThrow(/EBADMSG/);
      expect(() => index.wildcard('x')).toThrow(/EBADMSG/);
      expect(index.exact('abc')).toEqual([]);
    });

    it('value counts and child ranges beyond the file are EBADMSG', async () => {
      const hugeCount = (await tryOpen(
        craft(24, VALUES | 12, [[12, [...be32(0xffffffff), 0, 0, 0, 0]]]),
        'value count',
      ))!;
      expect(() => hugeCount.exact('')).toThrow(/EBADMSG/);
      const badRange = (await tryOpen(craft(24, CHILDS | 12, [[12, [0x7a, 0x61]]]), 'range'))!;
      expect(() => badRange.exact('b')).toThrow(/EBADMSG/);
      const highRange = (await tryOpen(craft(24, CHILDS | 12, [[12, [0x61, 0xff]]]), 'high'))!;
      expect(() => highRange.exact('b')).toThrow(/EBADMSG/);
      const noNul = (await tryOpen(craft(16, PREFIX | 12, [[12, [0x61, 0x62, 0x63, 0x64]]]), 'nul'))!;
      expect(() => noNul.exact('abcd')).toThrow(/EBADMSG/);
      const unterminatedValue = (await tryOpen(
        craft(22, VALUES | 12, [[12, [...be32(1), ...be32(7), 0x61, 0x62]]]),
        'value',
      ))!;
      expect(() => unterminatedValue.exact('')).toThrow(/EBADMSG/);
    });

    it('truncating the file after opening: no fault (no mapping of the file)', async () => {
      const file = path.join(tmp, `shrinking-${counter++}.bin`);
      fs.copyFileSync(path.join(kernelTree('6.1').moduleDir, 'modules.dep.bin'), file);
      const index = await open(file);
      const before = index.exact('ip_vs');
      expect(before).toHaveLength(1);
      fs.truncateSync(file, 100);
      // What was read stays: a copy whole, or the blocks this lookup read already.
      expect(index.exact('ip_vs')).toEqual(before);
      if (onDemand) {
        // The blocks not read yet are not there any more: corrupt, said so.
        const error = thrown(() => index.entries());
        expectIndexError(error, 'entries after truncation');
        expect(error.message).toMatch(/file shorter than when it was opened/);
      } else {
        expect(index.entries().length).toBeGreaterThan(1000);
      }
      index.close();
    });

    it('refuses a FIFO (without blocking) and a file over the size cap', async () => {
      const fifo = path.join(tmp, `fifo-${counter++}.bin`);
      execFileSync('mkfifo', [fifo]);
      await expect(open(fifo)).rejects.toMatchObject({
        code: 'EBADMSG',
        message: expect.stringMatching(/not a regular file/),
      });
      const big = path.join(tmp, `big-${counter++}.bin`);
      fs.writeFileSync(big, craft(12, 0, []));
      fs.truncateSync(big, 32 * 1024 * 1024 + 1); // sparse: nothing is written
      await expect(open(big)).rejects.toMatchObject({ code: 'EFBIG', path: big });
      fs.truncateSync(big, 32 * 1024 * 1024);
      const atCap = await open(big);
      expect(atCap.entries()).toEqual([]);
      atCap.close();
    });

    it('a closed index throws instead of reading freed memory', async () => {
      const index = await open(
        path.join(kernelTree('6.1').moduleDir, 'modules.builtin.bin'),
      );
      index.close();
      index.close();
      expect(() => index.exact('ext4')).toThrow(expect.objectContaining({ code: 'EBADF' }));
      expect(() => index.entries()).toThrow(/index is closed/);
    });
  });
});
