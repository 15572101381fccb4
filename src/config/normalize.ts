// Name spellings as kmod compares them: `-` and `_` are the same character in module names
// and aliases, except inside a glob bracket expression such as `[0-9]`.

/** kmod reads names into PATH_MAX buffers: longer names are cut, not refused. */
const NAME_MAX_LENGTH = 4095;

/**
 * A config or index key with `-` turned into `_` outside `[...]`. Returns undefined for an
 * unbalanced bracket, which kmod treats as a bad name (config line ignored, lookup refused).
 */
export function aliasNormalize(name: string): string | undefined {
  const text = name.length > NAME_MAX_LENGTH ? name.slice(0, NAME_MAX_LENGTH) : name;
  // Most names have no bracket: one string is built for them, none when they have no `-`.
  if (!text.includes('[') && !text.includes(']')) {
    return text.includes('-') ? text.replaceAll('-', '_') : text;
  }
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '-') out += '_';
    else if (c === ']') return undefined;
    else if (c === '[') {
      const close = text.indexOf(']', i);
      if (close < 0) return undefined;
      out += text.slice(i, close + 1);
      i = close;
    } else out += c;
  }
  return out;
}

/** A module name from a file name or request: `-` -> `_`, cut at the first `.`. */
export function modnameNormalize(name: string): string {
  const dot = name.indexOf('.');
  const end = Math.min(dot < 0 ? name.length : dot, NAME_MAX_LENGTH);
  const text = end < name.length ? name.slice(0, end) : name;
  return text.includes('-') ? text.replaceAll('-', '_') : text;
}

/** The module name a path stands for: its base name, normalised (`crc32c-intel.ko` -> `crc32c_intel`). */
export function pathToModname(path: string): string {
  const slash = path.lastIndexOf('/');
  return modnameNormalize(slash < 0 ? path : path.slice(slash + 1));
}
