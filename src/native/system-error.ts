// The addon rejects with the raw facts of a failed call (errno, syscall, path, detail); this is
// where they become fs-style errors: code 'ENOENT' and the message
// "ENOENT: no such file or directory, open '/x'". One place, so every addon error reads alike.
import { errnoDescription, errnoName } from '../errno';
import type { NativeBinding, NativeIndex, SystemError } from './binding';

const REASON = Symbol('kmodload.reason');

interface RawError extends Error {
  errno?: unknown;
  syscall?: unknown;
  path?: unknown;
  detail?: unknown;
}

/** Names an error from the addon in place (code, message); other errors pass unchanged. */
export function nameSystemError(error: unknown): unknown {
  const raw = error as RawError | null;
  if (!(raw instanceof Error) || typeof raw.errno !== 'number' || 'code' in raw) return error;
  const named = raw as RawError & SystemError;
  named.code = errnoName(raw.errno);
  const detail = typeof raw.detail === 'string' ? raw.detail : errnoDescription(raw.errno);
  const where = typeof raw.path === 'string' ? ` '${raw.path}'` : '';
  const reason = `${named.code}: ${detail}`;
  named.message = `${reason}, ${String(raw.syscall)}${where}`;
  delete raw.detail;
  // For lines that name the file themselves (systemErrorReason); not enumerable, so the
  // error's fields stay fs's.
  Object.defineProperty(named, REASON, { value: reason });
  return named;
}

/** A named addon error's message without its ", syscall 'path'" tail, for a line that names
 *  the file itself: "EBADMSG: xz data is truncated". Other errors: their message. */
export function systemErrorReason(error: unknown): string {
  const reason = (error as Record<symbol, unknown> | null)?.[REASON];
  if (typeof reason === 'string') return reason;
  return error instanceof Error ? error.message : String(error);
}

function namedSync<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R {
  return (...args) => {
    try {
      return fn(...args);
    } catch (error) {
      throw nameSystemError(error);
    }
  };
}

function namedAsync<A extends unknown[], R>(
  fn: (...args: A) => Promise<R>,
): (...args: A) => Promise<R> {
  return async (...args) => {
    try {
      return await fn(...args);
    } catch (error) {
      throw nameSystemError(error);
    }
  };
}

function wrapIndex(index: NativeIndex): NativeIndex {
  return {
    exact: namedSync((key: string) => index.exact(key)),
    wildcard: namedSync((key: string) => index.wildcard(key)),
    entries: namedSync(() => index.entries()),
    close: namedSync(() => index.close()),
  };
}

/** The addon's exports with every error named. */
export function wrapBinding(raw: NativeBinding): NativeBinding {
  return {
    insertModule: namedAsync(raw.insertModule.bind(raw)),
    readModuleImage: namedAsync(raw.readModuleImage.bind(raw)),
    deleteModule: namedAsync(raw.deleteModule.bind(raw)),
    openIndex: namedAsync(async (path: string) => wrapIndex(await raw.openIndex(path))),
    openIndexOnDemand: namedSync((path: string) => wrapIndex(raw.openIndexOnDemand(path))),
    fnmatch: namedSync(raw.fnmatch.bind(raw)),
    flock: namedSync(raw.flock.bind(raw)),
    probeModuleSupport: namedSync(raw.probeModuleSupport.bind(raw)),
  };
}
