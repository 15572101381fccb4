// Options shared by `load` and `unload`, and the output formatting both use.

import type { ResolverOptions } from '../planner/index';
import type { OptionSpec, ParsedArgs } from './args';
import { allValues, lastValue } from './args';

export const TREE_SPECS: OptionSpec[] = [
  { long: 'dirname', short: 'd', value: true },
  { long: 'set-version', short: 'S', value: true },
  { long: 'config', short: 'C', value: true },
  { long: 'dry-run', short: 'n' },
  { long: 'verbose', short: 'v' },
  { long: 'quiet', short: 'q' },
  { long: 'json' },
  { long: 'help', short: 'h' },
];

/** -d, -S and -C as the resolver takes them. */
export function treeOptions(parsed: ParsedArgs): ResolverOptions {
  const options: ResolverOptions = {};
  const root = lastValue(parsed, 'dirname');
  if (root !== undefined) options.root = root;
  const version = lastValue(parsed, 'set-version');
  if (version !== undefined) options.kernelVersion = version;
  const configDirs = allValues(parsed, 'config');
  if (configDirs.length > 0) options.configDirs = configDirs;
  return options;
}

export function writeJson(stream: NodeJS.WritableStream, value: unknown): void {
  stream.write(`${JSON.stringify(value, null, 2)}\n`);
}
