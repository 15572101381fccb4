// The policy applied to a plan: the modules, not the strings. Precedence:
//   1. A deny rule that applies and matches a module denies it wherever it is in the plan
//      (target, hard dependency, softdep): an alias cannot launder it, a softdep cannot
//      smuggle it in.
//   2. The host's own blocks (modprobe.d `blacklist X`, `install X /bin/true|/bin/false`)
//      are denies too, anywhere in the plan, with or without a policy file.
//   3. A requested target must be allowed: an applicable allow rule matches it, or the
//      default is allow.
//   4. Dependencies and softdeps of an allowed target come with it.
//   5. The plan may name at most max-modules module files, whether already loaded or not:
//      the verdict comes from the plan alone, so a request gets the same answer on every
//      node and at every retry, whatever other containers loaded first.
//   6. Every parameter the caller passes for a module needs an applicable `params` rule that
//      names it with a matching value (no policy file: none may be passed).

import { fnmatch } from '../db/fnmatch';
import { effectiveParams, kernelParams, paramKey, settingText, type ParamSetting } from '../params';
import type { Plan, ProbeStep } from '../planner/plan';
import { DEFAULT_MAX_MODULES } from './types';
import type {
  ModuleRole,
  ParamsRule,
  Policy,
  PolicyCondition,
  PolicyDecision,
  PolicyRule,
  PolicyVerdict,
  PolicyViolation,
  RequestSource,
  Requester,
  Verdict,
} from './types';

function sourcesOf(requester: Requester, request: string): readonly RequestSource[] {
  const { source } = requester;
  if (source === undefined) return [];
  if (typeof source === 'string') return [source];
  return Object.hasOwn(source, request) ? (source[request] ?? []) : [];
}

/**
 * Whether `condition` holds for `request`. A name can come from both sources; then an allow
 * needs every source to satisfy it and a deny any one, so that adding a second source never
 * widens what is allowed.
 */
function holds(
  condition: PolicyCondition,
  verdict: Verdict,
  requester: Requester,
  request: string,
): boolean {
  if (condition.kind === 'namespace') {
    // A fact the front end does not have: the worst case (allow: no; deny: yes).
    if (requester.namespace === undefined) return verdict === 'deny';
    return fnmatch(condition.value, requester.namespace);
  }
  if (condition.kind === 'pod-label') {
    const labels = requester.podLabels;
    if (labels === undefined) return verdict === 'deny';
    if (!Object.hasOwn(labels, condition.key)) return false;
    const value = labels[condition.key];
    return typeof value === 'string' && fnmatch(condition.value, value);
  }
  if (condition.kind === 'annotation') {
    const annotations = requester.annotations ?? {};
    if (!Object.hasOwn(annotations, condition.key)) return false;
    const value = annotations[condition.key];
    return typeof value === 'string' && fnmatch(condition.value, value);
  }
  const sources = sourcesOf(requester, request);
  if (sources.length === 0) return false;
  return verdict === 'deny'
    ? sources.includes(condition.source)
    : sources.every((s) => s === condition.source);
}

/** Whether all of a rule's conditions hold; a params rule's as an allow's. */
function applies(rule: PolicyRule | ParamsRule, requester: Requester, request: string): boolean {
  const verdict = 'verdict' in rule ? rule.verdict : 'allow';
  return rule.conditions.every((c) => holds(c, verdict, requester, request));
}

function matches(rule: PolicyRule, module: string): boolean {
  return rule.patterns.some((pattern) => fnmatch(pattern, module));
}

function roleOf(step: ProbeStep): ModuleRole {
  if (step.target) return 'target';
  return step.required ? 'dependency' : 'softdep';
}

function describeRole(module: string, role: ModuleRole, target: string): string {
  if (role === 'dependency') return `${module} (a dependency of ${target})`;
  if (role === 'softdep') return `${module} (a soft dependency of ${target})`;
  return module;
}

/**
 * Checks `plan` against `policy` (null: no policy file; only the host's blocks and the
 * default limit apply) for `requester`. Pure: reads nothing, changes nothing.
 */
export function checkPolicy(
  plan: Plan,
  policy: Policy | null,
  requester: Requester = {},
): PolicyVerdict {
  const rules = policy?.rules ?? [];
  const decisions: PolicyDecision[] = [];
  const violations: PolicyViolation[] = [];
  const inserted = new Set<string>();

  for (const request of plan.requests) {
    const applicable = rules.filter((rule) => applies(rule, requester, request.request));
    const denies = applicable.filter((rule) => rule.verdict === 'deny');
    const allows = applicable.filter((rule) => rule.verdict === 'allow');
    const paramRules = (policy?.paramRules ?? []).filter((rule) =>
      applies(rule, requester, request.request),
    );
    const seen = new Set<string>();
    let refused: string | undefined;

    for (const probe of request.probes) {
      if (probe.skipped) continue; // a blacklisted alias match loads nothing
      for (const step of probe.steps) {
        if (step.kind === 'insmod') inserted.add(step.name);
        const role = roleOf(step);
        // Once per module and role: a module that is a softdep of one alias match and
        // itself another match must still pass as a target.
        const key = `${role}:${step.name}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const who = describeRole(step.name, role, probe.module);
        let verdict: PolicyDecision['verdict'] = 'allow';
        let rule: string;
        let reason: string | undefined;
        const deny = denies.find((r) => matches(r, step.name));
        // Only a target needs an allow: look for one only then.
        const allow =
          role === 'target' && !deny ? allows.find((r) => matches(r, step.name)) : undefined;
        if (deny) {
          verdict = 'deny';
          rule = `${deny.origin} (${deny.text})`;
          reason = `${who} is denied by ${rule}`;
        } else if (step.hostBlock) {
          verdict = 'deny';
          const where = step.hostBlock.origin ? `, ${step.hostBlock.origin}` : '';
          rule = `host: ${step.hostBlock.rule}${where}`;
          reason = `${who} is blocked by the host (${step.hostBlock.rule}${where})`;
        } else if (role !== 'target') {
          rule = `with ${probe.module}`;
        } else if (allow) {
          rule = `${allow.origin} (${allow.text})`;
        } else {
          const setting = policy?.default ?? { value: 'allow' as const };
          const where = setting.origin ? `, ${setting.origin}` : '';
          rule = `default ${setting.value}${where}`;
          if (setting.value === 'deny') {
            verdict = 'deny';
            reason = `${who} is not allowed for this container (${rule})`;
          }
        }
        decisions.push({ request: request.request, module: step.name, role, verdict, rule });
        refused ??= reason;
        if (step.extraOptions === undefined) continue;
        for (const setting of effectiveParams(kernelParams(step.extraOptions)).values()) {
          const paramSeen = `param:${step.name}:${paramKey(setting.name)}`;
          if (seen.has(paramSeen)) continue;
          seen.add(paramSeen);
          const param = paramDecision(request.request, step.name, setting, paramRules);
          decisions.push(param.decision);
          refused ??= param.reason;
        }
      }
    }
    if (refused !== undefined) violations.push({ request: request.request, reason: refused });
  }

  const maxModules = policy?.maxModules ?? { value: DEFAULT_MAX_MODULES };
  if (inserted.size > maxModules.value) {
    const where = maxModules.origin ?? 'the default';
    violations.push({
      reason: `the request needs ${inserted.size} modules, more than max-modules ${maxModules.value} (${where})`,
    });
  }
  return {
    ok: violations.length === 0,
    policy: policy ? [...policy.files] : null,
    modules: inserted.size,
    maxModules: maxModules.value,
    decisions,
    violations,
  };
}

/** A value pattern that matches exactly `value` (blanks, which a pattern cannot hold, as
 *  `?`), or `*` for a bare NAME. */
function neededValue(value: string | undefined): string {
  return value === undefined ? '*' : value.replace(/\s/g, '?');
}

/** The verdict on one parameter the caller passes for `module`: allowed by the first
 *  applicable params rule that names it with a matching value, else refused. */
function paramDecision(
  request: string,
  module: string,
  setting: ParamSetting,
  rules: readonly ParamsRule[],
): { decision: PolicyDecision; reason?: string } {
  const key = paramKey(setting.name);
  const param = settingText(setting);
  const forModule = rules.filter((rule) => fnmatch(rule.pattern, module));
  const naming = forModule.filter((rule) => rule.params.some((p) => p.name === key));
  const allow = naming.find((rule) =>
    rule.params.some((p) => p.name === key && fnmatch(p.value, setting.value ?? '')),
  );
  const base = { request, module, role: 'target' as const, param };
  if (allow) {
    return { decision: { ...base, verdict: 'allow', rule: `${allow.origin} (${allow.text})` } };
  }
  const other = naming[0];
  const rule = other
    ? `${other.origin} (${other.text}) allows other values`
    : 'no params rule names it';
  const of = module === request ? '' : ` of ${module}`;
  const needed = `params ${module} ${key}=${neededValue(setting.value)}`;
  return {
    decision: { ...base, verdict: 'deny', rule },
    reason: `parameter ${param}${of} is not allowed for this container (${rule}; needed: ${needed})`,
  };
}

/** The annotation keys the policy's rules test, for the audit log. */
export function annotationKeysUsed(policy: Policy | null): string[] {
  const keys = new Set<string>();
  for (const rule of [...(policy?.rules ?? []), ...(policy?.paramRules ?? [])]) {
    for (const condition of rule.conditions) {
      if (condition.kind === 'annotation') keys.add(condition.key);
    }
  }
  return [...keys];
}
