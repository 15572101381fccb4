// What a container asks for: the `KERNEL_MODULES=` entry of config.json's process.env (the
// original iSulad interface) and the `org.kmodload.kernel-modules` annotation (so CRI-O and
// podman hooks.d files can select the hook with `when.annotations`).

import path from 'node:path';
import { EXIT, KmodloadError } from '../errors';
import { FileReadError, readRegularFile } from '../files';
import { errorText, quote } from '../text';
import type { RequestSource } from '../policy/types';
import { checkAnnotations, type ContainerState } from './state';
import { decodeUtf8 } from './text';

export const KERNEL_MODULES_ENV = 'KERNEL_MODULES';
export const KERNEL_MODULES_ANNOTATION = 'org.kmodload.kernel-modules';

/** The kernel keeps module names in char[MODULE_NAME_LEN], MODULE_NAME_LEN = 64 -
 *  sizeof(unsigned long) = 56 on 64-bit, NUL included: no module name is longer than 55. */
export const MAX_MODULE_NAME_LENGTH = 55;
/** Longest KERNEL_MODULES value (or annotation) accepted: about a thousand long names. */
export const MAX_REQUEST_LENGTH = 64 * 1024;
/** Largest config.json read. Real ones are kilobytes; the cap bounds memory, not features. */
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

const MODULE_NAME = /^[A-Za-z0-9_-]+$/;
// Names are separated by commas or ASCII blanks: podman splits an --annotation value at
// commas, so `org.kmodload.kernel-modules=ip_vs ip_vs_wrr` must work as well.
const SEPARATORS = /[, \t\r\n\f\v]+/;

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

/** Where a request came from, for the log and the programmatic API. */
export interface HookRequest {
  /** The names to load, env first then annotation, without duplicates. */
  modules: string[];
  /** The raw KERNEL_MODULES value (first entry), when there is one. */
  env?: string;
  /** The raw annotation value, when there is one. */
  annotation?: string;
  /** The config.json that was read. */
  configPath?: string;
  /** The container's annotations: config.json's, overridden by the state's. */
  annotations: Record<string, string>;
  /** Where each name came from (a name in both has both), for the policy's `source`. */
  sources: Record<string, RequestSource[]>;
}

function tooLarge(configPath: string): KmodloadError {
  return new KmodloadError(
    `container config ${configPath} is larger than ${MAX_CONFIG_BYTES} bytes`,
    EXIT.environment,
  );
}

function malformedConfig(configPath: string, detail: string): KmodloadError {
  return new KmodloadError(`malformed container config ${configPath}: ${detail}`, EXIT.environment);
}

/**
 * The `KERNEL_MODULES=` entry's value (everything after the first `=`), if any. Two entries
 * with different values are refused: runc hands the container the last one while the original
 * hook read the first, so either choice would load modules the container does not see.
 */
export function findEnvRequest(env: unknown, configPath = 'config.json'): string | undefined {
  if (env === undefined || env === null) return undefined;
  if (!Array.isArray(env)) throw malformedConfig(configPath, 'process.env is not an array');
  const prefix = `${KERNEL_MODULES_ENV}=`;
  let found: string | undefined;
  env.forEach((entry: unknown, index) => {
    // Every entry is checked, not just those before the match: the runtime refuses such a
    // config too, so the answer must not depend on where the odd entry sits.
    if (typeof entry !== 'string') {
      throw malformedConfig(configPath, `process.env[${index}] is not a string`);
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

/**
 * The request from a parsed config.json and the state's annotations. The state's annotation
 * wins over config.json's when both are set (the runtime's view is the current one).
 */
export function requestFromConfig(
  config: unknown,
  stateAnnotations: Record<string, string> = {},
  configPath = 'config.json',
): HookRequest {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw malformedConfig(configPath, 'not a JSON object');
  }
  const object = config as Record<string, unknown>;
  const proc = object['process'];
  let envValue: string | undefined;
  // No `process` (allowed by the spec for `create`) means no environment, hence no env request.
  if (proc !== undefined && proc !== null) {
    if (typeof proc !== 'object' || Array.isArray(proc)) {
      throw malformedConfig(configPath, '"process" is not an object');
    }
    envValue = findEnvRequest((proc as Record<string, unknown>)['env'], configPath);
  }
  const configAnnotations = checkAnnotations(object['annotations'], (detail) =>
    malformedConfig(configPath, detail),
  );
  const annotations = { ...configAnnotations, ...stateAnnotations };
  const annotation = annotations[KERNEL_MODULES_ANNOTATION];

  // No prototype: a container may ask for a module named "__proto__".
  const sources = Object.create(null) as Record<string, RequestSource[]>;
  const request: HookRequest = { modules: [], configPath, annotations, sources };
  const add = (names: string[], source: RequestSource): void => {
    for (const name of names) {
      const from = (sources[name] ??= []);
      if (from.length === 0) request.modules.push(name);
      if (!from.includes(source)) from.push(source);
    }
  };
  if (envValue !== undefined) {
    request.env = envValue;
    add(parseKernelModules(envValue, KERNEL_MODULES_ENV), 'env');
  }
  if (annotation !== undefined) {
    request.annotation = annotation;
    add(parseKernelModules(annotation, `annotation ${KERNEL_MODULES_ANNOTATION}`), 'annotation');
  }
  return request;
}

export interface ReadRequestOptions {
  /** Reads config.json; tests inject faults here. Default: a bounded read of the file. */
  readFile?: (configPath: string) => Promise<Uint8Array>;
  /** Resolves a relative bundle path (runtimes start hooks in the bundle). Default cwd. */
  cwd?: string;
}

/**
 * The container's request: `<bundle>/config.json`'s (iSulad 1.x: `ociconfig.json`'s)
 * process.env and the annotation. A state
 * without a bundle, or a config.json that cannot be read or parsed, is an error even when the
 * state's annotations name modules: the env could ask for more, and a container must never
 * start silently without modules it asked for.
 */
export async function readHookRequest(
  state: ContainerState,
  options: ReadRequestOptions = {},
): Promise<HookRequest> {
  if (!state.bundle) {
    throw new KmodloadError(
      `container ${quote(state.id)}: the state names no bundle, cannot read its KERNEL_MODULES`,
      EXIT.environment,
    );
  }
  const bundle = path.resolve(options.cwd ?? process.cwd(), state.bundle);
  // Off the event loop (handleHook is library API too), on fs's callback API (no fs.promises
  // on the hook's path).
  const read = (file: string): Promise<Uint8Array> =>
    options.readFile ? options.readFile(file) : readRegularFile(file, MAX_CONFIG_BYTES);
  let configPath = path.join(bundle, 'config.json');
  let bytes: Uint8Array;
  try {
    try {
      bytes = await read(configPath);
    } catch (error) {
      // iSulad 1.x named the bundle's OCI config ociconfig.json.
      if ((error as { code?: string }).code !== 'ENOENT') throw error;
      const older = path.join(bundle, 'ociconfig.json');
      try {
        bytes = await read(older);
        configPath = older;
      } catch {
        throw error;
      }
    }
  } catch (error) {
    if (error instanceof FileReadError && error.code === 'EFBIG') throw tooLarge(configPath);
    if (error instanceof KmodloadError) throw error;
    // fs messages read "EACCES: permission denied, open '/x'": the path is ours to print.
    const reason = error instanceof FileReadError ? error.message : errorText(error).split(', ')[0];
    throw new KmodloadError(
      `${reason} (cannot tell which kernel modules it needs)`,
      EXIT.environment,
      { subject: `cannot read container config ${configPath}` },
    );
  }
  if (bytes.length > MAX_CONFIG_BYTES) throw tooLarge(configPath);
  let config: unknown;
  try {
    config = JSON.parse(decodeUtf8(bytes));
  } catch (error) {
    throw malformedConfig(configPath, `not JSON (${(error as Error).message})`);
  }
  return requestFromConfig(config, state.annotations, configPath);
}
