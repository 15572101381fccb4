// A container asking for modules, as every front end describes it to the core, and the
// request syntax they all read: `KERNEL_MODULES=a,b` in the container's environment and the
// `org.kmodload.kernel-modules` annotation. Two forms:
//   a,b c          names separated by commas or blanks (the original iSulad form);
//   a P=V P2=V2; b  Kata Containers' form: entries separated by `;`, each a name and its
//                   parameters (a value with `;` or `=` is read this way).

import { EXIT, KmodloadError } from '../errors';
import { paramKey, paramWordProblem } from '../params';
import type { RequestSource } from '../policy/types';
import { quote } from '../text';

export const KERNEL_MODULES_ENV = 'KERNEL_MODULES';
export const KERNEL_MODULES_ANNOTATION = 'org.kmodload.kernel-modules';

/** The kernel keeps module names in char[MODULE_NAME_LEN], MODULE_NAME_LEN = 64 -
 *  sizeof(unsigned long) = 56 on 64-bit, NUL included: no module name is longer than 55. */
export const MAX_MODULE_NAME_LENGTH = 55;
/** Longest KERNEL_MODULES value (or annotation) accepted: about a thousand long names. */
export const MAX_REQUEST_LENGTH = 64 * 1024;

/** The request syntax, in the one place every reader takes it from: parseModuleRequest below,
 *  and the admission policy that `policy export --format validating-admission-policy` writes
 *  (src/policy/admission.ts), which extracts the names in CEL by the same rules. Names are
 *  separated by commas or ASCII blanks: podman splits an --annotation value at commas, so
 *  `org.kmodload.kernel-modules=ip_vs ip_vs_wrr` must work as well. A value that has the
 *  `entrySeparator` or the `paramSeparator` is a list of `NAME PARAM=VALUE...` entries
 *  separated by the former, whose first word is the name (null: no such form). */
export const REQUEST_SYNTAX: {
  readonly nameSeparators: string;
  readonly entrySeparator: string | null;
  /** What else makes a value a list of entries: the `=` of a parameter (`dummy numdummies=3`
   *  is one entry). */
  readonly paramSeparator: string;
} = { nameSeparators: ', \t\r\n\f\v', entrySeparator: ';', paramSeparator: '=' };

const MODULE_NAME = /^[A-Za-z0-9_-]+$/;
// No character of nameSeparators is special inside a class.
const SEPARATORS = new RegExp(`[${REQUEST_SYNTAX.nameSeparators}]+`);
// The blanks between an entry's words: the separators without the comma (arrays use it).
const BLANK = new RegExp(`[${REQUEST_SYNTAX.nameSeparators.replace(',', '')}]`);

/** One module a request names, and the parameters it asks for it. */
export interface ModuleEntry {
  name: string;
  /** `PARAM=VALUE` words as written, joined by a space ('' for none): the kernel's form. */
  params: string;
}

function refusal(reason: string, subject?: string): KmodloadError {
  return new KmodloadError(reason, EXIT.refused, subject === undefined ? {} : { subject });
}

function checkName(name: string, source: string, entry?: string): void {
  if (MODULE_NAME.test(name) && name.length <= MAX_MODULE_NAME_LENGTH) return;
  const why =
    name.length > MAX_MODULE_NAME_LENGTH && MODULE_NAME.test(name)
      ? `longer than ${MAX_MODULE_NAME_LENGTH} characters`
      : 'only letters, digits, "_" and "-" are allowed';
  const where = entry === undefined ? source : `${source} entry ${quote(entry)}`;
  throw refusal(`invalid module name in ${where} (${why})`, `cannot load ${quote(name)}`);
}

/** The words of one entry: blanks separate them, except inside "...". */
function entryWords(entry: string, source: string): string[] {
  const words: string[] = [];
  let word = '';
  let inQuote = false;
  for (const c of entry) {
    if (c === '"') inQuote = !inQuote;
    if (!inQuote && BLANK.test(c)) {
      if (word !== '') words.push(word);
      word = '';
    } else word += c;
  }
  if (inQuote) {
    throw refusal(`unterminated quote in ${source} entry ${quote(entry.trim())}`);
  }
  if (word !== '') words.push(word);
  return words;
}

/** One `NAME [PARAM=VALUE...]` entry. */
function parseEntry(entry: string, source: string): ModuleEntry | undefined {
  const [name, ...params] = entryWords(entry, source);
  if (name === undefined) return undefined;
  const shown = entry.trim();
  checkName(name, source, shown);
  const seen = new Set<string>();
  for (const word of params) {
    const problem = paramWordProblem(word);
    if (problem !== undefined) {
      throw refusal(
        `invalid parameter ${quote(word)} in ${source} entry ${quote(shown)}: ${problem}`,
        `cannot load ${name}`,
      );
    }
    const key = paramKey(word.slice(0, word.indexOf('=')));
    if (seen.has(key)) {
      throw refusal(
        `parameter ${quote(key)} is given twice in ${source} entry ${quote(shown)}`,
        `cannot load ${name}`,
      );
    }
    seen.add(key);
  }
  return { name, params: params.join(' ') };
}

/**
 * Parses a request value: names separated by commas or blanks, or (when it has a `;` or an
 * `=`) `NAME [PARAM=VALUE...]` entries separated by `;`. Empty items are skipped; a name given
 * twice is one (first kept), unless it has parameters: then it must be named once. Any invalid
 * name or parameter refuses the whole request, naming it.
 * @param source what the value came from, for the message ("KERNEL_MODULES").
 */
export function parseModuleRequest(
  value: string,
  source: string = KERNEL_MODULES_ENV,
): ModuleEntry[] {
  if (value.length > MAX_REQUEST_LENGTH) {
    throw refusal(
      `${source} is too long (${value.length} characters, at most ${MAX_REQUEST_LENGTH})`,
    );
  }
  const entries: ModuleEntry[] = [];
  const add = (entry: ModuleEntry): void => {
    const earlier = entries.find((e) => e.name === entry.name);
    if (!earlier) {
      entries.push(entry);
      return;
    }
    if (earlier.params === '' && entry.params === '') return;
    throw refusal(
      `${entry.name} is named twice in ${source}: name a module with parameters once`,
      `cannot load ${entry.name}`,
    );
  };
  const separator = REQUEST_SYNTAX.entrySeparator;
  if (
    separator === null ||
    (!value.includes(separator) && !value.includes(REQUEST_SYNTAX.paramSeparator))
  ) {
    for (const name of value.split(SEPARATORS)) {
      if (name === '') continue;
      checkName(name, source);
      add({ name, params: '' });
    }
    return entries;
  }
  for (const text of value.split(separator)) {
    const entry = parseEntry(text, source);
    if (entry) add(entry);
  }
  return entries;
}

/**
 * Parses a list of module names (a request without parameters: `--module`, a CDI set), as
 * parseModuleRequest does; parameters are refused.
 */
export function parseKernelModules(value: string, source: string = KERNEL_MODULES_ENV): string[] {
  const entries = parseModuleRequest(value, source);
  const withParams = entries.find((entry) => entry.params !== '');
  if (withParams) {
    throw refusal(
      `${source} takes module names without parameters`,
      `cannot load ${withParams.name}`,
    );
  }
  return entries.map((entry) => entry.name);
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

/** The names a request asks for, in order, without duplicates, where each came from (a name
 *  in both the env and the annotation has both), and the parameters asked for each. */
export interface RequestedNames {
  modules: string[];
  sources: Record<string, RequestSource[]>;
  /** Parameters per name (`PARAM=VALUE` words joined by a space), for the names that have
   *  some. */
  params: Record<string, string>;
}

/** One place a request can come from: its raw value (undefined: not there). */
export interface RequestPart {
  value: string | undefined;
  source: RequestSource;
  /** What the value is, for messages ("KERNEL_MODULES"). */
  what: string;
}

/** An empty RequestedNames. */
export function noNames(): RequestedNames {
  // No prototype: a container may ask for a module named "__proto__".
  return {
    modules: [],
    sources: Object.create(null) as RequestedNames['sources'],
    params: Object.create(null) as RequestedNames['params'],
  };
}

/** The names of every part in order, without duplicates, where each came from, and their
 *  parameters. A name with parameters in two parts must ask the same in both. */
export function requestedNames(parts: readonly RequestPart[]): RequestedNames {
  const names = noNames();
  const paramsFrom = Object.create(null) as Record<string, string>;
  for (const part of parts) {
    if (part.value === undefined) continue;
    for (const { name, params } of parseModuleRequest(part.value, part.what)) {
      const from = (names.sources[name] ??= []);
      if (from.length === 0) names.modules.push(name);
      if (!from.includes(part.source)) from.push(part.source);
      if (params === '') continue;
      const earlier = names.params[name];
      if (earlier !== undefined && earlier !== params) {
        throw refusal(
          `${paramsFrom[name]} asks ${quote(earlier)} and ${part.what} ${quote(params)}: ask the same, or in one place`,
          `cannot load ${name}`,
        );
      }
      names.params[name] = params;
      paramsFrom[name] = part.what;
    }
  }
  return names;
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
