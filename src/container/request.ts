// A container asking for modules, as every front end describes it to the core, and the
// request syntax they all read: `KERNEL_MODULES=a,b` in the container's environment and the
// `org.kmodload.kernel-modules` annotation.

import { EXIT, KmodloadError } from '../errors';
import type { RequestSource } from '../policy/types';
import { quote } from '../text';

export const KERNEL_MODULES_ENV = 'KERNEL_MODULES';
export const KERNEL_MODULES_ANNOTATION = 'org.kmodload.kernel-modules';

/** The kernel keeps module names in char[MODULE_NAME_LEN], MODULE_NAME_LEN = 64 -
 *  sizeof(unsigned long) = 56 on 64-bit, NUL included: no module name is longer than 55. */
export const MAX_MODULE_NAME_LENGTH = 55;
/** Longest KERNEL_MODULES value (or annotation) accepted: about a thousand long names. */
export const MAX_REQUEST_LENGTH = 64 * 1024;

/** The request syntax, in the one place every reader takes it from: parseKernelModules below,
 *  and the admission policy that `policy export --format validating-admission-policy` writes
 *  (src/policy/admission.ts), which extracts the names in CEL by the same rules. Names are
 *  separated by commas or ASCII blanks: podman splits an --annotation value at commas, so
 *  `org.kmodload.kernel-modules=ip_vs ip_vs_wrr` must work as well. `entrySeparator`, once
 *  requests take parameters (`NAME PARAM=VALUE...` entries separated by `;`), makes a value
 *  that has it a list of entries whose first word is the name; null: no such form. */
export const REQUEST_SYNTAX: {
  readonly nameSeparators: string;
  readonly entrySeparator: string | null;
} = { nameSeparators: ', \t\r\n\f\v', entrySeparator: null };

const MODULE_NAME = /^[A-Za-z0-9_-]+$/;
// No character of nameSeparators is special inside a class.
const SEPARATORS = new RegExp(`[${REQUEST_SYNTAX.nameSeparators}]+`);

/**
 * Parses a KERNEL_MODULES value: names separated by commas or blanks, empty items skipped,
 * duplicates dropped (first kept). Any invalid name refuses the whole request.
 * @param source what the value came from, for the message ("KERNEL_MODULES").
 */
export function parseKernelModules(value: string, source: string = KERNEL_MODULES_ENV): string[] {
  if (value.length > MAX_REQUEST_LENGTH) {
    throw new KmodloadError(
      `${source} is too long (${value.length} characters, at most ${MAX_REQUEST_LENGTH})`,
      EXIT.refused,
    );
  }
  const names: string[] = [];
  for (const name of value.split(SEPARATORS)) {
    if (name === '') continue;
    if (!MODULE_NAME.test(name) || name.length > MAX_MODULE_NAME_LENGTH) {
      const why =
        name.length > MAX_MODULE_NAME_LENGTH && MODULE_NAME.test(name)
          ? `longer than ${MAX_MODULE_NAME_LENGTH} characters`
          : 'only letters, digits, "_" and "-" are allowed';
      throw new KmodloadError(`invalid module name in ${source} (${why})`, EXIT.refused, {
        subject: `cannot load ${quote(name)}`,
      });
    }
    if (!names.includes(name)) names.push(name);
  }
  return names;
}

/**
 * The `KERNEL_MODULES=` entry's value (everything after the first `=`), if any. Two entries
 * with different values are refused: runc hands the container the last one while the original
 * hook read the first, so either choice would load modules the container does not see.
 */
export function findEnvRequest(
  env: unknown,
  malformed: (detail: string) => Error,
): string | undefined {
  if (env === undefined || env === null) return undefined;
  if (!Array.isArray(env)) throw malformed('process.env is not an array');
  const prefix = `${KERNEL_MODULES_ENV}=`;
  let found: string | undefined;
  env.forEach((entry: unknown, index) => {
    // Every entry is checked, not just those before the match: the runtime refuses such a
    // config too, so the answer must not depend on where the odd entry sits.
    if (typeof entry !== 'string') {
      throw malformed(`process.env[${index}] is not a string`);
    }
    // Entries without '=' define nothing (runc passes them through, execve ignores them).
    if (!entry.startsWith(prefix)) return;
    const value = entry.slice(prefix.length);
    if (found !== undefined && found !== value) {
      throw new KmodloadError(
        `${KERNEL_MODULES_ENV} is set twice with different values, ${quote(found)} and ` +
          `${quote(value)}: remove one (the container would see only the last)`,
        EXIT.refused,
      );
    }
    found = value;
  });
  return found;
}

/** The names a request asks for, in order, without duplicates, and where each came from (a
 *  name in both the env and the annotation has both). */
export interface RequestedNames {
  modules: string[];
  sources: Record<string, RequestSource[]>;
}

/** One place a request can come from: its raw value (undefined: not there). */
export interface RequestPart {
  value: string | undefined;
  source: RequestSource;
  /** What the value is, for messages ("KERNEL_MODULES"). */
  what: string;
}

/** The names of every part in order, without duplicates, and where each came from. */
export function requestedNames(parts: readonly RequestPart[]): RequestedNames {
  // No prototype: a container may ask for a module named "__proto__".
  const sources = Object.create(null) as Record<string, RequestSource[]>;
  const modules: string[] = [];
  for (const part of parts) {
    if (part.value === undefined) continue;
    for (const name of parseKernelModules(part.value, part.what)) {
      const from = (sources[name] ??= []);
      if (from.length === 0) modules.push(name);
      if (!from.includes(part.source)) from.push(part.source);
    }
  }
  return { modules, sources };
}

export interface ContainerRequest {
  /** The container's id. */
  id: string;
  /** What the container asks for, as it was written, in order: the core parses it (an
   *  invalid name refuses the whole request). */
  parts: RequestPart[];
  /** The container's annotations: the policy's `when annotation` tests them. */
  annotations: Record<string, string>;
  /** The container's process, when it exists already: its hold goes stale once it is gone. */
  pid?: number;
  /** Where in the container's life the front end asks (the hook's stage), for the record. */
  stage?: string;
  /** The status the runtime reported, for the record. */
  status?: string;
  /** The pod's namespace and labels, where the runtime gives them as typed facts (NRI). */
  namespace?: string;
  podLabels?: Record<string, string>;
  /** 'nri': the runtime reports which containers still run (the hold is kept by id, not pid). */
  via?: 'nri';
}
