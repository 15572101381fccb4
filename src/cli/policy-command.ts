// `kmodload policy check|lint`: what the hook would decide for a request, before a policy is
// rolled out, and every problem of the policy files.

import { resolve } from '../api';
import { EXIT, KmodloadError } from '../errors';
import { assertPlanRunnable } from '../loader/load';
import { formatProblem, readPolicy, readPolicyFiles } from '../policy/index';
import { loadModprobeConfig } from '../config/index';
import { fnmatch } from '../db/fnmatch';
import { exportModprobeConfig } from '../policy/export';
import { readTreeNames, unmatchedPatterns } from '../policy/tree';
import { errorText, oneLine } from '../text';
import { replaceFile } from './install-node-command';
import type {
  Policy,
  PolicyDecision,
  PolicyProblem,
  PolicyRule,
  RequestSource,
  Requester,
} from '../policy/types';
import {
  DEFAULT_POLICY_DIR,
  DEFAULT_POLICY_FILE,
  REQUEST_SOURCES,
  REQUEST_SOURCES_TEXT,
  RUNTIME_FACT_CONDITIONS,
} from '../policy/types';
import type { OptionSpec } from './args';
import { allValues, flag, lastValue, parseArgs, usageError } from './args';
import { TREE_SPECS, treeOptions, writeJson } from './common';
import type { CliIO } from './io';

const COMMAND = 'policy';

const POLICY_SPECS: OptionSpec[] = [
  { long: 'policy', value: true },
  { long: 'annotation', value: true },
  { long: 'source', value: true },
  { long: 'namespace', value: true },
  { long: 'pod-label', value: true },
  ...TREE_SPECS,
  { long: 'json' },
  { long: 'format', value: true },
  { long: 'output', short: 'o', value: true },
  { long: 'help', short: 'h' },
];

/** KEY=VALUE options as a map. */
function keyValues(items: string[], option: string): Record<string, string> {
  const parsed = Object.create(null) as Record<string, string>;
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw usageError(`--${option} ${item} must be KEY=VALUE`, COMMAND);
    parsed[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return parsed;
}

function requesterOf(parsed: ReturnType<typeof parseArgs>): Requester {
  const requester: Requester = {
    annotations: keyValues(allValues(parsed, 'annotation'), 'annotation'),
  };
  const namespace = lastValue(parsed, 'namespace');
  if (namespace !== undefined) requester.namespace = namespace;
  const labels = allValues(parsed, 'pod-label');
  if (labels.length > 0) requester.podLabels = keyValues(labels, 'pod-label');
  const source = lastValue(parsed, 'source');
  if (source !== undefined) {
    if (!REQUEST_SOURCES.includes(source as RequestSource)) {
      throw usageError(`--source takes ${REQUEST_SOURCES_TEXT}`, COMMAND);
    }
    requester.source = source as RequestSource;
  }
  return requester;
}

function needsRuntimeFacts(rule: PolicyRule): boolean {
  return rule.conditions.some((c) => RUNTIME_FACT_CONDITIONS.has(c.kind));
}

/** What a rule on the NRI plugin's facts does where they are missing (the hook). */
function runtimeFactNote(rule: PolicyRule): string {
  const effect = rule.verdict === 'allow' ? 'never applies' : 'always applies';
  return `${rule.origin} (${rule.text}) tests the pod's namespace or labels, which only the NRI plugin has: under the hook it ${effect}`;
}

function decisionLine(d: PolicyDecision): string {
  const via = d.role === 'target' ? d.request : `${d.role} for ${d.request}`;
  return `${d.verdict.padEnd(5)} ${d.module} (${via}): ${d.rule}`;
}

async function check(
  names: string[],
  parsed: ReturnType<typeof parseArgs>,
  io: CliIO,
): Promise<number> {
  if (names.length === 0) throw usageError('missing module name', `${COMMAND} check`);
  const requester = requesterOf(parsed);
  const json = flag(parsed, 'json');
  const policy = await readPolicy(allValues(parsed, 'policy'));
  // As the hook plans: the host's blacklist applies to names too, no install command runs,
  // and modprobe.d that cannot be read is an error.
  const { plan, verdict } = await resolve(names, {
    ...treeOptions(parsed),
    useBlacklist: true,
    allowInstallCommands: false,
    strictConfig: true,
    policy,
    requester,
  });
  let refusal: string | undefined;
  try {
    assertPlanRunnable(plan, { verdict });
  } catch (error) {
    if (!(error instanceof KmodloadError)) throw error;
    refusal = oneLine(error.message);
  }
  if (json) {
    // `ok` is the verdict's, as this line has always printed it.
    const { ok, ...rest } = verdict;
    writeJson(io.stdout, { ok, refusal: refusal ?? null, ...rest });
  } else {
    for (const decision of verdict.decisions) {
      io.stdout.write(`${oneLine(decisionLine(decision))}\n`);
    }
    const files = verdict.policy?.join(', ') ?? `none (no ${DEFAULT_POLICY_FILE})`;
    io.stdout.write(
      `policy: ${oneLine(files)}; modules in the plan: ${verdict.modules}, max-modules ${verdict.maxModules}\n`,
    );
    if (requester.namespace === undefined && requester.podLabels === undefined) {
      for (const rule of (policy?.rules ?? []).filter(needsRuntimeFacts)) {
        io.stdout.write(`note: ${oneLine(runtimeFactNote(rule))}\n`);
      }
    }
    if (refusal === undefined) io.stdout.write('the request would be allowed\n');
    else io.stderr.write(`kmodload: ${refusal}\n`);
  }
  return refusal === undefined ? EXIT.ok : EXIT.refused;
}

/** Lint's problems beyond the parser's: policy.d files not read, and with -d/-S, patterns
 *  that match no module of that tree. */
async function lintProblems(parsed: ReturnType<typeof parseArgs>): Promise<{
  policy: Policy | null;
  problems: PolicyProblem[];
  notes: PolicyProblem[];
}> {
  const { policy, problems, skipped } = await readPolicyFiles(allValues(parsed, 'policy'));
  for (const file of skipped) {
    problems.push({
      file,
      line: 0,
      message: `not read: ${DEFAULT_POLICY_DIR} reads only files named *.conf (lower case)`,
    });
  }
  const root = lastValue(parsed, 'dirname');
  const version = lastValue(parsed, 'set-version');
  const notes: PolicyProblem[] = [];
  if (policy !== null && (root !== undefined || version !== undefined)) {
    const unmatched = unmatchedPatterns(policy, await readTreeNames(root, version));
    problems.push(...unmatched.problems);
    notes.push(...unmatched.notes);
  }
  return { policy, problems, notes };
}

async function lint(parsed: ReturnType<typeof parseArgs>, io: CliIO): Promise<number> {
  const { policy, problems, notes } = await lintProblems(parsed);
  if (flag(parsed, 'json')) {
    writeJson(io.stdout, {
      ok: problems.length === 0,
      files: policy?.files ?? [],
      rules: policy?.rules.length ?? 0,
      problems,
      notes,
    });
  } else {
    for (const problem of problems) io.stdout.write(`${oneLine(formatProblem(problem))}\n`);
    for (const note of notes) io.stdout.write(`note: ${oneLine(formatProblem(note))}\n`);
    if (policy === null) {
      io.stdout.write(
        `no policy: ${DEFAULT_POLICY_FILE} does not exist (containers may have any module the host does not block)\n`,
      );
    } else if (problems.length === 0) {
      for (const rule of policy.rules.filter(needsRuntimeFacts)) {
        io.stdout.write(`note: ${oneLine(runtimeFactNote(rule))}\n`);
      }
      io.stdout.write(`ok: ${oneLine(policy.files.join(', '))} (${policy.rules.length} rules)\n`);
    } else {
      io.stderr.write(`kmodload: the policy has ${problems.length} problem(s)\n`);
    }
  }
  return problems.length === 0 ? EXIT.ok : EXIT.environment;
}

/** The host's softdeps as modprobe reads them: the first rule matching a module counts. */
async function softdepsOf(
  parsed: ReturnType<typeof parseArgs>,
  moduleDir: string,
): Promise<(name: string) => boolean> {
  const tree = treeOptions(parsed);
  const config = loadModprobeConfig({
    moduleDir,
    strictConfig: true,
    ...(tree.configDirs ? { configDirs: tree.configDirs } : {}),
  });
  return (name) => {
    const rule = config.softdeps.find((r) => fnmatch(r.module, name));
    return rule !== undefined && rule.pre.length + rule.post.length > 0;
  };
}

async function exportPolicy(parsed: ReturnType<typeof parseArgs>, io: CliIO): Promise<number> {
  const format = lastValue(parsed, 'format');
  if (format !== 'modprobe.d') {
    throw usageError(
      format === undefined
        ? 'export needs --format modprobe.d'
        : `unknown format '${format}' (expected modprobe.d)`,
      `${COMMAND} export`,
    );
  }
  const policy = await readPolicy(allValues(parsed, 'policy'));
  if (policy === null) {
    throw new KmodloadError(
      `no policy to export: ${DEFAULT_POLICY_FILE} does not exist (or name one with --policy)`,
      EXIT.environment,
    );
  }
  const tree = await readTreeNames(lastValue(parsed, 'dirname'), lastValue(parsed, 'set-version'));
  const hasSoftdeps = await softdepsOf(parsed, tree.moduleDir);
  const { text, modules } = exportModprobeConfig(policy, { tree, hasSoftdeps });
  const output = lastValue(parsed, 'output');
  if (output === undefined) {
    io.stdout.write(text);
    return EXIT.ok;
  }
  try {
    replaceFile(output, text, 0o644);
  } catch (error) {
    throw new KmodloadError(`cannot write ${output}: ${errorText(error)}`, EXIT.environment);
  }
  io.stderr.write(`kmodload: wrote ${oneLine(output)} (${modules.length} modules)\n`);
  return EXIT.ok;
}

/** `kmodload policy check|lint|export ...` */
export async function runPolicyCommand(argv: string[], io: CliIO): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '-h' || sub === '--help' || sub === 'help') {
    if (sub === undefined) throw usageError('missing subcommand: check, lint or export', COMMAND);
    io.stdout.write((await import('./help.js')).POLICY_HELP);
    return EXIT.ok;
  }
  const parsed = parseArgs(rest, POLICY_SPECS, COMMAND);
  if (flag(parsed, 'help')) {
    io.stdout.write((await import('./help.js')).POLICY_HELP);
    return EXIT.ok;
  }
  if (sub === 'check') return check(parsed.operands, parsed, io);
  if (sub === 'lint' || sub === 'export') {
    const extra = parsed.operands[0];
    if (extra !== undefined) throw usageError(`unexpected argument '${extra}'`, COMMAND);
    return sub === 'lint' ? lint(parsed, io) : exportPolicy(parsed, io);
  }
  throw usageError(`unknown subcommand '${sub}' (expected check, lint or export)`, COMMAND);
}
