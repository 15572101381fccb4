// install (and remove) rules understood without a shell. Hardened hosts write `install MOD /bin/false` to
// forbid a module and `install MOD /bin/true` to make loading it a no-op; both are recognised
// with or without a directory and with plain arguments (ignored by true/false). Anything with
// shell syntax, or any other program, needs /bin/sh and is reported as `shell`.
import type { InstallAction } from './plan';

const TRUE_FALSE = /^\s*(?:(?:\/usr)?\/bin\/)?(true|false)((?:\s+[\w.,:=+/@%-]+)*)\s*$/;

/** What a modprobe.d install or remove rule's command amounts to without a shell. */
export function classifyInstallCommand(command: string): InstallAction {
  const match = TRUE_FALSE.exec(command);
  if (!match) return 'shell';
  return match[1] === 'true' ? 'noop' : 'forbid';
}

/** Why a request whose install rule needs a shell is refused when commands may not run. */
export function shellRuleRefusal(name: string, command: string): string {
  return `module ${name} has the install rule 'install ${name} ${command}', which needs a shell (not allowed)`;
}
