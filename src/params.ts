// Module parameters, in the three forms they take:
// - what a container may write (`PARAM=VALUE`: a C identifier, a value of a few safe
//   characters, quoted when it holds blanks), bounded;
// - what the kernel reads from a parameter string (kernel/params.c next_arg: blanks separate,
//   double quotes group and are dropped around a value, `-` and `_` are the same in a name,
//   the last setting of a name wins);
// - what /sys/module/NAME/parameters/PARAM shows (kernel/params.c's param_get_*): integers in
//   decimal (hexint as %#08x), bools and invbools as Y or N (bint as 1 or 0), strings as
//   they are, array elements joined by commas.
// sameValue() compares an asked value with a shown one by those rules. sysfs does not say a
// parameter's type: the shown text decides (Y/N: a bool; a number: an integer; else a string),
// so a string parameter whose live value reads as a number or as Y/N is compared as one.

/** Longest parameter name a container may write (kernel parameter names are C identifiers). */
export const MAX_PARAM_NAME_LENGTH = 64;
/** Longest value a container may write (sysfs shows at most a page). */
export const MAX_PARAM_VALUE_LENGTH = 1024;

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;
// No shell, quote, glob or separator character: letters, digits and . , : + - / @ % _
const VALUE_CHARS = /^[A-Za-z0-9._,:+/@%-]*$/;
/** The characters a value may use, for messages. */
export const VALUE_CHARS_TEXT = 'letters, digits and . , : + - / @ % _';

/** One `NAME[=VALUE]` of a parameter string, as the kernel reads it: quotes removed. */
export interface ParamSetting {
  name: string;
  /** Absent for a bare NAME (a bool set to true). */
  value?: string;
}

/** A parameter name as the kernel compares names: `-` and `_` alike. */
export function paramKey(name: string): string {
  return name.replace(/-/g, '_');
}

/** Why `name` is not a parameter name a container may write, or undefined. */
export function paramNameProblem(name: string): string | undefined {
  if (name === '') return "no parameter name before '='";
  if (name.length > MAX_PARAM_NAME_LENGTH) {
    return `parameter name longer than ${MAX_PARAM_NAME_LENGTH} characters`;
  }
  if (!PARAM_NAME.test(name)) {
    return 'a parameter name is a letter or "_", then letters, digits, "_" or "-"';
  }
  return undefined;
}

/** Why `value` (as written: maybe "quoted") is not a value a container may write, or
 *  undefined. */
export function paramValueProblem(value: string): string | undefined {
  const quoted = value.length >= 2 && value.startsWith('"') && value.endsWith('"');
  const inner = quoted ? value.slice(1, -1) : value;
  if (!quoted && inner === '') return "no value after '='";
  if (inner.length > MAX_PARAM_VALUE_LENGTH) {
    return `value longer than ${MAX_PARAM_VALUE_LENGTH} characters`;
  }
  const chars = quoted ? inner.replace(/ /g, '') : inner;
  if (!VALUE_CHARS.test(chars)) {
    return `a value uses only ${VALUE_CHARS_TEXT}${quoted ? ' and spaces' : ' (blanks only inside "...")'}`;
  }
  return undefined;
}

/** Why `word` is not a `PARAM=VALUE` a container may write, or undefined. */
export function paramWordProblem(word: string): string | undefined {
  const eq = word.indexOf('=');
  if (eq < 0) return 'a parameter is PARAM=VALUE';
  return paramNameProblem(word.slice(0, eq)) ?? paramValueProblem(word.slice(eq + 1));
}

/** ASCII blanks, as the kernel's isspace(). */
function isSpace(c: string | undefined): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\v' || c === '\f' || c === '\r';
}

function skipSpaces(text: string, from: number): number {
  let i = from;
  while (i < text.length && isSpace(text[i])) i++;
  return i;
}

/** A parameter string as the kernel reads it (parse_args/next_arg), setting by setting. */
export function kernelParams(text: string): ParamSetting[] {
  const settings: ParamSetting[] = [];
  let at = skipSpaces(text, 0);
  while (at < text.length) {
    let start = at;
    let inQuote = false;
    let quoted = false;
    if (text[start] === '"') {
      start++;
      inQuote = quoted = true;
    }
    let i = start;
    let equals = -1;
    for (; i < text.length; i++) {
      const c = text[i];
      if (isSpace(c) && !inQuote) break;
      // As the kernel: an '=' first in the word does not count as the separator.
      if (equals < 0 && c === '=' && i > start) equals = i;
      if (c === '"') inQuote = !inQuote;
    }
    // The kernel cuts a closing quote off the word's end.
    const end =
      (quoted || (equals >= 0 && text[equals + 1] === '"')) && text[i - 1] === '"' ? i - 1 : i;
    if (equals < 0) {
      settings.push({ name: text.slice(start, Math.max(end, start)) });
    } else {
      const valueStart = text[equals + 1] === '"' ? equals + 2 : equals + 1;
      settings.push({
        name: text.slice(start, equals),
        value: text.slice(valueStart, Math.max(end, valueStart)),
      });
    }
    at = skipSpaces(text, i + 1);
  }
  return settings;
}

/** The last setting of each parameter (the kernel applies them in order), by paramKey. */
export function effectiveParams(settings: readonly ParamSetting[]): Map<string, ParamSetting> {
  const last = new Map<string, ParamSetting>();
  for (const setting of settings) {
    const key = paramKey(setting.name);
    last.delete(key);
    last.set(key, setting);
  }
  return last;
}

/** `NAME=VALUE` for a message, quoted where the kernel needs quotes, cut when long. */
export function settingText(setting: ParamSetting): string {
  if (setting.value === undefined) return setting.name;
  return `${setting.name}=${valueText(setting.value)}`;
}

/** A value for a message: in quotes when it holds blanks, cut after 128 characters. */
export function valueText(value: string): string {
  const cut = value.length > 128 ? `${value.slice(0, 128)}...` : value;
  return /[\s"]/.test(cut) || cut === '' ? `"${cut}"` : cut;
}

/** kstrtobool(): the first character (and the second after an 'o') decides. */
export function kernelBool(text: string): boolean | undefined {
  const first = text[0];
  if (first === 'y' || first === 'Y' || first === '1') return true;
  if (first === 'n' || first === 'N' || first === '0') return false;
  if (first === 'o' || first === 'O') {
    const second = text[1];
    if (second === 'n' || second === 'N') return true;
    if (second === 'f' || second === 'F') return false;
  }
  return undefined;
}

/** kstrtoll()/kstrtoull() with base 0: an optional sign, `0x` for hex, `0` for octal; one
 *  trailing newline. Undefined when the kernel would refuse the text. */
export function kernelInteger(text: string): bigint | undefined {
  const body = text.endsWith('\n') ? text.slice(0, -1) : text;
  const match = /^([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(body);
  if (!match) return undefined;
  const digits = match[2] as string;
  let value: bigint;
  if (/^0[xX]/.test(digits)) value = BigInt(digits);
  else if (digits.length > 1 && digits.startsWith('0')) value = BigInt(`0o${digits.slice(1)}`);
  else value = BigInt(digits);
  return match[1] === '-' ? -value : value;
}

// What param_get_int & co. print: decimal, or hexint's %#08x (0x-prefixed, or 00000000).
const SHOWN_INTEGER = /^(-?[0-9]+|0x[0-9a-f]+)$/;

/** Whether `asked` sets what sysfs shows as `shown` (one element: no array). */
function sameElement(shown: string, asked: string): boolean {
  if (shown === asked) return true;
  if (shown === 'Y' || shown === 'N') return kernelBool(asked) === (shown === 'Y');
  if (SHOWN_INTEGER.test(shown)) {
    const live = kernelInteger(shown);
    const wanted = kernelInteger(asked);
    // bint: set as a bool, shown as an int (1 or 0).
    if (wanted === undefined && (live === 0n || live === 1n)) {
      return kernelBool(asked) === (live === 1n);
    }
    return live !== undefined && wanted !== undefined && live === wanted;
  }
  return false;
}

/**
 * Whether the value `asked` (as the kernel reads it; undefined: a bare NAME) sets the
 * parameter to what /sys/module/NAME/parameters/PARAM shows as `shown` (its trailing newline
 * removed). Arrays compare element by element, and must have as many.
 */
export function sameValue(shown: string, asked: string | undefined): boolean {
  // A bare name is a bool set to true (param_set_bool takes no value as "1").
  if (asked === undefined) return shown === 'Y';
  if (shown === asked) return true;
  if (!shown.includes(',') && !asked.includes(',')) return sameElement(shown, asked);
  const live = shown.split(',');
  const wanted = asked.split(',');
  return live.length === wanted.length && live.every((v, i) => sameElement(v, wanted[i] ?? ''));
}

/** Whether two asked values set the same, whichever way each is spelled (`0x10` and `16`). */
export function sameSetting(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return sameValue(a, b) || sameValue(b, a);
}
