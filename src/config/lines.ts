// Logical lines of a modprobe.d file, joined the way kmod 30 reads them: a backslash before a
// newline joins the next physical line; a backslash before any other character drops the
// backslash and keeps the character (`a\b` -> `ab`, `\\` -> `\`). Line numbers count physical
// lines so warnings point at the right place.

export interface LogicalLine {
  text: string;
  /** Physical line number of the last line that made up this logical line. */
  lineNumber: number;
}

export function logicalLines(content: string): LogicalLine[] {
  const lines: LogicalLine[] = [];
  let current = '';
  let physical = 0;
  let pending = false; // characters read since the last line end
  for (let i = 0; i < content.length; i++) {
    const c = content[i];
    if (c === '\n') {
      physical++;
      lines.push({ text: current, lineNumber: physical });
      current = '';
      pending = false;
    } else if (c === '\\') {
      const next = content[i + 1];
      i++;
      pending = true;
      if (next === '\n') physical++;
      else if (next !== undefined) current += next;
    } else {
      current += c;
      pending = true;
    }
  }
  if (pending) lines.push({ text: current, lineNumber: physical + 1 });
  return lines;
}
