#!/usr/bin/env node
// The installed command: runs the CLI bundled into dist/kmodload.js (made by npm run build),
// which loads dist/kmodload-load.js and dist/kmodload-commands.js when a command needs them,
// each compiled with V8's code cache for it; or, where only tsc has run since, dist/'s
// per-file output.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const dist = path.join(__dirname, '..', 'dist');

/** The bundle's source, unless tsc has written dist/ after it (a stale bundle must not run). */
function bundleSource(bundle) {
  try {
    const bundled = fs.statSync(bundle).mtimeMs;
    const compiled = fs.statSync(path.join(dist, 'cli', 'entry.js'), { throwIfNoEntry: false });
    if (compiled && compiled.mtimeMs > bundled) return undefined;
    return fs.readFileSync(bundle, 'utf8');
  } catch {
    return undefined;
  }
}

/** The code cache made with a bundle (scripts/make/bundle.js): its first 16 bytes are the hash
 *  that the bundle's last line but one names. */
function codeCache(bundle, source) {
  const hash = source.slice(source.lastIndexOf('=') + 1, source.lastIndexOf('\n'));
  try {
    const data = fs.readFileSync(`${bundle}.cache`);
    return data.subarray(0, 16).toString() === hash ? data.subarray(16) : undefined;
  } catch {
    return undefined;
  }
}

/** Runs a bundle as CommonJS would, but compiled with its code cache (CommonJS's loader
 *  takes none in Node 20): the file is the function CommonJS would wrap it in. Its relative
 *  requires are the bundles beside it (`./kmodload-load.js`, say), run the same way, once. */
function loadBundle(bundle, source) {
  const vm = require('node:vm');
  // CommonJS's Module class, without require('node:module') (which loads the ES module
  // loader's modules, a few hundred µs of start-up).
  const Module = module.constructor;
  const cachedData = codeCache(bundle, source);
  const script = new vm.Script(source, { filename: bundle, ...(cachedData && { cachedData }) });
  const mod = new Module(bundle, module);
  mod.filename = bundle;
  mod.loaded = true;
  require.cache[bundle] = mod;
  // The bundles require only builtins, absolute paths and each other: this file's own
  // require() answers the first two as the bundle's would (createRequire() costs start-up).
  const sibling = (id) => {
    if (!id.startsWith('./')) return require(id);
    const file = path.join(dist, id);
    const loaded = require.cache[file];
    return loaded ? loaded.exports : loadBundle(file, fs.readFileSync(file, 'utf8'));
  };
  const fn = script.runInThisContext();
  fn.call(mod.exports, mod.exports, sibling, mod, bundle, dist);
  return mod.exports;
}

let cli;
try {
  const bundle = path.join(dist, 'kmodload.js');
  const source = bundleSource(bundle);
  cli = source === undefined ? require('../dist/cli/entry.js') : loadBundle(bundle, source);
} catch (error) {
  // EXIT.environment: the installation is incomplete. Without dist/ there is no oneLine():
  // the first line of the reason will do.
  const reason = String((error && error.message) || error).split(/[\r\n]/)[0];
  process.stderr.write(`kmodload: not built (run npm run build): ${reason}\n`);
  process.exitCode = 4;
}

if (cli) cli.run(process.argv.slice(2)).then(cli.exitWhenWritten);
