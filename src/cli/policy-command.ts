// `kmodload policy check|lint`: what the hook would decide for a request, before a policy is
// rolled out, and every problem of the policy files.

import { resolve } from '../api';
import { EXIT, KmodloadError } from '../errors';
import { assertPlanRunnable } from '../loader/load';
import { formatProblem, readPolicy, readPolicyFiles } from '../policy/index';
import { loadModprobeConfig } from '../config/index';
import { fnmatch } from '../db/fnmatch';
import { exportAdmissionPolicy } from '../policy/admission';
import { exportModprobeConfig } from '../policy/export';
import { readTreeNames, unmatchedPatterns } from '../policy/tree';
import { errorText, oneLine } from '../text';
import { replaceFile } from './install-node-command';
import { parseModuleRequest } from '../container/request';
import type {
  ParamsRule,
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
  { long: 'name', value: true },
  { long: 'help', short: 'h' },
];

const FORMATS = ['modprobe.d', 'validating-admission-policy'];
/** A Kubernetes object name (a DNS subdomain). */
const OBJECT_NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
const DEFAULT_ADMISSION_NAME = 'kmodload';

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

/** The rules that test the NRI plugin's facts. */
function runtimeFactRules(policy: Policy | null): Array<PolicyRule | ParamsRule> {
  return [...(policy?.rules ?? []), ...(policy?.paramRules ?? [])].filter((rule) =>
    rule.conditions.some((c) => RUNTIME_FACT_CONDITIONS.has(c.kind)),
  );
}

/** What a rule on the NRI plugin's facts does where they are missing (the hook). */
function runtimeFactNote(rule: PolicyRule | ParamsRule): string {
  const effect = 'verdict' in rule && rule.verdict === 'deny' ? 'always applies' : 'never applies';
  return `${rule.origin} (${rule.text}) tests the pod's namespace or labels, which only the NRI plugin has: under the hook it ${effect}`;
}

/** How many rules a policy has, of both kinds. */
function ruleCount(policy: Policy | null): number {
  return (policy?.rules.length ?? 0) + (policy?.paramRules.length ?? 0);
}

function decisionLine(d: PolicyDecision): string {
  const via = d.role === 'target' ? d.request : `${d.role} for ${d.request}`;
  const what = d.param === undefined ? d.module : `${d.module} ${d.param}`;
  return `${d.verdict.padEnd(5)} ${what} (${via}): ${d.rule}`;
}

/** The arguments as requests: names, or `NAME PARAM=VALUE...` as a container writes them. */
function requestOf(args: string[]): { names: string[]; extraOptions: Record<string, string> } {
  const names: string[] = [];
  const extraOptions = Object.create(null) as Record<string, string>;
  for (const arg of args) {
    for (const entry of parseModuleRequest(arg, 'the argument')) {
      if (!names.includes(entry.name)) names.push(entry.name);
      if (entry.params !== '') extraOptions[entry.name] = entry.params;
    }
  }
  return { names, extraOptions };
}

async function check(
  args: string[],
  parsed: ReturnType<typeof parseArgs>,
  io: CliIO,
): Promise<number> {
  if (args.length === 0) throw usageError('missing module name', `${COMMAND} check`);
  const { names, extraOptions } = requestOf(args);
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
    ...(Object.keys(extraOptions).length > 0 ? { extraOptions } : {}),
  });
  let refusal: string | undefined;
  try {
    assertPlanRunnable(plan, { verdict });
  } catch (error) {
    if (!(error instanceof KmodloadError)) throw error;
    refusal = oneLine(error.message);
  }
  if (json) {
    // `ok` is the request's, as the exit status says: a plan the host cannot run (a name not
    // in the tree, a host blacklist) is refused though every policy rule passed.
    const { ok: policyOk, ...rest } = verdict;
    writeJson(io.stdout, {
      ok: refusal === undefined,
      policyOk,
      refusal: refusal ?? null,
      ...rest,
    });
  } else {
    for (const decision of verdict.decisions) {
      io.stdout.write(`${oneLine(decisionLine(decision))}\n`);
    }
    const files = verdict.policy?.join(', ') ?? `none (no ${DEFAULT_POLICY_FILE})`;
    io.stdout.write(
      `policy: ${oneLine(files)}; modules in the plan: ${verdict.modules}, max-modules ${verdict.maxModules}\n`,
    );
    if (requester.namespace === undefined && requester.podLabels === undefined) {
      for (const rule of runtimeFactRules(policy)) {
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
      rules: ruleCount(policy),
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
      for (const rule of runtimeFactRules(policy)) {
        io.stdout.write(`note: ${oneLine(runtimeFactNote(rule))}\n`);
      }
      io.stdout.write(`ok: ${oneLine(policy.files.join(', '))} (${ruleCount(policy)} rules)\n`);
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

/** Writes `text` to --output (atomically, 0644) or stdout. */
function writeExport(
  parsed: ReturnType<typeof parseArgs>,
  io: CliIO,
  text: string,
  what: string,
): number {
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
  io.stderr.write(`kmodload: wrote ${oneLine(output)} (${what})\n`);
  return EXIT.ok;
}

async function exportPolicy(parsed: ReturnType<typeof parseArgs>, io: CliIO): Promise<number> {
  const format = lastValue(parsed, 'format');
  if (format === undefined || !FORMATS.includes(format)) {
    throw usageError(
      format === undefined
        ? `export needs --format ${FORMATS.join(' or ')}`
        : `unknown format '${format}' (expected ${FORMATS.join(' or ')})`,
      `${COMMAND} export`,
    );
  }
  const name = lastValue(parsed, 'name');
  if (name !== undefined && format !== 'validating-admission-policy') {
    throw usageError('--name goes with --format validating-admission-policy', `${COMMAND} export`);
  }
  if (name !== undefined && !OBJECT_NAME.test(name)) {
    throw usageError(
      `--name ${name} is not a Kubernetes object name (lower case letters, digits, "-" and ".")`,
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
  if (format === 'validating-admission-policy') {
    const { text } = exportAdmissionPolicy(policy, { name: name ?? DEFAULT_ADMISSION_NAME });
    return writeExport(parsed, io, text, `${policy.rules.length} rule(s)`);
  }
  const tree = await readTreeNames(lastValue(parsed, 'dirname'), lastValue(parsed, 'set-version'));
  const hasSoftdeps = await softdepsOf(parsed, tree.moduleDir);
  const { text, modules } = exportModprobeConfig(policy, { tree, hasSoftdeps });
  return writeExport(parsed, io, text, `${modules.length} modules`);
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
