// `--log FILE`: one JSON line per hook run. Many containers start at once, so many hooks
// append to the same file concurrently: the file is opened with O_APPEND and each line goes
// out in ONE write(2), which Linux performs atomically at the end of a regular file (the
// inode lock covers the offset update and the copy), so lines never interleave.

import fs from 'node:fs';
import path from 'node:path';
import type { ReleasedModule } from '../holds/holds';
import type { PolicyDecision } from '../policy/types';

export interface HookLogStep {
  request: string;
  name: string;
  kind: 'insmod' | 'install' | 'builtin';
  path?: string;
  options: string;
  command?: string;
  required: boolean;
}

export interface HookLogResult {
  request: string;
  name: string;
  status: string;
  path?: string;
  error?: { code: string; errno: number; message: string };
}

export interface HookLogRecord {
  time: string;
  id: string | null;
  stage: string | null;
  /** The container status the runtime reported. */
  status: string | null;
  request: string[];
  dryRun: boolean;
  /** The modules in the order they would be (or were) loaded, request by request. */
  plan: HookLogStep[];
  /** The host policy files that decided, or null: none (only the host's modprobe.d blocks
   *  and the default max-modules applied). */
  policy: string[] | null;
  /** The policy's decision for each module of the plan, and the rule that made it. */
  verdict: PolicyDecision[];
  /** The container's annotations that the policy tests, and the pod's name and namespace. */
  annotations: Record<string, string>;
  /** What happened to each module; empty when nothing was attempted. */
  results: HookLogResult[];
  /** Poststop: the container's hold released, and what that unloaded or left. */
  release?: HookLogRelease;
  durationMs: number;
  /** The hook's exit status: an EXIT value, or 128 + the signal's number when interrupted. */
  exitStatus: number;
  /** Set when a signal (SIGTERM, SIGINT) ended the run before it was done: `results` then
   *  lists what had been done so far. */
  interrupted?: true;
  error?: string;
  /** Problems that did not change the outcome. */
  warnings?: string[];
}

export interface HookLogRelease {
  released: boolean;
  /** Holds of containers that were gone, dropped on the way. */
  stale: string[];
  modules: ReleasedModule[];
}

/** Appends one line. Throws on failure; the caller decides what a lost log line means.
 *  A missing directory is created (0750: the log names containers and pods); the file itself
 *  is never followed through a symlink. */
export function appendLogLine(file: string, record: HookLogRecord): void {
  const line = Buffer.from(`${JSON.stringify(record)}\n`, 'utf8');
  const flags =
    fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW;
  let fd: number;
  try {
    fd = fs.openSync(file, flags, 0o640);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o750 });
    fd = fs.openSync(file, flags, 0o640);
  }
  try {
    // A short write to a regular file means the disk is (nearly) full; finish the line rather
    // than leave half a record. A write that makes no progress at all ends the attempt.
    let written = 0;
    while (written < line.length) {
      const n = fs.writeSync(fd, line, written, line.length - written);
      if (n <= 0) throw new Error(`short write (${written} of ${line.length} bytes)`);
      written += n;
    }
  } finally {
    fs.closeSync(fd);
  }
}
