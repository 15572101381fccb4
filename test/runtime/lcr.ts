// Runs a hook entry the way iSulad's default runtime does: lcr on liblxc, with openEuler's lxc
// patches. iSulad cannot be installed here, so this follows lxc's behaviour as read from its
// source (run_oci_hooks and its helpers):
// - stdin: a pipe carrying the state built with printf, no escaping:
//   {"ociVersion":"","id":"ID","pid":PID,"root":"ROOTFS","bundle":"BUNDLE"}
//   (no status, no annotations; pid -1 when lxc has none, as at poststop), then closed;
// - environment: the daemon's PATH, LD_LIBRARY_PATH and LXC_* variables first, then the
//   entry's env; working directory /; argv is the entry's args;
// - stdout and stderr share one pipe, read once after the hook exits, at most 4095 bytes;
// - the entry's timeout (30 s when absent or 0), then SIGKILL;
// - a failing prestart refuses the start with "error running hook: exit status N, output: ...";
//   poststart and poststop failures are only logged.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface LcrHookEntry {
  path: string;
  args: string[];
  env?: string[];
  timeout?: number;
}

export interface LcrState {
  id: string;
  pid: number;
  root: string;
  bundle: string;
}

export interface LcrRun {
  /** The hook's exit status, or null when killed. */
  status: number | null;
  killed: boolean;
  /** stdout and stderr as lxc read them: one pipe, cut at 4095 bytes. */
  output: string;
  /** What iSulad shows for a failing hook (undefined when it succeeded). */
  error?: string;
}

/** The state as lxc prints it: no escaping of any field. */
export function lcrStateJson(state: LcrState): string {
  return `{"ociVersion":"","id":"${state.id}","pid":${state.pid},"root":"${state.root}","bundle":"${state.bundle}"}`;
}

/** The daemon's variables lxc passes first: PATH, LD_LIBRARY_PATH and LXC_*. */
function daemonEnvironment(): string[] {
  const env = [
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'LD_LIBRARY_PATH=/usr/lib64:/usr/lib',
    'LXC_NAME=container',
    'LXC_CONFIG_FILE=/var/lib/isulad/engines/lcr/container/config',
  ];
  return env;
}

export async function runLcrHook(
  entry: LcrHookEntry,
  state: LcrState,
  stage: 'prestart' | 'poststart' | 'poststop',
): Promise<LcrRun> {
  const timeoutSeconds = entry.timeout && entry.timeout > 0 ? entry.timeout : 30;
  // One pipe for both streams: a file both are redirected to, read after the exit.
  const outputFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-lcr-')), 'out');
  const outFd = fs.openSync(outputFile, 'w+');
  const env: Record<string, string> = {};
  for (const item of [...daemonEnvironment(), ...(entry.env ?? [])]) {
    const eq = item.indexOf('=');
    if (eq > 0) env[item.slice(0, eq)] = item.slice(eq + 1);
  }
  const [argv0, ...rest] = entry.args;
  const child = spawn(entry.path, rest, {
    argv0: argv0 ?? entry.path,
    cwd: '/',
    env,
    stdio: ['pipe', outFd, outFd],
  });
  child.stdin?.end(lcrStateJson(state));
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.kill('SIGKILL');
  }, timeoutSeconds * 1000);
  const status = await new Promise<number | null>((resolve) => {
    child.on('close', (code) => resolve(code));
    child.on('error', () => resolve(null));
  });
  clearTimeout(timer);
  fs.closeSync(outFd);
  const output = fs.readFileSync(outputFile).subarray(0, 4095).toString('utf8');
  fs.rmSync(path.dirname(outputFile), { recursive: true, force: true });
  const run: LcrRun = { status, killed, output };
  if (killed || status !== 0) {
    const why = killed ? `hook timed out after ${timeoutSeconds} s` : `exit status ${status}`;
    run.error = `running oci-${stage} hook caused "error running hook: ${why}, output: ${output}"`;
  }
  return run;
}
