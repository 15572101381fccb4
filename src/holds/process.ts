// Is the container that took a hold still there? Its pid alone cannot say (pids are reused),
// so a hold also keeps the process's start time, field 22 of /proc/PID/stat.

import { readRegularFileSync } from '../files';

/** The start time of process `pid` (clock ticks since boot, as text), or undefined when there
 *  is no such process. */
export function processStartTime(pid: number, procRoot = '/proc'): string | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  let stat: string;
  try {
    // Synchronous: a procfs read of a few hundred bytes, done under the state lock.
    stat = readRegularFileSync(`${procRoot}/${pid}/stat`, 64 * 1024).toString('utf8');
  } catch {
    return undefined;
  }
  // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses, so fields are counted
  // from the last ')'. STATE is field 3, the start time field 22.
  const fields = stat
    .slice(stat.lastIndexOf(')') + 1)
    .trim()
    .split(/\s+/);
  return fields[22 - 3];
}

export type Liveness = 'alive' | 'gone' | 'unknown';

/** Whether the process recorded as `pid` started at `start` still runs. */
export function processLiveness(
  pid: number | null,
  start: string | null,
  procRoot = '/proc',
): Liveness {
  if (pid === null || pid <= 0 || start === null) return 'unknown';
  const now = processStartTime(pid, procRoot);
  return now !== undefined && now === start ? 'alive' : 'gone';
}
