// `kmodload unload [OPTIONS] NAME...`

import type { UnloadOptions } from '../api';
import { unload } from '../api';
import { EXIT } from '../errors';
import type { UnloadModuleResult } from '../loader/types';
import type { OptionSpec } from './args';
import { flag, lastValue, parseArgs, usageError } from './args';
import { OUTPUT_SPECS, TREE_SPECS, treeOptions, writeJson } from './common';
import type { CliIO } from './io';

const COMMAND = 'unload';

const UNLOAD_SPECS: OptionSpec[] = [
  ...TREE_SPECS,
  ...OUTPUT_SPECS,
  { long: 'force', short: 'f' },
  { long: 'allow-remove-commands' },
  { long: 'state-dir', value: true },
  { long: 'ignore-holds' },
];

const STATUS_WORDS: Record<UnloadModuleResult['status'], string> = {
  removed: 'removed',
  'not-loaded': 'not loaded',
  'would-remove': 'would remove',
  skipped: 'skipped',
  'in-use': 'left in use',
  failed: 'failed',
};

function moduleLine(module: UnloadModuleResult): string {
  const line = `${STATUS_WORDS[module.status]} ${module.name}`;
  if (!module.error) return line;
  return module.status === 'failed'
    ? `${line} (not fatal): ${module.error.message}`
    : `${line}: ${module.error.message}`;
}

export async function runUnloadCommand(argv: string[], io: CliIO): Promise<number> {
  const parsed = parseArgs(argv, UNLOAD_SPECS, COMMAND);
  if (flag(parsed, 'help')) {
    io.stdout.write((await import('./help.js')).UNLOAD_HELP);
    return EXIT.ok;
  }
  const names = parsed.operands;
  if (names.length === 0) throw usageError('missing module name', COMMAND);

  const options: UnloadOptions = { ...treeOptions(parsed) };
  if (flag(parsed, 'dry-run')) options.dryRun = true;
  if (flag(parsed, 'force')) options.force = true;
  if (flag(parsed, 'allow-remove-commands')) options.allowRemoveCommands = true;
  const stateDir = lastValue(parsed, 'state-dir');
  if (stateDir !== undefined) options.stateDir = stateDir;
  if (flag(parsed, 'ignore-holds')) options.ignoreHolds = true;

  const result = await unload(names, options);
  if (flag(parsed, 'json')) {
    writeJson(io.stdout, result);
  } else if (!flag(parsed, 'quiet')) {
    for (const module of result.modules) {
      if (module.status !== 'failed' || !module.required) {
        io.stdout.write(`${moduleLine(module)}\n`);
      }
    }
  }
  for (const module of result.modules) {
    if (module.status === 'failed' && module.required) {
      io.stderr.write(
        `kmodload: cannot unload ${module.name}: ${module.error?.message ?? 'unknown error'}\n`,
      );
    }
  }
  return result.ok ? EXIT.ok : EXIT.failed;
}
