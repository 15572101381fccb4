// Logical lines of a modprobe.d file, joined the way kmod 30 reads them: a backslash before a
// newline joins the next physical line; a backslash before any other character drops the
// backslash and keeps the character (`a\b` -> `ab`, `\\` -> `\`). Line numbers count physical
// lines so warnings point at the right place. The policy file uses the same rules.

export interface LogicalLine {
  text: string;
  /** Physical line number of the last line that made up this logical line. */
  lineNumber: number;
  /** The line ends in a backslash with nothing after it to join. */
  unterminated?: boolean;
}

/** One physical line with its escapes removed; `continues` when it ends in a lone backslash. */
function unescape(line: string): { text: string; continues: boolean } {
  if (!line.includes('\\')) return { text: line, continues: false };
  const parts: string[] = [];
  let from = 0;
  for (;;) {
    const at = line.indexOf('\\', from);
    if (at < 0) {
      parts.push(line.slice(from));
      return { text: parts.join(''), continues: false };
    }
    parts.push(line.slice(from, at));
    if (at + 1 >= line.length) return { text: parts.join(''), continues: true };
    parts.push(line[at + 1] as string);
    from = at + 2;
  }
}

// Works a physical line at a time (indexOf, slice, join): a multi-megabyte file must not be
// rebuilt one character at a time, nor held as an array of all its lines at once (the
// collector would copy every one of them), nor make an object per line it does not need.
export function forEachLogicalLine(
  content: string,
  use: (text: string, lineNumber: number, unterminated: boolean) => void,
): void {
  const endsWithNewline = content.endsWith('\n');
  let parts: string[] | undefined;
  // The text after a final newline is not a line.
  for (let start = 0, n = 1; start < content.length; n++) {
    let end = content.indexOf('\n', start);
    if (end < 0) end = content.length;
    const raw = content.slice(start, end);
    start = end + 1;
    // Most lines have no backslash and join nothing: taken as they are, no copies.
    if (parts === undefined && !raw.includes('\\')) {
      use(raw, n, false);
      continue;
    }
    const { text, continues } = unescape(raw);
    (parts ??= []).push(text);
    if (continues && start < content.length) continue;
    // A backslash-newline at the very end joins the (empty) line after it.
    const lineNumber = continues && endsWithNewline ? n + 1 : n;
    use(parts.join(''), lineNumber, continues);
    parts = undefined;
  }
}

export function logicalLines(content: string): LogicalLine[] {
  const lines: LogicalLine[] = [];
  forEachLogicalLine(content, (text, lineNumber, unterminated) => {
    lines.push(unterminated ? { text, lineNumber, unterminated } : { text, lineNumber });
  });
  return lines;
}

/** The words of `text` between runs of the `separators` characters (default space and tab),
 *  empty ones left out: split() on a regular expression, without the new RegExp object that
 *  makes at each call (about a kilobyte). */
export function words(text: string, separators = ' \t'): string[] {
  const found: string[] = [];
  for (let end = 0; end < text.length;) {
    let start = end;
    while (start < text.length && separators.includes(text[start] as string)) start++;
    end = start;
    while (end < text.length && !separators.includes(text[end] as string)) end++;
    if (end > start) found.push(text.slice(start, end));
  }
  return found;
}
