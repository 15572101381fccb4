// What a call refuses with, for tests that check the one-line message and the exit status.

import { expect } from 'vitest';
import { KmodloadError } from '../../src/errors';

/** The KmodloadError `fn` throws; fails the test when it returns or throws something else. */
export function thrown(fn: () => unknown): KmodloadError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(KmodloadError);
    return error as KmodloadError;
  }
  throw new Error('expected a KmodloadError');
}
