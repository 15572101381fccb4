// `modprobe -a --show-depends` output for a plan, byte for byte: `insmod PATH OPTIONS`,
// `install COMMAND OPTIONS` (the rule as written, $CMDLINE_OPTS not expanded) and
// `builtin NAME`, each probe after the other. The space before OPTIONS is always there.
import type { Plan, ProbeStep } from './plan';

function showLine(step: ProbeStep): string {
  switch (step.kind) {
    case 'insmod':
      return step.path === undefined ? '' : `insmod ${step.path} ${step.options}\n`;
    case 'install':
      return `install ${step.command ?? ''} ${step.options}\n`;
    case 'builtin':
      return `builtin ${step.name}\n`;
  }
}

export function formatShowDepends(plan: Plan): string {
  let out = '';
  for (const request of plan.requests) {
    for (const probe of request.probes) {
      for (const step of probe.steps) out += showLine(step);
    }
  }
  return out;
}

/**
 * modprobe's exit status for the same --show-depends run: 1 when some name could not be
 * looked up at all, else 0 (refusals are kmodload's own: modprobe would show and succeed).
 */
export function showDependsExitStatus(plan: Plan): 0 | 1 {
  return plan.requests.some((r) => r.error !== undefined && r.probes.length === 0) ? 1 : 0;
}
