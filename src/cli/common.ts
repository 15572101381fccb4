// Options several commands share, declared once, and the output formatting they use.

import type { NodeOptions } from '../container/options';
import type { ResolverOptions } from '../planner/index';
import type { OptionSpec, ParsedArgs } from './args';
import { allValues, flag, lastValue } from './args';

/** -d, -S, -C: which module tree and modprobe.d, as modprobe takes them. */
export const TREE_SPECS: OptionSpec[] = [
  { long: 'dirname', short: 'd', value: true },
  { long: 'set-version', short: 'S', value: true },
  { long: 'config', short: 'C', value: true },
];

/** What `load` and `unload` print, and how. */
export const OUTPUT_SPECS: OptionSpec[] = [
  { long: 'dry-run', short: 'n' },
  { long: 'verbose', short: 'v' },
  { long: 'quiet', short: 'q' },
  { long: 'json' },
  { long: 'help', short: 'h' },
];

/** How a node serves its containers: the same flags for the hook, the NRI plugin and the
 *  configurations that install them. */
export const NODE_SPECS: OptionSpec[] = [
  ...TREE_SPECS,
  { long: 'policy', value: true },
  { long: 'state-dir', value: true },
  { long: 'log', value: true },
  { long: 'unload-on-stop' },
  { long: 'dry-run', short: 'n' },
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

/** NODE_SPECS' flags as the container core takes them. */
export function nodeOptions(parsed: ParsedArgs): NodeOptions {
  const options: NodeOptions = treeOptions(parsed);
  const policyFiles = allValues(parsed, 'policy');
  if (policyFiles.length > 0) options.policyFiles = policyFiles;
  const stateDir = lastValue(parsed, 'state-dir');
  if (stateDir !== undefined) options.stateDir = stateDir;
  const logFile = lastValue(parsed, 'log');
  if (logFile !== undefined) options.logFile = logFile;
  if (flag(parsed, 'unload-on-stop')) options.unloadOnStop = true;
  if (flag(parsed, 'dry-run')) options.dryRun = true;
  if (flag(parsed, 'insecure-files')) options.insecureFiles = true;
  return options;
}

/** Files others than root can write are used anyway (tests); logged with every decision. */
export const INSECURE_FILES_SPEC: OptionSpec = { long: 'insecure-files' };

export function writeJson(stream: NodeJS.WritableStream, value: unknown): void {
  stream.write(`${JSON.stringify(value, null, 2)}\n`);
}
