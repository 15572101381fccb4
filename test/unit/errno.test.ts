import { describe, expect, it } from 'vitest';

import { errnoDescription, errnoName, errnoNumber } from '../../src/errno';

describe('errno names: one table', () => {
  it('names what the kernel answers, Node-style, and back', () => {
    for (const [name, n] of [
      ['ENOENT', 2],
      ['ENOEXEC', 8],
      ['EEXIST', 17],
      ['ENOSYS', 38],
      ['EBADMSG', 74],
      ['ENOTSUP', 95],
      ['EKEYREJECTED', 129],
      ['ENOKEY', 126],
    ] as const) {
      expect(errnoName(n), name).toBe(name);
      expect(errnoName(-n), name).toBe(name);
      expect(errnoNumber(name)).toBe(n);
    }
  });

  it('describes in Node wording, falling back to the name, never throws', () => {
    expect(errnoDescription(2)).toBe('no such file or directory');
    expect(errnoDescription(129)).toBe('key was rejected by service');
    expect(errnoName(9999)).toBe('E9999');
    expect(errnoDescription(9999)).toBe('E9999');
    expect(errnoNumber('ECOMMAND')).toBe(0);
  });
});
