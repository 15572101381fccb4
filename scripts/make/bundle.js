#!/usr/bin/env node
// The CLI and hook entry as one file: esbuild bundles src/cli/entry.ts (and everything it
// imports, dynamic imports included) into dist/kmodload.js, which bin/kmodload.js runs. One
// file is compiled at start-up instead of dozens resolved, read and compiled one at a time;
// modules that a command does not need stay uninitialised until it asks for them. Beside it,
// dist/kmodload.js.cache is V8's code cache for it, made by this node after the bundle has run
// a few commands (scripts/make/code-cache.js): bin/kmodload.js hands it to V8, which uses it only
// when it fits (same V8 version and flags), else compiles.
// `npm run build` and `prepare` run this after tsc, so the package (and its tarball) has both;
// dist/'s per-file output stays for the library API.
//
//   node scripts/make/bundle.js [OUTFILE]     (default dist/kmodload.js)
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { Buffer } = require('node:buffer');
const { trainedCodeCache, wrap } = require('./code-cache.js');

const root = path.resolve(__dirname, '..', '..');

/** esbuild options shared by the package's bundle and the single executable's. */
function bundleOptions(entry, outfile) {
  return {
    entryPoints: [path.join(root, entry)],
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

/** Builds `entry` into the text of one CommonJS file. */
function bundleText(entry, outfile) {
  const result = require('esbuild').buildSync(bundleOptions(entry, outfile));
  let text = result.outputFiles[0].text.replace(BUILTIN_IMPORT, '__builtin(require("$1"))');
  text = text.replace(LAZY_IMPORT, (whole, id) =>
    whole.startsWith('__builtin(') === whole.endsWith('))') ? `__lazy("${id}")` : whole,
  );
  text = text.replace(/^("use strict";\n)?/, (head) => `${head}${HELPERS}`);
  if (text.includes('__toESM(require("node:')) throw new Error('a builtin import kept __toESM');
  return text;
}

/** Writes the bundle of src/cli/entry.ts (it exports run()) to `outfile`, with its code cache
 *  at `outfile`.cache. The bundle's last line names its content's hash; the cache starts with
 *  the same hash, so a cache never meets another bundle. */
function bundleEntry(outfile = path.join(root, 'dist', 'kmodload.js')) {
  let text = bundleText('src/cli/entry.ts', outfile);
  const hash = crypto.createHash('sha256').update(text).digest('hex').slice(0, 16);
  text += `//# kmodload-bundle=${hash}\n`;
  fs.mkdirSync(path.dirname(outfile), { recursive: true });
  fs.writeFileSync(outfile, text);
  const cache = trainedCodeCache(outfile, text);
  fs.writeFileSync(`${outfile}.cache`, Buffer.concat([Buffer.from(hash), cache]));
  return outfile;
}

if (require.main === module) {
  try {
    bundleEntry(process.argv[2] && path.resolve(process.argv[2]));
  } catch (error) {
    process.stderr.write(`bundle: ${String((error && error.message) || error).split('\n')[0]}\n`);
    process.exit(1);
  }
}

module.exports = { bundleEntry, bundleText, wrap };
