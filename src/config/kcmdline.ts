// Module parameters and blacklists given on the kernel command line, read the way kmod does:
// `mod.param=value` becomes `options mod param=value`, `modprobe.blacklist=a,b` blacklists
// a and b. Quotes may wrap a value (`mod.p="a b"`) or, as GRUB writes them, the whole word
// (`"mod.p=a b"`, re-quoted to `p="a b"`). Anything else is skipped silently.
import { aliasNormalize } from './normalize';
import { noteOrigin, type ModprobeConfig } from './types';

/** kmod reads at most this many bytes of /proc/cmdline. */
export const KERNEL_COMMAND_LINE_MAX = 4095;

const enum State {
  Ignore,
  Modname,
  Param,
  Value,
}

const SEPARATORS = new Set([' ', '\n', '\t', '\v', '\f', '\r']);

export function parseKernelCommandLine(cmdline: string, config: ModprobeConfig): void {
  const text = cmdline.slice(0, KERNEL_COMMAND_LINE_MAX);
  let state = State.Modname;
  let quoted = false;
  let wordQuote = -1; // index of a quote that opened the whole word
  let modnameStart = 0;
  let dot = -1;
  let valueStart = -1;

  const complete = (end: number): void => {
    const modname = text.slice(modnameStart, dot);
    let param = text.slice(dot + 1, end);
    let value = valueStart < 0 ? undefined : text.slice(valueStart, end);
    if (wordQuote >= 0 && wordQuote < modnameStart && valueStart >= 0) {
      param = text.slice(dot + 1, valueStart) + '"' + text.slice(valueStart, end);
      value = '"' + text.slice(valueStart, end);
    }
    addResult(config, modname, param, value);
  };

  for (let p = 0; p <= text.length; p++) {
    const c = text[p] ?? '\0';
    if (c === '"') {
      quoted = !quoted;
      // A quote may only open a word; anywhere else outside a value it spoils the word.
      if (quoted && state === State.Modname && p === modnameStart) {
        wordQuote = p;
        modnameStart = p + 1;
      } else if (state !== State.Value) {
        state = State.Ignore;
      }
    } else if (c === '\0' || SEPARATORS.has(c)) {
      if (quoted && state === State.Value) {
        // a quoted value keeps its spaces
      } else if (quoted) {
        state = State.Ignore;
      } else if (state === State.Value || state === State.Param) {
        complete(p);
        state = State.Modname;
        modnameStart = p + 1;
        wordQuote = -1;
        dot = -1;
        valueStart = -1;
      } else {
        state = State.Modname;
        modnameStart = p + 1;
        wordQuote = -1;
        dot = -1;
        valueStart = -1;
      }
      if (c === '\0') break;
    } else if (c === '.') {
      if (state === State.Modname) {
        dot = p;
        state = State.Param;
      } else if (state === State.Param) {
        state = State.Ignore;
      }
    } else if (c === '=') {
      if (state === State.Param) {
        valueStart = p + 1;
        state = State.Value;
      } else if (state === State.Modname) {
        state = State.Ignore;
      }
    }
  }
}

function addResult(
  config: ModprobeConfig,
  modname: string,
  param: string,
  value: string | undefined,
): void {
  if (modname === 'modprobe' && param.startsWith('blacklist=')) {
    // kmod keeps these names as written: `modprobe.blacklist=a-b` does not block a_b.
    for (const name of (value ?? '').split(',')) {
      config.blacklist.push(name);
      noteOrigin(config, `blacklist ${name}`, 'the kernel command line');
    }
    return;
  }
  const module = aliasNormalize(modname);
  if (module === undefined) return;
  config.options.push({ module, options: param.replace(/\t/g, ' ') });
}
