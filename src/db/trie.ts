// An in-memory copy of a kmod index built from the text files, answering exactly like the
// binary trie depmod writes. The answer ORDER is the point: kmod sorts matches by priority
// and, among equal priorities, puts the match found LATER in its traversal first. So this is
// the same path-compressed trie depmod builds (node boundaries at every branch and key end)
// searched with the same walk: along the literal key, at each node first the `*`, `?` and
// `[` subtrees (children in byte order, a node's own values after its children), then the
// node's own values when the key ends there.
//
// The trie is flat: nodes, key characters and values live in a few typed arrays, not in one
// object per node. A text modules.alias makes some 100,000 nodes; as objects, the garbage
// collector's young-generation copies of them stalled a service's event loop for 6-8 ms at a
// time while the trie was built.
import type { IndexValue } from '../native/binding';
import type { Matcher } from './fnmatch';

export interface KeyIndex {
  /** Values stored under exactly `key`, in stored order (kmod uses the first). */
  exact(key: string): IndexValue[];
  /** Values of every stored pattern matching `key`, in kmod's order. */
  wildcard(key: string): IndexValue[];
  close(): void;
}

const NONE = -1;
const WILDCARDS = [0x2a, 0x3f, 0x5b]; // '*', '?', '['

/** An Int32Array twice as long, the old contents first. */
function grown(array: Int32Array, fill: number): Int32Array<ArrayBuffer> {
  const next = new Int32Array(array.length * 2).fill(fill);
  next.set(array);
  return next;
}

/** depmod's and kmod's insertion: before the first value of equal or higher priority. */
function addValue(values: IndexValue[], value: string, priority: number): void {
  let at = 0;
  while (at < values.length && (values[at] as IndexValue).priority < priority) at++;
  values.splice(at, 0, { value, priority });
}

export class TextIndex implements KeyIndex {
  // Node n: its prefix is chars[prefixStart[n] .. +prefixLength[n]); it is reached from its
  // parent through the character edge[n]; its children are a list in byte order from
  // firstChild[n] along nextSibling; its values a list in kmod's order from firstValue[n]
  // (lastValue[n] makes appending O(1): depmod's files mostly come in priority order).
  private nodeCount = 1;
  private prefixStart = new Int32Array(1024);
  private prefixLength = new Int32Array(1024);
  private edge = new Int32Array(1024);
  private firstChild = new Int32Array(1024).fill(NONE);
  private nextSibling = new Int32Array(1024).fill(NONE);
  private firstValue = new Int32Array(1024).fill(NONE);
  private lastValue = new Int32Array(1024).fill(NONE);

  private chars = new Uint16Array(16384);
  private charCount = 0;

  // Value v: the string strings[valueString[v]], its priority, the next value of its node.
  private valueCount = 0;
  private valueString = new Int32Array(1024);
  private valuePriority = new Int32Array(1024);
  private valueNext = new Int32Array(1024).fill(NONE);
  /** Each distinct value once (alias values repeat the same few thousand module names). */
  private strings: string[] = [];
  private stringIds = new Map<string, number>();

  constructor(private readonly fnmatch: Matcher) {}

  /** Adds one key/value, splitting nodes the way depmod does. Duplicates are kept. */
  insert(key: string, value: string, priority: number): void {
    let node = 0;
    let i = 0;
    for (;;) {
      const start = this.prefixStart[node] as number;
      const length = this.prefixLength[node] as number;
      let j = 0;
      for (; j < length; j++) {
        const ch = this.chars[start + j] as number;
        // charCodeAt past the key's end is NaN: unequal, so the node splits there.
        if (ch !== key.charCodeAt(i + j)) {
          this.split(node, j);
          break;
        }
      }
      i += j;
      if (i === key.length) {
        this.addNodeValue(node, value, priority);
        return;
      }
      const ch = key.charCodeAt(i);
      const child = this.child(node, ch);
      if (child === NONE) {
        const leaf = this.newNode(key, i + 1);
        this.linkChild(node, leaf, ch);
        this.addNodeValue(leaf, value, priority);
        return;
      }
      node = child;
      i++;
    }
  }

  exact(key: string): IndexValue[] {
    let node = 0;
    let i = 0;
    while (node !== NONE) {
      if (!this.prefixMatches(node, key, i)) return [];
      i += this.prefixLength[node] as number;
      if (i === key.length) return this.valuesOf(node);
      node = this.child(node, key.charCodeAt(i));
      i++;
    }
    return [];
  }

  wildcard(key: string): IndexValue[] {
    const out: IndexValue[] = [];
    let node = 0;
    let i = 0;
    while (node !== NONE) {
      const start = this.prefixStart[node] as number;
      const length = this.prefixLength[node] as number;
      for (let j = 0; j < length; j++) {
        const ch = this.chars[start + j] as number;
        if (WILDCARDS.includes(ch)) {
          this.collect(node, j, '', key.slice(i + j), out);
          return out;
        }
        if (ch !== key.charCodeAt(i + j)) return out;
      }
      i += length;
      for (const wild of WILDCARDS) {
        const child = this.child(node, wild);
        if (child !== NONE) this.collect(child, 0, String.fromCharCode(wild), key.slice(i), out);
      }
      if (i === key.length) {
        for (const v of this.valuesOf(node)) addValue(out, v.value, v.priority);
        return out;
      }
      node = this.child(node, key.charCodeAt(i));
      i++;
    }
    return out;
  }

  close(): void {
    this.nodeCount = 1;
    this.firstChild[0] = NONE;
    this.firstValue[0] = NONE;
    this.lastValue[0] = NONE;
    this.prefixLength[0] = 0;
    this.strings = [];
    this.stringIds.clear();
  }

  /** Every value below `node` whose pattern (from the first wildcard on) matches `subkey`. */
  private collect(
    node: number,
    from: number,
    pattern: string,
    subkey: string,
    out: IndexValue[],
  ): void {
    const here = pattern + this.prefixText(node, from);
    for (let child = this.firstChild[node] as number; child !== NONE;) {
      this.collect(child, 0, here + String.fromCharCode(this.edge[child] as number), subkey, out);
      child = this.nextSibling[child] as number;
    }
    if (this.firstValue[node] !== NONE && this.fnmatch(here, subkey)) {
      for (const v of this.valuesOf(node)) addValue(out, v.value, v.priority);
    }
  }

  private prefixMatches(node: number, key: string, at: number): boolean {
    const start = this.prefixStart[node] as number;
    const length = this.prefixLength[node] as number;
    for (let j = 0; j < length; j++) {
      if (this.chars[start + j] !== key.charCodeAt(at + j)) return false;
    }
    return true;
  }

  private prefixText(node: number, from: number): string {
    const start = (this.prefixStart[node] as number) + from;
    const end = (this.prefixStart[node] as number) + (this.prefixLength[node] as number);
    let text = '';
    for (let c = start; c < end; c++) text += String.fromCharCode(this.chars[c] as number);
    return text;
  }

  private valuesOf(node: number): IndexValue[] {
    const values: IndexValue[] = [];
    for (let v = this.firstValue[node] as number; v !== NONE; v = this.valueNext[v] as number) {
      values.push({
        value: this.strings[this.valueString[v] as number] as string,
        priority: this.valuePriority[v] as number,
      });
    }
    return values;
  }

  /** The child reached through `ch`, or NONE. Children are in byte order: stop past it. */
  private child(node: number, ch: number): number {
    for (let c = this.firstChild[node] as number; c !== NONE; c = this.nextSibling[c] as number) {
      const edge = this.edge[c] as number;
      if (edge === ch) return c;
      if (edge > ch) return NONE;
    }
    return NONE;
  }

  private linkChild(parent: number, child: number, ch: number): void {
    this.edge[child] = ch;
    let before = NONE;
    let after = this.firstChild[parent] as number;
    while (after !== NONE && (this.edge[after] as number) < ch) {
      before = after;
      after = this.nextSibling[after] as number;
    }
    this.nextSibling[child] = after;
    if (before === NONE) this.firstChild[parent] = child;
    else this.nextSibling[before] = child;
  }

  /** Node keeps prefix[0..at); a new child, reached through prefix[at], takes the rest with
   *  the node's children and values. */
  private split(node: number, at: number): void {
    const start = this.prefixStart[node] as number;
    const tail = this.allocateNode();
    this.prefixStart[tail] = start + at + 1;
    this.prefixLength[tail] = (this.prefixLength[node] as number) - at - 1;
    this.firstChild[tail] = this.firstChild[node] as number;
    this.firstValue[tail] = this.firstValue[node] as number;
    this.lastValue[tail] = this.lastValue[node] as number;
    this.prefixLength[node] = at;
    this.firstChild[node] = NONE;
    this.firstValue[node] = NONE;
    this.lastValue[node] = NONE;
    this.linkChild(node, tail, this.chars[start + at] as number);
  }

  /** A childless node whose prefix is key[from..]. */
  private newNode(key: string, from: number): number {
    const node = this.allocateNode();
    const length = key.length - from;
    while (this.charCount + length > this.chars.length) {
      const next = new Uint16Array(this.chars.length * 2);
      next.set(this.chars);
      this.chars = next;
    }
    for (let c = 0; c < length; c++) this.chars[this.charCount + c] = key.charCodeAt(from + c);
    this.prefixStart[node] = this.charCount;
    this.prefixLength[node] = length;
    this.charCount += length;
    return node;
  }

  private allocateNode(): number {
    if (this.nodeCount === this.prefixStart.length) {
      this.prefixStart = grown(this.prefixStart, 0);
      this.prefixLength = grown(this.prefixLength, 0);
      this.edge = grown(this.edge, 0);
      this.firstChild = grown(this.firstChild, NONE);
      this.nextSibling = grown(this.nextSibling, NONE);
      this.firstValue = grown(this.firstValue, NONE);
      this.lastValue = grown(this.lastValue, NONE);
    }
    return this.nodeCount++;
  }

  private addNodeValue(node: number, value: string, priority: number): void {
    if (this.valueCount === this.valueString.length) {
      this.valueString = grown(this.valueString, 0);
      this.valuePriority = grown(this.valuePriority, 0);
      this.valueNext = grown(this.valueNext, NONE);
    }
    const v = this.valueCount++;
    let id = this.stringIds.get(value);
    if (id === undefined) {
      id = this.strings.push(value) - 1;
      this.stringIds.set(value, id);
    }
    this.valueString[v] = id;
    this.valuePriority[v] = priority;
    // Before the first value of equal or higher priority: checked at the ends first.
    const first = this.firstValue[node] as number;
    const last = this.lastValue[node] as number;
    if (first === NONE) {
      this.firstValue[node] = v;
      this.lastValue[node] = v;
    } else if ((this.valuePriority[last] as number) < priority) {
      this.valueNext[last] = v;
      this.lastValue[node] = v;
    } else if ((this.valuePriority[first] as number) >= priority) {
      this.valueNext[v] = first;
      this.firstValue[node] = v;
    } else {
      let before = first;
      let after = this.valueNext[first] as number;
      while (after !== NONE && (this.valuePriority[after] as number) < priority) {
        before = after;
        after = this.valueNext[after] as number;
      }
      this.valueNext[v] = after;
      this.valueNext[before] = v;
    }
  }
}
