// A hook run as a runtime starts it: the state read from stdin under a size cap and a
// deadline, SIGTERM/SIGINT turned into a logged, interrupted result, and the hold of what an
// interrupted run inserted recorded before the process goes. For `kmodload hook` and for any
// Node program that is itself a runtime's hook.

import fs from 'node:fs';
import { EXIT, KmodloadError } from '../errors';
import {
  finishRefusedRun,
  startHook,
  type HookOptions,
  type HookResult,
  type HookRunHandle,
} from './handler';
import { isLoadStage } from './stage';
import { MAX_STATE_BYTES } from './state';
import { readBounded } from './text';

/** How long the hook waits for the runtime to write the state and close stdin. */
export const DEFAULT_STDIN_TIMEOUT = 10;

/** How long an interrupted hook tries to record the container's hold before it exits. */
const INTERRUPTED_RECORD_SECONDS = 1;

export interface HookInput {
  /** The state's stream. */
  stdin: NodeJS.ReadableStream;
  /** stdin's file descriptor when it is the process's own: read directly, without creating
   *  process.stdin (its stream and socket modules cost start-up). */
  stdinFd?: number;
  /** Seconds to wait for the state (default DEFAULT_STDIN_TIMEOUT). */
  stdinTimeout?: number;
  /** Where SIGTERM and SIGINT come from (default the process). */
  signals?: Pick<NodeJS.Process, 'once' | 'off'>;
}

/**
 * Reads the state and runs the hook. On SIGTERM or SIGINT it returns at once (exit status
 * 128 + the signal's number) after logging the run as interrupted. Never throws.
 */
export async function serveHook(input: HookInput, options: HookOptions = {}): Promise<HookResult> {
  const timeout = input.stdinTimeout ?? DEFAULT_STDIN_TIMEOUT;
  // A runtime that gives up on the hook (its timeout) kills it, while it waits for the state
  // or while it loads: either way the log line says what was done until then.
  const signals = input.signals ?? process;
  let run: HookRunHandle | undefined;
  let interrupted = false;
  let onSignal: (signal: NodeJS.Signals) => void = () => undefined;
  const stopped = new Promise<HookResult>((resolve) => {
    onSignal = (signal) => {
      interrupted = true;
      if (run) return resolve(run.interrupt(signal));
      (input.stdin as Partial<NodeJS.ReadStream>).destroy?.();
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
    const reading = readInput(input, timeout, options, () => interrupted);
    const state = await Promise.race([reading, stopped]);
    if (!Buffer.isBuffer(state)) return state;
    run = startHook(state, options);
    const result = await Promise.race([run.result, stopped]);
    // Interrupted after inserting: the container's hold is recorded if that can be done at once
    // (the runtime may follow SIGTERM with SIGKILL), so the modules can be unloaded later.
    if (interrupted) await withinSeconds(run.recordInterrupted(), INTERRUPTED_RECORD_SECONDS);
    return result;
  } finally {
    signals.off('SIGTERM', onSignal);
    signals.off('SIGINT', onSignal);
  }
}

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
  input: HookInput,
  timeoutSeconds: number,
  options: HookOptions,
  cancelled: () => boolean,
): Promise<Buffer | HookResult> {
  try {
    return await readState(input, timeoutSeconds);
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

function stateTooLarge(): KmodloadError {
  return new KmodloadError(
    `container state on stdin is larger than ${MAX_STATE_BYTES} bytes`,
    EXIT.environment,
  );
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

/**
 * The state read without waiting and without process.stdin: stdin opened again,
 * non-blocking, through /proc/self/fd, and read until EOF or until nothing more is there
 * yet. Runtimes write the state and close the pipe as they start the hook, so the end is
 * usually there already. Undefined when that open fails (no /proc, a socket) or the first
 * read does.
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
async function readState(input: HookInput, timeoutSeconds: number): Promise<Buffer> {
  const now = input.stdinFd === undefined ? undefined : readStdinNow(input.stdinFd);
  if (now?.complete) return now.data;
  const before = now?.data ?? Buffer.alloc(0);
  const rest = await readStdin(input.stdin, timeoutSeconds);
  if (before.length + rest.length > MAX_STATE_BYTES) throw stateTooLarge();
  return Buffer.concat([before, rest]);
}
