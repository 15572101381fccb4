// One modprobe.d file into the configuration lists, with kmod 30's rules: `#` starts a comment
// only at the very start of a logical line, words are separated by spaces and tabs, and a
// line kmod would reject (unknown directive, missing word, unbalanced bracket, `weakdep`,
// which kmod 30 does not know) is recorded as a warning and otherwise ignored.
import { forEachLogicalLine, words } from './lines';
import { aliasNormalize } from './normalize';
import { noteOrigin, type ModprobeConfig } from './types';

/** strtok_r(" \t") over one line: words, then "the rest of the line" for commands. */
class LineWords {
  private pos = 0;
  constructor(private readonly line: string) {}

  next(): string | undefined {
    const { line } = this;
    while (this.pos < line.length && (line[this.pos] === ' ' || line[this.pos] === '\t'))
      this.pos++;
    if (this.pos >= line.length) return undefined;
    const start = this.pos;
    while (this.pos < line.length && line[this.pos] !== ' ' && line[this.pos] !== '\t') this.pos++;
    const word = line.slice(start, this.pos);
    if (this.pos < line.length) this.pos++; // the separator is consumed, as strtok does
    return word;
  }

  /** Everything after the last word's separator, or undefined when nothing is left. */
  rest(): string | undefined {
    if (this.pos >= this.line.length) return undefined;
    const rest = this.line.slice(this.pos);
    this.pos = this.line.length;
    return rest;
  }
}

/** Words of a softdep rule after the module name, separated by any white space (isspace() in
 *  the C locale): `pre:` and `post:` switch the list. */
function parseSoftdepLists(text: string): { pre: string[]; post: string[] } {
  const pre: string[] = [];
  const post: string[] = [];
  let target: string[] | undefined;
  for (const word of words(text, ' \t\n\v\f\r')) {
    if (word === 'pre:') target = pre;
    else if (word === 'post:') target = post;
    else target?.push(word);
  }
  return { pre, post };
}

export function parseConfigFile(content: string, filename: string, config: ModprobeConfig): void {
  forEachLogicalLine(content, (text, lineNumber) => {
    if (text === '' || text[0] === '#') return;
    const words = new LineWords(text);
    const directive = words.next();
    if (directive === undefined) return;
    if (!applyDirective(directive, words, config, filename, lineNumber)) {
      config.warnings.push(
        `${filename} line ${lineNumber}: ignoring bad line starting with '${directive}'`,
      );
    }
  });
}

/** Adds one directive; false when kmod would call the line bad. */
function applyDirective(
  directive: string,
  words: LineWords,
  config: ModprobeConfig,
  filename: string,
  lineNumber: number,
): boolean {
  switch (directive) {
    case 'alias': {
      const pattern = normalized(words.next());
      const module = normalized(words.next());
      if (pattern === undefined || module === undefined) return false;
      config.aliases.push({ pattern, module });
      return true;
    }
    case 'blacklist': {
      const module = normalized(words.next());
      if (module === undefined) return false;
      config.blacklist.push(module);
      noteOrigin(config, `blacklist ${module}`, filename, lineNumber);
      return true;
    }
    case 'options': {
      const module = normalized(words.next());
      const options = words.rest();
      if (module === undefined || options === undefined) return false;
      config.options.push({ module, options: options.replaceAll('\t', ' ') });
      return true;
    }
    case 'install':
    case 'remove': {
      const module = normalized(words.next());
      const command = words.rest();
      if (module === undefined || command === undefined) return false;
      config[directive].push({ module, command });
      noteOrigin(config, `${directive} ${module}`, filename, lineNumber);
      return true;
    }
    case 'softdep': {
      const module = normalized(words.next());
      const lists = words.rest();
      if (module === undefined || lists === undefined) return false;
      const { pre, post } = parseSoftdepLists(lists);
      config.softdeps.push({ module, pre, post });
      return true;
    }
    case 'include':
    case 'config':
      // Deprecated directives: kmod logs them and parses nothing.
      return true;
    default:
      return false;
  }
}

function normalized(word: string | undefined): string | undefined {
  return word === undefined ? undefined : aliasNormalize(word);
}
