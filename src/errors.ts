// Exit statuses of the CLI and the hook, and the error that carries them to the top.
// Documented in `kmodload --help` and docs/security.md; keep the three in step.

export const EXIT = {
  ok: 0,
  /** The kernel refused a module (load or unload failed). Also modprobe's status for
   *  --show-depends of an unknown name, which mirrors modprobe exactly. */
  failed: 1,
  /** Bad command line. */
  usage: 2,
  /** The request was refused before anything was done: invalid or unknown name,
   *  blacklisted, forbidden by an install rule, module in use, builtin. Nothing changed. */
  refused: 3,
  /** The module tree, configuration or container bundle could not be read. */
  environment: 4,
  /** Unexpected failure (a bug). sysexits' EX_SOFTWARE. */
  internal: 70,
} as const;

export type ExitStatus = (typeof EXIT)[keyof typeof EXIT];

/**
 * An expected failure: its message is one line for a person, no stack trace shown. The line
 * is made here only: "SUBJECT: REASON" when the error says what it is about ("cannot load
 * ip_vs", "cannot read module index /x"), else the reason alone. Code that adds context asks
 * `subject` instead of reading the message.
 */
export class KmodloadError extends Error {
  /** What failed: "cannot load ip_vs". Absent when the reason stands alone. */
  readonly subject: string | undefined;
  /** Why. */
  readonly reason: string;

  constructor(
    reason: string,
    readonly exitStatus: ExitStatus,
    options: { cause?: unknown; subject?: string } = {},
  ) {
    super(options.subject === undefined ? reason : `${options.subject}: ${reason}`, {
      cause: options.cause,
    });
    this.name = 'KmodloadError';
    this.subject = options.subject;
    this.reason = reason;
  }

  /** This error about `subject`; itself when it already names what it is about. */
  about(subject: string): KmodloadError {
    if (this.subject !== undefined) return this;
    return new KmodloadError(this.reason, this.exitStatus, { cause: this, subject });
  }
}
