// The state directory (default /run/kmodload, a tmpfs: gone at reboot, like the modules):
//   lock              flock(2)ed around every read-modify-write, by every kmodload process
//   inserted.json     the modules some kmodload hook inserted and nobody has removed since
//   holds/<hash>.json one per container: what it asked for and which modules it holds
// Every write is atomic (temporary file, fsync, rename, fsync of the directory), so a process
// killed at any point leaves either the old file or the new one. A file that is not valid
// state (corrupt, unknown version) is moved aside with a warning, never trusted.

import { createHash } from 'node:crypto';
import { promises as fs, constants as fsConstants } from 'node:fs';
import path from 'node:path';
import { EXIT, KmodloadError } from '../errors';
import { FileReadError, readRegularFile } from '../files';
import type { NativeBinding } from '../native/binding';
import { LOCK_EX, LOCK_NB } from '../native/binding';
import { errorText } from '../text';

export const DEFAULT_STATE_DIR = '/run/kmodload';
export const STATE_VERSION = 1;
/** Largest state file read; real ones are a few KiB. */
const MAX_STATE_FILE_BYTES = 4 * 1024 * 1024;

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
}

/** A module some kmodload hook inserted, with the order of insertion (removal goes backwards). */
export interface InsertedModule {
  name: string;
  seq: number;
  since: string;
  /** The container whose hook inserted it. */
  by: string;
}

interface InsertedFile {
  version: typeof STATE_VERSION;
  next: number;
  modules: InsertedModule[];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isHold(value: unknown): value is Hold {
  if (!isObject(value) || value['version'] !== STATE_VERSION) return false;
  const { id, pid, pidStart, since, requested, modules } = value;
  return (
    typeof id === 'string' &&
    (pid === null || (typeof pid === 'number' && Number.isInteger(pid))) &&
    (pidStart === null || typeof pidStart === 'string') &&
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
        typeof m['by'] === 'string',
    )
  );
}

/** Steps of a state update, for tests that kill a process between any two of them. */
export type StoreStep = 'locked' | 'hold-written' | 'hold-removed' | 'inserted-written';

export interface StoreOptions {
  /** The state directory; default DEFAULT_STATE_DIR. */
  stateDir?: string;
  /** How long to wait for another kmodload process's lock. Default 20 s. */
  lockTimeoutMs?: number;
  /** Called after each step (tests crash here). */
  onStep?: (step: StoreStep) => void;
  /** The addon's flock; default: the addon. */
  binding?: () => Pick<NativeBinding, 'flock'>;
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

  async readHold(id: string): Promise<Hold | undefined> {
    const hold = await this.readJson(this.holdFile(id), isHold);
    return hold?.id === id ? hold : undefined;
  }

  async readHolds(): Promise<Hold[]> {
    let names: string[];
    try {
      names = await fs.readdir(path.join(this.dir, 'holds'));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw stateError(path.join(this.dir, 'holds'), error);
    }
    const holds: Hold[] = [];
    for (const name of names.sort()) {
      if (!name.endsWith('.json')) continue;
      const hold = await this.readJson(path.join(this.dir, 'holds', name), isHold);
      if (hold) holds.push(hold);
    }
    return holds;
  }

  async writeHold(hold: Hold): Promise<void> {
    await writeAtomic(this.holdFile(hold.id), `${JSON.stringify(hold)}\n`);
  }

  async removeHold(id: string): Promise<boolean> {
    try {
      await fs.unlink(this.holdFile(id));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw stateError(this.holdFile(id), error);
    }
    await syncDirectory(path.join(this.dir, 'holds'));
    return true;
  }

  async readInserted(): Promise<InsertedFile> {
    const file = path.join(this.dir, 'inserted.json');
    return (
      (await this.readJson(file, isInsertedFile)) ?? {
        version: STATE_VERSION,
        next: 1,
        modules: [],
      }
    );
  }

  async writeInserted(inserted: InsertedFile): Promise<void> {
    await writeAtomic(path.join(this.dir, 'inserted.json'), `${JSON.stringify(inserted)}\n`);
  }

  /** A state file, or undefined when absent; invalid ones are moved aside with a warning. */
  private async readJson<T>(file: string, valid: (v: unknown) => v is T): Promise<T | undefined> {
    let bytes: Buffer;
    try {
      bytes = await readRegularFile(file, MAX_STATE_FILE_BYTES);
    } catch (error) {
      if (error instanceof FileReadError && error.code === 'ENOENT') return undefined;
      if (error instanceof FileReadError && (error.code === 'EFBIG' || error.code === 'EFTYPE')) {
        await this.moveAside(file, error.message);
        return undefined;
      }
      throw stateError(file, error);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(bytes.toString('utf8'));
    } catch {
      await this.moveAside(file, 'not JSON');
      return undefined;
    }
    if (!valid(parsed)) {
      const version = isObject(parsed) ? parsed['version'] : undefined;
      await this.moveAside(
        file,
        version === STATE_VERSION ? 'not valid state' : `unknown version ${String(version)}`,
      );
      return undefined;
    }
    return parsed;
  }

  private async moveAside(file: string, why: string): Promise<void> {
    const aside = `${file}.corrupt-${Date.now()}`;
    await fs.rename(file, aside).catch(() => undefined);
    this.warnings.push(`state file ${file}: ${why}; moved aside to ${aside}`);
  }
}

function stateError(file: string, error: unknown): KmodloadError {
  return new KmodloadError(
    `cannot use the state ${file}: ${errorText(error).split(', ')[0]}`,
    EXIT.environment,
  );
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Replaces `file` with `content` so that a crash leaves the old file or the new one. */
async function writeAtomic(file: string, content: string): Promise<void> {
  const dir = path.dirname(file);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const temporary = `${file}.tmp-${process.pid}`;
  const handle = await fs.open(
    temporary,
    fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC | fsConstants.O_NOFOLLOW,
    0o600,
  );
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(temporary, file);
  await syncDirectory(dir);
}

/** Removes temporary files that a killed process left (only ever under the lock). */
async function removeLeftovers(dir: string): Promise<void> {
  for (const sub of [dir, path.join(dir, 'holds')]) {
    let names: string[] = [];
    try {
      names = await fs.readdir(sub);
    } catch {
      continue;
    }
    for (const name of names) {
      if (name.includes('.tmp-')) await fs.unlink(path.join(sub, name)).catch(() => undefined);
    }
  }
}

async function defaultFlock(): Promise<Pick<NativeBinding, 'flock'>> {
  const { loadBinding } = await import('../native/addon.js');
  return loadBinding();
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
  const binding = options.binding ? options.binding() : await defaultFlock();
  const lockFile = path.join(dir, 'lock');
  let handle: fs.FileHandle;
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    handle = await fs.open(
      lockFile,
      fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_NOFOLLOW,
      0o600,
    );
  } catch (error) {
    throw stateError(lockFile, error);
  }
  try {
    const deadline = Date.now() + (options.lockTimeoutMs ?? 20_000);
    for (let wait = 2; ; wait = Math.min(wait * 2, 50)) {
      try {
        binding.flock(handle.fd, LOCK_EX | LOCK_NB);
        break;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'EWOULDBLOCK' && code !== 'EAGAIN') throw stateError(lockFile, error);
        if (Date.now() > deadline) {
          throw new KmodloadError(
            `the state ${dir} is locked by another kmodload process for too long`,
            EXIT.environment,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
    const store = new StateStore(dir, options.onStep ?? (() => undefined));
    store.step('locked');
    await removeLeftovers(dir);
    return await use(store);
  } finally {
    // Closing the file releases the lock.
    await handle.close();
  }
}
