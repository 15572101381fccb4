// `kmodload status` (who holds what) and `kmodload gc` (drop the holds of containers that are
// gone, and with --unload remove what that freed).

import { status } from '../api';
import { EXIT } from '../errors';
import type { ReleaseResult } from '../holds/holds';
import { DEFAULT_STATE_DIR } from '../holds/store';
import { oneLine } from '../text';
import type { OptionSpec } from './args';
import { flag, lastValue, parseArgs, usageError } from './args';
import { TREE_SPECS, treeOptions, writeJson } from './common';
import type { CliIO } from './io';

const STATE_SPECS: OptionSpec[] = [
  { long: 'state-dir', value: true },
  { long: 'json' },
  { long: 'help', short: 'h' },
];

function noOperands(operands: string[], command: string): void {
  const extra = operands[0];
  if (extra !== undefined) throw usageError(`unexpected argument '${extra}'`, command);
}

export async function runStatusCommand(argv: string[], io: CliIO): Promise<number> {
  const parsed = parseArgs(argv, STATE_SPECS, 'status');
  if (flag(parsed, 'help')) {
    io.stdout.write((await import('./help.js')).STATUS_HELP);
    return EXIT.ok;
  }
  noOperands(parsed.operands, 'status');
  const stateDir = lastValue(parsed, 'state-dir');
  const report = await status(stateDir === undefined ? {} : { stateDir });
  for (const warning of report.warnings)
    io.stderr.write(`kmodload: warning: ${oneLine(warning)}\n`);
  if (flag(parsed, 'json')) {
    writeJson(io.stdout, report);
    return EXIT.ok;
  }
  if (report.modules.length === 0 && report.stale.length === 0) {
    io.stdout.write(
      `no module loaded or held through kmodload (${stateDir ?? DEFAULT_STATE_DIR})\n`,
    );
  }
  for (const module of report.modules) {
    const kernel =
      module.state === 'absent' ? 'not loaded' : `${module.state}, refcnt ${module.refcnt ?? '?'}`;
    const holders = module.holders.map(
      (h) => `${h.id} (since ${h.since}, for ${h.request}${h.params ? `, with ${h.params}` : ''})`,
    );
    const inserted = module.params
      ? `inserted by kmodload with ${module.params.params} (asked by ${module.params.by})`
      : module.inserted
        ? 'inserted by kmodload'
        : 'not inserted by kmodload';
    io.stdout.write(
      oneLine(
        `${module.name}: ${kernel}; ${inserted}; ` +
          `${holders.length > 0 ? `held by ${holders.join(', ')}` : 'held by no container'}`,
      ) + '\n',
    );
  }
  for (const hold of report.stale) {
    io.stdout.write(
      oneLine(
        `stale hold: ${hold.id} (pid ${hold.pid ?? 'unknown'}, since ${hold.since}): ${hold.modules.map((m) => m.name).join(' ')}`,
      ) + '\n',
    );
  }
  return EXIT.ok;
}

/** "90s", "15m", "12h", "2d" -> milliseconds. */
function parseDuration(text: string): number {
  const match = /^([0-9]+)(s|m|h|d)$/.exec(text);
  if (!match) throw usageError(`--older-than takes a duration such as 90s, 15m, 12h or 2d`, 'gc');
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 's'];
  return Number(match[1]) * unit;
}

export async function runGcCommand(argv: string[], io: CliIO): Promise<number> {
  const parsed = parseArgs(
    argv,
    [...STATE_SPECS, { long: 'unload' }, { long: 'older-than', value: true }, ...TREE_SPECS],
    'gc',
  );
  if (flag(parsed, 'help')) {
    io.stdout.write((await import('./help.js')).GC_HELP);
    return EXIT.ok;
  }
  noOperands(parsed.operands, 'gc');
  const olderThan = lastValue(parsed, 'older-than');
  const stateDir = lastValue(parsed, 'state-dir');
  const { gc } = await import('../api.js');
  const result: ReleaseResult = await gc({
    ...treeOptions(parsed),
    ...(stateDir === undefined ? {} : { stateDir }),
    unload: flag(parsed, 'unload'),
    ...(olderThan === undefined ? {} : { olderThanMs: parseDuration(olderThan) }),
  });
  for (const warning of result.warnings)
    io.stderr.write(`kmodload: warning: ${oneLine(warning)}\n`);
  if (flag(parsed, 'json')) {
    writeJson(io.stdout, result);
    return EXIT.ok;
  }
  for (const hold of result.stale) io.stdout.write(`dropped hold ${oneLine(hold.id)}\n`);
  for (const module of result.modules) {
    const reason = module.reason ? ` (${module.reason})` : '';
    io.stdout.write(oneLine(`${module.status} ${module.name}${reason}`) + '\n');
  }
  return EXIT.ok;
}
