// Which files root may act on, as sshd's StrictModes decides: a file, and every directory above
// it, owned by root (or by this process's user) and writable by nobody else. The walk up ends
// at a root-owned directory with the sticky bit (/tmp): there others cannot rename or remove an
// entry they do not own, so what lies below is as safe as the entry itself. Paths that must
// hold no symlink at all (the state directory, the log's directory) are checked as given;
// others (the policy, modprobe.d, node) through their real path, as sshd does.
// Synchronous: a few lstat(2) calls on the hook's path, which uses no fs.promises.

import fs from 'node:fs';
import path from 'node:path';
import { EXIT, KmodloadError } from './errors';

export interface TrustOptions {
  /** Refuse a symlink anywhere in the path (checked as given, not resolved). */
  noSymlink?: boolean;
}

/** The flag that turns the checks off (tests); its use is logged. */
export const INSECURE_FILES_FLAG = '--insecure-files';
export const INSECURE_FILES_WARNING =
  'file trust checks are off (--insecure-files): policy, modprobe.d, state and log files are used whoever can write them';

function owner(): number {
  return process.geteuid?.() ?? 0;
}

function fix(what: string, file: string): string {
  return `${what} (chown root and chmod go-w ${file}, or remove it)`;
}

/** The real path of `file`, or, when it does not exist, of its nearest existing directory with
 *  the rest appended (a missing /lib/modprobe.d is judged where /lib leads: /usr/lib). One
 *  realpath(3) each (fs.realpathSync's own walk is an lstat per component, in JavaScript). */
function realPathAsFarAsItGoes(file: string): string {
  const rest: string[] = [];
  for (let head = file; ;) {
    try {
      return path.join(fs.realpathSync.native(head), ...rest);
    } catch {
      const parent = path.dirname(head);
      if (parent === head) return file;
      rest.unshift(path.basename(head));
      head = parent;
    }
  }
}

/**
 * Why `file` cannot be trusted, as one line naming the path and the fix, or undefined.
 * A path that does not exist is trusted as far as it goes: its nearest existing directory is
 * checked (whoever can write there could create it). `safe`, shared by the checks of one
 * decision, holds the directories found safe to be under so far: the walk up stops at one
 * (node, the package and modprobe.d share most of theirs), and adds those it passed.
 */
export function untrustedReason(
  what: string,
  file: string,
  options: TrustOptions = {},
  safe?: Set<string>,
): string | undefined {
  let current = path.resolve(file);
  if (!options.noSymlink) current = realPathAsFarAsItGoes(current);
  const uid = owner();
  const passed: string[] = [];
  for (let leaf = true; ; leaf = false) {
    if (!leaf && safe?.has(current)) break;
    let stat: fs.Stats | undefined;
    try {
      // A missing path is no error (nor the cost of making one).
      stat = fs.lstatSync(current, { throwIfNoEntry: false });
    } catch (error) {
      return `${what} ${current} cannot be checked: ${(error as NodeJS.ErrnoException).code ?? String(error)}`;
    }
    if (stat) {
      if (stat.isSymbolicLink()) {
        return `${what} ${file}: ${current} is a symlink (use the real path)`;
      }
      if (stat.uid !== 0 && stat.uid !== uid) {
        return fix(`${what} ${current} is owned by uid ${stat.uid}, not root`, current);
      }
      const stickyShared = stat.isDirectory() && (stat.mode & 0o1000) !== 0 && stat.uid === 0;
      // /tmp and its kind: safe to be under, never safe to be.
      if (stickyShared && !leaf) {
        passed.push(current);
        break;
      }
      if ((stat.mode & 0o022) !== 0) {
        const by = (stat.mode & 0o002) !== 0 ? 'others' : 'its group';
        return fix(`${what} ${current} is writable by ${by}`, current);
      }
      passed.push(current);
    }
    const parent = path.dirname(current);
    if (parent === current) break;
    current = parent;
  }
  for (const dir of passed) safe?.add(dir);
  return undefined;
}

/** Why the entries of a directory already checked cannot be trusted: each must be no
 *  symlink, owned by root and writable by nobody else (missing ones are fine). */
export function untrustedEntries(what: string, files: readonly string[]): string | undefined {
  const uid = owner();
  for (const file of files) {
    let stat: fs.Stats | undefined;
    try {
      stat = fs.lstatSync(file, { throwIfNoEntry: false });
    } catch {
      continue;
    }
    if (!stat) continue;
    if (stat.isSymbolicLink()) return `${what} ${file} is a symlink (remove it)`;
    if (stat.uid !== 0 && stat.uid !== uid) {
      return fix(`${what} ${file} is owned by uid ${stat.uid}, not root`, file);
    }
    if ((stat.mode & 0o022) !== 0)
      return fix(`${what} ${file} is writable by group or others`, file);
  }
  return undefined;
}

/** The first reason of `checks` as an error (exit 4), or nothing. */
export function assertTrusted(
  checks: ReadonlyArray<[what: string, file: string, options?: TrustOptions]>,
): void {
  for (const [what, file, options] of checks) {
    const reason = untrustedReason(what, file, options);
    if (reason !== undefined) throw untrustedError(reason);
  }
}

export function untrustedError(reason: string): KmodloadError {
  return new KmodloadError(`untrusted file: ${reason}`, EXIT.environment);
}

/** The entries of directory `dir` (none when it is missing or unreadable). */
export function directoryEntries(dir: string): string[] {
  try {
    return fs.readdirSync(dir).map((name) => path.join(dir, name));
  } catch {
    return [];
  }
}
