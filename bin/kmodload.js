#!/usr/bin/env node
// The installed command: runs the CLI bundled into one file (dist/kmodload.js, made by
// npm run build) or, where only tsc has run since, from dist/'s per-file output.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const dist = path.join(__dirname, '..', 'dist');

/** The bundle, unless tsc has written dist/ after it (a stale bundle must not run). */
function entryFile() {
  const bundle = path.join(dist, 'kmodload.js');
  const entry = path.join(dist, 'cli', 'entry.js');
  try {
    const bundled = fs.statSync(bundle).mtimeMs;
    const compiled = fs.statSync(entry, { throwIfNoEntry: false });
    return compiled && compiled.mtimeMs > bundled ? entry : bundle;
  } catch {
    return entry;
  }
}

let cli;
try {
  cli = require(entryFile());
} catch (error) {
  // EXIT.environment: the installation is incomplete. Without dist/ there is no oneLine():
  // the first line of the reason will do.
  const reason = String((error && error.message) || error).split(/[\r\n]/)[0];
  process.stderr.write(`kmodload: not built (run npm run build): ${reason}\n`);
  process.exitCode = 4;
}

if (cli) cli.run(process.argv.slice(2));
