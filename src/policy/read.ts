// Where the policy lives and how it is read. No file at the default location means no policy
// (the host's own blocks still apply in the hook); a file that exists but cannot be read or
// parsed refuses every request: an operator must never believe a policy protects them while
// it is being ignored.

import fs from 'node:fs';
import path from 'node:path';
import { EXIT, KmodloadError } from '../errors';
import { FileReadError, readRegularFileSync } from '../files';
import { addPolicyText, emptyPolicy, formatProblem } from './parse';
import { DEFAULT_POLICY_DIR, DEFAULT_POLICY_FILE, type Policy, type PolicyProblem } from './types';

/** Largest policy file read. */
export const MAX_POLICY_FILE_BYTES = 1024 * 1024;

/**
 * The files of the default policy that exist: policy.conf, then policy.d/*.conf in byte order
 * of name. A policy.d that exists but cannot be listed is a problem, not an empty list.
 */
function defaultPolicyFiles(problems: PolicyProblem[], skipped: string[], root: string): string[] {
  const files: string[] = [];
  const main = path.join(root, DEFAULT_POLICY_FILE);
  const dir = path.join(root, DEFAULT_POLICY_DIR);
  try {
    if (fs.lstatSync(main, { throwIfNoEntry: false })) files.push(main);
  } catch {
    files.push(main); // the read fails below, and says why
  }
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') {
      problems.push({ file: dir, line: 0, message: `cannot list: ${String(code)}` });
    }
  }
  // Hidden files (an editor's) are nobody's policy; any other name is reported (lint).
  for (const name of names) {
    if (!name.endsWith('.conf') && !name.startsWith('.')) skipped.push(path.join(dir, name));
  }
  skipped.sort();
  names = names.filter((name) => name.endsWith('.conf') && !name.startsWith('.'));
  names.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  for (const name of names) files.push(path.join(dir, name));
  return files;
}

export interface ReadPolicyResult {
  /** null: no policy file at the default location. */
  policy: Policy | null;
  /** Every problem found; the policy must not be used when there is one. */
  problems: PolicyProblem[];
  /** Files in policy.d that are not read, their names not ending in `.conf` (`99-deny`,
   *  `deny.CONF`): not a problem for the hook, but an operator must hear of them (lint). */
  skipped: string[];
}

/**
 * Reads the policy files `files`, or the default location when `files` is empty or absent.
 * Files named explicitly must exist. Never throws for a bad file: see `problems`.
 * `root` prefixes the default locations (tests). The files are small and read at once (in
 * fewer microseconds than a thread-pool round trip).
 */
export async function readPolicyFiles(
  files?: readonly string[],
  root = '/',
): Promise<ReadPolicyResult> {
  const problems: PolicyProblem[] = [];
  const skipped: string[] = [];
  const explicit = files !== undefined && files.length > 0;
  const list = explicit ? [...files] : defaultPolicyFiles(problems, skipped, root);
  if (list.length === 0 && problems.length === 0) return { policy: null, problems, skipped };
  const policy = emptyPolicy();
  for (const file of list) {
    let content: Buffer;
    try {
      content = readRegularFileSync(file, MAX_POLICY_FILE_BYTES);
    } catch (error) {
      if (!(error instanceof FileReadError)) throw error;
      problems.push({ file, line: 0, message: `cannot read the policy: ${error.message}` });
      continue;
    }
    problems.push(...addPolicyText(policy, content, file));
  }
  return { policy, problems, skipped };
}

/**
 * Reads the policy as `readPolicyFiles`, refusing a broken one.
 * @throws KmodloadError (EXIT.environment): the first problem, as "FILE:LINE: message".
 */
export async function readPolicy(files?: readonly string[], root = '/'): Promise<Policy | null> {
  const { policy, problems } = await readPolicyFiles(files, root);
  const first = problems[0];
  if (first) throw brokenPolicyError(first, problems.length);
  return policy;
}

/** The one-line refusal for a broken policy. */
export function brokenPolicyError(first: PolicyProblem, count = 1): KmodloadError {
  const more = count > 1 ? ` (and ${count - 1} more: kmodload policy lint)` : '';
  return new KmodloadError(`invalid policy: ${formatProblem(first)}${more}`, EXIT.environment);
}

/**
 * Parses one policy text, as a file named `fileName` would be read.
 * @throws KmodloadError (EXIT.environment) naming FILE:LINE of the first problem.
 */
export function parsePolicy(text: string | Uint8Array, fileName = 'policy'): Policy {
  const policy = emptyPolicy();
  const problems = addPolicyText(policy, text, fileName);
  const first = problems[0];
  if (first) throw brokenPolicyError(first, problems.length);
  return policy;
}
