// An index read on demand (openIndexOnDemand: each block read when a lookup first reaches it)
// answers as the same file read whole (openIndex), on Debian's real indexes: every key with
// its values, and exact and wildcard lookups of keys taken from the file and of misses.
import * as path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { loadBinding } from '../../src/native/addon';
import type { NativeBinding } from '../../src/native/binding';
import { kernelTree } from '../helpers/trees';

const INDEX_FILES = [
  'modules.dep.bin',
  'modules.alias.bin',
  'modules.symbols.bin',
  'modules.builtin.bin',
  'modules.builtin.alias.bin',
];

let binding: NativeBinding;
beforeAll(() => {
  binding = loadBinding();
});

for (const flavour of ['6.1', '6.12']) {
  describe(`the ${flavour} tree's indexes, read on demand`, () => {
    for (const name of INDEX_FILES) {
      it(`${name}: the same answers as read whole`, async () => {
        const file = path.join(kernelTree(flavour).moduleDir, name);
        const whole = await binding.openIndex(file);
        const entries = whole.entries();
        expect(entries.length).toBeGreaterThan(0);
        // Every 97th key and its neighbours' misses, looked up in a fresh index first (only
        // the blocks those lookups reach are read), then the whole dump.
        const keys = entries.filter((_, k) => k % 97 === 0).map((e) => e.key);
        const probes = [...keys, ...keys.map((key) => `${key}x`), 'crc32c', 'ip_vs', ''];
        const lazy = binding.openIndexOnDemand(file);
        for (const key of probes) {
          expect(lazy.exact(key), `exact ${key}`).toEqual(whole.exact(key));
          expect(lazy.wildcard(key), `wildcard ${key}`).toEqual(whole.wildcard(key));
        }
        expect(lazy.entries()).toEqual(entries);
        lazy.close();
        whole.close();
        expect(() => lazy.exact('ip_vs')).toThrow(/index is closed/);
      });
    }
  });
}
