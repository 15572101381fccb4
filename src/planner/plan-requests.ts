// From requested names to a Plan: what `modprobe -a NAME...` would do for each, in order, and
// whether kmodload may carry it out without a shell.
import type { ModuleDatabase } from '../db';
import type { Plan, PlanError, Probe, RequestPlan } from './plan';
import { installVerdict, shellInstallVerdict } from './rules';
import { probeModule } from './probe';

export interface PlanOptions {
  /** modprobe -b: blacklisted modules are skipped even when asked for by name. */
  useBlacklist?: boolean;
  /** The caller's parameters per requested name, appended after the configured ones. */
  extraOptions?: Record<string, string>;
  /** Leave install rules that need a shell in the plan instead of refusing the request. */
  allowInstallCommands?: boolean;
}

export function planRequests(db: ModuleDatabase, names: string[], opts: PlanOptions = {}): Plan {
  return {
    moduleDir: db.moduleDir,
    kernelVersion: db.kernelVersion,
    requests: names.map((name) => planOne(db, name, opts)),
  };
}

function planOne(db: ModuleDatabase, request: string, opts: PlanOptions): RequestPlan {
  const fail = (reason: PlanError['reason'], message: string): RequestPlan => ({
    request,
    probes: [],
    error: { reason, message },
  });
  // modprobe would insert a file given by path; kmodload loads modules by name only.
  if (request.startsWith('/') || request.startsWith('./')) {
    return fail('invalid-name', `${request}: loading a module file by path is not supported`);
  }
  const found = db.lookup(request);
  if (!found.valid) return fail('invalid-name', `invalid module name '${request}'`);
  if (found.modules.length === 0) {
    return fail('not-found', `module ${request} not found in directory ${db.moduleDir}`);
  }
  const extra = opts.extraOptions?.[request];
  const probes = found.modules.map((target) =>
    probeModule(db, target, { useBlacklist: opts.useBlacklist ?? false, extraOptions: extra }),
  );
  const error = refusal(db, request, probes, opts);
  return error ? { request, probes, error } : { request, probes };
}

/** Why a planned request must not be carried out, if it must not. */
function refusal(
  db: ModuleDatabase,
  request: string,
  probes: Probe[],
  opts: PlanOptions,
): PlanError | undefined {
  const steps = probes.flatMap((p) => p.steps);
  const refusal = (step: (typeof steps)[number]): string =>
    installVerdict(step, opts.allowInstallCommands === true).refusal ?? '';

  const forbidden = steps.find((s) => s.required && s.installAction === 'forbid');
  if (forbidden) return { reason: 'forbidden', message: refusal(forbidden) };
  if (!opts.allowInstallCommands) {
    const shell = steps
      .map((s) => shellInstallVerdict(s, false)?.refusal)
      .find((r) => r !== undefined);
    if (shell !== undefined) return { reason: 'install-command', message: shell };
  }
  const missing = steps.find((s) => s.required && s.missing);
  if (missing) {
    return {
      reason: 'not-found',
      message: `module ${missing.name} (for ${request}) not found in directory ${db.moduleDir}`,
    };
  }
  if (opts.useBlacklist && probes.every((p) => p.skipped === 'blacklisted')) {
    const modules = probes.map((p) => p.module).join(', ');
    return { reason: 'blacklisted', message: `blacklisted on this host (${modules})` };
  }
  return undefined;
}
