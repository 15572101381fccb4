// The process around the CLI: what bin/kmodload.js and the single executable run. main() never
// throws; this turns its answer into the exit status and keeps a vanished reader
// (`kmodload ... | head`) from becoming a stack trace.

import { errorText } from '../text';
import { processIO } from './io';
import { main } from './main';

/** Runs `kmodload ARGV...` in this process and sets process.exitCode. */
export function run(argv: string[]): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EPIPE') return;
      process.exitCode = 70;
    });
  }
  main(argv, processIO()).then(
    (status) => {
      process.exitCode = status;
    },
    (error: unknown) => {
      // main() never rejects; this is the last guard against a stack trace.
      process.stderr.write(`kmodload: internal error: ${errorText(error)}\n`);
      process.exitCode = 70;
    },
  );
}
