// `kmodload load [OPTIONS] NAME...`

import type { LoadOptions } from '../api';
import { load, resolve } from '../api';
import { EXIT } from '../errors';
import { failureSummary } from '../loader/summary';
import type { LoadResult, ModuleResult } from '../loader/types';
import { oneLine } from '../text';
import type { OptionSpec } from './args';
import { allValues, flag, parseArgs, usageError } from './args';
import { OUTPUT_SPECS, TREE_SPECS, treeOptions, writeJson } from './common';
import type { CliIO } from './io';

const COMMAND = 'load';

const LOAD_SPECS: OptionSpec[] = [
  ...TREE_SPECS,
  ...OUTPUT_SPECS,
  { long: 'use-blacklist', short: 'b' },
  { long: 'option', short: 'o', value: true },
  { long: 'show-depends', short: 'D' },
  { long: 'allow-install-commands' },
  { long: 'policy', value: true },
];

/** `-o NAME=PARAMS`, repeatable: the caller's parameters per requested name. */
function extraOptions(values: string[], names: string[]): Record<string, string> | undefined {
  if (values.length === 0) return undefined;
  const extra: Record<string, string> = {};
  for (const value of values) {
    const eq = value.indexOf('=');
    const name = eq < 0 ? '' : value.slice(0, eq);
    if (name === '') {
      throw usageError(`option '-o ${value}' must be NAME=PARAMS`, COMMAND);
    }
    if (!names.includes(name)) {
      throw usageError(`option '-o ${value}' is for ${name}, which is not requested`, COMMAND);
    }
    const params = value.slice(eq + 1);
    const before = extra[name];
    extra[name] = before === undefined || before === '' ? params : `${before} ${params}`;
  }
  return extra;
}

/** The stdout line for one module. */
function moduleLine(module: ModuleResult, verbose: boolean): string {
  const words: string[] = [];
  switch (module.status) {
    case 'loaded':
      words.push('loaded', module.name);
      break;
    case 'already-live':
      words.push('already live', module.name);
      break;
    case 'builtin':
      words.push('builtin', module.name);
      break;
    case 'skipped':
      words.push('skipped', module.name);
      break;
    case 'would-load':
      words.push('would load', module.name);
      break;
    case 'failed':
      words.push('failed', module.name);
      if (!module.required) words.push('(soft dependency, not fatal):');
      else words[words.length - 1] += ':';
      words.push(module.error?.message ?? 'unknown error');
      return words.join(' ');
  }
  if (verbose && module.path !== undefined) words.push(module.path);
  if (verbose && module.options) words.push(module.options);
  return words.join(' ');
}

/** `--json`'s shape, as it has always been: the policy's verdict (with --policy) is printed
 *  inside the plan, as `plan.policy`. */
function resultJson(result: LoadResult): unknown {
  const { verdict, ...printed } = result;
  return verdict === undefined
    ? printed
    : { ...printed, plan: { ...result.plan, policy: verdict } };
}

export async function runLoadCommand(argv: string[], io: CliIO): Promise<number> {
  const parsed = parseArgs(argv, LOAD_SPECS, COMMAND);
  if (flag(parsed, 'help')) {
    io.stdout.write((await import('./help.js')).LOAD_HELP);
    return EXIT.ok;
  }
  const names = parsed.operands;
  if (names.length === 0) throw usageError('missing module name', COMMAND);
  const showDepends = flag(parsed, 'show-depends');
  const json = flag(parsed, 'json');
  if (showDepends && json)
    throw usageError('--show-depends and --json exclude each other', COMMAND);
  const policyFiles = allValues(parsed, 'policy');
  if (showDepends && policyFiles.length > 0) {
    // --show-depends prints exactly what modprobe would; a policy's verdict is another question.
    throw usageError(
      '--show-depends shows what modprobe would load; for a policy use kmodload policy check',
      COMMAND,
    );
  }

  const options: LoadOptions = { ...treeOptions(parsed) };
  if (flag(parsed, 'use-blacklist')) options.useBlacklist = true;
  const extra = extraOptions(allValues(parsed, 'option'), names);
  if (extra) options.extraOptions = extra;
  if (flag(parsed, 'allow-install-commands')) options.allowInstallCommands = true;
  if (policyFiles.length > 0) options.policy = policyFiles;

  if (showDepends) {
    // No policy here (refused above).
    const plan = await resolve(names, { ...options, policy: undefined });
    const { formatShowDepends, showDependsExitStatus } = await import('../planner/index.js');
    io.stdout.write(formatShowDepends(plan));
    // As modprobe: a name that cannot be looked up is reported and fails the run; rules that
    // forbid or replace loading are part of the listing, not failures.
    for (const request of plan.requests) {
      if (request.error && request.probes.length === 0) {
        io.stderr.write(`kmodload: ${oneLine(request.error.message)}\n`);
      }
    }
    const status = showDependsExitStatus(plan) === 0 ? EXIT.ok : EXIT.failed;
    return status;
  }

  if (flag(parsed, 'dry-run')) options.dryRun = true;
  const verbose = flag(parsed, 'verbose');
  const printLines = (modules: ModuleResult[]): void => {
    if (json || flag(parsed, 'quiet')) return;
    for (const module of modules) {
      // ENOSYS is about the kernel, not this module: the stderr line says it once.
      if (module.error?.code === 'ENOSYS') continue;
      io.stdout.write(`${moduleLine(module, verbose)}\n`);
    }
  };
  // Kept as they come: a run that stops half-way (an unusable module file) still says what
  // it loaded before its error line.
  const done: ModuleResult[] = [];
  options.onModuleResult = (module) => done.push(module);
  let result: LoadResult;
  try {
    result = await load(names, options);
  } catch (error) {
    printLines(done);
    throw error;
  }
  if (json) writeJson(io.stdout, resultJson(result));
  else {
    printLines(result.modules);
    // As modprobe, the live module stays as it is; unlike modprobe, the caller hears of it.
    for (const warning of result.warnings ?? []) {
      io.stderr.write(`kmodload: warning: ${oneLine(warning)}\n`);
    }
  }
  const failure = failureSummary(result);
  if (failure === undefined) return EXIT.ok;
  io.stderr.write(`kmodload: ${oneLine(failure)}\n`);
  return EXIT.failed;
}
