// install (and remove) rules understood without a shell. Hardened hosts write `install MOD /bin/false` to
// forbid a module and `install MOD /bin/true` to make loading it a no-op; both are recognised
// with or without a directory and with plain arguments (ignored by true/false). Anything with
// shell syntax, or any other program, needs /bin/sh and is reported as `shell`.
// ruleVerdict() is the one reading of a rule: the planner, the loader, unload and the host
// policy all ask it, so a rule is described, allowed or refused in the same words everywhere.
import type { InstallAction } from './plan';

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

/** The verdict on `kind name command` when shell commands may (or may not) run. */
export function ruleVerdict(
  kind: RuleKind,
  name: string,
  command: string,
  allowCommands: boolean,
): RuleVerdict {
  const action = classifyInstallCommand(command);
  const rule = `${kind} ${name} ${command.trim()}`;
  const verdict: RuleVerdict = { action, rule };
  const doing = kind === 'install' ? 'loading' : 'removing';
  if (action === 'forbid') verdict.refusal = `the rule '${rule}' forbids ${doing} module ${name}`;
  if (action === 'shell' && !allowCommands) {
    verdict.refusal = `the rule '${rule}' needs a shell to run (not allowed)`;
  }
  return verdict;
}
