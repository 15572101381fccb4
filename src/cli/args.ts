// A small GNU-style option parser: `-d DIR`, `-dDIR`, `--dirname DIR`, `--dirname=DIR`,
// bundled flags (`-nv`), operands anywhere, `--` ends the options.

import { EXIT, KmodloadError } from '../errors';

export interface OptionSpec {
  /** Long name without dashes; also the key in the parsed result. */
  long: string;
  /** One-letter short name. */
  short?: string;
  /** Takes a value. */
  value?: boolean;
}

export interface ParsedArgs {
  /** Values per long name: flags map to [''] per occurrence, options to their values. */
  options: Map<string, string[]>;
  operands: string[];
}

/** A bad command line: exit status EXIT.usage, with a pointer to the help. */
export function usageError(message: string, command?: string): KmodloadError {
  const help = command ? `kmodload ${command} --help` : 'kmodload --help';
  return new KmodloadError(`${message} (see ${help})`, EXIT.usage);
}

export function parseArgs(argv: string[], specs: OptionSpec[], command?: string): ParsedArgs {
  const options = new Map<string, string[]>();
  const operands: string[] = [];
  const add = (spec: OptionSpec, value: string): void => {
    const list = options.get(spec.long) ?? [];
    list.push(value);
    options.set(spec.long, list);
  };

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      operands.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      const spec = specs.find((candidate) => candidate.long === name);
      if (!spec) throw usageError(`unknown option '--${name}'`, command);
      if (!spec.value) {
        if (eq >= 0) throw usageError(`option '--${name}' takes no value`, command);
        add(spec, '');
        continue;
      }
      if (eq >= 0) {
        add(spec, arg.slice(eq + 1));
        continue;
      }
      const next = argv[i + 1];
      if (next === undefined) throw usageError(`option '--${name}' needs a value`, command);
      add(spec, next);
      i++;
      continue;
    }
    if (arg.startsWith('-') && arg !== '-') {
      // A bundle of short options; one that takes a value eats the rest or the next argument.
      for (let j = 1; j < arg.length; j++) {
        const letter = arg[j] as string;
        const spec = specs.find((candidate) => candidate.short === letter);
        if (!spec) {
          const where = j > 1 ? ` in '${arg}'` : '';
          throw usageError(`unknown option '-${letter}'${where}`, command);
        }
        if (!spec.value) {
          add(spec, '');
          continue;
        }
        const rest = arg.slice(j + 1);
        if (rest !== '') {
          add(spec, rest);
        } else {
          const next = argv[i + 1];
          if (next === undefined) throw usageError(`option '-${letter}' needs a value`, command);
          add(spec, next);
          i++;
        }
        break;
      }
      continue;
    }
    operands.push(arg);
  }
  return { options, operands };
}

/** True when the flag was given at least once. */
export function flag(parsed: ParsedArgs, long: string): boolean {
  return parsed.options.has(long);
}

/** The last value of an option (GNU tools let a later one win). */
export function lastValue(parsed: ParsedArgs, long: string): string | undefined {
  return parsed.options.get(long)?.at(-1);
}

/** Every value of a repeatable option, in order. */
export function allValues(parsed: ParsedArgs, long: string): string[] {
  return parsed.options.get(long) ?? [];
}
