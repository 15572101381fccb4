// install (and remove) rules understood without a shell. Hardened hosts write `install MOD /bin/false` to
// forbid a module and `install MOD /bin/true` to make loading it a no-op; both are recognised
// with or without a directory and with plain arguments (ignored by true/false). Anything with
// shell syntax, or any other program, needs /bin/sh and is reported as `shell`.
// A rule is classified once: an install rule when the planner makes its step (installAction),
// which everything after reads (installVerdict); a remove rule, which no plan carries, when
// unload meets it (ruleVerdict). Either way a rule is described, allowed or refused in the
// same words everywhere, worded here.
import type { InstallAction, ProbeStep } from './plan';

const TRUE_FALSE = /^\s*(?:(?:\/usr)?\/bin\/)?(true|false)((?:\s+[\w.,:=+/@%-]+)*)\s*$/;

export type RuleKind = 'install' | 'remove';

/** What a modprobe.d install or remove rule's command amounts to without a shell. */
export function classifyInstallCommand(command: string): InstallAction {
  const match = TRUE_FALSE.exec(command);
  if (!match) return 'shell';
  return match[1] === 'true' ? 'noop' : 'forbid';
}

export interface RuleVerdict {
  /** `noop` (/bin/true), `forbid` (/bin/false), `shell` (anything else). */
  action: InstallAction;
  /** The rule as written: "install sctp /bin/false". */
  rule: string;
  /** Why the module may not go ahead: always for `forbid`, for `shell` when commands may not
   *  run. One line, naming the rule. */
  refusal?: string;
}

/** A rule as written, for messages: "install sctp /bin/false". */
export function ruleText(kind: RuleKind, name: string, command: string): string {
  return `${kind} ${name} ${command.trim()}`;
}

function verdictOn(
  kind: RuleKind,
  name: string,
  command: string,
  action: InstallAction,
  allowCommands: boolean,
): RuleVerdict {
  const rule = ruleText(kind, name, command);
  const verdict: RuleVerdict = { action, rule };
  const doing = kind === 'install' ? 'loading' : 'removing';
  if (action === 'forbid') verdict.refusal = `the rule '${rule}' forbids ${doing} module ${name}`;
  if (action === 'shell' && !allowCommands) {
    verdict.refusal = `the rule '${rule}' needs a shell to run (not allowed)`;
  }
  return verdict;
}

/** The verdict on `kind name command` when shell commands may (or may not) run. */
export function ruleVerdict(
  kind: RuleKind,
  name: string,
  command: string,
  allowCommands: boolean,
): RuleVerdict {
  return verdictOn(kind, name, command, classifyInstallCommand(command), allowCommands);
}

/** The shell install rule of a step, run (an install step) or ignored by kmod (a module with
 *  softdeps), and the verdict on it when shell commands may (or may not) run; undefined when
 *  the step has no such rule. Without a shell, both refuse: the host meant the module to be
 *  loaded its own way, and inserting it directly would bypass whatever the rule does. */
export function shellInstallVerdict(
  step: ProbeStep,
  allowCommands: boolean,
): RuleVerdict | undefined {
  if (step.kind === 'install') {
    const verdict = installVerdict(step, allowCommands);
    return verdict.action === 'shell' ? verdict : undefined;
  }
  if (step.ignoredInstallCommand === undefined) return undefined;
  const verdict = verdictOn(
    'install',
    step.name,
    step.ignoredInstallCommand,
    'shell',
    allowCommands,
  );
  if (verdict.refusal) {
    verdict.refusal += `; modprobe would ignore it, as ${step.name} has softdeps, and insert ${step.name} directly`;
  }
  return verdict;
}

/** The verdict on an install step of a plan, from its rule as the planner classified it
 *  (installAction), when shell commands may (or may not) run. A step without that (a plan not
 *  made by the planner) counts as needing a shell. */
export function installVerdict(step: ProbeStep, allowCommands: boolean): RuleVerdict {
  const action = step.installAction ?? 'shell';
  return verdictOn('install', step.name, step.command ?? '', action, allowCommands);
}
