// `kmodload doctor`: the checks of src/doctor, one line each; exit 0 when nothing fails.

import { doctor, type DoctorOptions } from '../doctor/checks';
import { EXIT } from '../errors';
import { oneLine } from '../text';
import type { OptionSpec } from './args';
import { allValues, flag, lastValue, parseArgs, usageError } from './args';
import { TREE_SPECS, treeOptions, writeJson } from './common';
import type { CliIO } from './io';

const SPECS: OptionSpec[] = [
  ...TREE_SPECS,
  { long: 'policy', value: true },
  { long: 'hookspec', value: true },
  { long: 'hooks-dir', value: true },
  { long: 'nri-socket', value: true },
  { long: 'nri-plugins', value: true },
  { long: 'nri-conf', value: true },
  { long: 'json' },
  { long: 'help', short: 'h' },
];

export async function runDoctorCommand(argv: string[], io: CliIO): Promise<number> {
  const parsed = parseArgs(argv, SPECS, 'doctor');
  if (flag(parsed, 'help')) {
    io.stdout.write((await import('./help.js')).DOCTOR_HELP);
    return EXIT.ok;
  }
  const extra = parsed.operands[0];
  if (extra !== undefined) throw usageError(`unexpected argument '${extra}'`, 'doctor');
  const options: DoctorOptions = {
    ...treeOptions(parsed),
    policyFiles: allValues(parsed, 'policy'),
  };
  const nriSocket = lastValue(parsed, 'nri-socket');
  if (nriSocket !== undefined) options.nriSocket = nriSocket;
  const nriPluginsDir = lastValue(parsed, 'nri-plugins');
  if (nriPluginsDir !== undefined) options.nriPluginsDir = nriPluginsDir;
  const nriConfDir = lastValue(parsed, 'nri-conf');
  if (nriConfDir !== undefined) options.nriConfDir = nriConfDir;
  const hookspecs = allValues(parsed, 'hookspec');
  const hooksDirs = allValues(parsed, 'hooks-dir');
  if (hookspecs.length > 0 || hooksDirs.length > 0) {
    options.hookspecs = hookspecs;
    options.hooksDirs = hooksDirs;
  }
  const checks = await doctor(options);
  const failed = checks.some((check) => check.level === 'fail');
  if (flag(parsed, 'json')) writeJson(io.stdout, { ok: !failed, checks });
  else {
    for (const check of checks) {
      io.stdout.write(`${oneLine(`${check.level.padEnd(4)} ${check.name}: ${check.reason}`)}\n`);
    }
  }
  return failed ? EXIT.failed : EXIT.ok;
}
