#!/usr/bin/env node
// Import cycles among the project's own modules (part of `npm run lint`):
//
//   node scripts/check-cycles.js [DIR...]      (default: src)
//
// Every relative edge counts: `import`/`export ... from` (type-only ones too), `import x =
// require()`, `import()` and `require()` with a literal path. Files are parsed with the
// TypeScript compiler, so comments and strings never make an edge. Prints each cycle as
// `a.ts -> b.ts -> a.ts` and exits 1 when there is one, 0 when there is none, 2 on bad usage.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const ts = require('typescript');

const SOURCE = /\.(?:ts|tsx|mts|cts|js|cjs|mjs)$/;
const DECLARATION = /\.d\.(?:ts|mts|cts)$/;

/** Every source file under `dir`, sorted (declaration files excluded: they import nothing run). */
function sourceFiles(dir) {
  return fs
    .readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && SOURCE.test(e.name) && !DECLARATION.test(e.name))
    .map((e) => path.join(e.parentPath, e.name))
    .filter((file) => !file.split(path.sep).includes('node_modules'))
    .sort();
}

/** The literal module specifiers `file` imports, requires or exports from. */
function specifiers(file) {
  const text = fs.readFileSync(file, 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false);
  const found = [];
  const literal = (node) =>
    node && (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node))
      ? node.text
      : undefined;
  const add = (node) => {
    const text = literal(node);
    if (text !== undefined) found.push(text);
  };
  const visit = (node) => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) {
      add(node.moduleSpecifier);
    } else if (
      ts.isImportEqualsDeclaration(node) &&
      ts.isExternalModuleReference(node.moduleReference)
    ) {
      add(node.moduleReference.expression);
    } else if (ts.isCallExpression(node) && node.arguments.length >= 1) {
      const callee = node.expression;
      const isImport = callee.kind === ts.SyntaxKind.ImportKeyword;
      const isRequire = ts.isIdentifier(callee) && callee.text === 'require';
      if (isImport || isRequire) add(node.arguments[0]);
    } else if (ts.isImportTypeNode(node)) {
      // `typeof import('./x')` and `import('./x').T` in type positions.
      const argument = node.argument;
      if (ts.isLiteralTypeNode(argument)) add(argument.literal);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

const JS_TO_TS = { '.js': ['.ts', '.tsx'], '.mjs': ['.mts'], '.cjs': ['.cts'] };
const EXTENSIONS = ['.ts', '.tsx', '.mts', '.cts', '.js', '.cjs', '.mjs'];

/** The file a relative specifier names, as node16 resolution finds it; undefined when it is a
 *  package or nothing on disk (a JSON file, a missing one: not a module of ours). */
function resolve(from, specifier) {
  if (!specifier.startsWith('./') && !specifier.startsWith('../') && specifier !== '.') {
    return undefined;
  }
  const base = path.resolve(path.dirname(from), specifier);
  const candidates = [base];
  const ext = path.extname(base);
  for (const alt of JS_TO_TS[ext] ?? []) candidates.push(base.slice(0, -ext.length) + alt);
  for (const alt of EXTENSIONS) candidates.push(base + alt);
  for (const alt of EXTENSIONS) candidates.push(path.join(base, `index${alt}`));
  return candidates.find((c) => SOURCE.test(c) && fs.existsSync(c) && fs.statSync(c).isFile());
}

/** The import graph of `files`: file -> the files of the set it imports, sorted. */
function importGraph(files) {
  const known = new Set(files);
  const graph = new Map();
  for (const file of files) {
    const edges = new Set();
    for (const specifier of specifiers(file)) {
      const target = resolve(file, specifier);
      if (target !== undefined && known.has(target)) edges.add(target);
    }
    graph.set(file, [...edges].sort());
  }
  return graph;
}

/** Strongly connected components (Tarjan), each a cycle when it has two files or more, or one
 *  that imports itself. */
function stronglyConnected(graph) {
  let next = 0;
  const index = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const components = [];
  const strongConnect = (start) => {
    // Iterative, so that a deep graph cannot overflow the call stack.
    const work = [{ node: start, edge: 0 }];
    index.set(start, next);
    low.set(start, next++);
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const frame = work[work.length - 1];
      const edges = graph.get(frame.node);
      if (frame.edge < edges.length) {
        const target = edges[frame.edge++];
        if (!index.has(target)) {
          index.set(target, next);
          low.set(target, next++);
          stack.push(target);
          onStack.add(target);
          work.push({ node: target, edge: 0 });
        } else if (onStack.has(target)) {
          low.set(frame.node, Math.min(low.get(frame.node), index.get(target)));
        }
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1].node;
        low.set(parent, Math.min(low.get(parent), low.get(frame.node)));
      }
      if (low.get(frame.node) === index.get(frame.node)) {
        const component = [];
        let member;
        do {
          member = stack.pop();
          onStack.delete(member);
          component.push(member);
        } while (member !== frame.node);
        components.push(component.sort());
      }
    }
  };
  for (const node of graph.keys()) if (!index.has(node)) strongConnect(node);
  return components.filter((c) => c.length > 1 || graph.get(c[0]).includes(c[0]));
}

/** One shortest cycle through the component's first file, as a list that ends where it starts. */
function cycleIn(graph, component) {
  const members = new Set(component);
  const start = component[0];
  const previous = new Map();
  const queue = [start];
  while (queue.length > 0) {
    const node = queue.shift();
    for (const target of graph.get(node)) {
      if (!members.has(target)) continue;
      if (target === start) {
        const path = [start];
        for (let at = node; at !== start; at = previous.get(at)) path.unshift(at);
        path.unshift(start);
        return path;
      }
      if (!previous.has(target)) {
        previous.set(target, node);
        queue.push(target);
      }
    }
  }
  throw new Error(`no cycle through ${start}`);
}

/** The cycles among the source files under `dirs`, each a list of paths relative to `base`. */
function findCycles(dirs, base = process.cwd()) {
  const files = [...new Set(dirs.flatMap((dir) => sourceFiles(path.resolve(base, dir))))];
  const graph = importGraph(files);
  const cycles = stronglyConnected(graph).map((component) =>
    cycleIn(graph, component).map((file) => path.relative(base, file)),
  );
  return { files: files.length, cycles };
}

function main(argv) {
  const root = path.resolve(__dirname, '..');
  const dirs = argv.length > 0 ? argv : [path.join(root, 'src')];
  for (const dir of dirs) {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
      process.stderr.write(`check-cycles: ${dir} is not a directory\n`);
      return 2;
    }
  }
  const { files, cycles } = findCycles(dirs);
  for (const cycle of cycles) process.stdout.write(`import cycle: ${cycle.join(' -> ')}\n`);
  if (cycles.length > 0) {
    process.stderr.write(`check-cycles: ${cycles.length} import cycle(s) among ${files} files\n`);
    return 1;
  }
  process.stdout.write(`check-cycles: no import cycle among ${files} files\n`);
  return 0;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));

module.exports = { findCycles };
