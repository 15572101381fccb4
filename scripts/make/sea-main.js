// The single executable's main script (scripts/make/build-binary.js): the CLI's bundle and its code
// cache are assets of the executable; the bundle is compiled with the cache as bin/kmodload.js
// compiles dist/kmodload.js. Node's own `useCodeCache` holds only the top level; this cache was
// made after the bundle had run the hook and load --show-depends (scripts/make/code-cache.js), by the
// node this executable is a copy of. The executable is node itself, so process.argv is
// [executable, executable, ARGS...].
'use strict';

const path = require('node:path');
const sea = require('node:sea');
const vm = require('node:vm');
const { Buffer } = require('node:buffer');

const source = sea.getAsset('kmodload.js', 'utf8');
const script = new vm.Script(
  `(function (exports, require, module, __filename, __dirname) { ${source}\n})`,
  { filename: 'kmodload.js', cachedData: Buffer.from(sea.getRawAsset('kmodload.js.cache')) },
);
const bundle = { exports: {} };
script
  .runInThisContext()
  .call(
    bundle.exports,
    bundle.exports,
    require,
    bundle,
    process.execPath,
    path.dirname(process.execPath),
  );
bundle.exports.run(process.argv.slice(2));
