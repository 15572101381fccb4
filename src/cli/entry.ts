// The process around the CLI: what bin/kmodload.js and the single executable run. main() never
// throws; this turns its answer into the exit status.

import { errorText } from '../text';
import { outputPending, processIO } from './io';
import { main } from './main';

/** Runs `kmodload ARGV...` in this process, sets process.exitCode and resolves with it once the
 *  command is done: nothing it started is left running then but its output (exitWhenWritten). */
export function run(argv: string[]): Promise<number> {
  const io = processIO();
  return main(argv, io).then(
    (status) => {
      process.exitCode = status;
      // 128 + N: a signal interrupted the hook, which logged it; work still pending (a
      // syscall on a worker thread, the stdin read) must not keep the process alive.
      if (status >= 128) process.exit(status);
      return status;
    },
    (error: unknown) => {
      // main() never rejects; this is the last guard against a stack trace.
      io.stderr.write(`kmodload: internal error: ${errorText(error)}\n`);
      process.exitCode = 70;
      return 70;
    },
  );
}

/** Ends the process once run() is done: at once, rather than after tearing the process down
 *  (its heap, the addon's objects, the platform's threads: a millisecond or two of a hook's
 *  run), unless its output is still being written, which the process then stays for. */
export function exitWhenWritten(status: number): void {
  if (!outputPending()) process.exit(status);
}
