// `kmodload policy check|lint`: what the hook would decide for a request, before a policy is
// rolled out, and every problem of the policy files.

import { resolve } from '../api';
import { EXIT, KmodloadError } from '../errors';
import { assertPlanRunnable } from '../loader/load';
import { formatProblem, readPolicyFiles } from '../policy/index';
import type { PolicyDecision, RequestSource, Requester } from '../policy/types';
import { DEFAULT_POLICY_FILE, REQUEST_SOURCES } from '../policy/types';
import { oneLine } from '../text';
import type { OptionSpec } from './args';
import { allValues, flag, lastValue, parseArgs, usageError } from './args';
import { TREE_SPECS, treeOptions, writeJson } from './common';
import { POLICY_HELP } from './help';
import type { CliIO } from './io';

const COMMAND = 'policy';

const POLICY_SPECS: OptionSpec[] = [
  { long: 'policy', value: true },
  { long: 'annotation', value: true },
  { long: 'source', value: true },
  ...TREE_SPECS,
  { long: 'json' },
  { long: 'help', short: 'h' },
];

function requesterOf(annotations: string[], source: string | undefined): Requester {
  const requester: Requester = {};
  const parsed = Object.create(null) as Record<string, string>;
  for (const item of annotations) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw usageError(`--annotation ${item} must be KEY=VALUE`, COMMAND);
    parsed[item.slice(0, eq)] = item.slice(eq + 1);
  }
  requester.annotations = parsed;
  if (source !== undefined) {
    if (!REQUEST_SOURCES.includes(source as RequestSource)) {
      throw usageError(`--source takes ${REQUEST_SOURCES.join(' or ')}`, COMMAND);
    }
    requester.source = source as RequestSource;
  }
  return requester;
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
  const requester = requesterOf(allValues(parsed, 'annotation'), lastValue(parsed, 'source'));
  const json = flag(parsed, 'json');
  // As the hook plans: the host's blacklist applies to names too, no install command runs,
  // and modprobe.d that cannot be read is an error.
  const plan = await resolve(names, {
    ...treeOptions(parsed),
    useBlacklist: true,
    allowInstallCommands: false,
    strictConfig: true,
    policy: allValues(parsed, 'policy'),
    requester,
  });
  let refusal: string | undefined;
  try {
    assertPlanRunnable(plan);
  } catch (error) {
    if (!(error instanceof KmodloadError)) throw error;
    refusal = oneLine(error.message);
  }
  const verdict = plan.policy;
  if (json) {
    writeJson(io.stdout, { ok: refusal === undefined, refusal: refusal ?? null, ...verdict });
  } else {
    for (const decision of verdict?.decisions ?? []) {
      io.stdout.write(`${oneLine(decisionLine(decision))}\n`);
    }
    const files = verdict?.policy?.join(', ') ?? `none (no ${DEFAULT_POLICY_FILE})`;
    io.stdout.write(
      `policy: ${oneLine(files)}; modules to insert: ${verdict?.modules ?? 0}, max-modules ${verdict?.maxModules ?? 0}\n`,
    );
    if (refusal === undefined) io.stdout.write('the request would be allowed\n');
    else io.stderr.write(`kmodload: ${refusal}\n`);
  }
  return refusal === undefined ? EXIT.ok : EXIT.refused;
}

async function lint(parsed: ReturnType<typeof parseArgs>, io: CliIO): Promise<number> {
  const { policy, problems } = await readPolicyFiles(allValues(parsed, 'policy'));
  if (flag(parsed, 'json')) {
    writeJson(io.stdout, {
      ok: problems.length === 0,
      files: policy?.files ?? [],
      rules: policy?.rules.length ?? 0,
      problems,
    });
  } else {
    for (const problem of problems) io.stdout.write(`${oneLine(formatProblem(problem))}\n`);
    if (policy === null) {
      io.stdout.write(
        `no policy: ${DEFAULT_POLICY_FILE} does not exist (containers may have any module the host does not block)\n`,
      );
    } else if (problems.length === 0) {
      io.stdout.write(`ok: ${oneLine(policy.files.join(', '))} (${policy.rules.length} rules)\n`);
    } else {
      io.stderr.write(`kmodload: the policy has ${problems.length} problem(s)\n`);
    }
  }
  return problems.length === 0 ? EXIT.ok : EXIT.environment;
}

/** `kmodload policy check|lint ...` */
export async function runPolicyCommand(argv: string[], io: CliIO): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '-h' || sub === '--help' || sub === 'help') {
    if (sub === undefined) throw usageError('missing subcommand: check or lint', COMMAND);
    io.stdout.write(POLICY_HELP);
    return EXIT.ok;
  }
  const parsed = parseArgs(rest, POLICY_SPECS, COMMAND);
  if (flag(parsed, 'help')) {
    io.stdout.write(POLICY_HELP);
    return EXIT.ok;
  }
  if (sub === 'check') return check(parsed.operands, parsed, io);
  if (sub === 'lint') {
    const extra = parsed.operands[0];
    if (extra !== undefined) throw usageError(`unexpected argument '${extra}'`, COMMAND);
    return lint(parsed, io);
  }
  throw usageError(`unknown subcommand '${sub}' (expected check or lint)`, COMMAND);
}
