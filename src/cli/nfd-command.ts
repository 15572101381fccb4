// `kmodload nfd`: writes this node's feature file for node-feature-discovery (the ready label
// from doctor, a label per module the policy explicitly allows and the tree has).

import fs from 'node:fs';
import path from 'node:path';
import { loadModprobeConfig } from '../config/index';
import { doctor, type DoctorOptions } from '../doctor/checks';
import { EXIT, KmodloadError } from '../errors';
import { explicitlyAllowed, featureFile } from '../policy/features';
import { readPolicy } from '../policy/index';
import { readTreeNames } from '../policy/tree';
import { errorText, oneLine } from '../text';
import type { OptionSpec } from './args';
import { allValues, flag, lastValue, parseArgs, usageError } from './args';
import { TREE_SPECS, treeOptions } from './common';
import { NFD_HELP } from './help';
import { replaceFile } from './install-node-command';
import type { CliIO } from './io';

export const DEFAULT_FEATURES_DIR = '/etc/kubernetes/node-feature-discovery/features.d';
/** The file's name in features.d. */
export const FEATURE_FILE = 'kmodload';

const SPECS: OptionSpec[] = [
  ...TREE_SPECS,
  { long: 'output', short: 'o', value: true },
  { long: 'policy', value: true },
  { long: 'hooks-dir', value: true },
  { long: 'nri-socket', value: true },
  { long: 'help', short: 'h' },
];

export async function runNfdCommand(argv: string[], io: CliIO): Promise<number> {
  const parsed = parseArgs(argv, SPECS, 'nfd');
  if (flag(parsed, 'help')) {
    io.stdout.write(NFD_HELP);
    return EXIT.ok;
  }
  const extra = parsed.operands[0];
  if (extra !== undefined) throw usageError(`unexpected argument '${extra}'`, 'nfd');
  const policyFiles = allValues(parsed, 'policy');
  const tree = treeOptions(parsed);
  const options: DoctorOptions = { ...tree, policyFiles };
  const hooksDirs = allValues(parsed, 'hooks-dir');
  // As doctor --hooks-dir: the directories named replace the default places.
  if (hooksDirs.length > 0) {
    options.hooksDirs = hooksDirs;
    options.hookspecs = [];
  }
  const nriSocket = lastValue(parsed, 'nri-socket');
  if (nriSocket !== undefined) options.nriSocket = nriSocket;

  const ready = !(await doctor(options)).some((check) => check.level === 'fail');
  const policy = await readPolicy(policyFiles);
  let modules: string[] = [];
  if (policy !== null) {
    const names = await readTreeNames(tree.root, tree.kernelVersion);
    const config = await loadModprobeConfig({
      moduleDir: names.moduleDir,
      strictConfig: true,
      ...(tree.configDirs ? { configDirs: tree.configDirs } : {}),
    });
    modules = explicitlyAllowed(policy, names, config);
  }
  const text = featureFile(ready, modules);
  const file = path.join(lastValue(parsed, 'output') ?? DEFAULT_FEATURES_DIR, FEATURE_FILE);
  let current: string | undefined;
  try {
    current = fs.readFileSync(file, 'utf8');
  } catch {
    current = undefined; // not there yet (or unreadable: replaced below)
  }
  if (current === text) return EXIT.ok;
  try {
    replaceFile(file, text, 0o644);
  } catch (error) {
    throw new KmodloadError(`cannot write ${file}: ${errorText(error)}`, EXIT.environment);
  }
  io.stderr.write(
    `kmodload: wrote ${oneLine(file)} (ready=${ready}, ${modules.length} allowed modules)\n`,
  );
  return EXIT.ok;
}
