// Ready-to-use hook configurations for iSulad, runc/crun and CRI-O/podman, and the wrapper
// script they name. A runtime starts a hook with exactly the `env` of its entry (often empty:
// no PATH, no HOME), so `#!/usr/bin/env node` cannot work; the wrapper names node and the CLI
// by absolute path instead.

import fs from 'node:fs';
import path from 'node:path';
import { EXIT, KmodloadError } from '../errors';
import { packageRoot } from '../package-root';
import { KERNEL_MODULES_ANNOTATION } from '../container/request';
import type { HookStage } from './stage';

/** Where `--install-wrapper` puts the wrapper unless told otherwise, and what the configs
 *  name by default (the examples/ files use it too). */
export const DEFAULT_WRAPPER_PATH = '/usr/local/libexec/kmodload/kmodload-hook';

export type HookConfigFormat = 'isulad' | 'oci' | 'hooks.d' | 'hooks.d-poststop';

/** The runtime's timeout for each entry unless told otherwise: lcr's own default (30 s,
 *  then SIGKILL), written out so every runtime applies the same. */
export const DEFAULT_HOOK_TIMEOUT = 30;
export const HOOK_CONFIG_FORMATS: readonly HookConfigFormat[] = [
  'isulad',
  'oci',
  'hooks.d',
  'hooks.d-poststop',
];

export interface HookConfigOptions {
  /** Absolute path of the executable the runtime runs: the wrapper, or the single executable
   *  (build/kmodload), which needs none. */
  wrapperPath?: string;
  /** Extra arguments for every hook entry, after `--state STAGE` (e.g. ['--log', FILE]). */
  extraArgs?: string[];
  /** The runtime's `timeout` (seconds) for each entry; default DEFAULT_HOOK_TIMEOUT. */
  timeout?: number;
  /** hooks.d: run for every container (`when.always`), not only annotated ones, so that
   *  `KERNEL_MODULES` in the environment works under CRI-O/podman too. */
  always?: boolean;
  /** Add `--unload-on-stop` to the poststop entry (hooks.d: the poststop file,
   *  `hooks.d-poststop`, which only it has). */
  unloadOnStop?: boolean;
}

/** One OCI hook entry (config.json's `hooks`, hookspec.json, hooks.d's `hook`). */
export interface OciHookEntry {
  path: string;
  args: string[];
  env: string[];
  timeout?: number;
}

/** The entry that runs `kmodload hook` at `stage`. Every entry names its stage: a runtime's
 *  status does not tell it (crun sends "created" to prestart, runc to poststart). */
export function hookEntry(stage: HookStage, options: HookConfigOptions): OciHookEntry {
  const unload = options.unloadOnStop && stage === 'poststop';
  const hook: OciHookEntry = {
    path: options.wrapperPath ?? DEFAULT_WRAPPER_PATH,
    // argv[0] "kmodload" as the original's "syscontainer-hooks"; the wrapper passes "$@".
    args: [
      'kmodload',
      'hook',
      '--state',
      stage,
      ...(options.extraArgs ?? []),
      ...(unload ? ['--unload-on-stop'] : []),
    ],
    // An empty environment (as in iSulad's own examples): the hook needs nothing from it, and
    // a missing `env` would hand it the runtime's whole environment instead.
    env: [],
  };
  hook.timeout = options.timeout ?? DEFAULT_HOOK_TIMEOUT;
  return hook;
}

/** The configuration object for one runtime. */
export function hookConfig(format: HookConfigFormat, options: HookConfigOptions = {}): unknown {
  const wrapperPath = options.wrapperPath ?? DEFAULT_WRAPPER_PATH;
  if (!path.isAbsolute(wrapperPath)) {
    throw new KmodloadError(`hook path ${wrapperPath} is not absolute`, EXIT.usage);
  }
  switch (format) {
    case 'isulad':
      // iSulad's --hook-spec file: the three stages of the original syscontainer hook.
      return {
        prestart: [hookEntry('prestart', options)],
        poststart: [hookEntry('poststart', options)],
        poststop: [hookEntry('poststop', options)],
      };
    case 'oci':
      // The `hooks` member of a runc/crun config.json. createRuntime replaces the deprecated
      // prestart (same namespace, same moment); poststop releases the container's hold.
      return {
        hooks: {
          createRuntime: [hookEntry('createRuntime', options)],
          poststop: [hookEntry('poststop', options)],
        },
      };
    case 'hooks.d':
      // A hooks.d file has one entry for all its stages, and the entry must name its stage:
      // prestart here, poststop in the second file.
      return hooksDFile('prestart', options);
    case 'hooks.d-poststop':
      return hooksDFile('poststop', options);
    default:
      throw new KmodloadError(
        `unknown format "${String(format)}" (expected ${HOOK_CONFIG_FORMATS.join(', ')})`,
        EXIT.usage,
      );
  }
}

function hooksDFile(stage: 'prestart' | 'poststop', options: HookConfigOptions): unknown {
  return {
    version: '1.0.0',
    hook: hookEntry(stage, options),
    when: options.always
      ? { always: true }
      : { annotations: { [`^${KERNEL_MODULES_ANNOTATION.replace(/\./g, '\\.')}$`]: '.+' } },
    stages: [stage],
  };
}

/**
 * Why iSulad would refuse `file` as a hook path (it checks when the daemon loads the spec:
 * absolute, exists, owned by root, not world-writable, symlinks followed), or undefined.
 */
export function isuladHookPathProblem(
  file: string,
  howToCreate = `create it with --install-wrapper ${file}`,
): string | undefined {
  if (!path.isAbsolute(file)) return `${file} is not an absolute path`;
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    return `${file} does not exist (${howToCreate})`;
  }
  if (!stat.isFile()) return `${file} is not a regular file`;
  if (stat.uid !== 0) return `${file} is owned by uid ${stat.uid}, not root`;
  if (stat.mode & 0o002) return `${file} is world-writable`;
  return undefined;
}

/** As printed: two-space JSON and a final newline (the examples/ files are exactly this). */
export function formatHookConfig(
  format: HookConfigFormat,
  options: HookConfigOptions = {},
): string {
  return `${JSON.stringify(hookConfig(format, options), null, 2)}\n`;
}

/** How to put the single executable at `file`, for messages. */
export function binaryHowTo(file: string): string {
  return `copy build/kmodload, made by npm run build:binary, to ${file}`;
}

/** Single-quotes a word for /bin/sh. */
function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The package's CLI entry point, found from this file (src/hook or dist/hook). */
export function defaultCliPath(): string {
  return path.join(packageRoot(), 'bin', 'kmodload.js');
}

export interface WrapperOptions {
  /** Absolute path of node; default the running one (process.execPath). */
  nodePath?: string;
  /** Absolute path of bin/kmodload.js; default this package's. */
  cliPath?: string;
  /** What the script is, for its first comment line. */
  what?: string;
  /** Options for node itself, before the CLI. */
  nodeArgs?: string[];
}

export function wrapperScript(options: WrapperOptions = {}): string {
  const nodePath = options.nodePath ?? process.execPath;
  const cliPath = options.cliPath ?? defaultCliPath();
  for (const file of [nodePath, cliPath]) {
    if (!path.isAbsolute(file)) throw new KmodloadError(`${file} is not absolute`, EXIT.usage);
  }
  return [
    '#!/bin/sh',
    `# ${options.what ?? 'kmodload OCI hook, written by `kmodload hook-config --install-wrapper`.'}`,
    '# Runtimes start hooks with the environment of their entry, often empty (no PATH),',
    '# so node and the CLI are named by absolute path.',
    `exec ${[nodePath, ...(options.nodeArgs ?? []), cliPath].map(shellQuote).join(' ')} "$@"`,
    '',
  ].join('\n');
}

/**
 * Writes the wrapper: parent directories 0755, the file 0755 and, when we are root, owned by
 * root (iSulad refuses hooks that are not root-owned or are world-writable). Replaced
 * atomically, so a runtime never runs half a script.
 */
export function installWrapper(wrapperPath: string, options: WrapperOptions = {}): void {
  if (!path.isAbsolute(wrapperPath)) {
    throw new KmodloadError(`wrapper path ${wrapperPath} is not absolute`, EXIT.usage);
  }
  const script = wrapperScript(options);
  const temporary = `${wrapperPath}.${process.pid}.tmp`;
  try {
    fs.mkdirSync(path.dirname(wrapperPath), { recursive: true, mode: 0o755 });
    fs.writeFileSync(temporary, script, { mode: 0o755, flag: 'wx' });
    fs.chmodSync(temporary, 0o755); // the umask may have taken bits away
    if (process.geteuid?.() === 0) fs.chownSync(temporary, 0, 0);
    fs.renameSync(temporary, wrapperPath);
  } catch (error) {
    try {
      fs.rmSync(temporary, { force: true });
    } catch {
      // Nothing was written where nothing can be.
    }
    throw new KmodloadError(
      `cannot install the hook wrapper ${wrapperPath}: ${(error as Error).message}`,
      EXIT.environment,
    );
  }
}
