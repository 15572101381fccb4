#!/usr/bin/env node
// The CLI and hook entry in three files: esbuild bundles src/cli/entry.ts (and everything it
// imports, dynamic imports included) into
//   dist/kmodload.js           what the entry and the hook command (src/cli/hook-command.ts)
//                              import statically: all that the hook with nothing asked runs;
//   dist/kmodload-load.js      what the hook loads when a container asks (the first file's
//                              `import()`s, but the command dispatch's, and all they import):
//                              the policy, the planner, the loader, the holds, the addon; and
//                              the load and unload commands;
//   dist/kmodload-commands.js  the rest: the other commands and the NRI plugin.
// bin/kmodload.js runs the first; a file asks for another one the first time it needs one of
// its modules, through `require("./kmodload-load.js")` (say), which bin/kmodload.js and the
// single executable's main script answer by compiling that file with its code cache, once. A
// module is in one file only: a file takes the modules it shares with another from it (one
// KmodloadError class, one packageRoot() cache), checking that both come from the same build.
// So a command compiles only the files it needs, and modules that it does not run stay
// uninitialised. (esbuild does not split CommonJS output: the split is made here, with a
// plugin.)
//
// Beside each file, FILE.cache is V8's code cache for it, made by this node after the files
// have run a few commands (scripts/make/code-cache.js): bin/kmodload.js hands it to V8, which
// uses it only when it fits (same V8 version and flags), else compiles.
// `npm run build` and `prepare` run this after tsc, so the package (and its tarball) has them;
// dist/'s per-file output stays for the library API.
//
//   node scripts/make/bundle.js [OUTFILE]     (default dist/kmodload.js; the other files are
//                                              written beside it)
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { Buffer } = require('node:buffer');
const { trainedCodeCaches } = require('./code-cache.js');

const root = path.resolve(__dirname, '..', '..');

const ENTRY = 'src/cli/entry.ts';
/** The modules whose static imports make the first file: the CLI's entry and the hook; and the
 *  help texts, which the dispatch imports when it prints one (in the first file for --help,
 *  made only then). */
const FIRST_ROOTS = [ENTRY, 'src/cli/hook-command.ts', 'src/cli/help.ts'];
/** The command dispatch: its `import()`s (the other commands) go to the last file, but those
 *  of the commands that load and unload, which need the second file anyway. */
const DISPATCH = 'src/cli/main.ts';
const LOADING_COMMANDS = ['src/cli/load-command.ts', 'src/cli/unload-command.ts'];
/** The files' names, in the order above; the first is OUTFILE's. */
const SECOND_FILE = 'kmodload-load.js';
const LAST_FILE = 'kmodload-commands.js';

// esbuild gives every module that default-imports a Node builtin (`import fs from 'node:fs'`)
// its own copy of the builtin's properties (__toESM): some 30 copies of fs and path at
// start-up. An object whose prototype is the builtin answers the same property reads.
const BUILTIN_IMPORT = /__toESM\(require\("(node:[a-z0-9_/]+)"\)\)/g;
// Builtins that only some commands use, and that are costly to load (child_process brings
// net, dgram and the streams; crypto its whole tree; timers/promises only paces the text
// indexes' building): loaded on first property read instead of when the module importing them
// is initialised.
const LAZY_IMPORT =
  /(?:__builtin\()?require\("(node:(?:child_process|crypto|os|util|timers\/promises))"\)\)?/g;
const HELPERS = [
  'var __builtin = (m) => Object.create(m, { default: { value: m, enumerable: true } });',
  'var __lazy = (id) => {',
  '  let m;',
  '  const get = () => (m ??= require(id));',
  '  return new Proxy({}, {',
  '    get: (_, key) => (key === "default" ? get() : get()[key]),',
  '    has: (_, key) => key in get(),',
  '  });',
  '};',
  '',
].join('\n');

/** esbuild options shared by every file. */
function bundleOptions(outfile) {
  return {
    absWorkingDir: root,
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    legalComments: 'none',
    logLevel: 'warning',
    write: false,
    // packageVersion() needs no package.json then.
    define: {
      KMODLOAD_BUNDLED_VERSION: JSON.stringify(require(path.join(root, 'package.json')).version),
    },
  };
}

/**
 * How the CLI splits: `files`, one `{ name, modules }` per file, in load order (modules are
 * paths relative to the root, as esbuild's metafile names them); `fileOf`, each module's file
 * name; `imported`, per file name, its modules that other files import; `links`, per file
 * name, the files it imports from; `buildId`, a hash of every module's content, which every
 * file carries.
 */
function split(esbuild, firstName) {
  const { metafile } = esbuild.buildSync({
    ...bundleOptions(path.join(root, 'dist', firstName)),
    entryPoints: [path.join(root, ENTRY)],
    metafile: true,
  });
  const edges = (file) => {
    const input = metafile.inputs[file];
    if (!input) throw new Error(`${file} is not part of the bundle`);
    return input.imports.filter((edge) => !edge.external);
  };
  const closure = (roots, follow, taken) => {
    const found = new Set();
    const pending = [...roots];
    while (pending.length > 0) {
      const file = pending.pop();
      if (found.has(file) || taken.has(file)) continue;
      found.add(file);
      for (const edge of edges(file)) if (follow(edge)) pending.push(edge.path);
    }
    return found;
  };
  const first = closure(FIRST_ROOTS, (edge) => edge.kind !== 'dynamic-import', new Set());
  const loadRoots = [...first]
    .filter((file) => file !== DISPATCH)
    .flatMap((file) => edges(file).filter((edge) => edge.kind === 'dynamic-import'))
    .map((edge) => edge.path)
    .concat(LOADING_COMMANDS);
  const second = closure(loadRoots, () => true, first);
  const last = new Set(
    Object.keys(metafile.inputs).filter((file) => !first.has(file) && !second.has(file)),
  );
  const files = [
    { name: firstName, modules: first },
    { name: SECOND_FILE, modules: second },
    { name: LAST_FILE, modules: last },
  ];
  const fileOf = new Map();
  for (const { name, modules } of files) for (const file of modules) fileOf.set(file, name);
  const imported = new Map(files.map(({ name }) => [name, new Set()]));
  const links = new Map(files.map(({ name }) => [name, new Set()]));
  for (const file of fileOf.keys()) {
    for (const edge of edges(file)) {
      const owner = fileOf.get(edge.path);
      if (owner === fileOf.get(file)) continue;
      imported.get(owner).add(edge.path);
      links.get(fileOf.get(file)).add(owner);
    }
  }
  const hash = crypto.createHash('sha256');
  for (const file of Object.keys(metafile.inputs).sort()) {
    hash
      .update(`${file}\0`)
      .update(fs.readFileSync(path.join(root, file)))
      .update('\0');
  }
  return { files, fileOf, imported, links, buildId: hash.digest('hex').slice(0, 16) };
}

/** A CommonJS expression for the namespace of the source file `file` (relative to the root). */
const namespaceOf = (file) => `require(${JSON.stringify(path.join(root, file))})`;

/**
 * Builds the file `name` of `layout` (split()) to the text of one CommonJS file: its entry
 * exports the build's id, its modules that other files import (`modules`, each initialised
 * on first use) and, for the first file, src/cli/entry.ts's exports. An import of a module of
 * another file becomes that file's `modules[id]()`, the file required once on first use.
 */
async function fileText(esbuild, layout, name, outfile) {
  const { files, fileOf, imported, links, buildId } = layout;
  const own = files.find((file) => file.name === name).modules;
  const isFirst = name === files[0].name;
  const entry = [
    ...(isFirst ? [`module.exports = ${namespaceOf(ENTRY)};`] : []),
    `module.exports.buildId = ${JSON.stringify(buildId)};`,
    'module.exports.modules = {',
    ...[...imported.get(name)]
      .sort()
      .map((file) => `  ${JSON.stringify(file)}: () => ${namespaceOf(file)},`),
    '};',
  ].join('\n');
  // Another file, required once. One missing or of another build is an installation that is
  // not whole, said as bin/kmodload.js says it of dist/kmodload.js; with KmodloadError from
  // the first file (this one, or running and checked already), so the exit status is 4.
  const others = files.filter((file) => links.get(name).has(file.name));
  const link = [
    'const files = {',
    ...others.map(
      (file) =>
        `  ${JSON.stringify(file.name)}: () => require(${JSON.stringify(`./${file.name}`)}),`,
    ),
    '};',
    'const loaded = new Map();',
    'function notBuilt(name, error) {',
    '  const reason = String((error && error.message) || error).split(/[\\r\\n]/)[0];',
    '  const message = `not built (run npm run build): ${reason}`;',
    `  if (name === ${JSON.stringify(files[0].name)}) return new Error(message);`,
    `  const { EXIT, KmodloadError } = ${namespaceOf('src/errors.ts')};`,
    '  return new KmodloadError(message, EXIT.environment);',
    '}',
    'exports.get = (name, id) => {',
    '  let other = loaded.get(name);',
    '  if (other === undefined) {',
    '    try {',
    '      other = files[name]();',
    `      if (other.buildId !== ${JSON.stringify(buildId)}) throw new Error(\`\${name} is of another build\`);`,
    '    } catch (error) {',
    '      throw notBuilt(name, error);',
    '    }',
    '    loaded.set(name, other);',
    '  }',
    '  return other.modules[id]();',
    '};',
  ].join('\n');
  const otherFile = new RegExp(
    `^\\./(${files.map((f) => f.name.replace(/\./g, '\\.')).join('|')})$`,
  );
  const plugin = {
    name: 'kmodload-split',
    setup(build) {
      build.onResolve({ filter: /^kmodload:(entry|link)$/ }, (args) => ({
        path: args.path,
        namespace: 'kmodload',
      }));
      build.onResolve({ filter: otherFile }, (args) => ({ path: args.path, external: true }));
      build.onResolve({ filter: /.*/ }, async (args) => {
        if (args.pluginData === 'kmodload-split') return undefined;
        const resolved = await build.resolve(args.path, {
          kind: args.kind,
          importer: args.importer,
          resolveDir: args.resolveDir,
          pluginData: 'kmodload-split',
        });
        if (resolved.errors.length > 0 || resolved.external) return undefined;
        const file = path.relative(root, resolved.path);
        const owner = fileOf.get(file);
        if (owner === undefined || own.has(file)) return undefined;
        return { path: file, namespace: 'kmodload-other' };
      });
      build.onLoad({ filter: /.*/, namespace: 'kmodload' }, (args) => ({
        contents: args.path === 'kmodload:entry' ? entry : link,
        resolveDir: root,
        loader: 'js',
      }));
      build.onLoad({ filter: /.*/, namespace: 'kmodload-other' }, (args) => ({
        contents: `module.exports = require("kmodload:link").get(${JSON.stringify(fileOf.get(args.path))}, ${JSON.stringify(args.path)});`,
        resolveDir: root,
        loader: 'js',
      }));
    },
  };
  const result = await esbuild.build({
    ...bundleOptions(outfile),
    entryPoints: ['kmodload:entry'],
    plugins: [plugin],
  });
  return finish(result.outputFiles[0].text);
}

/** The text with builtin imports made cheap, and the helpers that do it; a module of another
 *  file is that file's namespace object of it, read through one getter per export, not copies
 *  of it with getters over getters made at each import (esbuild's __toCommonJS where the
 *  other file hands it out, __toESM where this one imports what it takes for CommonJS). */
function finish(text) {
  text = text.replace(
    /^( {2}"src\/[^"]+": \(\) => \(init_[\w$]+\(\), )__toCommonJS\(([\w$]+_exports)\)\)/gm,
    '$1$2)',
  );
  for (const [, proxy] of text.matchAll(
    /^var (require_[\w$]+) = __commonJS\(\{\n {2}"kmodload-other:/gm,
  )) {
    text = text.replaceAll(`__toESM(${proxy}())`, `${proxy}()`);
  }
  text = text.replace(BUILTIN_IMPORT, '__builtin(require("$1"))');
  text = text.replace(LAZY_IMPORT, (whole, id) =>
    whole.startsWith('__builtin(') === whole.endsWith('))') ? `__lazy("${id}")` : whole,
  );
  text = text.replace(/^("use strict";\n)?/, (head) => `${head}${HELPERS}`);
  if (text.includes('__toESM(require("node:')) throw new Error('a builtin import kept __toESM');
  return text;
}

/** The CLI's files for `outfile` (the first; the others beside it): `[{ file, text }]`, in
 *  load order. */
async function bundleTexts(outfile) {
  const esbuild = require('esbuild');
  const layout = split(esbuild, path.basename(outfile));
  return Promise.all(
    layout.files.map(async ({ name }) => {
      const file = path.join(path.dirname(outfile), name);
      return { file, text: await fileText(esbuild, layout, name, file) };
    }),
  );
}

/** The function CommonJS wraps a module in, around each file's text: the file is compiled as
 *  it is, not copied into a wrapper at every start (V8 would copy the text once more). */
const WRAPPER_HEAD = '(function (exports, require, module, __filename, __dirname) {\n';

/** Writes the CLI's files (the first, src/cli/entry.ts's exports: run(), at `outfile`), each
 *  the function CommonJS would wrap its text in, with its code cache at FILE.cache. Each
 *  file's last line but one names its text's hash; its cache starts with the same hash, so a
 *  cache never meets another file. */
async function bundleEntry(outfile = path.join(root, 'dist', 'kmodload.js')) {
  const bundles = await bundleTexts(outfile);
  fs.mkdirSync(path.dirname(outfile), { recursive: true });
  for (const bundle of bundles) {
    bundle.hash = crypto.createHash('sha256').update(bundle.text).digest('hex').slice(0, 16);
    bundle.text = `${WRAPPER_HEAD}${bundle.text}//# kmodload-bundle=${bundle.hash}\n})`;
    fs.writeFileSync(bundle.file, bundle.text);
  }
  const caches = trainedCodeCaches(bundles);
  bundles.forEach((bundle, k) => {
    fs.writeFileSync(`${bundle.file}.cache`, Buffer.concat([Buffer.from(bundle.hash), caches[k]]));
  });
  return bundles.map((bundle) => bundle.file);
}

if (require.main === module) {
  bundleEntry(process.argv[2] && path.resolve(process.argv[2])).catch((error) => {
    process.stderr.write(`bundle: ${String((error && error.message) || error).split('\n')[0]}\n`);
    process.exit(1);
  });
}

module.exports = { bundleEntry };
