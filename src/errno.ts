// The one table of errno names: Node's own, for numbers from the kernel or the addon and for
// the codes this package writes into results. Every errno number that becomes a name, and
// every name that becomes a number, goes through here.
import { constants } from 'node:os';
import * as util from 'node:util';

// Linux errnos that Node's tables leave out but the kernel answers module syscalls with
// (module signature checks), with their Linux numbers and glibc's wording.
const LINUX_ONLY: Readonly<Record<string, [number, string]>> = {
  ENOKEY: [126, 'required key not available'],
  EKEYEXPIRED: [127, 'key has expired'],
  EKEYREVOKED: [128, 'key has been revoked'],
  EKEYREJECTED: [129, 'key was rejected by service'],
};

interface Tables {
  numbers: Readonly<Record<string, number | undefined>>;
  libuv: Map<number, [string, string]>;
  names: Map<number, string>;
}

let tables: Tables | undefined;

// Built on first use, not when the module loads: most runs name no errno at all, and libuv's
// map and os.constants cost a short-lived hook start-up time.
function errnoTables(): Tables {
  if (tables) return tables;
  const numbers: Readonly<Record<string, number | undefined>> = {
    ...(constants.errno as Record<string, number>),
    ...Object.fromEntries(Object.entries(LINUX_ONLY).map(([name, [n]]) => [name, n])),
  };
  // libuv's map names the common errnos (and calls Linux's 95 ENOTSUP); os.constants.errno has
  // the rest (EBADMSG, EKEYREJECTED...), where the first name listed for a number wins.
  const names = new Map<number, string>();
  for (const [name, value] of Object.entries(numbers)) {
    if (value !== undefined && !names.has(value)) names.set(value, name);
  }
  tables = { numbers, libuv: util.getSystemErrorMap(), names };
  return tables;
}

/** 'ENOENT' for 2; 'E<n>' for a number no table knows. */
export function errnoName(errno: number): string {
  const n = Math.abs(errno);
  const { libuv, names } = errnoTables();
  return libuv.get(-n)?.[0] ?? names.get(n) ?? `E${n}`;
}

/** 2 for 'ENOENT'; 0 for a code that is not an errno name. */
export function errnoNumber(code: string): number {
  return errnoTables().numbers[code] ?? 0;
}

/** What the errno means, in Node's wording ('no such file or directory'), else its name. */
export function errnoDescription(errno: number): string {
  const n = Math.abs(errno);
  const name = errnoName(n);
  return errnoTables().libuv.get(-n)?.[1] ?? LINUX_ONLY[name]?.[1] ?? name;
}
