// fnmatch(pattern, string, 0) of glibc in the C locale, in JavaScript. The host policy's globs
// and the remove rules that keep a module in (holds) always use it, so neither needs the
// addon; the module database uses it only when there is no addon (it prefers libc's own). No
// flags: `*` and `?` match `/` and a leading `.`, a backslash quotes the next character,
// `[...]` takes `!`/`^`, ranges and `[:class:]`; a `[` without its `]` is an ordinary
// character.

export type Matcher = (pattern: string, text: string) => boolean;

const CLASSES: Record<string, (c: number) => boolean> = {
  alnum: (c) => isDigit(c) || isAlpha(c),
  alpha: (c) => isAlpha(c),
  blank: (c) => c === 0x20 || c === 0x09,
  cntrl: (c) => c < 0x20 || c === 0x7f,
  digit: (c) => isDigit(c),
  graph: (c) => c > 0x20 && c < 0x7f,
  lower: (c) => c >= 0x61 && c <= 0x7a,
  print: (c) => c >= 0x20 && c < 0x7f,
  punct: (c) => c > 0x20 && c < 0x7f && !isDigit(c) && !isAlpha(c),
  space: (c) => c === 0x20 || (c >= 0x09 && c <= 0x0d),
  upper: (c) => c >= 0x41 && c <= 0x5a,
  xdigit: (c) => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66),
};

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isAlpha(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

/** Result of reading one bracket expression at pattern[start] (the `[`). */
interface Bracket {
  /** Index just after the closing `]`. */
  end: number;
  matches: (c: number) => boolean;
}

/** Parses `[...]`; undefined when it is not closed, so the `[` is taken literally. */
function parseBracket(pattern: string, start: number): Bracket | undefined {
  let i = start + 1;
  let negate = false;
  if (pattern[i] === '!' || pattern[i] === '^') {
    negate = true;
    i++;
  }
  const tests: Array<(c: number) => boolean> = [];
  let first = true;
  for (;;) {
    if (i >= pattern.length) return undefined;
    let ch = pattern[i];
    if (ch === ']' && !first) {
      i++;
      break;
    }
    first = false;
    if (ch === '[' && pattern[i + 1] === ':') {
      const close = pattern.indexOf(':]', i + 2);
      if (close < 0) return undefined;
      const test = CLASSES[pattern.slice(i + 2, close)];
      tests.push(test ?? (() => false));
      i = close + 2;
      continue;
    }
    if (ch === '\\') {
      i++;
      if (i >= pattern.length) return undefined;
      ch = pattern[i];
    }
    const low = (ch as string).charCodeAt(0);
    i++;
    if (pattern[i] === '-' && i + 1 < pattern.length && pattern[i + 1] !== ']') {
      let highChar = pattern[i + 1] as string;
      i += 2;
      if (highChar === '\\') {
        if (i >= pattern.length) return undefined;
        highChar = pattern[i] as string;
        i++;
      }
      const high = highChar.charCodeAt(0);
      tests.push((c) => c >= low && c <= high);
    } else {
      tests.push((c) => c === low);
    }
  }
  return { end: i, matches: (c) => tests.some((t) => t(c)) !== negate };
}

export const fnmatch: Matcher = (pattern, text) => {
  // Greedy match with one back-up point: the last `*` seen. Enough for globs, whose other
  // elements each match exactly one character.
  let p = 0;
  let t = 0;
  let starP = -1;
  let starT = 0;
  while (t < text.length) {
    if (pattern[p] === '*') {
      while (pattern[p] === '*') p++;
      starP = p;
      starT = t;
      continue;
    }
    const element = p < pattern.length ? elementAt(pattern, p) : undefined;
    if (element && element.matches(text.charCodeAt(t))) {
      p = element.end;
      t++;
      continue;
    }
    if (starP < 0) return false;
    starT++;
    t = starT;
    p = starP;
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
};

/** One single-character element of the pattern at p: `?`, a bracket or a (quoted) literal. */
function elementAt(pattern: string, p: number): Bracket {
  const ch = pattern[p];
  if (ch === '?') return { end: p + 1, matches: () => true };
  if (ch === '[') {
    const bracket = parseBracket(pattern, p);
    if (bracket) return bracket;
  }
  if (ch === '\\') {
    // A trailing backslash never matches anything.
    if (p + 1 >= pattern.length) return { end: p + 1, matches: () => false };
    const quoted = pattern.charCodeAt(p + 1);
    return { end: p + 2, matches: (c) => c === quoted };
  }
  const code = pattern.charCodeAt(p);
  return { end: p + 1, matches: (c) => c === code };
}
