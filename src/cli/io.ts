// The streams and environment a command runs with: process's own for the real CLI, buffers in
// tests, and the runtime's (stdin = OCI state) for the hook.

export interface CliIO {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  /** Set when `stdin` is the process's own: its file descriptor, which the hook reads directly
   *  (creating process.stdin loads the stream and socket modules, a few ms of start-up). */
  stdinFd?: number;
}

const guarded = new WeakSet<NodeJS.WritableStream>();

/** A reader that goes away (`kmodload ... | head`) must not turn into a stack trace. */
function guard(stream: NodeJS.WritableStream): NodeJS.WritableStream {
  if (!guarded.has(stream)) {
    guarded.add(stream);
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
