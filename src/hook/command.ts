// `kmodload hook` (what a runtime runs) and `kmodload hook-config` (what an administrator
// runs once to install it). Both return the exit status; nothing here throws to the caller.

import fs from 'node:fs';
import path from 'node:path';
import type { CliIO } from '../cli/io';
import { EXIT, KmodloadError } from '../errors';
import {
  DEFAULT_WRAPPER_PATH,
  HOOK_CONFIG_FORMATS,
  formatHookConfig,
  installWrapper,
  type HookConfigFormat,
  type HookConfigOptions,
} from './config';
import { handleHook, type HookLoader, type HookOptions } from './handler';
import { KERNEL_MODULES_ANNOTATION, KERNEL_MODULES_ENV, MAX_MODULE_NAME_LENGTH } from './request';
import { isLoadStage, parseStage, type HookStage } from './stage';
import { MAX_STATE_BYTES } from './state';
import { oneLine, readBounded } from './text';

export const HOOK_USAGE = `Usage: kmodload hook [--state STAGE] [--log FILE] [-d DIR] [-S VERSION] [-C DIR] [-n]

OCI runtime hook: reads the container state (JSON) on stdin, reads <bundle>/config.json and
loads the modules the container asks for, with their dependencies, as modprobe would.

The request: the first ${KERNEL_MODULES_ENV}=a,b entry of process.env and the annotation
${KERNEL_MODULES_ANNOTATION}=a,b (both: env names first, then the annotation's). Names are
letters, digits, _ and -, at most ${MAX_MODULE_NAME_LENGTH} characters; one bad name refuses all.

Options:
  --state STAGE     prestart|createRuntime|createContainer|startContainer|poststart|poststop
                    (default: from the state's status). Modules load at prestart and
                    createRuntime; the other stages do nothing and succeed.
  --log FILE        append one JSON line per run to FILE
  -d, --dirname DIR     module tree root (like modprobe -d)
  -S, --set-version VER kernel version (like modprobe -S)
  -C, --config DIR      modprobe.d directory replacing the defaults (repeatable)
  -n, --dry-run     plan and log, load nothing
  -h, --help        this text

Exit status: 0 loaded or nothing asked, 1 the kernel refused a module, 2 bad usage,
3 request refused (invalid, unknown or blacklisted name, install rule), nothing loaded,
4 container state, config.json or module tree unreadable, 70 internal error. On failure one
line on stderr:
"kmodload: cannot load NAME: REASON".
`;

export const HOOK_CONFIG_USAGE = `Usage: kmodload hook-config [--format isulad|oci|hooks.d] [--install-wrapper PATH | --wrapper PATH]
                           [--log FILE] [-d DIR] [-S VER] [-C DIR] [-n] [--timeout SEC] [--always]

Prints a hook configuration for this installation:
  isulad   hookspec.json for isulad --hook-spec (prestart, poststart, poststop)
  oci      the "hooks" member of a runc/crun config.json (createRuntime, poststop)
  hooks.d  a CRI-O/podman hooks.d file (prestart), for containers with the annotation
           ${KERNEL_MODULES_ANNOTATION} (--always: every container)

The configs name a wrapper script (default ${DEFAULT_WRAPPER_PATH}) that runs
this node and this kmodload by absolute path, since runtimes give hooks no PATH.
  --install-wrapper PATH  write the wrapper (root-owned, 0755) at PATH and name it
  --wrapper PATH          name PATH without writing it
  --log, -d, -S, -C, -n   added to the hook's arguments (see kmodload hook --help)
  --timeout SEC           the runtime's timeout for each hook entry
  --always                hooks.d: run for every container
`;

class UsageError extends KmodloadError {
  constructor(message: string) {
    super(message, EXIT.usage);
  }
}

/** A small getopt: `--long VALUE`, `--long=VALUE`, `-x VALUE`, `-xVALUE`, flags. */
function parseArgs(
  argv: string[],
  valued: Record<string, string>,
  flags: Record<string, string>,
): Array<[string, string]> {
  const parsed: Array<[string, string]> = [];
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index] as string;
    let key: string | undefined;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const equals = arg.indexOf('=');
      key = equals < 0 ? arg : arg.slice(0, equals);
      if (equals >= 0) inline = arg.slice(equals + 1);
    } else if (arg.startsWith('-') && arg.length > 1) {
      key = arg.slice(0, 2);
      if (arg.length > 2) inline = arg.slice(2);
    } else {
      throw new UsageError(`unexpected argument "${oneLine(arg)}"`);
    }
    if (valued[key] !== undefined) {
      let value = inline;
      if (value === undefined) {
        value = argv[++index];
        if (value === undefined) throw new UsageError(`option ${key} needs a value`);
      }
      parsed.push([valued[key] as string, value]);
    } else if (flags[key] !== undefined && inline === undefined) {
      parsed.push([flags[key] as string, '']);
    } else {
      throw new UsageError(`unknown option "${oneLine(arg)}"`);
    }
  }
  return parsed;
}

const LOADER_VALUED: Record<string, string> = {
  '-d': 'root',
  '--dirname': 'root',
  '-S': 'kernelVersion',
  '--set-version': 'kernelVersion',
  '-C': 'config',
  '--config': 'config',
  '--log': 'log',
};
const LOADER_FLAGS: Record<string, string> = {
  '-n': 'dryRun',
  '--dry-run': 'dryRun',
  '-h': 'help',
  '--help': 'help',
};

function fail(io: CliIO, error: unknown): number {
  const status = error instanceof KmodloadError ? error.exitStatus : EXIT.internal;
  const message = error instanceof Error ? error.message : String(error);
  io.stderr.write(`kmodload: ${oneLine(message)}\n`);
  return status;
}

/** `kmodload hook ARGS`: the OCI hook. Returns the exit status. `deps.loader` stands in for
 *  the public API in tests. */
export async function runHookCommand(
  argv: string[],
  io: CliIO,
  deps: { loader?: HookLoader } = {},
): Promise<number> {
  const options: HookOptions = {};
  if (deps.loader) options.loader = deps.loader;
  try {
    for (const [key, value] of parseArgs(
      argv,
      { ...LOADER_VALUED, '--state': 'stage' },
      LOADER_FLAGS,
    )) {
      switch (key) {
        case 'help':
          io.stdout.write(HOOK_USAGE);
          return EXIT.ok;
        case 'stage':
          options.stage = parseStage(value);
          break;
        case 'root':
          options.root = value;
          break;
        case 'kernelVersion':
          options.kernelVersion = value;
          break;
        case 'config':
          options.configDirs = [...(options.configDirs ?? []), value];
          break;
        case 'log':
          options.logFile = value;
          break;
        case 'dryRun':
          options.dryRun = true;
          break;
      }
    }
  } catch (error) {
    return fail(io, error);
  }

  let input: Buffer;
  try {
    input = await readBounded(io.stdin, MAX_STATE_BYTES, 'container state on stdin');
  } catch (error) {
    // A stage that does nothing does not care what it was sent.
    if (options.stage && !isLoadStage(options.stage)) input = Buffer.alloc(0);
    else {
      const message =
        error instanceof KmodloadError
          ? error.message
          : `cannot read container state on stdin: ${(error as Error).message}`;
      return fail(io, new KmodloadError(message, EXIT.environment));
    }
  }

  const result = await handleHook(input, options);
  if (result.logError) io.stderr.write(`kmodload: warning: ${result.logError}\n`);
  if (!result.ok) io.stderr.write(`kmodload: ${result.message ?? 'hook failed'}\n`);
  return result.exitStatus;
}

/** `kmodload hook-config ARGS`: prints a configuration, optionally installs the wrapper. */
export async function runHookConfigCommand(argv: string[], io: CliIO): Promise<number> {
  let format: HookConfigFormat = 'isulad';
  let wrapperPath = DEFAULT_WRAPPER_PATH;
  let install = false;
  const extraArgs: string[] = [];
  const options: HookConfigOptions = {};
  try {
    const parsed = parseArgs(
      argv,
      {
        ...LOADER_VALUED,
        '--format': 'format',
        '--wrapper': 'wrapper',
        '--install-wrapper': 'installWrapper',
        '--timeout': 'timeout',
      },
      { ...LOADER_FLAGS, '--always': 'always' },
    );
    for (const [key, value] of parsed) {
      switch (key) {
        case 'help':
          io.stdout.write(HOOK_CONFIG_USAGE);
          return EXIT.ok;
        case 'format':
          if (!HOOK_CONFIG_FORMATS.includes(value as HookConfigFormat)) {
            throw new UsageError(
              `unknown format "${oneLine(value)}" (expected ${HOOK_CONFIG_FORMATS.join(', ')})`,
            );
          }
          format = value as HookConfigFormat;
          break;
        case 'installWrapper':
          install = true;
          wrapperPath = path.resolve(value);
          break;
        case 'wrapper':
          wrapperPath = path.resolve(value);
          break;
        case 'timeout': {
          const seconds = Number(value);
          if (!/^[0-9]+$/.test(value) || seconds <= 0) {
            throw new UsageError(`--timeout needs a positive whole number of seconds`);
          }
          options.timeout = seconds;
          break;
        }
        case 'always':
          options.always = true;
          break;
        // Hooks run in the bundle directory: relative paths would point into it.
        case 'root':
          extraArgs.push('-d', path.resolve(value));
          break;
        case 'config':
          extraArgs.push('-C', path.resolve(value));
          break;
        case 'log':
          extraArgs.push('--log', path.resolve(value));
          break;
        case 'kernelVersion':
          extraArgs.push('-S', value);
          break;
        case 'dryRun':
          extraArgs.push('--dry-run');
          break;
      }
    }
    options.wrapperPath = wrapperPath;
    options.extraArgs = extraArgs;
    const text = formatHookConfig(format, options);
    if (install) installWrapper(wrapperPath);
    else if (!fs.existsSync(wrapperPath)) {
      io.stderr.write(
        `kmodload: note: ${wrapperPath} does not exist yet; create it with --install-wrapper ${wrapperPath}\n`,
      );
    }
    io.stdout.write(text);
    return EXIT.ok;
  } catch (error) {
    return fail(io, error);
  }
}

export type { CliIO, HookStage };
