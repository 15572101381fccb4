// modprobe.d configuration as kmod keeps it: one list per directive, in parse order (files in
// name order, then the kernel command line). Order matters: the first matching install,
// remove or softdep rule wins, options are concatenated in this order.

export interface AliasRule {
  /** Normalised glob matched against the requested name. */
  pattern: string;
  /** Normalised module name it stands for. */
  module: string;
}

export interface OptionsRule {
  /** Normalised module name or alias, compared for equality. */
  module: string;
  /** Everything after the name, tabs turned into spaces, as written otherwise. */
  options: string;
}

export interface CommandRule {
  /** Normalised module name; a glob when matched against a module, exact as a lookup. */
  module: string;
  /** The shell command, as written after the module name. */
  command: string;
}

export interface SoftdepRule {
  /** Normalised glob matched against the module name. */
  module: string;
  /** Names as written (looked up like a request, so aliases work). */
  pre: string[];
  post: string[];
}

export interface ModprobeConfig {
  aliases: AliasRule[];
  options: OptionsRule[];
  /** Normalised names from files; names from `modprobe.blacklist=` are kept as written. */
  blacklist: string[];
  install: CommandRule[];
  remove: CommandRule[];
  softdeps: SoftdepRule[];
  /** The files parsed, in order. */
  files: string[];
  /** Where a host block was written, for messages: "blacklist NAME" or "install PATTERN" ->
   *  "FILE:LINE" (or "the kernel command line"). The first place wins, as kmod's rules do. */
  origins: Map<string, string>;
  /** Lines kmod would log and ignore ("file line N: ignoring bad line ..."). */
  warnings: string[];
}

export function emptyConfig(): ModprobeConfig {
  return {
    aliases: [],
    options: [],
    blacklist: [],
    install: [],
    remove: [],
    softdeps: [],
    files: [],
    origins: new Map(),
    warnings: [],
  };
}

/** Records where a rule was first written (see ModprobeConfig.origins): "FILE:LINE", or the
 *  place itself when there is no line. */
export function noteOrigin(
  config: ModprobeConfig,
  rule: string,
  where: string,
  lineNumber?: number,
): void {
  if (config.origins.has(rule)) return;
  config.origins.set(rule, lineNumber === undefined ? where : `${where}:${lineNumber}`);
}
