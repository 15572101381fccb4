// kmod_module_probe_insert_module() as a pure computation: the ordered list of modules one
// lookup match brings in, with what modprobe would do for each.
//
// The walk (kmod's __kmod_module_get_probe_list / __kmod_module_fill_softdep):
//   probe(M):  skip if M was visited in this probe; mark it.
//              for each hard dependency D of M, from the RIGHT end of its modules.dep list:
//                  fill(D)
//              fill(M)
//   fill(X):   probe(S) for each pre-softdep S of X; append X; probe(S) for each post-softdep.
// Only probe() marks visited, so a dependency reached again through fill() is appended again:
// modprobe really prints some modules twice (ext4 with a softdep on one of its dependencies).
// Each lookup match is probed with fresh visited marks.
import type { ModuleDatabase, ModuleRef } from '../db';
import { classifyInstallCommand, ruleText } from './rules';
import type { HostBlock, InstallAction, Probe, ProbeStep } from './plan';

export interface ProbeOptions {
  /** modprobe -b: a blacklisted module is skipped even when asked for by its own name. */
  useBlacklist: boolean;
  /** The caller's parameters for the requested name (modprobe NAME PARAMS...). */
  extraOptions: string | undefined;
}

export function probeModule(db: ModuleDatabase, target: ModuleRef, opts: ProbeOptions): Probe {
  // kmod checks the blacklist for the looked-up module only, never for what it pulls in.
  if (db.isBlacklisted(target.name) && (target.alias !== undefined || opts.useBlacklist)) {
    return { module: target.name, steps: [], skipped: 'blacklisted' };
  }

  const visited = new Set<string>();
  const required = new Set<string>();
  const list: ModuleRef[] = [];

  const dependencyRefs = (mod: ModuleRef): ModuleRef[] =>
    (db.depEntry(mod.name)?.dependencies ?? [])
      .map((d) => ({ key: d.name, name: d.name, path: d.path }))
      .reverse();

  const fill = (mod: ModuleRef): void => {
    const { pre, post } = db.softdepRefs(mod.name);
    for (const s of pre) probe(s, false);
    list.push(mod);
    for (const s of post) probe(s, false);
  };

  const probe = (mod: ModuleRef, isRequired: boolean): void => {
    if (visited.has(mod.key)) return;
    visited.add(mod.key);
    const deps = dependencyRefs(mod);
    if (isRequired) {
      required.add(mod.key);
      for (const d of deps) required.add(d.key);
    }
    for (const d of deps) fill(d);
    fill(mod);
  };

  probe(target, true);

  const steps = list.map((mod) =>
    stepFor(db, mod, {
      required: required.has(mod.key),
      target: mod.key === target.key,
      extraOptions: mod.key === target.key ? opts.extraOptions : undefined,
    }),
  );
  return { module: target.name, steps };
}

interface StepContext {
  required: boolean;
  target: boolean;
  extraOptions: string | undefined;
}

/** An install step's own fields: its rule's command, classified here once for every reader. */
interface InstallFields {
  kind: 'install';
  command: string;
  installAction: InstallAction;
}

function stepFor(db: ModuleDatabase, mod: ModuleRef, ctx: StepContext): ProbeStep {
  const options = joinOptions(db.configOptions(mod.name, mod.alias), ctx.extraOptions);
  const command = mod.installCommand ?? db.installCommand(mod.name);
  // A module with softdeps is inserted directly: kmod does not run its install rule.
  const { pre, post } = db.softdepRefs(mod.name);
  const install: InstallFields | undefined =
    command !== undefined && pre.length === 0 && post.length === 0
      ? { kind: 'install', command, installAction: classifyInstallCommand(command) }
      : undefined;
  const block = hostBlock(db, mod.name, install);
  const ignored =
    command !== undefined && !install && classifyInstallCommand(command) === 'shell'
      ? { ignoredInstallCommand: command }
      : {};
  const base = {
    name: mod.name,
    options,
    ...(ctx.extraOptions ? { extraOptions: ctx.extraOptions } : {}),
    required: ctx.required,
    target: ctx.target,
    ...(block ? { hostBlock: block } : {}),
    ...ignored,
  };
  if (install) return { ...base, ...install };
  const path = mod.path ?? db.depEntry(mod.name)?.path;
  if (path !== undefined) return { ...base, kind: 'insmod', path };
  if (mod.builtin ?? db.isBuiltin(mod.name)) return { ...base, kind: 'builtin' };
  // An alias to a module that is not in modules.dep: modprobe shows nothing and fails to
  // insert it (ENOENT).
  return { ...base, kind: 'insmod', missing: true };
}

/** Whether the host's modprobe.d keeps `name` out (blacklist, install /bin/true|false). The
 *  host's install rule is mostly the one its step runs, classified already; a module with
 *  softdeps has no install step (kmod ignores the rule), yet the host means to keep it out. */
function hostBlock(
  db: ModuleDatabase,
  name: string,
  step: InstallFields | undefined,
): HostBlock | undefined {
  const origin = (rule: string): { origin?: string } => {
    const where = db.config.origins.get(rule);
    return where === undefined ? {} : { origin: where };
  };
  if (db.isBlacklisted(name)) {
    return { kind: 'blacklist', rule: `blacklist ${name}`, ...origin(`blacklist ${name}`) };
  }
  const install = db.installRule(name);
  if (!install) return undefined;
  const action =
    step?.command === install.command
      ? step.installAction
      : classifyInstallCommand(install.command);
  if (action === 'shell') return undefined;
  const rule = ruleText('install', install.module, install.command);
  return { kind: 'install', rule, ...origin(`install ${install.module}`) };
}

/**
 * kmod's module_options_concat(): config options, a space, then the caller's. The space is
 * there even when the caller gave nothing, and it reaches the kernel and the printed line.
 */
export function joinOptions(config: string | undefined, extra: string | undefined): string {
  if (config === undefined) return extra ?? '';
  return `${config} ${extra ?? ''}`;
}
