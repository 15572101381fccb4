// modprobe.d `remove` rules keep a module in when kmodload unloads on its own: modprobe -r
// would run the rule instead of delete_module, and kmodload runs no shell command unasked.

import { loadModprobeConfig } from '../config/index';
import { fnmatch } from '../db/fnmatch';
import { moduleDirectory } from '../db/module-dir';
import type { ResolverOptions } from '../db/database';

/** Why `name` must stay (the rule), or undefined. Reads modprobe.d as kmod does. */
export async function removeRuleKeeper(
  options: ResolverOptions = {},
): Promise<(name: string) => string | undefined> {
  const config = loadModprobeConfig({
    moduleDir: moduleDirectory(options.root, options.kernelVersion),
    configDirs: options.configDirs,
  });
  return (name) => {
    const rule = config.remove.find((r) => fnmatch(r.module, name));
    return rule ? `kept by the rule 'remove ${rule.module} ${rule.command.trim()}'` : undefined;
  };
}
