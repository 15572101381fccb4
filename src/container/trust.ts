// The files a load stage acts on, checked before it acts: whoever can write one of them decides
// what root loads or unloads (see src/trust.ts for the rule). The hook and the NRI plugin both
// come through here.

import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_CONFIG_DIRS } from '../config/files';
import { DEFAULT_STATE_DIR, untrustedState } from '../holds/store';
import { packageRoot } from '../package-root';
import { DEFAULT_POLICY_DIR } from '../policy/types';
import {
  directoryEntries,
  untrustedEntries,
  untrustedError,
  untrustedReason,
  type TrustOptions,
} from '../trust';
import type { NodeOptions } from './options';

type Check = [what: string, file: string, options?: TrustOptions];

/** What runs as root: node, and the package's entry point and code. */
export function runningFiles(): Check[] {
  const root = packageRoot();
  return [
    ['node', process.execPath],
    ['the kmodload package', root],
    ['the kmodload CLI', path.join(root, 'bin', 'kmodload.js')],
    ['the kmodload package', path.join(root, 'dist')],
    ['the kmodload addon directory', path.join(root, 'build', 'Release')],
  ];
}

/** The files a load stage reads or writes before the policy is known. */
function nodeFiles(options: NodeOptions): Check[] {
  const checks: Check[] = runningFiles();
  for (const dir of options.configDirs ?? DEFAULT_CONFIG_DIRS) checks.push(['modprobe.d', dir]);
  if (options.logFile !== undefined) {
    checks.push([
      "the log's directory",
      path.dirname(path.resolve(options.logFile)),
      { noSymlink: true },
    ]);
  }
  return checks;
}

function firstReason(checks: readonly Check[], safe = new Set<string>()): string | undefined {
  for (const [what, file, options] of checks) {
    const reason = untrustedReason(what, file, options, safe);
    if (reason !== undefined) return reason;
  }
  return undefined;
}

/**
 * Why a load stage must not use this node's files: node and the package, modprobe.d (each
 * directory and its entries), the state directory and its files, the log's directory and the
 * log; undefined when all can be trusted.
 */
export function untrustedNodeFiles(options: NodeOptions): string | undefined {
  const safe = new Set<string>();
  const reason = firstReason(nodeFiles(options), safe);
  if (reason !== undefined) return reason;
  for (const dir of options.configDirs ?? DEFAULT_CONFIG_DIRS) {
    const files = directoryEntries(dir).filter((f) => f.endsWith('.conf'));
    const links = files.filter(isSymlink);
    const entries = untrustedEntries(
      'modprobe.d file',
      files.filter((f) => !links.includes(f)),
    );
    if (entries !== undefined) return entries;
    // A link is judged by what it points to, and the way there (a dangling one is
    // modprobe.d's own error, reported when it is read).
    for (const link of links) {
      let target: string;
      try {
        target = fs.realpathSync.native(link);
      } catch {
        continue;
      }
      const reason = untrustedReason(`modprobe.d file ${link} ->`, target, {}, safe);
      if (reason !== undefined) return reason;
    }
  }
  if (options.logFile !== undefined) {
    const log = untrustedEntries('the log', [path.resolve(options.logFile)]);
    // A symlink at the log's path is the log's own warning (never followed), not a refusal.
    if (log !== undefined && !log.endsWith('is a symlink (remove it)')) return log;
  }
  return untrustedState(options.stateDir ?? DEFAULT_STATE_DIR, safe);
}

/** Why the policy files read (and policy.d, when the default is used) cannot be trusted. */
export function untrustedPolicy(
  files: readonly string[] | null,
  options: NodeOptions,
): string | undefined {
  const checks: Check[] = (files ?? []).map((file) => ['the policy', file]);
  if (!options.policyFiles || options.policyFiles.length === 0) {
    checks.push(['the policy directory', DEFAULT_POLICY_DIR]);
  }
  return firstReason(checks);
}

export function assertNodeFilesTrusted(options: NodeOptions): void {
  const reason = untrustedNodeFiles(options);
  if (reason !== undefined) throw untrustedError(reason);
}

export function assertPolicyTrusted(files: readonly string[] | null, options: NodeOptions): void {
  const reason = untrustedPolicy(files, options);
  if (reason !== undefined) throw untrustedError(reason);
}

function isSymlink(file: string): boolean {
  try {
    return fs.lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}
