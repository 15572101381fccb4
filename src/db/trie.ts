// An in-memory copy of a kmod index built from the text files, answering exactly like the
// binary trie depmod writes. The answer ORDER is the point: kmod sorts matches by priority
// and, among equal priorities, puts the match found LATER in its traversal first. So this is
// the same path-compressed trie depmod builds (node boundaries at every branch and key end)
// searched with the same walk: along the literal key, at each node first the `*`, `?` and
// `[` subtrees (children in byte order, a node's own values after its children), then the
// node's own values when the key ends there.
import type { IndexValue } from '../native/binding';
import type { Matcher } from './fnmatch';

export interface KeyIndex {
  /** Values stored under exactly `key`, in stored order (kmod uses the first). */
  exact(key: string): IndexValue[];
  /** Values of every stored pattern matching `key`, in kmod's order. */
  wildcard(key: string): IndexValue[];
  close(): void;
}

interface TrieNode {
  prefix: string;
  /** Absent on leaves (most nodes): fewer objects for the collector to copy. */
  children: Map<string, TrieNode> | undefined;
  /** Children in byte order, computed once the trie is complete. */
  sorted?: Array<[string, TrieNode]>;
  values: IndexValue[];
}

function newNode(prefix: string): TrieNode {
  return { prefix, children: undefined, values: [] };
}

/** depmod's and kmod's insertion: before the first value of equal or higher priority. */
function addValue(values: IndexValue[], value: string, priority: number): void {
  let at = 0;
  while (at < values.length && (values[at] as IndexValue).priority < priority) at++;
  values.splice(at, 0, { value, priority });
}

function sortedChildren(node: TrieNode): Array<[string, TrieNode]> {
  if (!node.sorted) {
    node.sorted = [...(node.children ?? [])].sort((a, b) =>
      a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0,
    );
  }
  return node.sorted;
}

export class TextIndex implements KeyIndex {
  private readonly root = newNode('');

  constructor(private readonly fnmatch: Matcher) {}

  /** Adds one key/value, splitting nodes the way depmod does. Duplicates are kept. */
  insert(key: string, value: string, priority: number): void {
    let node = this.root;
    let i = 0;
    for (;;) {
      let j = 0;
      for (; j < node.prefix.length; j++) {
        const ch = node.prefix[j] as string;
        if (ch !== key[i + j]) {
          // Split: this node keeps prefix[0..j), a new child takes over the rest.
          const tail: TrieNode = {
            prefix: node.prefix.slice(j + 1),
            children: node.children,
            values: node.values,
          };
          node.prefix = node.prefix.slice(0, j);
          node.children = new Map([[ch, tail]]);
          node.values = [];
          break;
        }
      }
      i += j;
      const ch = key[i];
      if (ch === undefined) {
        addValue(node.values, value, priority);
        return;
      }
      const child = node.children?.get(ch);
      if (!child) {
        const leaf = newNode(key.slice(i + 1));
        leaf.values.push({ value, priority });
        (node.children ??= new Map()).set(ch, leaf);
        return;
      }
      node = child;
      i++;
    }
  }

  exact(key: string): IndexValue[] {
    let node: TrieNode | undefined = this.root;
    let i = 0;
    while (node) {
      if (!key.startsWith(node.prefix, i)) return [];
      i += node.prefix.length;
      const ch = key[i];
      if (ch === undefined) return node.values.slice();
      node = node.children?.get(ch);
      i++;
    }
    return [];
  }

  wildcard(key: string): IndexValue[] {
    const out: IndexValue[] = [];
    let node: TrieNode | undefined = this.root;
    let i = 0;
    while (node) {
      for (let j = 0; j < node.prefix.length; j++) {
        const ch = node.prefix[j] as string;
        if (ch === '*' || ch === '?' || ch === '[') {
          this.collect(node, j, '', key.slice(i + j), out);
          return out;
        }
        if (ch !== key[i + j]) return out;
      }
      i += node.prefix.length;
      for (const wild of ['*', '?', '[']) {
        const child = node.children?.get(wild);
        if (child) this.collect(child, 0, wild, key.slice(i), out);
      }
      const ch = key[i];
      if (ch === undefined) {
        for (const v of node.values) addValue(out, v.value, v.priority);
        return out;
      }
      node = node.children?.get(ch);
      i++;
    }
    return out;
  }

  /** Every value below `node` whose pattern (from the first wildcard on) matches `subkey`. */
  private collect(
    node: TrieNode,
    from: number,
    pattern: string,
    subkey: string,
    out: IndexValue[],
  ): void {
    const here = pattern + node.prefix.slice(from);
    for (const [ch, child] of sortedChildren(node)) this.collect(child, 0, here + ch, subkey, out);
    if (node.values.length > 0 && this.fnmatch(here, subkey)) {
      for (const v of node.values) addValue(out, v.value, v.priority);
    }
  }

  close(): void {
    this.root.children = undefined;
    this.root.values = [];
  }
}
