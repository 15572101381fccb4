// Running modprobe.d `install` and `remove` rules. Which rules need a shell at all is the
// planner's to say (src/planner/rules.ts); a command runs only when the caller allowed it,
// through /bin/sh -c as modprobe's system() does.

import { spawn } from 'node:child_process';

/** kmod replaces every `$CMDLINE_OPTS` in the command text with the module's options. */
export function expandCommand(command: string, options: string): string {
  return command.split('$CMDLINE_OPTS').join(options);
}

export interface CommandOutcome {
  /** Exit status; -1 when the shell could not be started or was killed by a signal. */
  status: number;
  /** The last line the command wrote to stderr (for the one-line error). */
  lastErrorLine: string;
}

/** Runs a rule's command for `moduleName` with MODPROBE_MODULE set, as modprobe does. */
export type CommandRunner = (command: string, moduleName: string) => Promise<CommandOutcome>;

export const runShellCommand: CommandRunner = (command, moduleName) =>
  new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], {
      env: { ...process.env, MODPROBE_MODULE: moduleName },
      // stdout is not ours to write on (the hook's stdout belongs to the runtime).
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      // Keep only the tail: we report one line.
      stderr = (stderr + chunk).slice(-4096);
    });
    const lastLine = (): string =>
      stderr
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => line !== '')
        .pop() ?? '';
    child.on('error', (error) => resolve({ status: -1, lastErrorLine: error.message }));
    child.on('close', (code) => resolve({ status: code ?? -1, lastErrorLine: lastLine() }));
  });
