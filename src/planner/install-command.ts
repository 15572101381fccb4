// install rules understood without a shell. Hardened hosts write `install MOD /bin/false` to
// forbid a module and `install MOD /bin/true` to make loading it a no-op; both are recognised
// with or without a directory and with plain arguments (ignored by true/false). Anything with
// shell syntax, or any other program, needs /bin/sh and is reported as `shell`.
import type { InstallAction } from './plan';

const TRUE_FALSE = /^\s*(?:(?:\/usr)?\/bin\/)?(true|false)((?:\s+[\w.,:=+/@%-]+)*)\s*$/;

export function classifyInstallCommand(command: string): InstallAction {
  const match = TRUE_FALSE.exec(command);
  if (!match) return 'shell';
  return match[1] === 'true' ? 'noop' : 'forbid';
}
