// The one table of errno names: Node's own, for numbers from the kernel or the addon and for
// the codes this package writes into results. Nothing else names errno values.
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

const NUMBERS: Readonly<Record<string, number | undefined>> = {
  ...(constants.errno as Record<string, number>),
  ...Object.fromEntries(Object.entries(LINUX_ONLY).map(([name, [n]]) => [name, n])),
};

// libuv's map names the common errnos (and calls Linux's 95 ENOTSUP); os.constants.errno has
// the rest (EBADMSG, EKEYREJECTED...), where the first name listed for a number wins.
const LIBUV = util.getSystemErrorMap();
const NAMES = new Map<number, string>();
for (const [name, value] of Object.entries(NUMBERS)) {
  if (value !== undefined && !NAMES.has(value)) NAMES.set(value, name);
}

/** 'ENOENT' for 2; 'E<n>' for a number no table knows. */
export function errnoName(errno: number): string {
  const n = Math.abs(errno);
  return LIBUV.get(-n)?.[0] ?? NAMES.get(n) ?? `E${n}`;
}

/** 2 for 'ENOENT'; 0 for a code that is not an errno name. */
export function errnoNumber(code: string): number {
  return NUMBERS[code] ?? 0;
}

/** What the errno means, in Node's wording ('no such file or directory'), else its name. */
export function errnoDescription(errno: number): string {
  const n = Math.abs(errno);
  const name = errnoName(n);
  return LIBUV.get(-n)?.[1] ?? LINUX_ONLY[name]?.[1] ?? name;
}
