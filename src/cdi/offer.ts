// Which modules a container may ask for through a CDI device: every loadable module of the
// tree (modules.dep) whose plan, made as the hook makes it, the policy lets through for a
// request from a CDI device. Conditions that depend on the container (its annotations) are
// taken at their most favourable: such a module is offered, and the hook decides when the
// container asks. The hook checks the policy again at every run: a device only names a module.

import { EXIT, KmodloadError } from '../errors';
import { containerPlanOptions } from '../container/admit';
import type { NodeOptions } from '../container/options';
import type { Plan } from '../planner/plan';
import { assertPlanRunnable } from '../loader/load';
import { checkPolicy } from '../policy/check';
import { brokenPolicyError, readPolicyFiles } from '../policy/read';
import { readTreeNames } from '../policy/tree';
import type { Policy, PolicyCondition, PolicyRule } from '../policy/types';
import { parseKernelModules } from '../container/request';
import type { DeviceRequest } from './spec';
import { isDeviceName } from './validate';

export type OfferOptions = Pick<
  NodeOptions,
  'root' | 'kernelVersion' | 'configDirs' | 'policyFiles'
>;

export interface Offer {
  /** The loadable modules of the tree, in modules.dep order. */
  treeModules: string[];
  /** The modules a CDI request may have, in modules.dep order. */
  modules: string[];
  /** Modules whose names a device or the hook's --module cannot carry (none in a tree that
   *  depmod made from kernel modules). */
  unnamable: string[];
  /** The policy that decided (null: none; only the host's blocks applied). */
  policy: Policy | null;
}

/** How often a condition holds for a request from a CDI device, as the hook tests it. */
type Chance = 'always' | 'never' | 'sometimes';

function conditionChance(condition: PolicyCondition, rule: PolicyRule): Chance {
  switch (condition.kind) {
    case 'source':
      return condition.source === 'cdi' ? 'always' : 'never';
    case 'annotation':
      return 'sometimes';
    default:
      // The pod's namespace and labels: facts the hook does not have (an allow that needs
      // them never applies there, a deny always does).
      return rule.verdict === 'deny' ? 'always' : 'never';
  }
}

function ruleChance(rule: PolicyRule): Chance {
  const chances = rule.conditions.map((condition) => conditionChance(condition, rule));
  if (chances.includes('never')) return 'never';
  return chances.every((chance) => chance === 'always') ? 'always' : 'sometimes';
}

/**
 * The policy as it stands for the container most favoured through a CDI device: every allow
 * that can apply, unconditionally; only the denies that always apply.
 */
export function cdiPolicy(policy: Policy | null): Policy | null {
  if (policy === null) return null;
  const rules: PolicyRule[] = [];
  for (const rule of policy.rules) {
    const chance = ruleChance(rule);
    if (chance === 'never' || (rule.verdict === 'deny' && chance === 'sometimes')) continue;
    rules.push({ ...rule, conditions: [] });
  }
  return { ...policy, rules };
}

/** The loadable modules of the tree (modules.dep, not the built-in ones), in its order. */
export async function treeModules(options: OfferOptions): Promise<string[]> {
  const tree = await readTreeNames(options.root, options.kernelVersion);
  return [...tree.modules].filter((name) => !tree.builtin.has(name));
}

/** Why the hook would refuse `plan` under `policy` (already made cdiPolicy), or undefined. */
function refusal(plan: Plan, policy: Policy | null): string | undefined {
  try {
    assertPlanRunnable(plan, { verdict: checkPolicy(plan, policy, {}) });
    return undefined;
  } catch (error) {
    if (!(error instanceof KmodloadError)) throw error;
    return error.message;
  }
}

/** Whether `name` can be a device's name and the hook's --module. */
function nameable(name: string): boolean {
  if (!isDeviceName(name)) return false;
  try {
    return parseKernelModules(name).length === 1;
  } catch {
    return false;
  }
}

async function readCheckedPolicy(options: OfferOptions): Promise<Policy | null> {
  const read = await readPolicyFiles(options.policyFiles);
  const problem = read.problems[0];
  if (problem) throw brokenPolicyError(problem, read.problems.length);
  return read.policy;
}

/**
 * The modules of the tree a container may ask for through CDI, and `sets` checked: a set the
 * hook would always refuse is an error (EXIT.refused) naming it and why.
 */
export async function offeredModules(
  options: OfferOptions,
  sets: readonly DeviceRequest[] = [],
): Promise<Offer> {
  const policy = await readCheckedPolicy(options);
  const names = await treeModules(options);
  // Imported here: the planner and the addon only for a command that plans.
  const { resolve } = await import('../api.js');
  const planOptions = containerPlanOptions(options);
  const plan = await resolve(names, planOptions);
  const derived = cdiPolicy(policy);
  const modules: string[] = [];
  const unnamable: string[] = [];
  for (const request of plan.requests) {
    if (refusal({ ...plan, requests: [request] }, derived) !== undefined) continue;
    if (nameable(request.request)) modules.push(request.request);
    else unnamable.push(request.request);
  }
  for (const set of sets) {
    const why = refusal(await resolve(set.modules, planOptions), derived);
    if (why !== undefined) {
      throw new KmodloadError(
        `${why} (the hook would refuse it for every container)`,
        EXIT.refused,
        {
          subject: `--set ${set.name}`,
        },
      );
    }
  }
  return { treeModules: names, modules, unnamable, policy };
}
