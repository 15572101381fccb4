// The CDI spec kmodload publishes: kind kmodload.io/module, one device per module (or set of
// modules) whose only edit is a createRuntime hook running `kmodload hook --module NAME`. The
// runtime then runs the hook in its own namespaces with the container's state, as for any
// OCI hook; createContainer would run it with the container's environment instead.

import path from 'node:path';
import { hookEntry, type HookConfigOptions } from '../hook/config';
import type { HookStage } from '../hook/stage';

export const CDI_VENDOR = 'kmodload.io';
export const CDI_CLASS = 'module';
export const CDI_KIND = `${CDI_VENDOR}/${CDI_CLASS}`;

/** The lowest version that serves: what every CDI library reads (podman 4.1 on). */
export const CDI_VERSION = '0.3.0';
/** Device names that start with a digit (8021q) need 0.5.0; libraries before it refuse them,
 *  so they go to a file of their own and older engines lose only those. */
export const CDI_DIGITS_VERSION = '0.5.0';

export const DEFAULT_CDI_DIR = '/etc/cdi';
export const DEFAULT_CDI_FILE = path.join(DEFAULT_CDI_DIR, 'kmodload.json');

/** The hooks' whole environment: explicit, so that they never get the runtime's own. The hook
 *  itself needs none (the wrapper names node by absolute path). */
export const CDI_HOOK_ENV: readonly string[] = ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'];

export interface CdiHook {
  hookName: HookStage;
  path: string;
  args: string[];
  env: string[];
  timeout?: number;
}

export interface CdiDevice {
  name: string;
  containerEdits: { hooks: CdiHook[] };
}

export interface CdiSpec {
  cdiVersion: string;
  kind: string;
  devices: CdiDevice[];
}

/** A device to publish: its name and the modules its hook asks for. */
export interface DeviceRequest {
  name: string;
  modules: string[];
}

export interface SpecOptions {
  /** The executable the hooks run (the wrapper, or the single executable). */
  wrapperPath: string;
  /** The node flags every hook passes (hookEntryArguments). */
  nodeArguments: readonly string[];
  /** The runtime's timeout for each hook, seconds. */
  timeout?: number;
  /** A poststop hook per device that releases the container's hold and unloads what nobody
   *  holds. */
  unloadOnStop?: boolean;
}

/** The two files: `main` at CDI_VERSION, `digits` (names starting with a digit) at
 *  CDI_DIGITS_VERSION; either is undefined when it would hold no device (CDI refuses an empty
 *  spec). */
export interface CdiSpecs {
  main?: CdiSpec;
  digits?: CdiSpec;
}

function cdiHook(stage: HookStage, options: HookConfigOptions): CdiHook {
  const entry = hookEntry(stage, options);
  return {
    hookName: stage,
    path: entry.path,
    args: entry.args,
    env: [...CDI_HOOK_ENV],
    ...(entry.timeout !== undefined ? { timeout: entry.timeout } : {}),
  };
}

function device(request: DeviceRequest, options: SpecOptions): CdiDevice {
  const common: HookConfigOptions = { wrapperPath: options.wrapperPath };
  if (options.timeout !== undefined) common.timeout = options.timeout;
  const modules = request.modules.flatMap((name) => ['--module', name]);
  const hooks = [
    cdiHook('createRuntime', { ...common, extraArgs: [...modules, ...options.nodeArguments] }),
  ];
  if (options.unloadOnStop) {
    hooks.push(
      cdiHook('poststop', {
        ...common,
        extraArgs: [...options.nodeArguments],
        unloadOnStop: true,
      }),
    );
  }
  return { name: request.name, containerEdits: { hooks } };
}

export function startsWithDigit(name: string): boolean {
  return /^[0-9]/.test(name);
}

/** The specs for `devices`, each file's devices in name order. */
export function buildSpecs(devices: readonly DeviceRequest[], options: SpecOptions): CdiSpecs {
  const sorted = [...devices].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const spec = (version: string, chosen: DeviceRequest[]): CdiSpec | undefined =>
    chosen.length === 0
      ? undefined
      : { cdiVersion: version, kind: CDI_KIND, devices: chosen.map((d) => device(d, options)) };
  const main = spec(
    CDI_VERSION,
    sorted.filter((d) => !startsWithDigit(d.name)),
  );
  const digits = spec(
    CDI_DIGITS_VERSION,
    sorted.filter((d) => startsWithDigit(d.name)),
  );
  return { ...(main ? { main } : {}), ...(digits ? { digits } : {}) };
}

/** As written: two-space JSON and a final newline. */
export function formatSpec(spec: CdiSpec): string {
  return `${JSON.stringify(spec, null, 2)}\n`;
}

/** Where the digits file goes: beside the main one, `NAME-digits.EXT`. */
export function digitsFile(mainFile: string): string {
  const ext = path.extname(mainFile);
  return path.join(path.dirname(mainFile), `${path.basename(mainFile, ext)}-digits${ext}`);
}
