// What a container asks for: the `KERNEL_MODULES=` entry of config.json's process.env (the
// original iSulad interface) and the `org.kmodload.kernel-modules` annotation (so CRI-O and
// podman hooks.d files can select the hook with `when.annotations`).

import path from 'node:path';
import { EXIT, KmodloadError } from '../errors';
import { FileReadError, readRegularFileSync } from '../files';
import { errorText, quote } from '../text';
import type { RequestSource } from '../policy/types';
import {
  KERNEL_MODULES_ANNOTATION,
  KERNEL_MODULES_ENV,
  findEnvRequest,
  requestedNames,
  type RequestPart,
} from '../container/request';
import { checkAnnotations, type ContainerState } from './state';
import { decodeUtf8 } from './text';

/** Largest config.json read. Real ones are kilobytes; the cap bounds memory, not features. */
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

/** What config.json (and the state) say the container asks for, as written. */
export interface ContainerConfig {
  /** The raw KERNEL_MODULES value (first entry), when there is one. */
  env?: string;
  /** The raw annotation value, when there is one. */
  annotation?: string;
  /** The config.json that was read. */
  configPath?: string;
  /** The container's annotations: config.json's, overridden by the state's. */
  annotations: Record<string, string>;
}

/** Where a request came from, for the log and the programmatic API. */
export interface HookRequest extends ContainerConfig {
  /** The names to load, env first then annotation, without duplicates. */
  modules: string[];
  /** Where each name came from (a name in both has both), for the policy's `source`. */
  sources: Record<string, RequestSource[]>;
  /** The parameters asked for each name that has some (`PARAM=VALUE` words). */
  params: Record<string, string>;
}

/** The places a hook's request comes from, raw, as the core parses them: env first. */
export function requestParts(config: ContainerConfig): RequestPart[] {
  return [
    { value: config.env, source: 'env', what: KERNEL_MODULES_ENV },
    {
      value: config.annotation,
      source: 'annotation',
      what: `annotation ${KERNEL_MODULES_ANNOTATION}`,
    },
  ];
}

/** The hook's `--module` arguments as a request part (a CDI device's hook). */
export function moduleArgumentsPart(modules: readonly string[]): RequestPart {
  return { value: modules.join(','), source: 'cdi', what: '--module' };
}

/** `config` with its names parsed. Throws KmodloadError (exit 3) for an invalid name. */
function parsed(config: ContainerConfig): HookRequest {
  return { ...config, ...requestedNames(requestParts(config)) };
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

// Go's encoding/json (runc's config.json decoder) gives a JSON key to the struct field whose
// name it equals under Unicode simple case folding: "Process", "ENV", even "proceſs" (U+017F
// folds to s; U+212A KELVIN SIGN to k) reach process.env. Every such key is decoded into the
// field in document order: a later object merges into an earlier one, a later list or null
// replaces it. The request is read the same way, or the container would run with an env the
// hook never saw.
const GO_FOLDS_TO_ASCII: Readonly<Record<string, string>> = { '\u017f': 's', '\u212a': 'k' };

/** Whether Go's encoding/json decodes key `key` into the field `name` (lower-case ASCII). */
function goFieldKey(key: string, name: string): boolean {
  if (key.length < name.length || key.length > name.length * 3) return false;
  const runes = [...key];
  if (runes.length !== name.length) return false;
  return runes.every((c, i) => (GO_FOLDS_TO_ASCII[c] ?? c.toLowerCase()) === name[i]);
}

/** The values Go's decoder would decode into field `name` of `object`, in document order. */
function goFieldValues(object: Record<string, unknown>, name: string): unknown[] {
  return Object.keys(object)
    .filter((key) => goFieldKey(key, name))
    .map((key) => object[key]);
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
  return parsed(configRequest(config, stateAnnotations, configPath));
}

/** As requestFromConfig, the names left as written. */
function configRequest(
  config: unknown,
  stateAnnotations: Record<string, string>,
  configPath: string,
): ContainerConfig {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw malformedConfig(configPath, 'not a JSON object');
  }
  const object = config as Record<string, unknown>;
  const fail = (detail: string): KmodloadError => malformedConfig(configPath, detail);
  // No `process` (allowed by the spec for `create`) means no environment, hence no env request.
  let env: unknown;
  for (const proc of goFieldValues(object, 'process')) {
    if (proc === null) {
      env = undefined;
      continue;
    }
    if (typeof proc !== 'object' || Array.isArray(proc)) throw fail('"process" is not an object');
    for (const value of goFieldValues(proc as Record<string, unknown>, 'env')) env = value;
  }
  const envValue = findEnvRequest(env, fail);
  let configAnnotations: Record<string, string> = {};
  for (const value of goFieldValues(object, 'annotations')) {
    if (value === null) configAnnotations = {};
    else Object.assign(configAnnotations, checkAnnotations(value, fail));
  }
  const annotations = { ...configAnnotations, ...stateAnnotations };
  const annotation = annotations[KERNEL_MODULES_ANNOTATION];

  const request: ContainerConfig = { configPath, annotations };
  if (envValue !== undefined) request.env = envValue;
  if (annotation !== undefined) request.annotation = annotation;
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
  return parsed(await readContainerConfig(state, options));
}

/** As readHookRequest, the names left as written (the core parses them). */
export async function readContainerConfig(
  state: ContainerState,
  options: ReadRequestOptions = {},
): Promise<ContainerConfig> {
  if (!state.bundle) {
    throw new KmodloadError(
      `container ${quote(state.id)}: the state names no bundle, cannot read its KERNEL_MODULES`,
      EXIT.environment,
    );
  }
  const bundle = path.resolve(options.cwd ?? process.cwd(), state.bundle);
  // Read at once: a config.json is kilobytes, fewer microseconds than a thread-pool round trip.
  const read = async (file: string): Promise<Uint8Array> =>
    options.readFile ? options.readFile(file) : readRegularFileSync(file, MAX_CONFIG_BYTES);
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
  return configRequest(config, state.annotations, configPath);
}
