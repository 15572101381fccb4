// Node labels for node-feature-discovery (NFD): its local source reads the files of
// /etc/kubernetes/node-feature-discovery/features.d, one `NAME=VALUE` per line, `#` comments,
// and makes them labels of the node. A pod that needs ip_vs can then ask for a node whose
// kmodload can give it (nodeSelector kmodload.io/module.ip_vs: "true").

import type { ModprobeConfig } from '../config/types';
import { fnmatch } from '../db/fnmatch';
import type { TreeNames } from './tree';
import type { Policy } from './types';

export const FEATURE_PREFIX = 'kmodload.io/';
export const READY_LABEL = `${FEATURE_PREFIX}ready`;
export const MODULE_LABEL_PREFIX = `${FEATURE_PREFIX}module.`;
/** NFD skips a feature file larger than this. */
export const NFD_FILE_LIMIT = 64 * 1024;

/**
 * The modules of `tree` that `policy` explicitly allows every container: an allow rule without
 * `when` matches it, no deny without `when` does, and the host's modprobe.d neither
 * blacklists it nor gives it an install rule (a container never runs one). Sorted.
 */
export function explicitlyAllowed(
  policy: Policy,
  tree: TreeNames,
  config: Pick<ModprobeConfig, 'install' | 'blacklist'>,
): string[] {
  const unconditional = policy.rules.filter((r) => r.conditions.length === 0);
  const allows = unconditional.filter((r) => r.verdict === 'allow');
  const denies = unconditional.filter((r) => r.verdict === 'deny');
  const matches = (rules: typeof allows, name: string): boolean =>
    rules.some((r) => r.patterns.some((p) => fnmatch(p, name)));
  return [...tree.modules]
    .filter(
      (name) =>
        matches(allows, name) &&
        !matches(denies, name) &&
        !config.blacklist.includes(name) &&
        !config.install.some((rule) => fnmatch(rule.module, name)),
    )
    .sort();
}

/**
 * The feature file: the ready label, then one label per module, as many as fit under NFD's
 * limit, with a comment line saying how many did not.
 */
export function featureFile(ready: boolean, modules: readonly string[]): string {
  const head = [
    '# Written by kmodload nfd: node labels for node-feature-discovery.',
    `${READY_LABEL}=${ready}`,
  ].join('\n');
  const lines = modules.map((name) => `${MODULE_LABEL_PREFIX}${name}=true`);
  const size = (count: number, capped: boolean): number => {
    let total = head.length + 1;
    for (let i = 0; i < count; i++) total += (lines[i] as string).length + 1;
    if (capped) total += capNote(count, modules.length).length + 1;
    return total;
  };
  let count = lines.length;
  if (size(count, false) > NFD_FILE_LIMIT) {
    // Few enough lines that a linear search is fine (a whole tree: about 4,000).
    while (count > 0 && size(count, true) > NFD_FILE_LIMIT) count--;
  }
  const out = [head, ...lines.slice(0, count)];
  if (count < lines.length) out.push(capNote(count, modules.length));
  return `${out.join('\n')}\n`;
}

function capNote(written: number, total: number): string {
  return `# ${total - written} more allowed modules left out: NFD reads at most ${NFD_FILE_LIMIT} bytes`;
}
