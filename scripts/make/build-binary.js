#!/usr/bin/env node
// `npm run build:binary [OUTPUT]`: build/kmodload (or OUTPUT), one self-contained executable (Node's single
// executable applications) that runs every kmodload command on a host without Node:
//   1. scripts/make/bundle.js bundles the CLI (src/cli/entry.ts) into kmodload.js and the
//      files it loads on demand (kmodload-load.js, kmodload-commands.js), each with V8's code
//      cache for it, made by this node after running a few commands
//      (scripts/make/code-cache.js);
//   2. node --experimental-sea-config turns scripts/make/sea-main.js into a blob, with those
//      files, their code caches (each FILE.cache) and the compiled addon
//      (build/Release/kmodload.node, "kmodload.node") as assets named as the files;
//      sea-main.js compiles each file with its cache;
//   3. a copy of this node, without its symbols, gets the blob injected (postject).
// At run time src/native/embedded.ts loads the asset through an unnamed file, never a named one.
'use strict';

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const SENTINEL_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

function fail(message) {
  process.stderr.write(`build-binary: ${message}\n`);
  process.exit(1);
}

/** The bundled CLI at `outfile` and the files it loads beside it, each with its code cache
 *  at FILE.cache (scripts/make/bundle.js, run as `npm run build` runs it). */
function bundle(outfile, quiet) {
  execFileSync(process.execPath, [path.join(__dirname, 'bundle.js'), outfile], quiet);
}

/** Builds the single executable at `output` (default build/kmodload); returns `output`.
 *  Throws on failure. Builds may run at once: each has its own working directory. */
function buildBinary(output = path.join(root, 'build', 'kmodload')) {
  const addon = path.join(root, 'build', 'Release', 'kmodload.node');
  if (!fs.existsSync(addon)) throw new Error(`${addon} is missing (run npm run build first)`);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-sea-'));
  const script = path.join(work, 'kmodload.js');
  const blob = path.join(work, 'main.blob');
  const config = path.join(work, 'sea-config.json');
  const temporary = `${output}.${process.pid}.tmp`;
  const quiet = { stdio: ['ignore', 'ignore', 'pipe'] };
  try {
    bundle(script, quiet);
    // The bundle's files (kmodload.js and those it loads) and their caches, by their names.
    const assets = { 'kmodload.node': addon };
    for (const name of fs.readdirSync(work).filter((file) => /^kmodload.*\.js$/.test(file))) {
      assets[name] = path.join(work, name);
      assets[`${name}.cache`] = path.join(work, `${name}.cache`);
    }
    const seaConfig = {
      main: path.join(__dirname, 'sea-main.js'),
      output: blob,
      disableExperimentalSEAWarning: true,
      assets,
    };
    fs.writeFileSync(config, `${JSON.stringify(seaConfig, null, 2)}\n`);
    execFileSync(process.execPath, ['--experimental-sea-config', config], quiet);
    // Node's symbols are an eighth of its size and nothing reads them at run time.
    try {
      execFileSync('strip', ['-o', temporary, process.execPath], quiet);
    } catch {
      fs.copyFileSync(process.execPath, temporary);
    }
    fs.chmodSync(temporary, 0o755);
    const postject = require.resolve('postject/dist/cli.js');
    execFileSync(
      process.execPath,
      [postject, temporary, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SENTINEL_FUSE],
      quiet,
    );
    fs.renameSync(temporary, output);
  } finally {
    fs.rmSync(temporary, { force: true });
    fs.rmSync(work, { recursive: true, force: true });
  }
  return output;
}

function main() {
  try {
    const output = buildBinary(process.argv[2] && path.resolve(process.argv[2]));
    const size = fs.statSync(output).size;
    process.stdout.write(`${path.relative(root, output)}: ${(size / 1048576).toFixed(1)} MiB\n`);
  } catch (error) {
    const stderr = error && error.stderr ? `\n${String(error.stderr).trim()}` : '';
    fail(`${String((error && error.message) || error).split('\n')[0]}${stderr}`);
  }
}

if (require.main === module) main();

module.exports = { buildBinary };
