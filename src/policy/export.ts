// The policy's denies as modprobe.d lines, for /etc/modprobe.d/: the kernel's own autoload
// (request_module() runs modprobe for `net-pf-132`, `fs-xfs`, `rtnl-link-dummy`...) never asks
// kmodload, so without them a container that opens an AF_SCTP socket gets sctp whatever the
// policy says.
//
// - One `install NAME /bin/false` per module an unconditional deny matches in the tree (globs
//   expanded), sorted. Install rules are keyed by module name: an alias resolves to its module
//   first, so the module's line covers every alias of it (no alias lines are needed).
// - modprobe ignores the install rule of a module that has softdeps; such a module also gets
//   `blacklist NAME`, which keeps it out of alias lookups (the kernel's autoload is one).
// - A deny with `when` is not exported: the kernel's autoload knows no container, and the rule
//   must not keep the module from the host. Nor is `default deny`. The header says so.
// - A builtin module cannot be kept out by modprobe.d: left out, named in the header.

import type { ModprobeConfig } from '../config/types';
import { fnmatch } from '../db/fnmatch';
import { classifyInstallCommand } from '../planner/rules';
import { modulesMatching, type TreeNames } from './tree';
import type { Policy } from './types';

export interface ExportFacts {
  tree: TreeNames;
  /** Whether the module has softdeps (the tree's modules.softdep or modprobe.d). */
  hasSoftdeps: (name: string) => boolean;
}

export interface PolicyExport {
  /** The modules given an install line, sorted. */
  modules: string[];
  /** The file's text. */
  text: string;
}

/** The modules an unconditional deny of `policy` matches in the tree, sorted, builtins apart. */
export function deniedModules(
  policy: Policy,
  tree: TreeNames,
): { modules: string[]; builtin: string[] } {
  const matched = new Set<string>();
  for (const rule of policy.rules) {
    if (rule.verdict !== 'deny' || rule.conditions.length > 0) continue;
    for (const pattern of rule.patterns) {
      for (const name of modulesMatching(pattern, tree)) matched.add(name);
    }
  }
  const sorted = [...matched].sort();
  return {
    modules: sorted.filter((name) => !tree.builtin.has(name)),
    builtin: sorted.filter((name) => tree.builtin.has(name)),
  };
}

/** The modprobe.d file for `policy` on `facts.tree`. */
export function exportModprobeConfig(policy: Policy, facts: ExportFacts): PolicyExport {
  const { modules, builtin } = deniedModules(policy, facts.tree);
  const header = [
    '# Written by kmodload policy export --format modprobe.d: the host policy',
    `# (${policy.files.join(', ') || 'no file'}) for the kernel's own autoload, which runs modprobe.`,
    `# Tree: ${facts.tree.moduleDir}. An alias resolves to its module, whose line applies.`,
    '# blacklist NAME: a module with softdeps, whose install rule modprobe ignores.',
  ];
  const conditional = policy.rules.filter((r) => r.verdict === 'deny' && r.conditions.length > 0);
  for (const rule of conditional) {
    header.push(`# Not exported (applies to some containers only): ${rule.origin} (${rule.text})`);
  }
  if (policy.default.value === 'deny') {
    header.push('# Not exported: default deny (the host itself may load any other module).');
  }
  for (const rule of policy.rules) {
    if (rule.verdict !== 'deny' || rule.conditions.length > 0) continue;
    const none = rule.patterns.filter((p) => modulesMatching(p, facts.tree).length === 0);
    if (none.length > 0) {
      header.push(
        `# No module of this tree: ${none.join(' ')} (${rule.origin}; kmodload policy lint -d/-S)`,
      );
    }
  }
  if (builtin.length > 0) {
    header.push(`# Built in, always there: ${builtin.join(' ')}`);
  }
  const lines: string[] = [];
  for (const name of modules) {
    if (facts.hasSoftdeps(name)) lines.push(`blacklist ${name}`);
    lines.push(`install ${name} /bin/false`);
  }
  return { modules, text: [...header, ...lines, ''].join('\n') };
}

/**
 * The modules `policy` denies outright that the kernel's own autoload could still load: the
 * host's modprobe.d (`config`) has no install rule that loads nothing (`/bin/false`,
 * `/bin/true`) for them, or, for a module with softdeps (whose install rule modprobe
 * ignores), no `blacklist`.
 */
export function autoloadableDenied(
  policy: Policy,
  tree: TreeNames,
  config: Pick<ModprobeConfig, 'install' | 'blacklist' | 'softdeps'>,
): string[] {
  return deniedModules(policy, tree).modules.filter((name) => {
    const softdep = config.softdeps.find((r) => fnmatch(r.module, name));
    if (softdep !== undefined && softdep.pre.length + softdep.post.length > 0) {
      return !config.blacklist.includes(name);
    }
    const install = config.install.find((r) => fnmatch(r.module, name));
    return install === undefined || classifyInstallCommand(install.command) === 'shell';
  });
}
