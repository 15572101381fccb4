// A module already in the kernel keeps the parameters it was loaded with: modprobe reports
// success for a request that asks other values, and the kernel goes on with the old ones.
// Here, before anything is inserted, every module of the plan that is asked for parameters and
// is live (or builtin, or inserted by an earlier step of the same plan) has them compared with
// what /sys/module/NAME/parameters shows, by the kernel's formatting rules (src/params.ts).
// What differs is refused or warned about, as the caller says: the caller's parameters and
// the host's (modprobe.d, the kernel command line) separately. A parameter sysfs does not show
// cannot be verified: for the caller's parameters that counts as a conflict, unless a running
// container's hold says kmodload loaded the module with that value.

import { EXIT, KmodloadError } from '../errors';
import type { InitState, Kernel } from '../kernel/kernel';
import {
  effectiveParams,
  kernelParams,
  paramKey,
  sameSetting,
  sameValue,
  settingText,
  valueText,
  type ParamSetting,
} from '../params';
import type { Plan, ProbeStep } from '../planner/plan';
import type { ParamConflictAction } from '../policy/types';
import type { ModuleError } from './errno';

/** What a conflict means, for the caller's parameters and for the host's. */
export interface ParamConflictPolicy {
  caller: ParamConflictAction;
  host: ParamConflictAction;
}

/** modprobe's behaviour, told: the kernel keeps its values, the caller hears of it. */
export const WARN_ON_PARAM_CONFLICT: ParamConflictPolicy = { caller: 'warn', host: 'warn' };

/** Modules a running container's hook inserted with parameters: the container and its
 *  parameters (as the kernel read them), by module. */
export type HeldParameters = Readonly<Record<string, { id: string; params: string }>>;

// Not parameters: the kernel takes them at load time and shows them nowhere.
const LOAD_TIME_ARGUMENTS = new Set(['dyndbg', 'async_probe']);
const SYSFS_PARAM_NAME = /^[A-Za-z0-9_]+$/;

/** One parameter of a step, and who asks for it. */
interface AskedParam {
  key: string;
  setting: ParamSetting;
  from: 'caller' | 'host';
}

/** A difference found, and what it means. */
export interface ParamFinding {
  request: string;
  module: string;
  action: ParamConflictAction;
  /** Without "cannot load REQUEST: ". */
  reason: string;
}

/** The parameters a step asks for, the last setting of each, and whose it is. */
export function askedParams(step: ProbeStep): AskedParam[] {
  const callerKeys = new Set(
    kernelParams(step.extraOptions ?? '').map((setting) => paramKey(setting.name)),
  );
  const asked: AskedParam[] = [];
  for (const [key, setting] of effectiveParams(kernelParams(step.options))) {
    if (LOAD_TIME_ARGUMENTS.has(key) || !SYSFS_PARAM_NAME.test(key)) continue;
    asked.push({ key, setting, from: callerKeys.has(key) ? 'caller' : 'host' });
  }
  return asked;
}

function askedText(param: AskedParam): string {
  return param.setting.value === undefined ? '(no value: Y)' : valueText(param.setting.value);
}

/** "NAME is " when the module is not the name asked for. */
function who(request: string, module: string): string {
  return module === request ? '' : `${module} is `;
}

/**
 * The findings for one live (or builtin) module: each parameter the step asks compared with
 * sysfs, or with what a running container's hold says kmodload loaded it with.
 */
export async function compareWithLive(
  request: string,
  step: ProbeStep,
  kernel: Kernel,
  policy: ParamConflictPolicy,
  held: HeldParameters = {},
): Promise<ParamFinding[]> {
  const findings: ParamFinding[] = [];
  const vouched = Object.hasOwn(held, step.name) ? held[step.name] : undefined;
  const heldValues = vouched ? effectiveParams(kernelParams(vouched.params)) : undefined;
  for (const param of askedParams(step)) {
    const asks = param.from === 'caller' ? 'asked' : "the host's options (modprobe.d) ask";
    const remedy =
      param.from === 'caller'
        ? `unload it first, or ask for the live value`
        : `unload it first, or make the host's options match`;
    const shown = await kernel.parameter(step.name, param.key);
    const heldSetting = heldValues?.get(param.key);
    let live: string | undefined = shown;
    let source = '';
    if (shown === undefined && heldSetting?.value !== undefined && vouched) {
      live = heldSetting.value;
      source = ` (as kmodload loaded it for container ${vouched.id})`;
    }
    if (live === undefined) {
      findings.push({
        request,
        module: step.name,
        // The host's options are often not shown (mode 0): only a warning for them.
        action: param.from === 'caller' ? policy.caller : 'warn',
        reason:
          `${who(request, step.name)}live, and /sys/module/${step.name}/parameters does not show ` +
          `${param.key}: cannot verify ${settingText(param.setting)} (unload it first, or ask without it)`,
      });
      continue;
    }
    // A held value is one asked, not one shown: either may be the other's spelling.
    const same =
      source === '' ? sameValue(live, param.setting.value) : sameSetting(live, param.setting.value);
    if (same) continue;
    findings.push({
      request,
      module: step.name,
      action: policy[param.from],
      reason:
        `${who(request, step.name)}live with ${param.key}=${valueText(live)}${source}, ` +
        `${asks} ${askedText(param)} (${remedy})`,
    });
  }
  return findings;
}

/** The findings for a module an earlier step of the plan inserts with `first`'s options. */
function compareWithEarlier(
  request: string,
  step: ProbeStep,
  first: { request: string; step: ProbeStep },
  policy: ParamConflictPolicy,
): ParamFinding[] {
  const earlier = new Map(askedParams(first.step).map((param) => [param.key, param]));
  const findings: ParamFinding[] = [];
  for (const param of askedParams(step)) {
    const before = earlier.get(param.key);
    if (before && sameSetting(before.setting.value, param.setting.value)) continue;
    const had = before ? `with ${settingText(before.setting)}` : `without ${param.key}`;
    findings.push({
      request,
      module: step.name,
      action: policy[param.from],
      reason:
        `${who(request, step.name)}loaded earlier in this request (for ${first.request}) ${had}, ` +
        `asked ${askedText(param)} (name ${request} first, or ask the same)`,
    });
  }
  return findings;
}

/** The plan's steps in the order the loader reaches them, with what decides each: the
 *  target of a probe that is live ends the probe there, as in the loader. */
export async function planParamFindings(
  plan: Plan,
  kernel: Kernel,
  readState: (name: string) => Promise<InitState | ModuleError>,
  policy: ParamConflictPolicy,
  held: HeldParameters = {},
): Promise<ParamFinding[]> {
  // Only modules asked for parameters somewhere in the plan are looked at.
  const withParams = new Set<string>();
  for (const request of plan.requests) {
    for (const probe of request.probes) {
      if (probe.skipped) continue;
      for (const step of probe.steps) if (askedParams(step).length > 0) withParams.add(step.name);
    }
  }
  if (withParams.size === 0) return [];
  const findings: ParamFinding[] = [];
  const live = new Set<string>();
  const inserted = new Map<string, { request: string; step: ProbeStep }>();
  const isLive = async (step: ProbeStep): Promise<boolean> => {
    if (live.has(step.name) || step.kind === 'builtin') return true;
    return (await readState(step.name)) === 'live';
  };
  const visit = async (request: string, step: ProbeStep): Promise<void> => {
    const first = inserted.get(step.name);
    if (first) {
      if (first.step !== step) findings.push(...compareWithEarlier(request, step, first, policy));
      return;
    }
    if (live.has(step.name)) return;
    if (await isLive(step)) {
      live.add(step.name);
      findings.push(...(await compareWithLive(request, step, kernel, policy, held)));
    } else inserted.set(step.name, { request, step });
  };
  for (const request of plan.requests) {
    for (const probe of request.probes) {
      if (probe.skipped) continue;
      const target = probe.steps.find((step) => step.target);
      // A live target: the loader does nothing else for this probe.
      if (target && !inserted.has(target.name) && (await isLive(target))) {
        if (withParams.has(target.name)) await visit(request.request, target);
        continue;
      }
      for (const step of probe.steps) {
        if (withParams.has(step.name)) await visit(request.request, step);
      }
    }
  }
  return findings;
}

/** The refusal for the first finding to refuse, or undefined. */
export function paramRefusal(findings: readonly ParamFinding[]): KmodloadError | undefined {
  const refused = findings.filter((finding) => finding.action === 'refuse');
  const first = refused[0];
  if (!first) return undefined;
  const more = refused.length > 1 ? ` (and ${refused.length - 1} more)` : '';
  return new KmodloadError(`${first.reason}${more}`, EXIT.refused, {
    subject: `cannot load ${first.request}`,
  });
}

/** The warning line of a finding that only warns. */
export function paramWarning(finding: ParamFinding): string {
  const subject = finding.module === finding.request ? finding.module : finding.request;
  return `${subject}: ${finding.reason.replace(/ \((unload|name) [^)]*\)$/, '')}: the kernel keeps the live value`;
}
