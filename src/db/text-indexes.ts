// The text files depmod writes next to its binary indexes, loaded into TextIndex tries with
// the keys, values and priorities depmod gives the .bin versions: a module's priority is its
// position in modules.dep (depmod's module order, from modules.order), aliases are stored
// with `-` -> `_` outside brackets, builtin aliases come from modules.builtin.modinfo with
// priority 0.
import { aliasNormalize, pathToModname } from '../config/normalize';
import type { Matcher } from './fnmatch';
import { TextIndex } from './trie';

export function lines(content: string): string[] {
  return content.split('\n').filter((line) => line !== '');
}

/** modules.dep: key module name, value the whole line, priority the line's position. */
export function depIndexFromText(
  content: string,
  fnmatch: Matcher,
): {
  index: TextIndex;
  order: Map<string, number>;
} {
  const index = new TextIndex(fnmatch);
  const order = new Map<string, number>();
  let position = 0;
  for (const line of lines(content)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = pathToModname(line.slice(0, colon));
    if (!order.has(name)) order.set(name, position);
    index.insert(name, line, position);
    position++;
  }
  return { index, order };
}

/** modules.alias / modules.symbols: `alias PATTERN MODULE` lines. */
export function aliasIndexFromText(
  content: string,
  fnmatch: Matcher,
  moduleOrder: Map<string, number>,
  normalizeKeys: boolean,
): TextIndex {
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
  for (const line of lines(content)) {
    const words = line.split(/[ \t]+/);
    if (words[0] !== 'alias' || words.length < 3) continue;
    const pattern = words[1] as string;
    const module = words[2] as string;
    const key = normalizeKeys ? aliasNormalize(pattern) : pattern;
    if (key === undefined) continue; // depmod skips aliases with unbalanced brackets
    index.insert(key, module, priorityOf(module));
  }
  return index;
}

/** modules.builtin: one `kernel/.../name.ko` per line. */
export function builtinIndexFromText(content: string, fnmatch: Matcher): TextIndex {
  const index = new TextIndex(fnmatch);
  for (const line of lines(content)) index.insert(pathToModname(line.trim()), '', 0);
  return index;
}

/** modules.builtin.modinfo: NUL-separated `module.key=value`; only `alias` keys count. */
export function builtinAliasIndexFromModinfo(content: string, fnmatch: Matcher): TextIndex {
  const index = new TextIndex(fnmatch);
  for (const entry of content.split('\0')) {
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
