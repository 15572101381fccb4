#!/usr/bin/env node
// The CLI and hook entry as one file: esbuild bundles src/cli/entry.ts (and everything it
// imports, dynamic imports included) into dist/kmodload.js, which bin/kmodload.js requires.
// One file is compiled at start-up instead of dozens resolved, read and compiled one at a
// time; modules that a command does not need stay uninitialised until it asks for them.
// `npm run build` and `prepare` run it after tsc, so the package (and its tarball) has it;
// dist/'s per-file output stays for the library API.
//
//   node scripts/bundle.js [OUTFILE]     (default dist/kmodload.js)
'use strict';

const path = require('node:path');

const root = path.resolve(__dirname, '..');

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
    // packageVersion() needs no package.json then.
    define: {
      KMODLOAD_BUNDLED_VERSION: JSON.stringify(require(path.join(root, 'package.json')).version),
    },
  };
}

/** Bundles src/cli/entry.ts into `outfile` (it exports run()). */
function bundleEntry(outfile = path.join(root, 'dist', 'kmodload.js')) {
  require('esbuild').buildSync(bundleOptions('src/cli/entry.ts', outfile));
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

module.exports = { bundleEntry, bundleOptions };
