// kmod's modprobe as the oracle: run it and kmodload's resolver on the same names, root,
// version and configuration, and report every name whose stdout or exit status differs.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import {
  formatShowDepends,
  planRequests,
  showDependsExitStatus,
  type ModuleDatabase,
} from '../../src/planner';
import type { KernelTree } from '../helpers/trees';

// test/unit/db.test.ts still imports the trees from here; the reader is test/helpers/trees.
export type Tree = KernelTree;
export { kernelTree as fetchTree } from '../helpers/trees';

export interface OracleSetup {
  root: string;
  version: string;
  /** modprobe -C, in order. */
  configPaths?: string[];
  /** A file bind-mounted over /proc/cmdline for modprobe (in a private mount namespace). */
  cmdlineFile?: string;
  /** modprobe -b / PlanOptions.useBlacklist. */
  useBlacklist?: boolean;
}

export interface Outcome {
  stdout: string;
  status: number;
}

/** `modprobe [-C ...] -d ROOT -S VER -a --show-depends -- NAMES...` */
export function runModprobe(setup: OracleSetup, names: string[]): Promise<Outcome> {
  const args = [
    ...(setup.configPaths ?? []).flatMap((p) => ['-C', p]),
    '-d',
    setup.root,
    '-S',
    setup.version,
    ...(setup.useBlacklist ? ['-b'] : []),
    '-a',
    '--show-depends',
    '--',
    ...names,
  ];
  const [command, argv] = setup.cmdlineFile
    ? [
        'unshare',
        [
          '-m',
          'sh',
          '-c',
          'mount --bind "$0" /proc/cmdline && exec modprobe "$@"',
          setup.cmdlineFile,
          ...args,
        ],
      ]
    : ['modprobe', args];
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv as string[], { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    const errors: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => errors.push(c));
    child.on('error', reject);
    child.on('close', (status) => {
      const stderr = Buffer.concat(errors).toString();
      if (
        setup.cmdlineFile &&
        /mount|unshare/.test(stderr) &&
        status !== 0 &&
        chunks.length === 0
      ) {
        reject(new Error(`cannot run modprobe with a private /proc/cmdline: ${stderr.trim()}`));
        return;
      }
      resolve({ stdout: Buffer.concat(chunks).toString(), status: status ?? -1 });
    });
  });
}

export function runOurs(
  db: ModuleDatabase,
  names: string[],
  rewrite?: (stdout: string) => string,
  useBlacklist = false,
): Outcome {
  const plan = planRequests(db, names, { useBlacklist });
  const stdout = formatShowDepends(plan);
  return { stdout: rewrite ? rewrite(stdout) : stdout, status: showDependsExitStatus(plan) };
}

export interface Mismatch {
  name: string;
  ours: Outcome;
  theirs: Outcome;
}

/** Runs tasks with at most `limit` in flight. */
async function pool<T, R>(items: T[], limit: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await task(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * Compares name by name. Names go to modprobe in batches (`-a` output is the names' outputs
 * one after the other); a batch that differs, or in which some name fails, is redone one name
 * at a time so every name is judged on its own stdout and exit status.
 */
export async function compareNames(
  db: ModuleDatabase,
  setup: OracleSetup,
  names: string[],
  rewrite?: (stdout: string) => string,
  batchSize = 200,
): Promise<Mismatch[]> {
  const batches: string[][] = [];
  for (let i = 0; i < names.length; i += batchSize) batches.push(names.slice(i, i + batchSize));
  const concurrency = Math.max(2, os.availableParallelism());
  const perBatch = await pool(batches, concurrency, async (batch) => {
    const theirs = await runModprobe(setup, batch);
    const ours = runOurs(db, batch, rewrite, setup.useBlacklist);
    if (theirs.status === 0 && ours.status === 0 && theirs.stdout === ours.stdout) return [];
    const single = await pool(batch, concurrency, async (name): Promise<Mismatch | undefined> => {
      const one = await runModprobe(setup, [name]);
      const mine = runOurs(db, [name], rewrite, setup.useBlacklist);
      return one.status === mine.status && one.stdout === mine.stdout
        ? undefined
        : { name, ours: mine, theirs: one };
    });
    return single.filter((m): m is Mismatch => m !== undefined);
  });
  return perBatch.flat();
}

/** A readable account of the first mismatches: the name, both statuses, a line diff. */
export function describeMismatches(mismatches: Mismatch[], limit = 10): string {
  return mismatches
    .slice(0, limit)
    .map(({ name, ours, theirs }) => {
      const head = `name ${JSON.stringify(name)}: modprobe status ${theirs.status}, kmodload status ${ours.status}`;
      return `${head}\n${lineDiff(theirs.stdout, ours.stdout)}`;
    })
    .join('\n\n')
    .concat(mismatches.length > limit ? `\n... and ${mismatches.length - limit} more` : '');
}

/** `-modprobe` / `+kmodload` lines, from a longest-common-subsequence alignment. */
export function lineDiff(theirs: string, ours: string): string {
  const a = theirs.split('\n');
  const b = ours.split('\n');
  const n = a.length;
  const m = b.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      const row = lcs[i] as number[];
      row[j] =
        a[i] === b[j]
          ? ((lcs[i + 1] as number[])[j + 1] as number) + 1
          : Math.max((lcs[i + 1] as number[])[j] as number, row[j + 1] as number);
    }
  }
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      out.push(`  ${a[i]}`);
      i++;
      j++;
    } else if (
      j < m &&
      (i >= n || ((lcs[i] as number[])[j + 1] as number) >= ((lcs[i + 1] as number[])[j] as number))
    ) {
      out.push(`+ ${b[j]}`);
      j++;
    } else {
      out.push(`- ${a[i]}`);
      i++;
    }
  }
  return out.join('\n');
}

/** A copy of the tree with the text indexes only: `kernel` is a symlink to the original. */
export function textOnlyCopy(tree: KernelTree): { root: string; cleanup: () => void } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-text-'));
  const dir = path.join(root, 'lib', 'modules', tree.version);
  fs.mkdirSync(dir, { recursive: true });
  for (const entry of fs.readdirSync(tree.moduleDir)) {
    const from = path.join(tree.moduleDir, entry);
    if (entry === 'kernel') fs.symlinkSync(from, path.join(dir, entry));
    else if (entry.startsWith('modules.') && !entry.endsWith('.bin')) {
      fs.copyFileSync(from, path.join(dir, entry));
    }
  }
  return { root, cleanup: () => fs.rmSync(root, { recursive: true, force: true }) };
}
