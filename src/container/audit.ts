// The audit record: one JSON line per decision about a container (`--log FILE`), whichever
// front end made it. Many containers start at once, so many hooks append to the same file
// concurrently: the file is opened with O_APPEND and each line goes
// out in ONE write(2), which Linux performs atomically at the end of a regular file (the
// inode lock covers the offset update and the copy), so lines never interleave.

import fs from 'node:fs';
import path from 'node:path';
import { EXIT, type KmodloadError } from '../errors';
import type { ReleasedModule } from '../holds/holds';
import type { ModuleResult } from '../loader/types';
import type { Plan } from '../planner/plan';
import type { PolicyDecision, PolicyVerdict, RequestSource } from '../policy/types';
import { isoTime, oneLine } from '../text';

export interface AuditStep {
  request: string;
  name: string;
  kind: 'insmod' | 'install' | 'builtin';
  path?: string;
  options: string;
  command?: string;
  required: boolean;
}

export interface AuditResult {
  request: string;
  name: string;
  status: string;
  path?: string;
  error?: { code: string; errno: number; message: string };
}

export interface AuditRecord {
  time: string;
  id: string | null;
  stage: string | null;
  /** The container status the runtime reported. */
  status: string | null;
  request: string[];
  /** Where each requested name came from (env, annotation, cdi); absent when nothing was
   *  asked or the request could not be parsed. */
  sources?: Record<string, RequestSource[]>;
  /** The parameters asked for each requested name that has some (`PARAM=VALUE` words). */
  params?: Record<string, string>;
  dryRun: boolean;
  /** The modules in the order they would be (or were) loaded, request by request. */
  plan: AuditStep[];
  /** The host policy files that decided, or null: none (only the host's modprobe.d blocks
   *  and the default max-modules applied). */
  policy: string[] | null;
  /** The policy's decision for each module of the plan, and the rule that made it. */
  verdict: PolicyDecision[];
  /** The container's annotations that the policy tests, and the pod and container names. */
  annotations: Record<string, string>;
  /** What happened to each module; empty when nothing was attempted. */
  results: AuditResult[];
  /** Poststop: the container's hold released, and what that unloaded or left. */
  release?: AuditRelease;
  durationMs: number;
  /** The hook's exit status: an EXIT value, or 128 + the signal's number when interrupted. */
  exitStatus: number;
  /** Set when a signal (SIGTERM, SIGINT) ended the run before it was done: `results` then
   *  lists what had been done so far. */
  interrupted?: true;
  error?: string;
  /** Problems that did not change the outcome. */
  warnings?: string[];
  /** Set when the record was too large (MAX_RECORD_BYTES): how many entries each summarised
   *  list had; the lists then keep their first entries (verdict: what was denied first,
   *  results: what failed first). */
  summarised?: { request: number; plan: number; verdict: number; results: number };
}

/** Largest log line: a request naming every module of a tree must not write megabytes at
 *  every retry of its pod. */
export const MAX_RECORD_BYTES = 64 * 1024;

/** Where `hook-config` sends the hook's log unless told otherwise: the audit trail. */
export const DEFAULT_HOOK_LOG = '/var/log/kmodload/hook.log';
/** Entries each list keeps in a summarised record. */
const SUMMARY_ENTRIES = 32;

export interface AuditRelease {
  released: boolean;
  /** Holds of containers that were gone, dropped on the way. */
  stale: string[];
  modules: ReleasedModule[];
}

/** What a decision found and did: the record is made of it, and of nothing else. */
export interface AuditFacts {
  id?: string | undefined;
  stage?: string | undefined;
  status?: string | undefined;
  request?: readonly string[] | undefined;
  sources?: Readonly<Record<string, readonly RequestSource[]>> | undefined;
  /** The parameters asked, by requested name. */
  params?: Readonly<Record<string, string>> | undefined;
  dryRun: boolean;
  plan?: Plan | undefined;
  /** The policy's verdict on the plan. */
  verdict?: PolicyVerdict | undefined;
  /** The policy files read (null: none at the default location); undefined: not read. */
  policyFiles?: string[] | null | undefined;
  /** The container's annotations, and the keys of them the policy tests. */
  annotations?: Readonly<Record<string, string>> | undefined;
  policyKeys?: readonly string[];
  release?: AuditRelease | undefined;
  modules: readonly ModuleResult[];
  /** process.hrtime.bigint() when the decision began. */
  started: bigint;
  failure?: KmodloadError | undefined;
  /** The signal that ended the run before it was done. */
  interruptedBy?: NodeJS.Signals | undefined;
  warnings: readonly string[];
}

/** The signals a hook or the plugin handles, by number (no `os` module on the hook's path). */
const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 2, SIGTERM: 15 };

/** Kubernetes' pod and container identity, logged when present so the log answers "which pod
 *  asked": CRI-O's keys, and containerd's CRI plugin's (which sets no io.kubernetes.pod.*). */
const POD_ANNOTATIONS = [
  'io.kubernetes.pod.namespace',
  'io.kubernetes.pod.name',
  'io.kubernetes.container.name',
  'io.kubernetes.cri.sandbox-namespace',
  'io.kubernetes.cri.sandbox-name',
  'io.kubernetes.cri.container-name',
];

/** The exit status that goes with `facts`: 128 + N when signal N ended the run. */
export function exitStatusOf(facts: Pick<AuditFacts, 'failure' | 'interruptedBy'>): number {
  if (facts.interruptedBy) return 128 + (SIGNAL_NUMBERS[facts.interruptedBy] ?? 0);
  return facts.failure ? facts.failure.exitStatus : EXIT.ok;
}

function planSteps(plan: Plan | undefined): AuditStep[] {
  const steps: AuditStep[] = [];
  for (const request of plan?.requests ?? []) {
    for (const probe of request.probes) {
      if (probe.skipped) continue;
      for (const step of probe.steps) {
        const logged: AuditStep = {
          request: request.request,
          name: step.name,
          kind: step.kind,
          options: step.options,
          required: step.required,
        };
        if (step.path !== undefined) logged.path = step.path;
        if (step.command !== undefined) logged.command = step.command;
        steps.push(logged);
      }
    }
  }
  return steps;
}

/** The annotations the record keeps: those the policy tests, and the pod and container names. */
function loggedAnnotations(facts: AuditFacts): Record<string, string> {
  const annotations = facts.annotations ?? {};
  const logged: Record<string, string> = {};
  for (const key of [...(facts.policyKeys ?? []), ...POD_ANNOTATIONS]) {
    const value = annotations[key];
    if (Object.hasOwn(annotations, key) && typeof value === 'string') logged[key] = value;
  }
  return logged;
}

/** `sources` of the record: each requested name's sources, in request order; and the
 *  parameters of the names that have some. */
function loggedSources(facts: AuditFacts): Pick<AuditRecord, 'sources' | 'params'> {
  const { request, sources, params } = facts;
  if (!request || request.length === 0 || !sources) return {};
  // No prototype: a container may ask for a module named "__proto__".
  const logged = Object.create(null) as Record<string, RequestSource[]>;
  const loggedParams = Object.create(null) as Record<string, string>;
  for (const name of request) {
    if (Object.hasOwn(sources, name)) logged[name] = [...(sources[name] ?? [])];
    if (params && Object.hasOwn(params, name)) loggedParams[name] = params[name] as string;
  }
  return Object.keys(loggedParams).length > 0
    ? { sources: logged, params: loggedParams }
    : { sources: logged };
}

function loggedResult(entry: ModuleResult): AuditResult {
  const logged: AuditResult = { request: entry.request, name: entry.name, status: entry.status };
  if (entry.path !== undefined) logged.path = entry.path;
  if (entry.error !== undefined) logged.error = entry.error;
  return logged;
}

/** Milliseconds since `started`, to the microsecond. */
export function elapsedMs(started: bigint): number {
  return Math.round(Number(process.hrtime.bigint() - started) / 1000) / 1000;
}

/** The record of one decision. */
export function auditRecord(facts: AuditFacts): AuditRecord {
  const record: AuditRecord = {
    time: isoTime(),
    id: facts.id ?? null,
    stage: facts.stage ?? null,
    status: facts.status ?? null,
    request: [...(facts.request ?? [])],
    ...loggedSources(facts),
    dryRun: facts.dryRun,
    plan: planSteps(facts.plan),
    policy: facts.policyFiles ?? null,
    verdict: facts.verdict?.decisions ?? [],
    annotations: loggedAnnotations(facts),
    ...(facts.release ? { release: facts.release } : {}),
    results: facts.modules.map(loggedResult),
    durationMs: elapsedMs(facts.started),
    exitStatus: exitStatusOf(facts),
  };
  if (facts.interruptedBy) record.interrupted = true;
  if (facts.failure) record.error = oneLine(facts.failure.message);
  if (facts.warnings.length > 0) record.warnings = [...facts.warnings];
  return record;
}

/** Appends `record` to `file`; the reason as one line when it cannot (the outcome stands). */
export function writeAuditRecord(
  file: string | undefined,
  record: AuditRecord,
): string | undefined {
  if (!file) return undefined;
  try {
    appendLogLine(file, record);
    return undefined;
  } catch (error) {
    return oneLine(`cannot write log ${file}: ${(error as Error).message}`);
  }
}

/** The record as one line of at most MAX_RECORD_BYTES: past that, the request, plan,
 *  verdict and results are cut to their first entries (denials and failures first), the
 *  warnings shortened; the error, the refusal's reason, is always whole. */
export function auditLine(record: AuditRecord): Buffer {
  const whole = Buffer.from(`${JSON.stringify(record)}\n`, 'utf8');
  if (whole.length <= MAX_RECORD_BYTES) return whole;
  const first = <T>(list: readonly T[], keep = SUMMARY_ENTRIES): T[] => list.slice(0, keep);
  const summary: AuditRecord = {
    ...record,
    request: first(record.request).map((name) => name.slice(0, 256)),
    plan: first(record.plan),
    verdict: first([
      ...record.verdict.filter((d) => d.verdict === 'deny'),
      ...record.verdict.filter((d) => d.verdict !== 'deny'),
    ]),
    results: first([
      ...record.results.filter((r) => r.status === 'failed'),
      ...record.results.filter((r) => r.status !== 'failed'),
    ]),
    summarised: {
      request: record.request.length,
      plan: record.plan.length,
      verdict: record.verdict.length,
      results: record.results.length,
    },
  };
  if (record.warnings) summary.warnings = first(record.warnings, 8).map((w) => w.slice(0, 1024));
  if (record.params) {
    const kept = Object.create(null) as Record<string, string>;
    for (const name of summary.request) {
      const params = Object.hasOwn(record.params, name) ? record.params[name] : undefined;
      if (params !== undefined) kept[name] = params.slice(0, 256);
    }
    summary.params = kept;
  }
  if (record.release) {
    summary.release = { ...record.release, modules: first(record.release.modules) };
  }
  let line = Buffer.from(`${JSON.stringify(summary)}\n`, 'utf8');
  if (line.length > MAX_RECORD_BYTES) {
    // Only the error and the container's identity are left to say what happened.
    summary.plan = [];
    summary.verdict = [];
    summary.results = [];
    summary.request = first(record.request, 4).map((name) => name.slice(0, 64));
    delete summary.params;
    line = Buffer.from(`${JSON.stringify(summary)}\n`, 'utf8');
  }
  return line;
}

/** Appends one line. Throws on failure; the caller decides what a lost log line means.
 *  A missing directory is created (0750: the log names containers and pods); the file is
 *  created 0640, never followed through a symlink, and must be a regular file: a FIFO put at
 *  its path must not block the hook (O_NONBLOCK), nor a device take the line. */
export function appendLogLine(file: string, record: AuditRecord): void {
  const line = auditLine(record);
  const flags =
    fs.constants.O_WRONLY |
    fs.constants.O_APPEND |
    fs.constants.O_CREAT |
    fs.constants.O_NOFOLLOW |
    fs.constants.O_NONBLOCK;
  let fd: number;
  try {
    fd = fs.openSync(file, flags, 0o640);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o750 });
    fd = fs.openSync(file, flags, 0o640);
  }
  try {
    if (!fs.fstatSync(fd).isFile()) throw new Error('not a regular file');
    // A short write to a regular file means the disk is (nearly) full; finish the line rather
    // than leave half a record. A write that makes no progress at all ends the attempt.
    let written = 0;
    while (written < line.length) {
      const n = fs.writeSync(fd, line, written, line.length - written);
      if (n <= 0) throw new Error(`short write (${written} of ${line.length} bytes)`);
      written += n;
    }
  } finally {
    fs.closeSync(fd);
  }
}
