// `kmodload COMMAND ...`: dispatch and the one place where errors become one stderr line and
// an exit status. Commands are imported when chosen, so `kmodload hook` with nothing to load
// never loads the planner or the addon.

import fs from 'node:fs';
import path from 'node:path';
import { EXIT, KmodloadError } from '../errors';
import { packageRoot } from '../package-root';
import { oneLine } from '../text';
import { usageError } from './args';
import type * as Help from './help';
import type { CliIO } from './io';

export type { CliIO } from './io';

type CommandRunner = (argv: string[], io: CliIO) => Promise<number>;

// Replaced by the bundler (scripts/make/build-binary.js): the single executable has no package.json.
declare const KMODLOAD_BUNDLED_VERSION: string | undefined;

/** The package version, read from package.json next to dist/ (or src/). */
export function packageVersion(): string {
  if (typeof KMODLOAD_BUNDLED_VERSION === 'string') return KMODLOAD_BUNDLED_VERSION;
  try {
    const file = path.join(packageRoot(), 'package.json');
    const json = JSON.parse(fs.readFileSync(file, 'utf8')) as { version?: unknown };
    return typeof json.version === 'string' ? json.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

function write(stream: NodeJS.WritableStream, text: string): void {
  stream.write(text);
}

/** The help texts, made when one is printed: a hook at work prints none. */
async function helpTexts(): Promise<typeof Help> {
  return import('./help.js');
}

async function hookCommands(): Promise<{
  runHookCommand: CommandRunner;
  runHookConfigCommand: CommandRunner;
}> {
  return import('./hook-command.js');
}

async function dispatch(argv: string[], io: CliIO): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
      // Started by a runtime from its NRI plugin directory: no arguments, only NRI's variables.
      if (io.env['NRI_PLUGIN_SOCKET'] !== undefined) {
        return (await import('./nri-command.js')).runNriCommand([], io);
      }
      throw usageError('missing command');
    case '-h':
    case '--help':
      write(io.stdout, (await helpTexts()).GLOBAL_HELP);
      return 0;
    case 'help': {
      const topic = rest[0];
      const help = await helpTexts();
      if (topic === undefined) write(io.stdout, help.GLOBAL_HELP);
      else if (topic === 'load') write(io.stdout, help.LOAD_HELP);
      else if (topic === 'unload') write(io.stdout, help.UNLOAD_HELP);
      else if (topic === 'policy') write(io.stdout, help.POLICY_HELP);
      else if (topic === 'status') write(io.stdout, help.STATUS_HELP);
      else if (topic === 'gc') write(io.stdout, help.GC_HELP);
      else if (topic === 'doctor') write(io.stdout, help.DOCTOR_HELP);
      else if (topic === 'install-node') write(io.stdout, help.INSTALL_NODE_HELP);
      else if (topic === 'nri') write(io.stdout, help.NRI_HELP);
      else if (topic === 'cdi') write(io.stdout, help.CDI_HELP);
      else if (topic === 'nfd') write(io.stdout, help.NFD_HELP);
      else if (topic === 'hook' || topic === 'hook-config') {
        return (await hookCommands())[topic === 'hook' ? 'runHookCommand' : 'runHookConfigCommand'](
          ['--help'],
          io,
        );
      } else throw usageError(`unknown command '${topic}'`);
      return 0;
    }
    case '-V':
    case '--version':
      write(io.stdout, `kmodload ${packageVersion()}\n`);
      return 0;
    case 'load':
      return (await import('./load-command.js')).runLoadCommand(rest, io);
    case 'unload':
      return (await import('./unload-command.js')).runUnloadCommand(rest, io);
    case 'hook':
      return (await hookCommands()).runHookCommand(rest, io);
    case 'hook-config':
      return (await hookCommands()).runHookConfigCommand(rest, io);
    case 'policy':
      return (await import('./policy-command.js')).runPolicyCommand(rest, io);
    case 'status':
      return (await import('./holds-command.js')).runStatusCommand(rest, io);
    case 'gc':
      return (await import('./holds-command.js')).runGcCommand(rest, io);
    case 'doctor':
      return (await import('./doctor-command.js')).runDoctorCommand(rest, io);
    case 'install-node':
      return (await import('./install-node-command.js')).runInstallNodeCommand(rest, io);
    case 'nri':
      return (await import('./nri-command.js')).runNriCommand(rest, io);
    case 'cdi':
      return (await import('./cdi-command.js')).runCdiCommand(rest, io);
    case 'nfd':
      return (await import('./nfd-command.js')).runNfdCommand(rest, io);
    default:
      if (command.startsWith('-')) throw usageError(`unknown option '${command}'`);
      throw usageError(`unknown command '${command}'`);
  }
}

/** Reports a failure as one stderr line; returns its exit status. */
export function reportError(error: unknown, io: CliIO): number {
  if (error instanceof KmodloadError) {
    write(io.stderr, `kmodload: ${oneLine(error.message)}\n`);
    return error.exitStatus;
  }
  const text = error instanceof Error ? error.message : String(error);
  write(io.stderr, `kmodload: internal error: ${oneLine(text)}\n`);
  return EXIT.internal;
}

/**
 * Runs the CLI with `argv` (without node and the script) and returns the exit status. Never
 * throws: every failure is one "kmodload: ..." line on stderr.
 */
export async function main(argv: string[], io: CliIO): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (error) {
    return reportError(error, io);
  }
}
