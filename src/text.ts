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
