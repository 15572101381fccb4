// The single executable's main script (scripts/make/build-binary.js): the CLI's bundled files
// and their code caches are assets of the executable; each file is compiled with its cache as
// bin/kmodload.js compiles dist/kmodload.js and the files it loads (a file's
// `require("./kmodload-load.js")`, say, is the asset of that name). Node's own `useCodeCache`
// holds only the top level; these caches were made after the files had run the hook and
// load --show-depends (scripts/make/code-cache.js), by the node this executable is a copy of.
// The executable is node itself, so process.argv is [executable, executable, ARGS...].
'use strict';

const path = require('node:path');
const sea = require('node:sea');
const vm = require('node:vm');

const loaded = new Map();

/** Runs the bundle asset `name` (the function CommonJS would wrap it in) with its code cache
 *  (the asset NAME.cache, after the 16 bytes of the hash that the bundle names), once. */
function loadBundle(name) {
  if (loaded.has(name)) return loaded.get(name).exports;
  const source = sea.getAsset(name, 'utf8');
  // The asset's own bytes, not a copy.
  const cachedData = new Uint8Array(sea.getRawAsset(`${name}.cache`), 16);
  const script = new vm.Script(source, { filename: name, cachedData });
  const bundle = { exports: {} };
  loaded.set(name, bundle);
  const sibling = (id) => (id.startsWith('./') ? loadBundle(id.slice(2)) : require(id));
  script
    .runInThisContext()
    .call(
      bundle.exports,
      bundle.exports,
      sibling,
      bundle,
      process.execPath,
      path.dirname(process.execPath),
    );
  return bundle.exports;
}

const cli = loadBundle('kmodload.js');
cli.run(process.argv.slice(2)).then(cli.exitWhenWritten);
