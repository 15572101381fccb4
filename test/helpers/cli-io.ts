// The streams a command runs with (CliIO), in memory: a given stdin, and stdout/stderr that
// keep what the command wrote.

import { Readable, Writable } from 'node:stream';
import type { CliIO } from '../../src/cli/io';

export interface MemoryIO {
  io: CliIO;
  /** Everything written to stdout so far. */
  out(): string;
  /** Everything written to stderr so far. */
  err(): string;
}

function collector(chunks: Buffer[]): Writable {
  return new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      chunks.push(Buffer.from(chunk));
      done();
    },
  });
}

/** A CliIO whose stdin yields `stdin` as one chunk (no chunk at all when undefined), with the
 *  environment `env`. Writes are recorded as they happen. */
export function memoryIO(stdin?: string | Uint8Array, env: NodeJS.ProcessEnv = {}): MemoryIO {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  return {
    io: {
      stdin: Readable.from(stdin === undefined ? [] : [Buffer.from(stdin)]),
      stdout: collector(out),
      stderr: collector(err),
      env,
    },
    out: () => Buffer.concat(out).toString(),
    err: () => Buffer.concat(err).toString(),
  };
}
