// The state directory (default /run/kmodload, a tmpfs: gone at reboot, like the modules):
//   lock              flock(2)ed around every read-modify-write, by every kmodload process
//   inserted.json     the modules some kmodload hook inserted and nobody has removed since
//   holds/<hash>.json one per container: what it asked for and which modules it holds
// Every write is atomic (temporary file, fsync, rename, fsync of the directory), so a process
// killed at any point leaves either the old file or the new one. A file that is not valid
// state (corrupt, unknown version) is moved aside with a warning, never trusted.
// Under the lock the files (a few hundred bytes, on a tmpfs) are read and written with
// synchronous calls: with many hooks at once, every await inside the critical section would
// lengthen everybody's wait. Waiting for the lock is asynchronous.

import { createHash } from 'node:crypto';
import fsSync, { constants as fsConstants } from 'node:fs';
import path from 'node:path';
import { EXIT, KmodloadError } from '../errors';
import { FileReadError, fsAsync, readRegularFileSync } from '../files';
import type { NativeBinding } from '../native/binding';
import { LOCK_EX, LOCK_NB } from '../native/binding';
import { errorText } from '../text';
import { directoryEntries, untrustedEntries, untrustedError, untrustedReason } from '../trust';
import { DEFAULT_STATE_DIR } from './defaults';

export { DEFAULT_STATE_DIR };

export const STATE_VERSION = 1;
/** Largest state file read; real ones are a few KiB. */
const MAX_STATE_FILE_BYTES = 1024 * 1024;

/** A module of a hold: whether the holding container's hook inserted it. */
export interface HeldModule {
  name: string;
  /** This container's hook inserted it (it was not live or builtin before). */
  inserted: boolean;
  /** The name the container asked for that brought it. */
  request: string;
}

/** What one container holds. */
export interface Hold {
  version: typeof STATE_VERSION;
  /** The container id, as the runtime named it. */
  id: string;
  /** The container's process at the load stage, and its start time (/proc/PID/stat field 22),
   *  which together tell a live container from a reused pid. null: unknown (iSulad's lcr
   *  sends pid -1 when it has none). */
  pid: number | null;
  pidStart: string | null;
  /** When the hold was first taken (ISO 8601). */
  since: string;
  /** The names the container asked for. */
  requested: string[];
  modules: HeldModule[];
  /** Modules of a plan being loaded now: taken under the lock before the loader reads any
   *  module's state, made final (moved to `modules`) or dropped when the load ends. A release
   *  never unloads them; a killed loader leaves them until the container's hold goes. */
  provisional?: string[];
  /** 'nri': taken by the NRI plugin, which learns from the runtime (Synchronize) which
   *  containers still run; absent: taken by a hook, whose container's pid tells. */
  via?: 'nri';
  /** The parameters the container asked for, by module (`PARAM=VALUE` words): another
   *  container may not ask other values for these modules while this hold lasts. */
  params?: Record<string, string>;
}

/** A module some kmodload hook inserted, with the order of insertion (removal goes backwards). */
export interface InsertedModule {
  name: string;
  seq: number;
  since: string;
  /** The container whose hook inserted it. */
  by: string;
  /** The parameters that container asked for it (`PARAM=VALUE` words), if any. */
  params?: string;
}

interface InsertedFile {
  version: typeof STATE_VERSION;
  next: number;
  modules: InsertedModule[];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Absent, or an object of strings. */
function isStringRecord(value: unknown): boolean {
  return (
    value === undefined ||
    (isObject(value) && Object.values(value).every((v) => typeof v === 'string'))
  );
}

function isHold(value: unknown): value is Hold {
  if (!isObject(value) || value['version'] !== STATE_VERSION) return false;
  const { id, pid, pidStart, since, requested, modules, via, provisional, params } = value;
  return (
    typeof id === 'string' &&
    isStringRecord(params) &&
    (provisional === undefined ||
      (Array.isArray(provisional) && provisional.every((m) => typeof m === 'string'))) &&
    (pid === null || (typeof pid === 'number' && Number.isInteger(pid))) &&
    (pidStart === null || typeof pidStart === 'string') &&
    (via === undefined || via === 'nri') &&
    typeof since === 'string' &&
    Array.isArray(requested) &&
    requested.every((r) => typeof r === 'string') &&
    Array.isArray(modules) &&
    modules.every(
      (m) =>
        isObject(m) &&
        typeof m['name'] === 'string' &&
        typeof m['inserted'] === 'boolean' &&
        typeof m['request'] === 'string',
    )
  );
}

function isInsertedFile(value: unknown): value is InsertedFile {
  if (!isObject(value) || value['version'] !== STATE_VERSION) return false;
  const { next, modules } = value;
  return (
    typeof next === 'number' &&
    Array.isArray(modules) &&
    modules.every(
      (m) =>
        isObject(m) &&
        typeof m['name'] === 'string' &&
        typeof m['seq'] === 'number' &&
        typeof m['since'] === 'string' &&
        typeof m['by'] === 'string' &&
        (m['params'] === undefined || typeof m['params'] === 'string'),
    )
  );
}

/** Steps of a state update, for tests that kill a process between any two of them. */
export type StoreStep = 'locked' | 'hold-written' | 'hold-removed' | 'inserted-written';

export interface StoreOptions {
  /** The state directory; default DEFAULT_STATE_DIR. */
  stateDir?: string;
  /** How long to wait for the lock while the same holder keeps it (the wait starts again each
   *  time the lock changes hands: a queue of busy hooks is not a stuck one). Default 20 s. */
  lockTimeoutMs?: number;
  /** Called after each step (tests crash here). */
  onStep?: (step: StoreStep) => void;
  /** The addon's flock; default: the package's addon (src/system.ts). */
  binding?: () => Pick<NativeBinding, 'flock'>;
  /** Use the state even when others could have written it (tests; `--insecure-files`). */
  insecureFiles?: boolean;
}

/** Why the state directory cannot be trusted: a user who can write it names the modules root
 *  unloads (inserted.json) or drops holds (a lock that is a symlink). */
export function untrustedState(dir: string, safe?: Set<string>): string | undefined {
  const state = untrustedReason('the state directory', dir, { noSymlink: true }, safe);
  if (state !== undefined) return state;
  const holds = path.join(dir, 'holds');
  return untrustedEntries('the state file', [
    path.join(dir, 'lock'),
    path.join(dir, 'inserted.json'),
    holds,
    ...directoryEntries(holds),
  ]);
}

/** The state directory, opened under its lock by `withStateLock`. */
export class StateStore {
  /** Files found corrupt and moved aside in this session; unloading is off once one is. */
  readonly warnings: string[] = [];

  constructor(
    readonly dir: string,
    private readonly onStep: (step: StoreStep) => void,
  ) {}

  get corrupt(): boolean {
    return this.warnings.length > 0;
  }

  step(step: StoreStep): void {
    this.onStep(step);
  }

  holdFile(id: string): string {
    // Ids come from the runtime: a hash keeps them out of the file name.
    const key = createHash('sha256').update(id).digest('hex').slice(0, 32);
    return path.join(this.dir, 'holds', `${key}.json`);
  }

  readHold(id: string): Hold | undefined {
    const hold = this.readJson(this.holdFile(id), isHold);
    return hold?.id === id ? hold : undefined;
  }

  readHolds(): Hold[] {
    let names: string[];
    try {
      names = fsSync.readdirSync(path.join(this.dir, 'holds'));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw stateError(path.join(this.dir, 'holds'), error);
    }
    const holds: Hold[] = [];
    for (const name of names.sort()) {
      if (!name.endsWith('.json')) continue;
      const hold = this.readJson(path.join(this.dir, 'holds', name), isHold);
      if (hold) holds.push(hold);
    }
    return holds;
  }

  writeHold(hold: Hold): void {
    writeAtomic(this.holdFile(hold.id), `${JSON.stringify(hold)}\n`);
  }

  removeHold(id: string): boolean {
    try {
      fsSync.unlinkSync(this.holdFile(id));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw stateError(this.holdFile(id), error);
    }
    syncDirectory(path.join(this.dir, 'holds'));
    return true;
  }

  readInserted(): InsertedFile {
    const file = path.join(this.dir, 'inserted.json');
    return this.readJson(file, isInsertedFile) ?? { version: STATE_VERSION, next: 1, modules: [] };
  }

  writeInserted(inserted: InsertedFile): void {
    writeAtomic(path.join(this.dir, 'inserted.json'), `${JSON.stringify(inserted)}\n`);
  }

  /** A state file, or undefined when absent; invalid ones are moved aside with a warning. */
  private readJson<T>(file: string, valid: (v: unknown) => v is T): T | undefined {
    let bytes: Buffer;
    try {
      bytes = readRegularFileSync(file, MAX_STATE_FILE_BYTES);
    } catch (error) {
      if (error instanceof FileReadError && error.code === 'ENOENT') return undefined;
      if (error instanceof FileReadError && (error.code === 'EFBIG' || error.code === 'EFTYPE')) {
        this.moveAside(file, error.message);
        return undefined;
      }
      throw stateError(file, error);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(bytes.toString('utf8'));
    } catch {
      this.moveAside(file, 'not JSON');
      return undefined;
    }
    if (!valid(parsed)) {
      const version = isObject(parsed) ? parsed['version'] : undefined;
      this.moveAside(
        file,
        version === STATE_VERSION ? 'not valid state' : `unknown version ${String(version)}`,
      );
      return undefined;
    }
    return parsed;
  }

  private moveAside(file: string, why: string): void {
    const aside = `${file}.corrupt-${Date.now()}`;
    try {
      fsSync.renameSync(file, aside);
    } catch {
      // gone already: nothing to move
    }
    this.warnings.push(`state file ${file}: ${why}; moved aside to ${aside}`);
  }
}

function stateError(file: string, error: unknown): KmodloadError {
  return new KmodloadError(
    `cannot use the state ${file}: ${errorText(error).split(', ')[0]}`,
    EXIT.environment,
  );
}

function syncDirectory(dir: string): void {
  const fd = fsSync.openSync(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try {
    fsSync.fsyncSync(fd);
  } finally {
    fsSync.closeSync(fd);
  }
}

/** Replaces `file` with `content` so that a crash leaves the old file or the new one. */
function writeAtomic(file: string, content: string): void {
  const dir = path.dirname(file);
  try {
    fsSync.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const temporary = `${file}.tmp-${process.pid}`;
    const fd = fsSync.openSync(
      temporary,
      fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC | fsConstants.O_NOFOLLOW,
      0o600,
    );
    try {
      fsSync.writeFileSync(fd, content);
      fsSync.fsyncSync(fd);
    } finally {
      fsSync.closeSync(fd);
    }
    fsSync.renameSync(temporary, file);
    syncDirectory(dir);
  } catch (error) {
    throw stateError(file, error);
  }
}

/** Removes temporary files that a killed process left (only ever under the lock). */
function removeLeftovers(dir: string): void {
  for (const sub of [dir, path.join(dir, 'holds')]) {
    let names: string[] = [];
    try {
      names = fsSync.readdirSync(sub);
    } catch {
      continue;
    }
    for (const name of names) {
      if (!name.includes('.tmp-')) continue;
      try {
        fsSync.unlinkSync(path.join(sub, name));
      } catch {
        // gone already
      }
    }
  }
}

async function packageFlock(): Promise<Pick<NativeBinding, 'flock'>> {
  const { addon } = await import('../system.js');
  return addon();
}

let lockTurns = 0;

/** The lock file's content: what its last holder wrote ("pid PID TURN TIME"), or undefined
 *  when it cannot be read (the wait is then bounded by the timeout alone). */
function lockHolder(fd: number): string | undefined {
  try {
    const buffer = Buffer.alloc(64);
    const bytesRead = fsSync.readSync(fd, buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead).toString('latin1');
  } catch {
    return undefined;
  }
}

/** Marks this turn of the lock: a waiter that sees the content change knows it moves on. */
function markLockHolder(fd: number): void {
  try {
    fsSync.writeSync(fd, `pid ${process.pid} ${++lockTurns} ${Date.now()}\n`.padEnd(48), 0);
  } catch {
    // Only the patience of those waiting depends on it.
  }
}

/**
 * Runs `use` with the state directory locked against every other kmodload process (flock:
 * released by the kernel if this process dies). Creates the directory (0700) if needed.
 * @throws KmodloadError (EXIT.environment) when the directory cannot be used or the lock is
 *   not had within the timeout.
 */
export async function withStateLock<T>(
  options: StoreOptions,
  use: (store: StateStore) => Promise<T>,
): Promise<T> {
  const dir = options.stateDir ?? DEFAULT_STATE_DIR;
  const binding = options.binding ? options.binding() : await packageFlock();
  const lockFile = path.join(dir, 'lock');
  if (!options.insecureFiles) {
    const reason = untrustedState(dir);
    if (reason !== undefined) throw untrustedError(reason);
  }
  let fd: number;
  try {
    await fsAsync.mkdirs(dir, 0o700);
    fd = await fsAsync.open(
      lockFile,
      fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_NOFOLLOW,
      0o600,
    );
  } catch (error) {
    throw stateError(lockFile, error);
  }
  try {
    const timeout = options.lockTimeoutMs ?? 20_000;
    let deadline = Date.now() + timeout;
    let holder: string | undefined;
    // Polled, since a blocking flock() would hold a thread with no way to give up. Backing off
    // to a fifth of a second, with jitter: many hooks at once (a node starting its pods) must
    // not spend the CPU the holder needs to finish, and must not wake in step. The timeout is
    // for a holder that is stuck: it starts again whenever the lock has changed hands.
    for (let wait = 2; ; wait = Math.min(wait * 2, 200)) {
      try {
        binding.flock(fd, LOCK_EX | LOCK_NB);
        break;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'EWOULDBLOCK' && code !== 'EAGAIN') throw stateError(lockFile, error);
        const now = lockHolder(fd);
        if (now !== holder) {
          holder = now;
          deadline = Date.now() + timeout;
        } else if (Date.now() > deadline) {
          const pid = /^pid (\d+)/.exec(holder ?? '')?.[1];
          throw new KmodloadError(
            `the state ${dir} is locked by ${pid ? `kmodload process ${pid}` : 'another kmodload process'} for more than ${timeout >= 1000 ? `${Math.round(timeout / 1000)} s` : `${timeout} ms`}`,
            EXIT.environment,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, wait * (0.5 + Math.random())));
      }
    }
    markLockHolder(fd);
    const store = new StateStore(dir, options.onStep ?? (() => undefined));
    store.step('locked');
    removeLeftovers(dir);
    return await use(store);
  } finally {
    // Closing the file releases the lock.
    await fsAsync.close(fd);
  }
}
