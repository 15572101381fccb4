#!/usr/bin/env node
// The installed command: runs the compiled CLI (dist/) and turns its answer into the exit status.
'use strict';

// A reader that goes away (`kmodload ... | head`) must not turn into a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error) => {
    if (error && error.code === 'EPIPE') return;
    process.exitCode = 70;
  });
}

let cli;
try {
  cli = require('../dist/cli/main.js');
} catch (error) {
  // EXIT.environment: the installation is incomplete. Without dist/ there is no oneLine():
  // the first line of the reason will do.
  const reason = String((error && error.message) || error).split(/[\r\n]/)[0];
  process.stderr.write(`kmodload: not built (run npm run build): ${reason}\n`);
  process.exitCode = 4;
}

if (cli) {
  const io = {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
  };
  cli.main(process.argv.slice(2), io).then(
    (status) => {
      process.exitCode = status;
      // 128 + N: a signal interrupted the hook, which logged it; work still pending (a
      // syscall on a worker thread) must not keep the process alive.
      if (status >= 128) process.exit(status);
    },
    (error) => {
      // main() never rejects; this is the last guard against a stack trace.
      const reason = require('../dist/text.js').errorText(error);
      process.stderr.write(`kmodload: internal error: ${reason}\n`);
      process.exitCode = 70;
    },
  );
}
