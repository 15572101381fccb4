// The text files depmod writes next to its binary indexes, loaded into TextIndex tries with
// the keys, values and priorities depmod gives the .bin versions: a module's priority is its
// position in modules.dep (depmod's module order, from modules.order), aliases are stored
// with `-` -> `_` outside brackets, builtin aliases come from modules.builtin.modinfo with
// priority 0.
//
// Each builder is a generator that pauses every few hundred lines, so the same code loads a
// file in one go (`drain`, tests) or in slices between which the event loop runs (`paced`,
// the database): a 1.3 MB modules.alias never holds the loop for more than a few ms.
import { setImmediate as nextTurn } from 'node:timers/promises';

import { aliasNormalize, pathToModname } from '../config/normalize';
import type { Matcher } from './fnmatch';
import { TextIndex } from './trie';

/** Lines between two chances to pause. */
const LINES_PER_STEP = 256;
/** Longest slice of work `paced` runs before it lets the event loop turn. */
const SLICE_MS = 4;

/** A builder: pauses (yields) now and then, returns what it built. */
export type Build<T> = Generator<void, T, void>;

/** Runs a builder to its end at once. */
export function drain<T>(build: Build<T>): T {
  for (;;) {
    const step = build.next();
    if (step.done) return step.value;
  }
}

/** One full turn of the event loop. A single setImmediate from an I/O callback runs in the
 *  same turn's check phase, before any timer: the second one waits for the next turn. */
async function turn(): Promise<void> {
  await nextTurn();
  await nextTurn();
}

/** Runs a builder in slices of at most about SLICE_MS, letting the event loop turn before
 *  each (also the first: what ran before, such as another builder, used the turn up). */
export async function paced<T>(build: Build<T>): Promise<T> {
  for (;;) {
    await turn();
    const start = performance.now();
    for (;;) {
      const step = build.next();
      if (step.done) return step.value;
      if (performance.now() - start >= SLICE_MS) break;
    }
  }
}

/** Non-empty lines, pausing every LINES_PER_STEP. */
function* eachLine(content: string, fn: (line: string) => void): Generator<void, void, void> {
  let count = 0;
  let at = 0;
  while (at < content.length) {
    let end = content.indexOf('\n', at);
    if (end < 0) end = content.length;
    if (end > at) fn(content.slice(at, end));
    at = end + 1;
    if (++count % LINES_PER_STEP === 0) yield;
  }
}

/** modules.dep: key module name, value the whole line, priority the line's position. */
export function* depIndexBuild(
  content: string,
  fnmatch: Matcher,
): Build<{ index: TextIndex; order: Map<string, number> }> {
  const index = new TextIndex(fnmatch);
  const order = new Map<string, number>();
  let position = 0;
  yield* eachLine(content, (line) => {
    const colon = line.indexOf(':');
    if (colon < 0) return;
    const name = pathToModname(line.slice(0, colon));
    if (!order.has(name)) order.set(name, position);
    index.insert(name, line, position);
    position++;
  });
  return { index, order };
}

export function depIndexFromText(
  content: string,
  fnmatch: Matcher,
): { index: TextIndex; order: Map<string, number> } {
  return drain(depIndexBuild(content, fnmatch));
}

/** modules.alias / modules.symbols: `alias PATTERN MODULE` lines. */
export function* aliasIndexBuild(
  content: string,
  fnmatch: Matcher,
  moduleOrder: Map<string, number>,
  normalizeKeys: boolean,
): Build<TextIndex> {
  const index = new TextIndex(fnmatch);
  // Modules missing from modules.dep sort after all others, in order of appearance.
  const extra = new Map<string, number>();
  const priorityOf = (module: string): number => {
    const known = moduleOrder.get(module);
    if (known !== undefined) return known;
    let p = extra.get(module);
    if (p === undefined) {
      p = moduleOrder.size + extra.size;
      extra.set(module, p);
    }
    return p;
  };
  yield* eachLine(content, (line) => {
    const words = line.split(/[ \t]+/);
    if (words[0] !== 'alias' || words.length < 3) return;
    const pattern = words[1] as string;
    const module = words[2] as string;
    const key = normalizeKeys ? aliasNormalize(pattern) : pattern;
    if (key === undefined) return; // depmod skips aliases with unbalanced brackets
    index.insert(key, module, priorityOf(module));
  });
  return index;
}

export function aliasIndexFromText(
  content: string,
  fnmatch: Matcher,
  moduleOrder: Map<string, number>,
  normalizeKeys: boolean,
): TextIndex {
  return drain(aliasIndexBuild(content, fnmatch, moduleOrder, normalizeKeys));
}

/** modules.builtin: one `kernel/.../name.ko` per line. */
export function* builtinIndexBuild(content: string, fnmatch: Matcher): Build<TextIndex> {
  const index = new TextIndex(fnmatch);
  yield* eachLine(content, (line) => index.insert(pathToModname(line.trim()), '', 0));
  return index;
}

/** modules.builtin.modinfo: NUL-separated `module.key=value`; only `alias` keys count. */
export function* builtinAliasIndexBuild(content: string, fnmatch: Matcher): Build<TextIndex> {
  const index = new TextIndex(fnmatch);
  let count = 0;
  for (const entry of content.split('\0')) {
    if (++count % LINES_PER_STEP === 0) yield;
    const dot = entry.indexOf('.');
    const eq = entry.indexOf('=', dot + 1);
    if (dot <= 0 || eq < 0 || entry.slice(dot + 1, eq) !== 'alias') continue;
    const value = entry.slice(eq + 1);
    const key = value === '' ? undefined : aliasNormalize(value);
    if (key === undefined) continue;
    index.insert(key, entry.slice(0, dot), 0);
  }
  return index;
}

export function builtinAliasIndexFromModinfo(content: string, fnmatch: Matcher): TextIndex {
  return drain(builtinAliasIndexBuild(content, fnmatch));
}
