// `kmodload hook` (what a runtime runs) and `kmodload hook-config` (what an administrator
// runs once to install it). Both return the exit status; nothing here throws to the caller.

import fs from 'node:fs';
import path from 'node:path';
import type { OptionSpec, ParsedArgs } from './args';
import { allValues, flag, lastValue, parseArgs, usageError } from './args';
import { INSECURE_FILES_SPEC, NODE_SPECS, nodeOptions } from './common';
import type { CliIO } from './io';
import { EXIT, KmodloadError } from '../errors';
import { errorText, oneLine, quote } from '../text';
import {
  DEFAULT_WRAPPER_PATH,
  HOOK_CONFIG_FORMATS,
  binaryHowTo,
  formatHookConfig,
  isuladHookPathProblem,
  installWrapper,
  type HookConfigFormat,
  type HookConfigOptions,
} from '../hook/config';
import type { HookLoader, HookOptions, HookResult } from '../hook/handler';
import { DEFAULT_STDIN_TIMEOUT, serveHook, type HookInput } from '../hook/serve';
import {
  KERNEL_MODULES_ANNOTATION,
  KERNEL_MODULES_ENV,
  MAX_MODULE_NAME_LENGTH,
  parseKernelModules,
} from '../container/request';
import { parseStage, type HookStage } from '../hook/stage';
import { DEFAULT_POLICY_DIR, DEFAULT_POLICY_FILE } from '../policy/types';
import { DEFAULT_STATE_DIR } from '../holds/defaults';
import { DEFAULT_HOOK_LOG } from '../container/audit';
import type { Kernel } from '../kernel/kernel';

export const HOOK_USAGE = `Usage: kmodload hook [--state STAGE] [--module NAME]... [--log FILE] [--policy FILE]...
                     [--state-dir DIR] [--unload-on-stop] [--stdin-timeout SEC] [-d DIR]
                     [-S VERSION] [-C DIR] [-n]

OCI runtime hook: reads the container state (JSON) on stdin, reads <bundle>/config.json and
loads the modules the container asks for, with their dependencies, as modprobe would.

The request: ${KERNEL_MODULES_ENV}=a,b in process.env and the annotation
${KERNEL_MODULES_ANNOTATION}=a,b (both: env names first, then the annotation's). Names are
separated by commas or blanks, and are letters, digits, _ and -, at most
${MAX_MODULE_NAME_LENGTH} characters; one bad name refuses all. Two ${KERNEL_MODULES_ENV}
entries with different values are refused. --module NAME adds NAME to the request, with
source cdi: the hook of a CDI device (kmodload cdi generate) names its module so.

Options:
  --state STAGE     prestart|createRuntime|createContainer|startContainer|poststart|poststop
                    (default: from the state's status). Modules load at prestart and
                    createRuntime; the other stages do nothing and succeed.
  --module NAME     load NAME too (repeatable; one module name or alias each); the
                    policy sees it as source cdi
  --log FILE        append one JSON line per run to FILE (its directory is created)
  --policy FILE     host policy file, repeatable; replaces the default
                    ${DEFAULT_POLICY_FILE} + ${DEFAULT_POLICY_DIR}/*.conf
  --stdin-timeout SEC
                    give up waiting for the state on stdin after SEC seconds (default
                    ${DEFAULT_STDIN_TIMEOUT}; exit 4)
  --state-dir DIR   where holds are kept (default ${DEFAULT_STATE_DIR}): a load records
                    which modules the container holds and which this hook inserted
  --unload-on-stop  at poststop, also unload the modules a kmodload hook inserted that no
                    other container holds and the kernel shows unused
  -d, --dirname DIR     module tree root (like modprobe -d)
  -S, --set-version VER kernel version (like modprobe -S)
  -C, --config DIR      modprobe.d directory replacing the defaults (repeatable)
  -n, --dry-run     plan and log, load nothing (and record no hold)
  --insecure-files  use files others than root can write (tests; logged as a warning)
  -h, --help        this text

A load refuses (exit 4) when node, the package, the policy, modprobe.d, the state directory
or the log's directory (or a directory above them) is not root's or is writable by group or
others, or the state or log directory path holds a symlink; kmodload doctor reports the same.

The host's modprobe.d blocks (blacklist X, install X /bin/true|/bin/false) deny X wherever it
appears in the plan; the policy decides what else a container may have (kmodload policy).

Exit status: 0 loaded or nothing asked, 1 the kernel refused a module, 2 bad usage,
3 request refused (invalid, unknown, blocked or denied name, install rule, too many
modules), nothing loaded, 4 container state, config.json, policy, modprobe.d or module
tree unreadable or invalid, or a module file unusable (not a regular file, too large,
does not decompress), 70 internal error, 128+N ended by signal N (143 SIGTERM),
logged as interrupted. On failure one line on stderr: "kmodload: cannot load NAME: REASON".
`;

export const HOOK_CONFIG_USAGE = `Usage: kmodload hook-config [--format isulad|oci|hooks.d|hooks.d-poststop]
                           [--install-wrapper PATH | --wrapper PATH | --binary PATH]
                           [--log FILE|none] [--policy FILE]... [--state-dir DIR] [--unload-on-stop]
                           [-d DIR] [-S VER] [-C DIR] [-n] [--timeout SEC] [--always]

Prints a hook configuration for this installation:
  isulad   hookspec.json for isulad --hook-spec (prestart, poststart, poststop)
  oci      the "hooks" member of a runc/crun config.json (createRuntime, poststop)
  hooks.d  a CRI-O/podman hooks.d file (prestart), for containers with the annotation
           ${KERNEL_MODULES_ANNOTATION} (--always: every container)
  hooks.d-poststop
           the second hooks.d file, for poststop (releases the hold; --unload-on-stop)
Every entry names its stage (--state): crun sends status "created" before the container
starts, runc after it.

The configs name a wrapper script (default ${DEFAULT_WRAPPER_PATH}) that runs
this node and this kmodload by absolute path, since runtimes give hooks no PATH.
  --install-wrapper PATH  write the wrapper (root-owned, 0755) at PATH and name it
  --wrapper PATH          name PATH without writing it
  --binary PATH           name PATH, the single executable (npm run build:binary), with
                          no wrapper; the default when this is the single executable
                          (then it names itself)
  --log FILE              the hook's log (default ${DEFAULT_HOOK_LOG}; none: no log)
  --policy, --state-dir, -d, -S, -C, -n
                          added to the hook's arguments (see kmodload hook --help)
  --unload-on-stop        added to the poststop entry (hooks.d: only with
                          --format hooks.d-poststop)
  --timeout SEC           the runtime's timeout for each hook entry (default 30)
  --always                hooks.d: run for every container
`;

/** The CLI's parser; the hooks take options only, no operands. */
function parseOptions(argv: string[], specs: OptionSpec[], command: string): ParsedArgs {
  const parsed = parseArgs(argv, specs, command);
  const extra = parsed.operands[0];
  if (extra !== undefined) throw usageError(`unexpected argument ${quote(extra)}`, command);
  return parsed;
}

function fail(io: CliIO, error: unknown): number {
  const status = error instanceof KmodloadError ? error.exitStatus : EXIT.internal;
  io.stderr.write(`kmodload: ${errorText(error)}\n`);
  return status;
}

/** A positive whole number of seconds from an option. */
export function seconds(text: string, option: string, command: string): number {
  if (!/^[0-9]+$/.test(text) || Number(text) <= 0) {
    throw usageError(`${option} needs a positive whole number of seconds`, command);
  }
  return Number(text);
}

/** `kmodload hook ARGS`: the OCI hook. Returns the exit status; on SIGTERM or SIGINT it
 *  returns at once (128 + the signal's number) after logging the run as interrupted, and the
 *  caller exits. `deps.loader` stands in for the public API in tests, `deps.kernel` for the
 *  kernel poststop unloads from, `deps.signals` for the process's signal events. */
export async function runHookCommand(
  argv: string[],
  io: CliIO,
  deps: {
    loader?: HookLoader;
    kernel?: Kernel;
    signals?: Pick<NodeJS.Process, 'once' | 'off'>;
  } = {},
): Promise<number> {
  let options: HookOptions;
  // Read through a getter: process.stdin (the stream modules, a few ms of start-up) is made
  // only when the state is not all on stdin when the hook starts (serve.ts readState()).
  const input: HookInput = {
    get stdin() {
      return io.stdin;
    },
  };
  if (io.stdinFd !== undefined) input.stdinFd = io.stdinFd;
  if (deps.signals) input.signals = deps.signals;
  try {
    const parsed = parseOptions(
      argv,
      [
        ...NODE_SPECS,
        INSECURE_FILES_SPEC,
        { long: 'state', value: true },
        { long: 'stdin-timeout', value: true },
        { long: 'module', value: true },
      ],
      'hook',
    );
    if (flag(parsed, 'help')) {
      io.stdout.write(HOOK_USAGE);
      return EXIT.ok;
    }
    options = nodeOptions(parsed);
    if (deps.loader) options.loader = deps.loader;
    if (deps.kernel) options.kernel = deps.kernel;
    const stage = lastValue(parsed, 'state');
    if (stage !== undefined) options.stage = parseStage(stage);
    const timeout = lastValue(parsed, 'stdin-timeout');
    if (timeout !== undefined) input.stdinTimeout = seconds(timeout, '--stdin-timeout', 'hook');
    const modules = allValues(parsed, 'module').map(moduleArgument);
    if (modules.length > 0) options.modules = modules;
  } catch (error) {
    return fail(io, error);
  }
  return report(io, await serveHook(input, options));
}

/** One `--module` value: a single name as a request names it. A bad one is the spec's
 *  mistake, not the container's: bad usage. */
function moduleArgument(value: string): string {
  let names: string[];
  try {
    names = parseKernelModules(value, '--module');
  } catch (error) {
    throw usageError(errorText(error), 'hook');
  }
  if (names.length !== 1 || names[0] !== value) {
    throw usageError(`--module ${quote(value)}: one module name per --module`, 'hook');
  }
  return value;
}

/** Writes the run's one stderr line (runtimes show a hook's stderr as one message) and
 *  returns its exit status. */
function report(io: CliIO, result: HookResult): number {
  const lines: string[] = [];
  if (!result.ok) lines.push(result.message ?? 'hook failed');
  for (const warning of result.warnings) lines.push(`warning: ${warning}`);
  if (result.logError) lines.push(`warning: ${result.logError}`);
  if (lines.length > 0) io.stderr.write(`kmodload: ${oneLine(lines.join('; '))}\n`);
  return result.exitStatus;
}

/** -d, -S, -C and -n as arguments for a hook entry: absolute paths, since runtimes start hooks
 *  in the bundle directory, where relative ones would point. */
export function loaderArguments(parsed: ParsedArgs): string[] {
  const args: string[] = [];
  const root = lastValue(parsed, 'dirname');
  if (root !== undefined) args.push('-d', path.resolve(root));
  const kernelVersion = lastValue(parsed, 'set-version');
  if (kernelVersion !== undefined) args.push('-S', kernelVersion);
  for (const dir of allValues(parsed, 'config')) args.push('-C', path.resolve(dir));
  if (flag(parsed, 'dry-run')) args.push('--dry-run');
  return args;
}

/** The node flags a hook entry passes to `kmodload hook`: --log (default DEFAULT_HOOK_LOG;
 *  `none`: no log), --policy, --state-dir, -d, -S, -C, -n. Paths absolute: hooks run in the
 *  bundle directory, where relative ones would point. */
export function hookEntryArguments(parsed: ParsedArgs): string[] {
  const args: string[] = [];
  const logFile = lastValue(parsed, 'log') ?? DEFAULT_HOOK_LOG;
  if (logFile !== 'none') args.push('--log', path.resolve(logFile));
  for (const file of allValues(parsed, 'policy')) args.push('--policy', path.resolve(file));
  const stateDir = lastValue(parsed, 'state-dir');
  if (stateDir !== undefined) args.push('--state-dir', path.resolve(stateDir));
  args.push(...loaderArguments(parsed));
  return args;
}

/** What a hook entry runs: a wrapper script, or the single executable (which needs none). */
export interface HookExecutable {
  /** Absolute. */
  path: string;
  /** --install-wrapper: write the wrapper there. */
  install: boolean;
  /** How to put it there, for messages. */
  howTo: string;
}

/** The executable from --install-wrapper, --wrapper and --binary (of those `command` takes);
 *  default the wrapper at DEFAULT_WRAPPER_PATH, or this single executable itself. */
export async function hookExecutable(
  parsed: ParsedArgs,
  command: string,
  wrapperHowTo: (file: string) => string,
): Promise<HookExecutable> {
  const installAt = lastValue(parsed, 'install-wrapper');
  const nameOnly = lastValue(parsed, 'wrapper');
  if (installAt !== undefined && nameOnly !== undefined) {
    throw usageError('--install-wrapper and --wrapper exclude each other', command);
  }
  const binaryAt = lastValue(parsed, 'binary');
  if (binaryAt !== undefined && (installAt ?? nameOnly) !== undefined) {
    throw usageError(
      `--binary and --${installAt !== undefined ? 'install-wrapper' : 'wrapper'} exclude each other`,
      command,
    );
  }
  const wrapper = installAt ?? nameOnly;
  // The single executable runs every command itself: the configs name it, no wrapper.
  let binary: string | undefined;
  if (binaryAt !== undefined) binary = path.resolve(binaryAt);
  else if (wrapper === undefined) {
    // Imported here: the hook itself must not load anything under native/.
    const { runningAsSingleExecutable } = await import('../native/embedded.js');
    if (runningAsSingleExecutable()) binary = process.execPath;
  }
  if (binary !== undefined) return { path: binary, install: false, howTo: binaryHowTo(binary) };
  const file = path.resolve(wrapper ?? DEFAULT_WRAPPER_PATH);
  return { path: file, install: installAt !== undefined, howTo: wrapperHowTo(file) };
}

/** A note on stderr when the executable a configuration names is not there (yet). */
export function noteMissingExecutable(io: CliIO, executable: HookExecutable): void {
  if (!executable.install && !fs.existsSync(executable.path)) {
    io.stderr.write(`kmodload: note: ${executable.path} does not exist yet; ${executable.howTo}\n`);
  }
}

/** `kmodload hook-config ARGS`: prints a configuration, optionally installs the wrapper. */
export async function runHookConfigCommand(argv: string[], io: CliIO): Promise<number> {
  let format: HookConfigFormat = 'isulad';
  const options: HookConfigOptions = {};
  try {
    const parsed = parseOptions(
      argv,
      [
        ...NODE_SPECS,
        { long: 'format', value: true },
        { long: 'wrapper', value: true },
        { long: 'install-wrapper', value: true },
        { long: 'binary', value: true },
        { long: 'timeout', value: true },
        { long: 'always' },
      ],
      'hook-config',
    );
    if (flag(parsed, 'help')) {
      io.stdout.write(HOOK_CONFIG_USAGE);
      return EXIT.ok;
    }
    const formatName = lastValue(parsed, 'format');
    if (formatName !== undefined) {
      if (!HOOK_CONFIG_FORMATS.includes(formatName as HookConfigFormat)) {
        throw usageError(
          `unknown format ${quote(formatName)} (expected ${HOOK_CONFIG_FORMATS.join(', ')})`,
          'hook-config',
        );
      }
      format = formatName as HookConfigFormat;
    }
    const executable = await hookExecutable(
      parsed,
      'hook-config',
      (file) => `create it with --install-wrapper ${file}`,
    );
    const timeout = lastValue(parsed, 'timeout');
    if (timeout !== undefined) options.timeout = seconds(timeout, '--timeout', 'hook-config');
    if (flag(parsed, 'always')) options.always = true;
    if (flag(parsed, 'unload-on-stop')) {
      // One hooks.d file cannot name two stages: the poststop entry is a file of its own.
      if (format === 'hooks.d') {
        throw usageError(
          '--unload-on-stop goes to the poststop file: --format hooks.d-poststop --unload-on-stop (--format hooks.d is the prestart file)',
          'hook-config',
        );
      }
      options.unloadOnStop = true;
    }
    options.wrapperPath = executable.path;
    options.extraArgs = hookEntryArguments(parsed);
    const text = formatHookConfig(format, options);
    if (executable.install) {
      // The wrapper runs this node and this package as root at every container start.
      const { runningFiles } = await import('../container/trust.js');
      const { assertTrusted } = await import('../trust.js');
      assertTrusted(runningFiles());
      installWrapper(executable.path);
    }
    // iSulad refuses (at daemon load) a hook that is missing, not root's or world-writable.
    const refusal =
      format === 'isulad' ? isuladHookPathProblem(executable.path, executable.howTo) : undefined;
    if (refusal !== undefined) {
      throw new KmodloadError(`iSulad would refuse the hook: ${refusal}`, EXIT.environment);
    }
    noteMissingExecutable(io, executable);
    io.stdout.write(text);
    return EXIT.ok;
  } catch (error) {
    return fail(io, error);
  }
}

export type { CliIO, HookStage };
