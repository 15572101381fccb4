// `kmodload hook` (what a runtime runs) and `kmodload hook-config` (what an administrator
// runs once to install it). Both return the exit status; nothing here throws to the caller.

import fs from 'node:fs';
import path from 'node:path';
import type { OptionSpec, ParsedArgs } from './args';
import { allValues, flag, lastValue, parseArgs, usageError } from './args';
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
import {
  finishRefusedRun,
  startHook,
  type HookLoader,
  type HookOptions,
  type HookResult,
  type HookRunHandle,
} from '../hook/handler';
import {
  KERNEL_MODULES_ANNOTATION,
  KERNEL_MODULES_ENV,
  MAX_MODULE_NAME_LENGTH,
} from '../hook/request';
import { isLoadStage, parseStage, type HookStage } from '../hook/stage';
import { MAX_STATE_BYTES } from '../hook/state';
import { readBounded } from '../hook/text';
import { DEFAULT_POLICY_DIR, DEFAULT_POLICY_FILE } from '../policy/types';
import { DEFAULT_STATE_DIR } from '../holds/defaults';

/** Where `hook-config` sends the hook's log unless told otherwise: the audit trail. */
export const DEFAULT_HOOK_LOG = '/var/log/kmodload/hook.log';

/** How long the hook waits for the runtime to write the state and close stdin. */
export const DEFAULT_STDIN_TIMEOUT = 10;

export const HOOK_USAGE = `Usage: kmodload hook [--state STAGE] [--log FILE] [--policy FILE]... [--state-dir DIR]
                     [--unload-on-stop] [--stdin-timeout SEC] [-d DIR] [-S VERSION] [-C DIR] [-n]

OCI runtime hook: reads the container state (JSON) on stdin, reads <bundle>/config.json and
loads the modules the container asks for, with their dependencies, as modprobe would.

The request: ${KERNEL_MODULES_ENV}=a,b in process.env and the annotation
${KERNEL_MODULES_ANNOTATION}=a,b (both: env names first, then the annotation's). Names are
separated by commas or blanks, and are letters, digits, _ and -, at most
${MAX_MODULE_NAME_LENGTH} characters; one bad name refuses all. Two ${KERNEL_MODULES_ENV}
entries with different values are refused.

Options:
  --state STAGE     prestart|createRuntime|createContainer|startContainer|poststart|poststop
                    (default: from the state's status). Modules load at prestart and
                    createRuntime; the other stages do nothing and succeed.
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
  -h, --help        this text

The host's modprobe.d blocks (blacklist X, install X /bin/true|/bin/false) deny X wherever it
appears in the plan; the policy decides what else a container may have (kmodload policy).

Exit status: 0 loaded or nothing asked, 1 the kernel refused a module, 2 bad usage,
3 request refused (invalid, unknown, blocked or denied name, install rule, too many
modules), nothing loaded, 4 container state, config.json, policy, modprobe.d or module
tree unreadable or invalid, or a module file unusable (not a regular file, too large,
does not decompress), 70 internal error, 128+N ended by signal N (143 SIGTERM),
logged as interrupted. On failure one line on stderr: "kmodload: cannot load NAME: REASON".
`;

export const HOOK_CONFIG_USAGE = `Usage: kmodload hook-config [--format isulad|oci|hooks.d]
                           [--install-wrapper PATH | --wrapper PATH | --binary PATH]
                           [--log FILE|none] [--policy FILE]... [--state-dir DIR] [--unload-on-stop]
                           [-d DIR] [-S VER] [-C DIR] [-n] [--timeout SEC] [--always]

Prints a hook configuration for this installation:
  isulad   hookspec.json for isulad --hook-spec (prestart, poststart, poststop)
  oci      the "hooks" member of a runc/crun config.json (createRuntime, poststop)
  hooks.d  a CRI-O/podman hooks.d file (prestart), for containers with the annotation
           ${KERNEL_MODULES_ANNOTATION} (--always: every container)

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
  --unload-on-stop        added to the poststop entry (hooks.d: one entry for prestart
                          and poststop)
  --timeout SEC           the runtime's timeout for each hook entry (default 30)
  --always                hooks.d: run for every container
`;

const HOOK_SPECS: OptionSpec[] = [
  { long: 'dirname', short: 'd', value: true },
  { long: 'set-version', short: 'S', value: true },
  { long: 'config', short: 'C', value: true },
  { long: 'log', value: true },
  { long: 'policy', value: true },
  { long: 'state-dir', value: true },
  { long: 'unload-on-stop' },
  { long: 'dry-run', short: 'n' },
  { long: 'help', short: 'h' },
];

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
function seconds(text: string, option: string, command: string): number {
  if (!/^[0-9]+$/.test(text) || Number(text) <= 0) {
    throw usageError(`${option} needs a positive whole number of seconds`, command);
  }
  return Number(text);
}

/** The state on stdin, bounded in size and in time: a runtime that never closes the pipe
 *  would otherwise hold the hook, and the container's start, forever. */
async function readStdin(stdin: NodeJS.ReadableStream, timeoutSeconds: number): Promise<Buffer> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      // Stop reading, or the open pipe keeps the process alive.
      (stdin as Partial<NodeJS.ReadStream>).destroy?.();
      reject(
        new KmodloadError(
          `no container state on stdin within ${timeoutSeconds} s (the runtime did not close the pipe)`,
          EXIT.environment,
        ),
      );
    }, timeoutSeconds * 1000);
  });
  try {
    return await Promise.race([
      readBounded(stdin, MAX_STATE_BYTES, 'container state on stdin'),
      deadline,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function stateTooLarge(): KmodloadError {
  return new KmodloadError(
    `container state on stdin is larger than ${MAX_STATE_BYTES} bytes`,
    EXIT.environment,
  );
}

/**
 * The state read without waiting and without process.stdin (whose stream and socket modules
 * cost more start-up than the read): stdin opened again, non-blocking, through /proc/self/fd,
 * and read until EOF or until nothing more is there yet. Runtimes write the state and close
 * the pipe as they start the hook, so the end is usually there already. Undefined when that
 * open fails (no /proc, a socket) or the first read does.
 */
function readStdinNow(fd: number): { data: Buffer; complete: boolean } | undefined {
  let own: number;
  try {
    own = fs.openSync(`/proc/self/fd/${fd}`, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for (;;) {
      const buffer = Buffer.allocUnsafe(64 * 1024);
      let count: number;
      try {
        count = fs.readSync(own, buffer, 0, buffer.length, null);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EAGAIN') {
          return { data: Buffer.concat(chunks, size), complete: false };
        }
        if (size === 0) return undefined;
        throw error;
      }
      if (count === 0) return { data: Buffer.concat(chunks, size), complete: true };
      size += count;
      if (size > MAX_STATE_BYTES) throw stateTooLarge();
      chunks.push(buffer.subarray(0, count));
    }
  } finally {
    fs.closeSync(own);
  }
}

/** The state on stdin: what is there now, then (when the writer is not done) the rest from the
 *  stream, under the timeout. */
async function readState(io: CliIO, timeoutSeconds: number): Promise<Buffer> {
  const now = io.stdinFd === undefined ? undefined : readStdinNow(io.stdinFd);
  if (now?.complete) return now.data;
  const before = now?.data ?? Buffer.alloc(0);
  const rest = await readStdin(io.stdin, timeoutSeconds);
  if (before.length + rest.length > MAX_STATE_BYTES) throw stateTooLarge();
  return Buffer.concat([before, rest]);
}

/** `kmodload hook ARGS`: the OCI hook. Returns the exit status; on SIGTERM or SIGINT it
 *  returns at once (128 + the signal's number) after logging the run as interrupted, and the
 *  caller exits. `deps.loader` stands in for the public API in tests, `deps.signals` for the
 *  process's signal events. */
export async function runHookCommand(
  argv: string[],
  io: CliIO,
  deps: { loader?: HookLoader; signals?: Pick<NodeJS.Process, 'once' | 'off'> } = {},
): Promise<number> {
  const options: HookOptions = {};
  if (deps.loader) options.loader = deps.loader;
  let stdinTimeout = DEFAULT_STDIN_TIMEOUT;
  try {
    const parsed = parseOptions(
      argv,
      [...HOOK_SPECS, { long: 'state', value: true }, { long: 'stdin-timeout', value: true }],
      'hook',
    );
    if (flag(parsed, 'help')) {
      io.stdout.write(HOOK_USAGE);
      return EXIT.ok;
    }
    const stage = lastValue(parsed, 'state');
    if (stage !== undefined) options.stage = parseStage(stage);
    const root = lastValue(parsed, 'dirname');
    if (root !== undefined) options.root = root;
    const kernelVersion = lastValue(parsed, 'set-version');
    if (kernelVersion !== undefined) options.kernelVersion = kernelVersion;
    const configDirs = allValues(parsed, 'config');
    if (configDirs.length > 0) options.configDirs = configDirs;
    const logFile = lastValue(parsed, 'log');
    if (logFile !== undefined) options.logFile = logFile;
    const policyFiles = allValues(parsed, 'policy');
    if (policyFiles.length > 0) options.policyFiles = policyFiles;
    const stateDir = lastValue(parsed, 'state-dir');
    if (stateDir !== undefined) options.stateDir = stateDir;
    if (flag(parsed, 'unload-on-stop')) options.unloadOnStop = true;
    if (flag(parsed, 'dry-run')) options.dryRun = true;
    const timeout = lastValue(parsed, 'stdin-timeout');
    if (timeout !== undefined) stdinTimeout = seconds(timeout, '--stdin-timeout', 'hook');
  } catch (error) {
    return fail(io, error);
  }

  // A runtime that gives up on the hook (its timeout) kills it, while it waits for the state
  // or while it loads: either way the log line says what was done until then.
  const signals = deps.signals ?? process;
  let run: HookRunHandle | undefined;
  let interrupted = false;
  let onSignal: (signal: NodeJS.Signals) => void = () => undefined;
  const stopped = new Promise<HookResult>((resolve) => {
    onSignal = (signal) => {
      interrupted = true;
      if (run) return resolve(run.interrupt(signal));
      (io.stdin as Partial<NodeJS.ReadStream>).destroy?.();
      const waiting = new KmodloadError(
        `interrupted by ${signal} while waiting for the container state`,
        EXIT.failed,
      );
      resolve(finishRefusedRun(waiting, options, signal));
    };
  });
  signals.once('SIGTERM', onSignal);
  signals.once('SIGINT', onSignal);
  try {
    const reading = readInput(io, stdinTimeout, options, () => interrupted);
    const input = await Promise.race([reading, stopped]);
    if (!Buffer.isBuffer(input)) return report(io, input);
    run = startHook(input, options);
    const result = await Promise.race([run.result, stopped]);
    // Interrupted after inserting: the container's hold is recorded if that can be done at once
    // (the runtime may follow SIGTERM with SIGKILL), so the modules can be unloaded later.
    if (interrupted) await withinSeconds(run.recordInterrupted(), INTERRUPTED_RECORD_SECONDS);
    return report(io, result);
  } finally {
    signals.off('SIGTERM', onSignal);
    signals.off('SIGINT', onSignal);
  }
}

/** How long an interrupted hook tries to record the container's hold before it exits. */
const INTERRUPTED_RECORD_SECONDS = 1;

/** Waits for `work` at most `seconds`; its failure is ignored (it only adds a warning). */
async function withinSeconds(work: Promise<void>, seconds: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, seconds * 1000);
  });
  try {
    await Promise.race([work.catch(() => undefined), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** The state on stdin, or the logged result of a run refused because it could not be read.
 *  Once the run was interrupted (`cancelled`), a late failure logs nothing more. */
async function readInput(
  io: CliIO,
  timeoutSeconds: number,
  options: HookOptions,
  cancelled: () => boolean,
): Promise<Buffer | HookResult> {
  try {
    return await readState(io, timeoutSeconds);
  } catch (error) {
    // A stage that does nothing does not care what it was sent.
    if (cancelled() || (options.stage && !isLoadStage(options.stage))) return Buffer.alloc(0);
    const message =
      error instanceof KmodloadError
        ? error.message
        : `cannot read container state on stdin: ${(error as Error).message}`;
    return finishRefusedRun(new KmodloadError(message, EXIT.environment), options);
  }
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

/** `kmodload hook-config ARGS`: prints a configuration, optionally installs the wrapper. */
export async function runHookConfigCommand(argv: string[], io: CliIO): Promise<number> {
  let format: HookConfigFormat = 'isulad';
  let wrapperPath = DEFAULT_WRAPPER_PATH;
  let install = false;
  const extraArgs: string[] = [];
  const options: HookConfigOptions = {};
  try {
    const parsed = parseOptions(
      argv,
      [
        ...HOOK_SPECS,
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
    const installAt = lastValue(parsed, 'install-wrapper');
    const nameOnly = lastValue(parsed, 'wrapper');
    if (installAt !== undefined && nameOnly !== undefined) {
      throw usageError('--install-wrapper and --wrapper exclude each other', 'hook-config');
    }
    const binaryAt = lastValue(parsed, 'binary');
    if (binaryAt !== undefined && (installAt ?? nameOnly) !== undefined) {
      throw usageError(
        `--binary and --${installAt !== undefined ? 'install-wrapper' : 'wrapper'} exclude each other`,
        'hook-config',
      );
    }
    install = installAt !== undefined;
    const wrapper = installAt ?? nameOnly;
    if (wrapper !== undefined) wrapperPath = path.resolve(wrapper);
    // The single executable runs every command itself: the configs name it, no wrapper.
    let binary: string | undefined;
    if (binaryAt !== undefined) binary = path.resolve(binaryAt);
    else if (wrapper === undefined) {
      // Imported here: the hook itself must not load anything under native/.
      const { runningAsSingleExecutable } = await import('../native/embedded.js');
      if (runningAsSingleExecutable()) binary = process.execPath;
    }
    if (binary !== undefined) wrapperPath = binary;
    const timeout = lastValue(parsed, 'timeout');
    if (timeout !== undefined) options.timeout = seconds(timeout, '--timeout', 'hook-config');
    if (flag(parsed, 'always')) options.always = true;
    // Hooks run in the bundle directory: relative paths would point into it.
    const logFile = lastValue(parsed, 'log') ?? DEFAULT_HOOK_LOG;
    if (logFile !== 'none') extraArgs.push('--log', path.resolve(logFile));
    for (const file of allValues(parsed, 'policy')) extraArgs.push('--policy', path.resolve(file));
    const stateDir = lastValue(parsed, 'state-dir');
    if (stateDir !== undefined) extraArgs.push('--state-dir', path.resolve(stateDir));
    if (flag(parsed, 'unload-on-stop')) options.unloadOnStop = true;
    extraArgs.push(...loaderArguments(parsed));
    options.wrapperPath = wrapperPath;
    options.extraArgs = extraArgs;
    const text = formatHookConfig(format, options);
    if (install) installWrapper(wrapperPath);
    // iSulad refuses (at daemon load) a hook that is missing, not root's or world-writable.
    const howTo =
      binary !== undefined
        ? binaryHowTo(wrapperPath)
        : `create it with --install-wrapper ${wrapperPath}`;
    const refusal = format === 'isulad' ? isuladHookPathProblem(wrapperPath, howTo) : undefined;
    if (refusal !== undefined) {
      throw new KmodloadError(`iSulad would refuse the hook: ${refusal}`, EXIT.environment);
    }
    if (!install && !fs.existsSync(wrapperPath)) {
      io.stderr.write(`kmodload: note: ${wrapperPath} does not exist yet; ${howTo}\n`);
    }
    io.stdout.write(text);
    return EXIT.ok;
  } catch (error) {
    return fail(io, error);
  }
}

export type { CliIO, HookStage };
