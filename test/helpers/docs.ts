// Checks on the Markdown documentation: every `kmodload COMMAND ...` it shows must name a
// command (and subcommand) the CLI has, with options its `--help` lists; every relative link
// must lead to a file, and a #fragment to a heading there.

import fs from 'node:fs';
import path from 'node:path';

/** A piece of code in a Markdown file: one logical line of a fenced block (lines ending in
 *  `\` joined), or one inline code span. `line` is where it starts (1-based). Only blocks
 *  without a language or marked as shell count: ```text (output, listings), ```ts, ```json...
 *  are not commands. */
export interface CodeSnippet {
  text: string;
  line: number;
}

/** `kmodload ARGS...` as a document shows it. */
export interface DocInvocation {
  file: string;
  line: number;
  /** The arguments after the program, up to a shell separator. */
  args: string[];
}

/** What `kmodload ARGV... --help` answers. */
export interface HelpAnswer {
  status: number;
  out: string;
  err: string;
}

export type HelpRunner = (argv: string[]) => Promise<HelpAnswer>;

const FENCE = /^\s{0,3}(`{3,}|~{3,})\s*([^\s`]*)/;
const SHELL_BLOCKS = new Set(['', 'sh', 'bash', 'shell', 'console', 'zsh']);

/** A run of text lines of a Markdown file; `line` is the first one's number (1-based). */
interface TextRun {
  text: string;
  line: number;
}

/** A Markdown text taken apart: its prose paragraphs (headings, lists and tables included:
 *  runs of non-blank lines outside code blocks) and its fenced code blocks, with the block's
 *  language (the info string's first word, lower case; '' when none). */
function scanMarkdown(markdown: string): {
  paragraphs: TextRun[];
  blocks: Array<{ language: string; lines: TextRun[] }>;
} {
  const paragraphs: TextRun[] = [];
  const blocks: Array<{ language: string; lines: TextRun[] }> = [];
  let fence: string | undefined;
  let paragraph: TextRun | undefined;
  markdown.split('\n').forEach((text, index) => {
    const line = index + 1;
    const marker = FENCE.exec(text);
    if (fence !== undefined) {
      const closes =
        marker?.[1] !== undefined &&
        marker[1][0] === fence[0] &&
        marker[1].length >= fence.length &&
        !/\S/.test(text.replace(FENCE, ''));
      if (closes) fence = undefined;
      else blocks.at(-1)?.lines.push({ text, line });
      return;
    }
    if (marker) {
      paragraph = undefined;
      fence = marker[1];
      blocks.push({ language: (marker[2] ?? '').toLowerCase(), lines: [] });
      return;
    }
    if (text.trim() === '') {
      paragraph = undefined;
      return;
    }
    if (paragraph) paragraph.text += `\n${text}`;
    else {
      paragraph = { text, line };
      paragraphs.push(paragraph);
    }
  });
  return { paragraphs, blocks };
}

/** Line number of `offset` in a run of lines. */
function lineAt(run: TextRun, offset: number): number {
  let line = run.line;
  for (let i = 0; i < offset; i++) if (run.text[i] === '\n') line++;
  return line;
}

/** Inline code spans of a paragraph (CommonMark: a run of N backticks up to the next run of
 *  exactly N; a lone run is literal text), as [start, end) offsets of the whole span. */
function inlineCode(text: string): Array<{ start: number; end: number; content: string }> {
  const spans: Array<{ start: number; end: number; content: string }> = [];
  const runs = /`+/g;
  let open: RegExpExecArray | null;
  while ((open = runs.exec(text)) !== null) {
    const ticks = open[0];
    const close = new RegExp(`(?<!\`)${ticks}(?!\`)`, 'g');
    close.lastIndex = open.index + ticks.length;
    const end = close.exec(text);
    if (end === null) continue;
    const content = text.slice(open.index + ticks.length, end.index);
    spans.push({ start: open.index, end: end.index + ticks.length, content });
    runs.lastIndex = end.index + ticks.length;
  }
  return spans;
}

/** Every code snippet of a Markdown text: the logical lines of its shell blocks, and its
 *  inline code. */
export function codeSnippets(markdown: string): CodeSnippet[] {
  const { paragraphs, blocks } = scanMarkdown(markdown);
  const snippets: CodeSnippet[] = [];
  for (const block of blocks) {
    if (!SHELL_BLOCKS.has(block.language)) continue;
    let joined: CodeSnippet | undefined;
    for (const { text, line } of block.lines) {
      const continued = /\\\s*$/.test(text);
      const part = continued ? text.replace(/\\\s*$/, '') : text;
      joined = joined
        ? { text: `${joined.text} ${part.trim()}`, line: joined.line }
        : { text: part, line };
      if (!continued) {
        snippets.push(joined);
        joined = undefined;
      }
    }
    if (joined) snippets.push(joined);
  }
  for (const paragraph of paragraphs) {
    for (const span of inlineCode(paragraph.text)) {
      const text = span.content.replace(/\n/g, ' ').trim();
      snippets.push({ text, line: lineAt(paragraph, span.start) });
    }
  }
  return snippets.sort((a, b) => a.line - b.line);
}

/** Shell words of one line: blanks separate, quotes group (and are dropped), `#` after a blank
 *  starts a comment. Separators (`|`, `&&`, `;`...) are words of their own. */
export function shellWords(text: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (quote) {
      if (ch === quote) quote = undefined;
      else word = (word ?? '') + ch;
      continue;
    }
    if (ch === "'" || ch === '"') {
      quote = ch;
      word ??= '';
      continue;
    }
    if (/\s/.test(ch)) {
      if (word !== undefined) words.push(word);
      word = undefined;
      continue;
    }
    if (ch === '#' && word === undefined) break;
    word = (word ?? '') + ch;
  }
  if (word !== undefined) words.push(word);
  return words;
}

const SEPARATORS = new Set(['|', '||', '&&', ';', '&']);
const REDIRECTIONS = new Set(['>', '>>', '<', '2>', '2>>', '&>']);
/** Words that may come before the program: prompts and launchers. */
const LAUNCHERS = new Set(['$', 'npx', 'sudo', 'exec', 'node', 'time', 'env', 'command']);
const PROGRAM = /(^|\/)kmodload(\.js)?$/;

function isPrompt(word: string): boolean {
  return /^\S*[#$]$/.test(word) && word.length > 1;
}

function startsCommand(words: string[], index: number): boolean {
  for (let i = index - 1; i >= 0; i--) {
    const word = words[i] as string;
    if (SEPARATORS.has(word) || isPrompt(word)) return true;
    if (LAUNCHERS.has(word) || /^[A-Za-z_][A-Za-z0-9_]*=/.test(word)) continue;
    return false;
  }
  return true;
}

/** The `kmodload ...` invocations of a Markdown text, where the program stands in command
 *  position (first, after a prompt, a launcher such as npx or a separator). */
export function findInvocations(markdown: string, file: string): DocInvocation[] {
  const found: DocInvocation[] = [];
  for (const snippet of codeSnippets(markdown)) {
    const words = shellWords(snippet.text);
    words.forEach((word, index) => {
      if (!PROGRAM.test(word) || !startsCommand(words, index)) return;
      const args: string[] = [];
      // Inside a usage line's brackets, `|` separates alternatives: [--a PATH | --b PATH].
      let brackets = 0;
      for (let i = index + 1; i < words.length; i++) {
        const arg = words[i] as string;
        if (SEPARATORS.has(arg) && !(arg === '|' && brackets > 0)) break;
        brackets += (arg.match(/\[/g)?.length ?? 0) - (arg.match(/\]/g)?.length ?? 0);
        if (REDIRECTIONS.has(arg)) {
          i++;
          continue;
        }
        if (/^(2?>|<|&>)/.test(arg)) continue;
        args.push(arg);
      }
      if (args.length > 0) found.push({ file, line: snippet.line, args });
    });
  }
  return found;
}

/** A word that stands for something (COMMAND, NAME..., [OPTIONS]), not a literal argument. */
function isPlaceholder(word: string): boolean {
  return /^[[(]?[A-Z][A-Z0-9_-]*(\.\.\.)?[\])]?$/.test(word) || /^\.{3}$/.test(word);
}

/** The options a word names: `--long`, `--long=VALUE`, `-x`, `-xy` (each letter), with the
 *  brackets and alternatives of a usage line taken apart (`[--a|--b]`). */
export function optionsIn(word: string): string[] {
  const options: string[] = [];
  const bare = word.replace(/^[[({]+/, '').replace(/(\.\.\.)?[\])},.;:]*$/, '');
  for (const part of bare.split('|')) {
    const long = /^--([A-Za-z0-9][A-Za-z0-9-]*)(=.*)?$/.exec(part);
    if (long) options.push(`--${long[1]}`);
    else if (/^-[A-Za-z]+$/.test(part))
      for (const letter of part.slice(1)) options.push(`-${letter}`);
  }
  return options;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Whether a help text lists `option` as a word of its own. */
export function helpMentions(help: string, option: string): boolean {
  return new RegExp(`(?<![\\w-])${escapeRegExp(option)}(?![\\w-])`).test(help);
}

/** The subcommands a command's usage lines name: `kmodload policy check ...` and
 *  `kmodload policy lint ...` give check and lint. */
export function subcommandsOf(command: string, help: string): string[] {
  const subs: string[] = [];
  const usage = new RegExp(
    `^\\s*(?:Usage:)?\\s*kmodload ${escapeRegExp(command)} ([a-z][a-z0-9-]*(?:\\|[a-z][a-z0-9-]*)*)(?=\\s|$)`,
  );
  let inUsage = false;
  for (const line of help.split('\n')) {
    if (/^Usage:/.test(line)) inUsage = true;
    else if (!/^\s+kmodload /.test(line)) inUsage = false;
    if (!inUsage) continue;
    const match = usage.exec(line);
    if (match) subs.push(...(match[1] as string).split('|'));
  }
  return [...new Set(subs)];
}

function firstLine(text: string): string {
  return text.split('\n').find((line) => line.trim() !== '') ?? '';
}

/** Caches one answer per argv: the documents show the same commands many times. */
export function cachedHelp(run: HelpRunner): HelpRunner {
  const answers = new Map<string, Promise<HelpAnswer>>();
  return (argv) => {
    const key = argv.join('\0');
    let answer = answers.get(key);
    if (!answer) {
      answer = run(argv);
      answers.set(key, answer);
    }
    return answer;
  };
}

/** What is wrong with one invocation, as "FILE:LINE: problem" lines (none: it is right). */
export async function checkInvocation(call: DocInvocation, help: HelpRunner): Promise<string[]> {
  const where = `${call.file}:${call.line}`;
  const shown = `kmodload ${call.args.join(' ')}`;
  const [first, ...rest] = call.args as [string, ...string[]];
  if (isPlaceholder(first)) return [];
  const problems: string[] = [];
  // Each alternative of `load|unload` is a command of its own, with the same options.
  const commands = first.startsWith('-') ? [[]] : first.split('|').map((c) => [c]);
  const optionWords = first.startsWith('-') ? call.args : rest;
  for (const command of commands) {
    const name = command[0];
    if (name !== undefined && !/^[a-z][a-z0-9-]*$/.test(name)) {
      problems.push(`${where}: \`${shown}\`: '${name}' is not a command`);
      continue;
    }
    const answer = await help([...command, '--help']);
    if (answer.status !== 0) {
      problems.push(
        `${where}: \`${shown}\`: no command '${name}' (kmodload ${name} --help exits ${answer.status}: ${firstLine(answer.err)})`,
      );
      continue;
    }
    let paths: string[][] = [command];
    let options = optionWords;
    const subs = name === undefined ? [] : subcommandsOf(name, answer.out);
    const next = rest[0];
    if (subs.length > 0 && next !== undefined && !next.startsWith('-') && !isPlaceholder(next)) {
      paths = [];
      for (const sub of next.split('|')) {
        if (subs.includes(sub)) paths.push([...command, sub]);
        else {
          problems.push(
            `${where}: \`${shown}\`: '${name}' has no subcommand '${sub}' (its usage lists ${subs.join(', ')})`,
          );
        }
      }
      options = rest.slice(1);
    }
    for (const argv of paths) {
      const text = argv.length === command.length ? answer : await help([...argv, '--help']);
      if (text.status !== 0) {
        problems.push(
          `${where}: \`${shown}\`: kmodload ${argv.join(' ')} --help exits ${text.status}: ${firstLine(text.err)}`,
        );
        continue;
      }
      for (const option of options.flatMap(optionsIn)) {
        if (!helpMentions(text.out, option)) {
          problems.push(
            `${where}: \`${shown}\`: option ${option} is not in \`kmodload ${[...argv, '--help'].join(' ')}\``,
          );
        }
      }
    }
  }
  return problems;
}

/** A relative link of a Markdown text, outside code. */
export interface DocLink {
  line: number;
  target: string;
}

/** Inline links and images `[text](target)` and reference definitions `[x]: target`, outside
 *  code (a link may span lines). */
export function findLinks(markdown: string): DocLink[] {
  const links: DocLink[] = [];
  for (const paragraph of scanMarkdown(markdown).paragraphs) {
    let prose = paragraph.text;
    for (const span of inlineCode(prose)) {
      const blank = prose.slice(span.start, span.end).replace(/[^\n]/g, ' ');
      prose = prose.slice(0, span.start) + blank + prose.slice(span.end);
    }
    const inline = /!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)/g;
    let match: RegExpExecArray | null;
    while ((match = inline.exec(prose)) !== null) {
      links.push({ line: lineAt(paragraph, match.index), target: match[1] as string });
    }
    const definition = /^ {0,3}\[[^\]]+\]:[ \t]*<?(\S+?)>?(?=\s|$)/gm;
    while ((match = definition.exec(prose)) !== null) {
      links.push({ line: lineAt(paragraph, match.index), target: match[1] as string });
    }
  }
  return links.sort((a, b) => a.line - b.line);
}

/** The anchors GitHub gives a Markdown file's headings: lower case, punctuation dropped,
 *  blanks as `-`, a repeated one suffixed `-1`, `-2`... */
export function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const paragraph of scanMarkdown(markdown).paragraphs) {
    for (const text of paragraph.text.split('\n')) {
      const heading = /^\s{0,3}#{1,6}\s+(.*?)(\s+#+)?\s*$/.exec(text);
      if (!heading) continue;
      const words = (heading[1] as string).replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1');
      const slug = words
        .toLowerCase()
        .replace(/[^\p{L}\p{M}\p{N}\s_-]/gu, '')
        .replace(/\s/g, '-');
      const count = seen.get(slug) ?? 0;
      seen.set(slug, count + 1);
      anchors.add(count === 0 ? slug : `${slug}-${count}`);
    }
  }
  return anchors;
}

/** What is wrong with the relative links of `file` (its text `markdown`), as "FILE:LINE:
 *  problem" lines, paths shown relative to `root`. */
export function checkLinks(markdown: string, file: string, root: string): string[] {
  const problems: string[] = [];
  const shown = path.relative(root, file);
  for (const link of findLinks(markdown)) {
    if (link.target === '' || /^[a-z][a-z0-9+.-]*:/i.test(link.target)) continue;
    const hash = link.target.indexOf('#');
    const target = hash < 0 ? link.target : link.target.slice(0, hash);
    const fragment = hash < 0 ? undefined : decodeURIComponent(link.target.slice(hash + 1));
    const resolved =
      target === '' ? file : path.resolve(path.dirname(file), decodeURIComponent(target));
    if (target !== '' && !fs.existsSync(resolved)) {
      problems.push(
        `${shown}:${link.line}: link to ${link.target}: ${path.relative(root, resolved)} does not exist`,
      );
      continue;
    }
    if (fragment !== undefined && resolved.endsWith('.md')) {
      const anchors = headingAnchors(
        resolved === file ? markdown : fs.readFileSync(resolved, 'utf8'),
      );
      if (!anchors.has(fragment)) {
        problems.push(
          `${shown}:${link.line}: link to ${link.target}: no heading #${fragment} in ${path.relative(root, resolved)}`,
        );
      }
    }
  }
  return problems;
}
