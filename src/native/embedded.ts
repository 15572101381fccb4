// The addon when kmodload runs as a single executable (build/kmodload, Node's single-executable
// applications): the compiled addon is an asset inside the executable, and dlopen() needs a
// file. JavaScript cannot call memfd_create(), so the image goes into an unnamed file instead:
// open(DIR, O_TMPFILE | O_EXCL) makes an inode that has no name in any directory (O_EXCL: it can
// never be given one), so nothing is written where another user could replace or read it, even
// when DIR is world-writable; process.dlopen() then maps /proc/self/fd/N, and the inode goes
// away when the process ends. A directory on a noexec mount makes dlopen() fail, so several are
// tried in turn (glibc keeps the first segment of such a failed load mapped: a few pages).
import fs from 'node:fs';
import path from 'node:path';

import { EXIT, KmodloadError } from '../errors';

/** The asset's key in the single executable (scripts/make/build-binary.js puts it there). */
export const ADDON_ASSET = 'kmodload.node';

// __O_TMPFILE is 020000000 on x86-64 and arm64 alike; O_TMPFILE is it with O_DIRECTORY, whose
// value differs between architectures (fs.constants has the local one).
const O_TMPFILE = 0o20000000 | fs.constants.O_DIRECTORY;

/** Where the unnamed file is tried, in order: memory first (tmpfs), then the executable's own
 *  directory (a disk, rarely noexec). */
export function embeddedAddonDirs(executable: string = process.execPath): string[] {
  return ['/dev/shm', '/run', '/tmp', path.dirname(executable)];
}

/** Is this process a single executable (`node:sea` exists from Node 20.12 on)? */
export function runningAsSingleExecutable(): boolean {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('node:sea') as { isSea(): boolean }).isSea();
  } catch {
    return false;
  }
}

function reason(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
}

/**
 * Loads an addon from its bytes through an unnamed file in the first of `dirs` that can hold
 * one and map it executable. Throws KmodloadError (EXIT.environment) naming every directory's
 * reason when none can.
 */
export function loadAddonImage<T>(image: Uint8Array, dirs: readonly string[]): T {
  const reasons: string[] = [];
  for (const dir of dirs) {
    let fd: number;
    try {
      fd = fs.openSync(dir, O_TMPFILE | fs.constants.O_RDWR | fs.constants.O_EXCL, 0o500);
    } catch (error) {
      reasons.push(`${dir}: ${(error as NodeJS.ErrnoException).code ?? reason(error)}`);
      continue;
    }
    try {
      // writeSync may write less than asked: the whole image, or dlopen reads a torn file.
      for (let done = 0; done < image.length; ) {
        done += fs.writeSync(fd, image, done, image.length - done);
      }
      const module = { exports: {} as T };
      process.dlopen(module, `/proc/self/fd/${fd}`);
      return module.exports;
    } catch (error) {
      reasons.push(`${dir}: ${reason(error)}`);
    } finally {
      // The mapping outlives the descriptor.
      fs.closeSync(fd);
    }
  }
  throw new KmodloadError(
    `cannot load the embedded native addon (${reasons.join('; ')})`,
    EXIT.environment,
  );
}

/** The addon embedded in this single executable. */
export function loadEmbeddedAddon<T>(): T {
  let image: Uint8Array;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const sea = require('node:sea') as { getRawAsset(key: string): ArrayBuffer };
    image = new Uint8Array(sea.getRawAsset(ADDON_ASSET));
  } catch (error) {
    throw new KmodloadError(
      `this executable has no embedded addon: ${reason(error)}`,
      EXIT.environment,
    );
  }
  return loadAddonImage<T>(image, embeddedAddonDirs());
}
