// `kmodload cdi generate`: the host's modules as CDI devices, written where the engines read
// them, or (--check) compared with what is there.

import path from 'node:path';
import {
  DEFAULT_CDI_FILE,
  digitsFile,
  formatSpec,
  generateCdiSpecs,
  parseSet,
  staleSpecFiles,
  writeSpecFiles,
  type CdiSpec,
  type GenerateOptions,
  type SpecFile,
} from '../cdi/index';
import { EXIT } from '../errors';
import { DEFAULT_POLICY_FILE } from '../policy/types';
import { oneLine, quote } from '../text';
import type { OptionSpec, ParsedArgs } from './args';
import { allValues, flag, lastValue, parseArgs, usageError } from './args';
import { NODE_SPECS, nodeOptions } from './common';
import { hookEntryArguments, hookExecutable, noteMissingExecutable, seconds } from './hook-command';
import type { CliIO } from './io';

const COMMAND = 'cdi';
const GENERATE = 'cdi generate';

const GENERATE_SPECS: OptionSpec[] = [
  ...NODE_SPECS,
  { long: 'output', value: true },
  { long: 'binary', value: true },
  { long: 'wrapper', value: true },
  { long: 'set', value: true },
  { long: 'timeout', value: true },
  { long: 'check' },
];

/** The main file: where the engines look, so .json or .yaml (JSON is YAML). */
function mainFile(parsed: ParsedArgs): string {
  const file = path.resolve(lastValue(parsed, 'output') ?? DEFAULT_CDI_FILE);
  if (!/\.(json|yaml)$/.test(file)) {
    throw usageError(
      `--output ${quote(file)}: the engines read only files ending in .json or .yaml`,
      GENERATE,
    );
  }
  return file;
}

function describe(spec: CdiSpec | undefined): string {
  if (!spec) return 'no device';
  const count = spec.devices.length;
  return `${count} device${count === 1 ? '' : 's'}, cdiVersion ${spec.cdiVersion}`;
}

async function generate(parsed: ParsedArgs, io: CliIO): Promise<number> {
  const extra = parsed.operands[0];
  if (extra !== undefined) throw usageError(`unexpected argument ${quote(extra)}`, GENERATE);
  const executable = await hookExecutable(
    parsed,
    GENERATE,
    (file) => `create it with kmodload hook-config --install-wrapper ${file}`,
  );
  const file = mainFile(parsed);
  const node = nodeOptions(parsed);
  const options: GenerateOptions = {
    wrapperPath: executable.path,
    nodeArguments: hookEntryArguments(parsed),
    sets: allValues(parsed, 'set').map(parseSet),
  };
  if (node.root !== undefined) options.root = node.root;
  if (node.kernelVersion !== undefined) options.kernelVersion = node.kernelVersion;
  if (node.configDirs !== undefined) options.configDirs = node.configDirs;
  if (node.policyFiles !== undefined) options.policyFiles = node.policyFiles;
  const timeout = lastValue(parsed, 'timeout');
  if (timeout !== undefined) options.timeout = seconds(timeout, '--timeout', GENERATE);
  if (node.unloadOnStop) options.unloadOnStop = true;

  const { offer, specs } = await generateCdiSpecs(options);
  const files: SpecFile[] = [
    { file, text: specs.main ? formatSpec(specs.main) : undefined },
    { file: digitsFile(file), text: specs.digits ? formatSpec(specs.digits) : undefined },
  ];

  if (flag(parsed, 'check')) {
    const stale = staleSpecFiles(files);
    for (const why of stale) io.stderr.write(`kmodload: stale: ${oneLine(why)}\n`);
    if (stale.length > 0) return EXIT.failed;
    io.stdout.write(`fresh: ${files.map((f) => f.file).join(', ')}\n`);
    return EXIT.ok;
  }

  const actions = writeSpecFiles(files);
  [specs.main, specs.digits].forEach((spec, index) => {
    const action = actions[index];
    if (action === 'absent') return;
    io.stdout.write(`${action} ${files[index]?.file} (${describe(spec)})\n`);
  });
  const published = offer.modules.length;
  const total = offer.treeModules.length;
  if (offer.policy === null || offer.policy.default.value === 'allow') {
    const why = offer.policy === null ? `no policy (no ${DEFAULT_POLICY_FILE})` : 'default allow';
    io.stderr.write(
      `kmodload: note: ${why}: ${published} of the tree's ${total} modules are devices (all that no deny or host block refuses)\n`,
    );
  } else if (published === 0 && (options.sets ?? []).length === 0) {
    io.stderr.write(`kmodload: note: the policy lets no module of the tree through: no device\n`);
  }
  if (offer.unnamable.length > 0) {
    io.stderr.write(
      `kmodload: note: no device for ${oneLine(offer.unnamable.join(', '))}: not a name a CDI device and the hook both take\n`,
    );
  }
  noteMissingExecutable(io, executable);
  return EXIT.ok;
}

/** `kmodload cdi generate ...` */
export async function runCdiCommand(argv: string[], io: CliIO): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined) throw usageError('missing subcommand: generate', COMMAND);
  if (sub === '-h' || sub === '--help' || sub === 'help') {
    io.stdout.write((await import('./help.js')).CDI_HELP);
    return EXIT.ok;
  }
  if (sub !== 'generate') {
    throw usageError(`unknown subcommand ${quote(sub)} (expected generate)`, COMMAND);
  }
  const parsed = parseArgs(rest, GENERATE_SPECS, GENERATE);
  if (flag(parsed, 'help')) {
    io.stdout.write((await import('./help.js')).CDI_HELP);
    return EXIT.ok;
  }
  return generate(parsed, io);
}
