// The OCI container state a runtime writes to a hook's stdin (runtime-spec runtime.md):
// {"ociVersion","id","status","pid","bundle","annotations"}. Older runtimes send
// `bundlePath`; iSulad's lxc runtime adds `root` and may leave out `status`.

import { EXIT, KmodloadError } from '../errors';
import { quote } from '../text';
import { decodeUtf8 } from './text';

/** Largest state we accept on stdin. Real states are a few hundred bytes; annotations can
 *  make them bigger (Kubernetes caps them at 256 KiB in all), never megabytes. */
export const MAX_STATE_BYTES = 4 * 1024 * 1024;

export type ContainerStatus = 'creating' | 'created' | 'running' | 'stopped' | (string & {});

export interface ContainerState {
  ociVersion?: string;
  id: string;
  status?: ContainerStatus;
  pid?: number;
  /** Absolute path of the bundle: `bundle`, or the older `bundlePath`. */
  bundle?: string;
  /** iSulad's lxc runtime: the container's rootfs. */
  root?: string;
  annotations: Record<string, string>;
}

function malformed(detail: string): KmodloadError {
  return new KmodloadError(`malformed container state on stdin: ${detail}`, EXIT.environment);
}

function optionalString(object: Record<string, unknown>, key: string): string | undefined {
  const value = object[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw malformed(`"${key}" is not a string`);
  return value;
}

/** Parses and checks the state JSON. Unknown fields are ignored (newer runtimes add some). */
export function parseContainerState(input: string | Uint8Array): ContainerState {
  const text = typeof input === 'string' ? input : decodeUtf8(input);
  if (text.trim() === '') throw malformed('empty input (a runtime sends the state as JSON)');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw malformed(`not JSON (${(error as Error).message})`);
  }
  return checkContainerState(parsed);
}

/** Checks an already-parsed state object (the programmatic API accepts one). */
export function checkContainerState(parsed: unknown): ContainerState {
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw malformed('not a JSON object');
  }
  const object = parsed as Record<string, unknown>;
  const id = optionalString(object, 'id');
  if (id === undefined) throw malformed('no "id"');
  const state: ContainerState = { id, annotations: {} };
  const ociVersion = optionalString(object, 'ociVersion');
  if (ociVersion !== undefined) state.ociVersion = ociVersion;
  const status = optionalString(object, 'status');
  if (status !== undefined) state.status = status;
  const pid = object['pid'];
  // iSulad's lcr sends -1 when lxc has no pid (poststop, which runs inside the daemon).
  if (pid !== undefined && pid !== null && pid !== -1) {
    if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid < 0) {
      throw malformed('"pid" is not a process id');
    }
    state.pid = pid;
  }
  const bundle = optionalString(object, 'bundle') || optionalString(object, 'bundlePath');
  if (bundle) state.bundle = bundle;
  const root = optionalString(object, 'root');
  if (root !== undefined) state.root = root;
  state.annotations = checkAnnotations(object['annotations'], malformed);
  return state;
}

/**
 * What can be kept of a state that was refused (for the log record: which container, which
 * pod): a string `id` and `status`, and the annotations whose values are strings. Never throws.
 */
export function partialContainerState(
  input: string | Uint8Array | unknown,
): Pick<ContainerState, 'annotations'> & Partial<Pick<ContainerState, 'id' | 'status'>> {
  let parsed: unknown = input;
  if (typeof input === 'string' || input instanceof Uint8Array) {
    try {
      parsed = JSON.parse(typeof input === 'string' ? input : decodeUtf8(input));
    } catch {
      return { annotations: {} };
    }
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return { annotations: {} };
  }
  const object = parsed as Record<string, unknown>;
  const partial: ReturnType<typeof partialContainerState> = { annotations: {} };
  if (typeof object['id'] === 'string') partial.id = object['id'];
  if (typeof object['status'] === 'string') partial.status = object['status'];
  const annotations = object['annotations'];
  if (typeof annotations === 'object' && annotations !== null && !Array.isArray(annotations)) {
    for (const [key, value] of Object.entries(annotations as Record<string, unknown>)) {
      if (typeof value === 'string') partial.annotations[key] = value;
    }
  }
  return partial;
}

/** `annotations` is a map of strings to strings (runtime-spec config.md) or absent. */
export function checkAnnotations(
  value: unknown,
  fail: (detail: string) => KmodloadError,
): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw fail('"annotations" is not an object');
  }
  const annotations: Record<string, string> = {};
  for (const [key, entry] of Object.entries(value as Record<string, unknown>)) {
    if (typeof entry !== 'string') throw fail(`annotation ${quote(key)} is not a string`);
    annotations[key] = entry;
  }
  return annotations;
}
