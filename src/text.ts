// One-line text for error messages: what a person sees on stderr and in a runtime's log.

// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\x00-\x1f\x7f]/g;

/** `text` made safe for one line: control characters (newlines, escape sequences) are written
 *  as `\xNN`, so a message can neither split into two lines nor forge terminal output. */
export function oneLine(text: string): string {
  return text.replace(
    CONTROL_CHARACTERS,
    (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

/** The message of any thrown value, as one line. */
export function errorText(error: unknown): string {
  return oneLine(error instanceof Error ? error.message : String(error));
}

const MAX_QUOTED = 64;

/** Quotes a string for a one-line message: printable ASCII stays, everything else (control
 *  bytes, newlines, escape sequences, non-ASCII) is written as an escape, and long strings
 *  are cut, so a hostile name cannot forge lines or terminal sequences in a runtime's log. */
export function quote(text: string): string {
  const chars = Array.from(text);
  let out = '';
  for (const ch of chars.slice(0, MAX_QUOTED)) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (code >= 0x20 && code < 0x7f) out += ch;
    else if (code === 0xfffd) out += '\\ufffd';
    else if (code < 0x100) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += `\\u{${code.toString(16)}}`;
  }
  if (chars.length > MAX_QUOTED) out += `...(${chars.length} characters)`;
  return `"${out}"`;
}

const pad = (value: number, width = 2): string => String(value).padStart(width, '0');

/** `date` (default now) as Date's toISOString() writes it (UTC, to the millisecond, years
 *  0-9999), from its UTC fields: toISOString() first sets up the local time zone (reads
 *  /etc/localtime, about 0.2 ms of a hook's run), which a UTC time does not need. */
export function isoTime(date: Date = new Date()): string {
  const day = `${pad(date.getUTCFullYear(), 4)}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())}`;
  const time = `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}`;
  return `${day}T${time}.${pad(date.getUTCMilliseconds(), 3)}Z`;
}
