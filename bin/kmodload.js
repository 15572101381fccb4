#!/usr/bin/env node
// The installed command: runs the CLI bundled into one file (dist/kmodload.js, made by
// npm run build) with V8's code cache for it, or, where only tsc has run since, from dist/'s
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

/** The code cache made with the bundle (scripts/make/bundle.js): its first 16 bytes are the hash
 *  that the bundle's last line names. */
function codeCache(bundle, source) {
  const hash = source.slice(source.lastIndexOf('=') + 1, -1);
  try {
    const data = fs.readFileSync(`${bundle}.cache`);
    return data.subarray(0, 16).toString() === hash ? data.subarray(16) : undefined;
  } catch {
    return undefined;
  }
}

/** Runs the bundle as CommonJS would, but compiled with its code cache (CommonJS's loader
 *  takes none in Node 20). */
function loadBundle(bundle, source) {
  const vm = require('node:vm');
  const Module = require('node:module');
  const wrapper = `(function (exports, require, module, __filename, __dirname) { ${source}\n})`;
  const cachedData = codeCache(bundle, source);
  const script = new vm.Script(wrapper, { filename: bundle, ...(cachedData && { cachedData }) });
  const mod = new Module(bundle, module);
  mod.filename = bundle;
  mod.loaded = true;
  require.cache[bundle] = mod;
  const fn = script.runInThisContext();
  fn.call(mod.exports, mod.exports, Module.createRequire(bundle), mod, bundle, dist);
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

if (cli) cli.run(process.argv.slice(2));
