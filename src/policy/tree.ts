// The names a module tree has, for what looks at a policy as a whole rather than at one plan:
// `policy lint -d/-S` (patterns that match no module), `policy export` (the denies expanded to
// module names) and `doctor` (denied modules the kernel could still autoload). Read from the
// text files depmod writes, as modprobe's indexes hold them: names normalised (`-` -> `_`).

import { aliasNormalize, pathToModname } from '../config/normalize';
import { fnmatch } from '../db/fnmatch';
import { moduleDirectory } from '../db/module-dir';
import { EXIT, KmodloadError } from '../errors';
import { FileReadError, readRegularFile } from '../files';
import type { ParamsRule, Policy, PolicyProblem, PolicyRule } from './types';

/** Largest index text read (a whole Debian modules.alias is about 1.3 MB). */
const MAX_INDEX_BYTES = 64 * 1024 * 1024;

export interface TreeNames {
  moduleDir: string;
  /** Modules with a file (modules.dep) or built in (modules.builtin). */
  modules: ReadonlySet<string>;
  /** Of those, the built-in ones. */
  builtin: ReadonlySet<string>;
  /** modules.alias: each alias (a pattern itself, normalised) and the modules it names. */
  aliases: ReadonlyMap<string, readonly string[]>;
}

async function readIndex(moduleDir: string, name: string, optional: boolean): Promise<string> {
  const file = `${moduleDir}/${name}`;
  try {
    return (await readRegularFile(file, MAX_INDEX_BYTES)).toString('utf8');
  } catch (error) {
    if (!(error instanceof FileReadError)) throw error;
    if (optional && error.code === 'ENOENT') return '';
    throw new KmodloadError(`cannot read ${file}: ${error.message}`, EXIT.environment);
  }
}

/**
 * The module and alias names of the tree under `root` (as -d) for `kernelVersion` (as -S).
 * @throws KmodloadError (EXIT.environment) when modules.dep cannot be read.
 */
export async function readTreeNames(root?: string, kernelVersion?: string): Promise<TreeNames> {
  const moduleDir = moduleDirectory(root, kernelVersion);
  const [dep, builtinText, aliasText] = await Promise.all([
    readIndex(moduleDir, 'modules.dep', false),
    readIndex(moduleDir, 'modules.builtin', true),
    readIndex(moduleDir, 'modules.alias', true),
  ]);
  const modules = new Set<string>();
  const builtin = new Set<string>();
  for (const line of dep.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) modules.add(pathToModname(line.slice(0, colon)));
  }
  for (const line of builtinText.split('\n')) {
    if (line.trim() === '') continue;
    const name = pathToModname(line.trim());
    builtin.add(name);
    modules.add(name);
  }
  const aliases = new Map<string, string[]>();
  for (const line of aliasText.split('\n')) {
    const [keyword, alias, module] = line.split(/\s+/);
    if (keyword !== 'alias' || alias === undefined || module === undefined) continue;
    const key = aliasNormalize(alias);
    if (key === undefined) continue;
    const list = aliases.get(key) ?? [];
    list.push(pathToModname(module));
    aliases.set(key, list);
  }
  return { moduleDir, modules, builtin, aliases };
}

/** The modules of `tree` that `pattern` (normalised, as a rule holds it) matches, sorted. */
export function modulesMatching(pattern: string, tree: TreeNames): string[] {
  return [...tree.modules].filter((name) => fnmatch(pattern, name)).sort();
}

/** "FILE:LINE" split back. */
function originOf(rule: PolicyRule | ParamsRule): { file: string; line: number } {
  const colon = rule.origin.lastIndexOf(':');
  return { file: rule.origin.slice(0, colon), line: Number(rule.origin.slice(colon + 1)) };
}

/** Why `pattern` matches no module of `tree`: an alias or another letter case (a mistake:
 *  `mistake`), or nothing (maybe a module of another kernel). */
function noMatchReason(
  written: string,
  pattern: string,
  tree: TreeNames,
): { message: string; mistake: boolean } {
  const quoted = JSON.stringify(written);
  const viaAlias = [...tree.aliases]
    .filter(([alias]) => alias === pattern || fnmatch(pattern, alias))
    .flatMap(([, modules]) => modules);
  if (viaAlias.length > 0) {
    const targets = [...new Set(viaAlias)].sort();
    const shown = targets.slice(0, 3).join(' ') + (targets.length > 3 ? ' ...' : '');
    const message = `${quoted} matches no module of ${tree.moduleDir}, only an alias (of ${shown}): rules match module names, write the module`;
    return { message, mistake: true };
  }
  const lower = pattern.toLowerCase();
  if (lower !== pattern && modulesMatching(lower, tree).length > 0) {
    const message = `${quoted} matches no module of ${tree.moduleDir}: names are case-sensitive, did you mean ${JSON.stringify(lower)}?`;
    return { message, mistake: true };
  }
  const message = `${quoted} matches no module of ${tree.moduleDir} (another kernel may have one)`;
  return { message, mistake: false };
}

/** The written words of a rule's patterns, in order (the rule keeps them normalised). */
function writtenPatterns(rule: PolicyRule): string[] {
  const words = rule.text.split(' ').slice(1);
  const when = words.indexOf('when');
  return when < 0 ? words : words.slice(0, when);
}

/** Every rule pattern that matches no module of `tree`: a problem when it is a mistake (an
 *  alias, a letter case), a note when the module may just be another kernel's (a deny kept
 *  for the next kernel protects; lint must not push operators to drop it). */
export function unmatchedPatterns(
  policy: Policy,
  tree: TreeNames,
): { problems: PolicyProblem[]; notes: PolicyProblem[] } {
  const problems: PolicyProblem[] = [];
  const notes: PolicyProblem[] = [];
  const check = (rule: PolicyRule | ParamsRule, pattern: string, written: string): void => {
    if (modulesMatching(pattern, tree).length > 0) return;
    const { message, mistake } = noMatchReason(written, pattern, tree);
    (mistake ? problems : notes).push({ ...originOf(rule), message });
  };
  for (const rule of policy.rules) {
    const written = writtenPatterns(rule);
    rule.patterns.forEach((pattern, i) => check(rule, pattern, written[i] ?? pattern));
  }
  // `params GLOB ...`: the module pattern is the second word.
  for (const rule of policy.paramRules) check(rule, rule.pattern, rule.text.split(' ')[1] ?? '');
  return { problems, notes };
}
