// The names the differential test asks about, all taken from the real tree: every module,
// every plain alias, modaliases built from the wildcard patterns the way devices report them
// (pci:, usb:, cpu:, and others), builtins, and names kmod must reject or cannot find.
import * as fs from 'node:fs';

import type { KernelTree } from '../helpers/trees';

function read(tree: KernelTree, file: string): string {
  return fs.readFileSync(`${tree.moduleDir}/${file}`, 'utf8');
}

/** Module names as modules.dep lists them, in its order. */
export function moduleNames(tree: KernelTree): string[] {
  return read(tree, 'modules.dep')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const file = line.slice(0, line.indexOf(':'));
      return file.slice(file.lastIndexOf('/') + 1).replace(/\.ko(\..*)?$/, '');
    });
}

export function aliasLines(tree: KernelTree): Array<{ pattern: string; module: string }> {
  return read(tree, 'modules.alias')
    .split('\n')
    .filter((l) => l.startsWith('alias '))
    .map((l) => {
      const [, pattern = '', module = ''] = l.split(' ');
      return { pattern, module };
    });
}

export function builtinNames(tree: KernelTree): string[] {
  return read(tree, 'modules.builtin')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.slice(l.lastIndexOf('/') + 1).replace(/\.ko$/, ''));
}

export function builtinAliases(tree: KernelTree): string[] {
  return read(tree, 'modules.builtin.modinfo')
    .split('\0')
    .filter((e) => /^[^.]+\.alias=/.test(e))
    .map((e) => e.slice(e.indexOf('=') + 1));
}

export function symbolNames(tree: KernelTree, count: number): string[] {
  const symbols = read(tree, 'modules.symbols')
    .split('\n')
    .filter((l) => l.startsWith('alias symbol:'))
    .map((l) => l.split(' ')[1] as string);
  return sample(symbols, count);
}

/** Deterministic spread-out sample (same names every run). */
export function sample<T>(items: T[], count: number): T[] {
  if (items.length <= count) return items.slice();
  const step = items.length / count;
  return Array.from({ length: count }, (_, i) => items[Math.floor(i * step)] as T);
}

const HAS_WILDCARD = /[*?[]/;

/** Plain aliases (no wildcard), each once. */
export function plainAliases(tree: KernelTree): string[] {
  return [
    ...new Set(
      aliasLines(tree)
        .map((a) => a.pattern)
        .filter((p) => !HAS_WILDCARD.test(p)),
    ),
  ];
}

/** One concrete character for a bracket expression (its first member, or one outside it). */
function bracketChar(body: string): string {
  if (body.startsWith('!') || body.startsWith('^')) {
    for (const c of 'Z0a~') if (!body.includes(c)) return c;
    return '~';
  }
  return body[0] === '\\' ? (body[1] ?? 'x') : (body[0] ?? 'x');
}

/** A glob with its wildcards replaced: `*` by `star`, `?` by `0`, `[..]` by a member. */
export function instantiate(pattern: string, star: string): string {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*') out += star;
    else if (c === '?') out += '0';
    else if (c === '[') {
      const close = pattern.indexOf(']', i + 2);
      if (close < 0) out += c;
      else {
        out += bracketChar(pattern.slice(i + 1, close));
        i = close;
      }
    } else out += c;
  }
  return out;
}

/** Fills one fixed-width hex field of a modalias pattern. */
function fillField(value: string, width: number, filler: string): string {
  if (value === '*') return filler.padStart(width, '0').slice(-width);
  const concrete = instantiate(value, '');
  return concrete.padEnd(width, '0').slice(0, width);
}

// Device classes that class-matching drivers claim, so that one modalias matches several
// modules (a vendor driver and a class driver).
const PCI_CLASSES = [
  ['0C', '03', '20'], // EHCI
  ['0C', '03', '30'], // xHCI
  ['01', '06', '01'], // AHCI
  ['02', '00', '00'], // Ethernet
  ['03', '00', '00'], // VGA
  ['04', '03', '00'], // HD audio
  ['01', '08', '02'], // NVMe
];
const USB_INTERFACES = [
  ['08', '06', '50'], // mass storage
  ['03', '01', '01'], // HID keyboard
  ['02', '02', '01'], // CDC ACM
  ['0E', '01', '00'], // video
  ['E0', '01', '01'], // Bluetooth
  ['FF', 'FF', 'FF'], // vendor specific
];

const PCI = /^pci:v(.*)d(.*)sv(.*)sd(.*)bc(.*)sc(.*)i(.*)$/;
const USB = /^usb:v(.*)p(.*)d(.*)dc(.*)dsc(.*)dp(.*)ic(.*)isc(.*)ip(.*)in(.*)$/;

/** Real-format pci:/usb: modaliases from patterns, with wildcard fields filled in. */
export function deviceModaliases(patterns: string[]): string[] {
  const out: string[] = [];
  patterns.forEach((pattern, n) => {
    const pci = PCI.exec(pattern);
    if (pci) {
      const [, v, d, sv, sd, bc, sc, i] = pci as unknown as string[];
      const cls = PCI_CLASSES[n % PCI_CLASSES.length] as string[];
      out.push(
        `pci:v${fillField(v!, 8, '8086')}d${fillField(d!, 8, '1E26')}sv${fillField(sv!, 8, '1028')}` +
          `sd${fillField(sd!, 8, '049E')}bc${fillField(bc!, 2, cls[0]!)}sc${fillField(sc!, 2, cls[1]!)}` +
          `i${fillField(i!, 2, cls[2]!)}`,
      );
      return;
    }
    const usb = USB.exec(pattern);
    if (usb) {
      const [, v, p, d, dc, dsc, dp, ic, isc, ip, inum] = usb as unknown as string[];
      const intf = USB_INTERFACES[n % USB_INTERFACES.length] as string[];
      out.push(
        `usb:v${fillField(v!, 4, '0BDA')}p${fillField(p!, 4, '8153')}d${fillField(d!, 4, '0100')}` +
          `dc${fillField(dc!, 2, '00')}dsc${fillField(dsc!, 2, '00')}dp${fillField(dp!, 2, '00')}` +
          `ic${fillField(ic!, 2, intf[0]!)}isc${fillField(isc!, 2, intf[1]!)}` +
          `ip${fillField(ip!, 2, intf[2]!)}in${fillField(inum!, 2, '00')}`,
      );
    }
  });
  return out;
}

/** x86 CPU modaliases listing every feature the tree's drivers ask for, for several models. */
export function cpuModaliases(patterns: string[]): string[] {
  const features = new Set<string>();
  const models = new Set<string>();
  for (const p of patterns) {
    if (!p.startsWith('cpu:type:x86,')) continue;
    for (const m of p.matchAll(/feature:\*([0-9A-F]{4})\*/g)) features.add(m[1] as string);
    const model = /^cpu:type:x86,(ven[0-9A-F]{4}fam[0-9A-F]{4}mod[0-9A-F]{4}):/.exec(p);
    if (model) models.add(model[1] as string);
  }
  const all = [...features].sort();
  const half = all.filter((_, i) => i % 2 === 0);
  const out: string[] = [];
  for (const model of sample([...models], 12)) {
    out.push(`cpu:type:x86,${model}:feature:,${all.join(',')}`);
    out.push(`cpu:type:x86,${model}:feature:,${half.join(',')}`);
  }
  out.push(`cpu:type:x86,ven0002fam0019mod0001:feature:,${all.join(',')}`);
  return out;
}

/** A few hundred alias queries: plain, instantiated wildcards, device modaliases, raw globs. */
export function aliasQueries(tree: KernelTree, wildcardSample = 300): string[] {
  const patterns = [...new Set(aliasLines(tree).map((a) => a.pattern))];
  const wild = patterns.filter((p) => HAS_WILDCARD.test(p));
  const picked = sample(wild, wildcardSample);
  const queries = [
    ...picked.map((p) => instantiate(p, '')),
    ...sample(picked, 100).map((p) => instantiate(p, 'Z9')),
    ...deviceModaliases(
      sample(
        wild.filter((p) => p.startsWith('pci:')),
        150,
      ),
    ),
    ...deviceModaliases(
      sample(
        wild.filter((p) => p.startsWith('usb:')),
        150,
      ),
    ),
    ...cpuModaliases(wild),
    // Globs asked for literally: kmod's trie walk finds some of them twice.
    ...sample(wild, 40),
  ];
  return [...new Set(queries)].filter((q) => q !== '' && !q.startsWith('-'));
}

/** Names no tree has, names kmod refuses, and other odd spellings. */
export const ODD_NAMES = [
  'no_such_module_kmodload',
  'no-such-module-kmodload',
  'symbol:no_such_symbol',
  'fs-no-such-fs',
  'pci:v0000FFFFd0000FFFFsv00000000sd00000000bc00sc00i00',
  'ext[4]',
  'ext[0-9]',
  'ext4[',
  'snd-[a',
  'a]b',
  'crc32c]',
  '[',
  '*',
  '?',
  'ext*',
  'crc32c-intel',
  'CRC32C',
  'ext4.ko',
  'ext4 ',
  'ip_vs:x',
];
