// The policy file format, line-oriented like modprobe.d (same `\` continuation), strict where
// modprobe.d is lenient: any line that is not understood is an error, because an operator who
// mistypes a deny rule must not believe it protects them.
//
//   default allow|deny
//   max-modules N
//   allow GLOB... [when COND...]
//   deny  GLOB... [when COND...]
//   params GLOB PARAM=VALUE-GLOB... [when COND...]
//   on-param-conflict refuse|warn
//   COND: annotation KEY=GLOB | source env|annotation|cdi | namespace GLOB | pod-label KEY=GLOB
//
// `#` at the start of a word begins a comment that runs to the end of the line.

import { logicalLines, words } from '../config/lines';
import { paramKey, paramNameProblem, VALUE_CHARS_TEXT } from '../params';
import { DEFAULT_MAX_MODULES, REQUEST_SOURCES, REQUEST_SOURCES_TEXT } from './types';
import type {
  ParamsRule,
  Policy,
  PolicyCondition,
  PolicyProblem,
  PolicyRule,
  RequestSource,
  Verdict,
} from './types';

/** Longest logical line: a rule lists a few dozen globs, not thousands. */
export const MAX_POLICY_LINE = 4096;
/** Highest max-modules accepted (a whole Debian tree has about 4,000 modules). */
const MAX_MAX_MODULES = 100_000;

// Characters of a module-name glob: name characters and fnmatch's `* ? [ ] ! ^`.
const MODULE_GLOB_CHARS = /^[A-Za-z0-9_*?[\]!^-]+$/;
// Characters of a value glob: what a container's value may hold, and fnmatch's.
const VALUE_GLOB_CHARS = /^[A-Za-z0-9._,:+/@%*?[\]!^-]+$/;
// Kubernetes annotation keys: an optional DNS prefix and "/", then a name.
const ANNOTATION_KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$/;

class LineError extends Error {}

/** Why a glob is not a usable fnmatch pattern, or undefined. */
function globProblem(glob: string): string | undefined {
  if (glob.includes('**')) return "'**' means the same as '*' in fnmatch: write '*'";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === ']') return "']' without '['";
    if (c !== '[') continue;
    // fnmatch takes a ']' right after '[' or '[!' as a member, not the end.
    let j = i + 1;
    if (glob[j] === '!' || glob[j] === '^') j++;
    if (glob[j] === ']') j++;
    const close = glob.indexOf(']', j);
    if (close < 0) return "'[' without its ']'";
    if (close === i + 1) return "empty '[]'";
    i = close;
  }
  return undefined;
}

/** `!` or `^` outside brackets: a literal to fnmatch, in no module name, so the pattern never
 *  matches; most likely meant as "not", which a policy says with another rule. */
function negationProblem(glob: string): string | undefined {
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '[') {
      // As globProblem: a ']' right after '[' or '[!' is a member (the glob is well formed).
      let j = i + 1;
      if (glob[j] === '!' || glob[j] === '^') j++;
      if (glob[j] === ']') j++;
      i = glob.indexOf(']', j);
    } else if (c === '!' || c === '^') {
      return `'${c}' outside '[...]' matches itself, and no module name has one: the pattern never matches ('[!x]' is one character other than x)`;
    }
  }
  return undefined;
}

/** A module-name glob as kmod compares names: `-` and `_` alike (outside brackets). */
function moduleGlob(word: string): string {
  if (!MODULE_GLOB_CHARS.test(word)) {
    const bad = [...word].find((c) => !MODULE_GLOB_CHARS.test(c)) ?? '';
    throw new LineError(
      `${JSON.stringify(word)} is not a module name pattern (${JSON.stringify(bad)} is not allowed; ` +
        'module names use letters, digits, "_" and "-")',
    );
  }
  const problem = globProblem(word) ?? negationProblem(word);
  if (problem) throw new LineError(`bad pattern ${JSON.stringify(word)}: ${problem}`);
  let out = '';
  let inBracket = false;
  for (const c of word) {
    if (c === '[') inBracket = true;
    else if (c === ']') inBracket = false;
    out += c === '-' && !inBracket ? '_' : c;
  }
  return out;
}

/** `KEY=GLOB` of an annotation or pod-label condition. */
function keyGlob(kind: string, argument: string | undefined): { key: string; value: string } {
  if (argument === undefined) throw new LineError(`'${kind}' needs KEY=GLOB`);
  const eq = argument.indexOf('=');
  if (eq < 0) throw new LineError(`'${kind} ${argument}' needs KEY=GLOB (no '=')`);
  const key = argument.slice(0, eq);
  const value = argument.slice(eq + 1);
  if (!ANNOTATION_KEY.test(key)) {
    const what = kind === 'annotation' ? 'an annotation' : 'a label';
    throw new LineError(`${JSON.stringify(key)} is not ${what} key`);
  }
  const problem = globProblem(value);
  if (problem) throw new LineError(`bad pattern ${JSON.stringify(value)}: ${problem}`);
  return { key, value };
}

function parseCondition(kind: string | undefined, argument: string | undefined): PolicyCondition {
  if (kind === 'annotation') return { kind: 'annotation', ...keyGlob(kind, argument) };
  if (kind === 'pod-label') return { kind: 'pod-label', ...keyGlob(kind, argument) };
  if (kind === 'namespace') {
    if (argument === undefined) throw new LineError("'namespace' needs a GLOB");
    const problem = globProblem(argument);
    if (problem) throw new LineError(`bad pattern ${JSON.stringify(argument)}: ${problem}`);
    return { kind: 'namespace', value: argument };
  }
  if (kind === 'source') {
    if (!REQUEST_SOURCES.includes(argument as RequestSource)) {
      throw new LineError(
        `'source' takes ${REQUEST_SOURCES_TEXT}${argument === undefined ? '' : `, not ${JSON.stringify(argument)}`}`,
      );
    }
    return { kind: 'source', source: argument as RequestSource };
  }
  throw new LineError(
    `unknown condition ${JSON.stringify(kind)} (expected annotation KEY=GLOB, source env|annotation|cdi, namespace GLOB or pod-label KEY=GLOB)`,
  );
}

/** A rule's words before `when`, and its conditions. */
function ruleParts(args: string[]): { words: string[]; conditions: PolicyCondition[] } {
  const when = args.indexOf('when');
  const words = when < 0 ? args : args.slice(0, when);
  const conditions: PolicyCondition[] = [];
  if (when >= 0) {
    const rest = args.slice(when + 1);
    if (rest.length === 0) throw new LineError("'when' needs at least one condition");
    for (let i = 0; i < rest.length; i += 2) conditions.push(parseCondition(rest[i], rest[i + 1]));
  }
  return { words, conditions };
}

function parseRule(verdict: Verdict, args: string[], origin: string, text: string): PolicyRule {
  const { words, conditions } = ruleParts(args);
  if (words.length === 0) throw new LineError(`'${verdict}' needs at least one module pattern`);
  return { verdict, patterns: words.map(moduleGlob), conditions, origin, text };
}

/** `PARAM=VALUE-GLOB` of a params rule. */
function paramGlob(word: string): { name: string; value: string } {
  const eq = word.indexOf('=');
  const name = word.slice(0, eq);
  const value = word.slice(eq + 1);
  const nameProblem = paramNameProblem(name);
  if (nameProblem) throw new LineError(`${JSON.stringify(word)}: ${nameProblem}`);
  if (value === '') {
    throw new LineError(`${JSON.stringify(word)} needs a value pattern ('*' for any value)`);
  }
  if (!VALUE_GLOB_CHARS.test(value)) {
    throw new LineError(
      `${JSON.stringify(word)}: a value pattern uses ${VALUE_CHARS_TEXT} and fnmatch's * ? [ ] (a container's values use no other)`,
    );
  }
  const problem = globProblem(value) ?? negationProblem(value);
  if (problem) throw new LineError(`bad pattern ${JSON.stringify(value)}: ${problem}`);
  return { name: paramKey(name), value };
}

function parseParamsRule(args: string[], origin: string, text: string): ParamsRule {
  const { words, conditions } = ruleParts(args);
  const [module, ...params] = words;
  const usage = "'params' takes one module pattern, then PARAM=VALUE-GLOB words";
  if (module === undefined || module.includes('=') || params.length === 0) {
    throw new LineError(usage);
  }
  const notParam = params.find((word) => !word.includes('='));
  if (notParam !== undefined) throw new LineError(`${usage}, not ${JSON.stringify(notParam)}`);
  return { pattern: moduleGlob(module), params: params.map(paramGlob), conditions, origin, text };
}

/** Why a line's characters are not policy text, or undefined. */
function characterProblem(line: string): string | undefined {
  const bad = /[^\x20-\x7e\t]/.exec(line);
  if (!bad) return undefined;
  const c = bad[0];
  if (c === '\0') return 'NUL byte (a binary file?)';
  if (c === '\r') return 'carriage return (CRLF line ends: save the file with LF line ends)';
  if (c === '\ufffd') return 'invalid UTF-8 (a binary file?)';
  const code = c.codePointAt(0) ?? 0;
  if (code < 0x80) return `control character \\x${code.toString(16).padStart(2, '0')}`;
  return `non-ASCII character ${JSON.stringify(c)} (policy files are ASCII)`;
}

/** An empty policy: the built-in defaults, no rules. */
export function emptyPolicy(): Policy {
  return {
    files: [],
    default: { value: 'allow' },
    maxModules: { value: DEFAULT_MAX_MODULES },
    rules: [],
    paramRules: [],
  };
}

/**
 * Adds one file to `policy`; returns its problems (none: every line understood). `default` and
 * `max-modules` may be set once across all files.
 */
export function addPolicyText(
  policy: Policy,
  content: string | Uint8Array,
  file: string,
): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  const text =
    typeof content === 'string'
      ? content
      : new TextDecoder('utf-8', { fatal: false, ignoreBOM: true }).decode(content);
  policy.files.push(file);
  for (const line of logicalLines(text)) {
    const origin = `${file}:${line.lineNumber}`;
    try {
      parseLine(policy, line.text, origin);
      if (line.unterminated) {
        throw new LineError('the line ends with "\\" but no line follows to continue it');
      }
    } catch (error) {
      if (!(error instanceof LineError)) throw error;
      problems.push({ file, line: line.lineNumber, message: error.message });
    }
  }
  return problems;
}

function parseLine(policy: Policy, text: string, origin: string): void {
  if (text.length > MAX_POLICY_LINE) {
    throw new LineError(`line longer than ${MAX_POLICY_LINE} characters`);
  }
  const problem = characterProblem(text);
  if (problem) throw new LineError(problem);
  const found: string[] = [];
  for (const word of words(text)) {
    if (word.startsWith('#')) break;
    found.push(word);
  }
  const [directive, ...args] = found;
  if (directive === undefined) return;
  const written = found.join(' ');
  switch (directive) {
    case 'default': {
      const [value, ...extra] = args;
      if ((value !== 'allow' && value !== 'deny') || extra.length > 0) {
        throw new LineError("'default' takes one word: allow or deny");
      }
      if (policy.default.origin !== undefined) {
        throw new LineError(`'default' is set twice (first at ${policy.default.origin})`);
      }
      policy.default = { value, origin };
      return;
    }
    case 'max-modules': {
      const [value, ...extra] = args;
      const n = Number(value);
      if (value === undefined || !/^[0-9]+$/.test(value) || extra.length > 0 || n < 1) {
        throw new LineError("'max-modules' takes one whole number, 1 or more");
      }
      if (n > MAX_MAX_MODULES) {
        throw new LineError(`'max-modules' is at most ${MAX_MAX_MODULES}`);
      }
      if (policy.maxModules.origin !== undefined) {
        throw new LineError(`'max-modules' is set twice (first at ${policy.maxModules.origin})`);
      }
      policy.maxModules = { value: n, origin };
      return;
    }
    case 'allow':
    case 'deny':
      policy.rules.push(parseRule(directive, args, origin, written));
      return;
    case 'params':
      policy.paramRules.push(parseParamsRule(args, origin, written));
      return;
    case 'on-param-conflict': {
      const [value, ...extra] = args;
      if ((value !== 'refuse' && value !== 'warn') || extra.length > 0) {
        throw new LineError("'on-param-conflict' takes one word: refuse or warn");
      }
      if (policy.paramConflict !== undefined) {
        throw new LineError(
          `'on-param-conflict' is set twice (first at ${policy.paramConflict.origin})`,
        );
      }
      policy.paramConflict = { value, origin };
      return;
    }
    default:
      throw new LineError(
        `unknown directive ${JSON.stringify(directive)} (expected default, max-modules, allow, deny, params or on-param-conflict)`,
      );
  }
}

/** "FILE:LINE: message" (or "FILE: message" for the file as a whole). */
export function formatProblem(problem: PolicyProblem): string {
  const where = problem.line > 0 ? `${problem.file}:${problem.line}` : problem.file;
  return `${where}: ${problem.message}`;
}
