// The streams and environment a command runs with: process's own for the real CLI, buffers in
// tests, and the runtime's (stdin = OCI state) for the hook.

import type { Writable } from 'node:stream';

export interface CliIO {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  /** Set when `stdin` is the process's own: its file descriptor, which the hook reads directly
   *  (creating process.stdin loads the stream and socket modules, a few ms of start-up). */
  stdinFd?: number;
}

/** The process's own output streams, once made (processIO() makes them on first use). */
const made: NodeJS.WritableStream[] = [];

/** Whether the process's output is still being written: a pipe whose reader is slow takes
 *  it in parts, after the command is done. */
export function outputPending(): boolean {
  return made.some((stream) => (stream as NodeJS.WritableStream & Writable).writableLength > 0);
}

/** A reader that goes away (`kmodload ... | head`) must not turn into a stack trace. */
function guard(stream: NodeJS.WritableStream): NodeJS.WritableStream {
  if (!made.includes(stream)) {
    made.push(stream);
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EPIPE') return;
      process.exitCode = 70;
    });
  }
  return stream;
}

/** The real process's streams and environment. The streams are made on first use: a hook that
 *  has nothing to say never creates them. */
export function processIO(): CliIO {
  return {
    get stdin() {
      return process.stdin;
    },
    get stdout() {
      return guard(process.stdout);
    },
    get stderr() {
      return guard(process.stderr);
    },
    env: process.env,
    stdinFd: 0,
  };
}
