// The process around the CLI: what bin/kmodload.js and the single executable run. main() never
// throws; this turns its answer into the exit status.

import { errorText } from '../text';
import { processIO } from './io';
import { main } from './main';

/** Runs `kmodload ARGV...` in this process and sets process.exitCode. */
export function run(argv: string[]): void {
  const io = processIO();
  main(argv, io).then(
    (status) => {
      process.exitCode = status;
      // 128 + N: a signal interrupted the hook, which logged it; work still pending (a
      // syscall on a worker thread, the stdin read) must not keep the process alive.
      if (status >= 128) process.exit(status);
    },
    (error: unknown) => {
      // main() never rejects; this is the last guard against a stack trace.
      io.stderr.write(`kmodload: internal error: ${errorText(error)}\n`);
      process.exitCode = 70;
    },
  );
}
