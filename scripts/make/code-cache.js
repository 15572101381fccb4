#!/usr/bin/env node
// V8's code caches for the files of the bundled CLI, made after they have run the commands
// that matter at start-up. A code cache holds the functions compiled when it is made: made
// right after the top level has run, it holds the top level and little else, and every
// function a command calls is compiled when first called (a few ms for the hook planning a
// request). Made here, in a separate process of this node, after the first file (which loads
// the others as the commands need them, as bin/kmodload.js does) has run, against a small
// module tree (the seed's, with binary indexes, in a checkout; else one written for it): the
// hook with nothing asked, the hook planning a request as a dry run (also once with the trust
// checks and the default policy location, as on a host), and `load --show-depends` (the first
// file's cache is made before that one: a hook never runs what it adds there). Nothing
// is loaded and nothing outside a temporary directory is written; what the commands read of
// the host (/proc/cmdline, /sys/module, its policy and file owners) changes nothing in the
// cache but which functions ran.
//
//   node scripts/make/code-cache.js OUTDIR FILE...    (the child: used by trainedCodeCaches())
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { setImmediate } = require('node:timers');
const vm = require('node:vm');

/** Compiles the bundle `file` (the function CommonJS would wrap it in) and runs its top level,
 *  as bin/kmodload.js does: a relative require (`./kmodload-load.js`, say) is the bundle of
 *  that name beside it, compiled and run the same way, once. `bundles` maps each file
 *  compiled to its `{ script, module }`. */
function compileBundle(file, source, bundles = new Map()) {
  const Module = require('node:module');
  const script = new vm.Script(source, { filename: file });
  const mod = new Module(file, module);
  mod.filename = file;
  bundles.set(file, { script, module: mod });
  const sibling = (id) => {
    if (!id.startsWith('./')) return require(id);
    const other = path.join(path.dirname(file), id);
    if (!bundles.has(other)) compileBundle(other, fs.readFileSync(other, 'utf8'), bundles);
    return bundles.get(other).module.exports;
  };
  script.runInThisContext().call(mod.exports, mod.exports, sibling, mod, file, path.dirname(file));
  return bundles;
}

/** The code cache of `bundle`'s top level alone, made in this process (the fallback). */
function topLevelCodeCache(bundle) {
  return compileBundle(bundle.file, bundle.text).get(bundle.file).script.createCachedData();
}

const VERSION = '0.0.0-kmodload';

/** A module tree with text indexes (no depmod needed) whose modules have dependencies, a
 *  softdep on an alias, a wildcard alias, a builtin and a symbol: the paths planning takes. */
function writeTree(root) {
  const dir = path.join(root, 'lib', 'modules', VERSION);
  const ko = (name) => `kernel/kmt/${name}.ko`;
  fs.mkdirSync(path.join(dir, 'kernel', 'kmt'), { recursive: true });
  for (const name of ['kmt_a', 'kmt_b', 'kmt_c', 'kmt_d', 'kmt_e']) {
    fs.writeFileSync(path.join(dir, ko(name)), '');
  }
  const files = {
    'modules.dep': [
      `${ko('kmt_a')}: ${ko('kmt_c')} ${ko('kmt_b')}`,
      `${ko('kmt_b')}:`,
      `${ko('kmt_c')}: ${ko('kmt_b')}`,
      `${ko('kmt_d')}: ${ko('kmt_a')} ${ko('kmt_c')} ${ko('kmt_b')}`,
      `${ko('kmt_e')}:`,
    ],
    'modules.alias': ['alias kmt-crc kmt_e', 'alias pci:v0000CAFEd*sv*sd*bc*sc*i* kmt_d'],
    'modules.symbols': ['alias symbol:kmt_b_call kmt_b'],
    'modules.softdep': ['softdep kmt_b pre: kmt-crc'],
    'modules.builtin': ['kernel/kmt/kmt_f.ko'],
    'modules.builtin.modinfo': [],
  };
  for (const [name, lines] of Object.entries(files)) {
    fs.writeFileSync(path.join(dir, name), lines.map((line) => `${line}\n`).join(''));
  }
}

/** The seed's tree in miniature with depmod's binary indexes, which a host's tree has and the
 *  tree above has not (test/fixtures/trees/ipvs, in a checkout): ip_vs and ip_vs_wrr, their
 *  dependencies, and libcrc32c's softdep on the alias crc32c. */
const FIXTURE = {
  root: path.join(__dirname, '..', '..', 'test', 'fixtures', 'trees', 'ipvs'),
  version: '6.1.0-fixture',
  names: ['ip_vs', 'ip_vs_wrr'],
};

/** The tree the commands plan against: the fixture, else one written for the purpose. */
function trainingTree(work) {
  const { root, version } = FIXTURE;
  if (fs.existsSync(path.join(root, 'lib', 'modules', version, 'modules.dep.bin'))) return FIXTURE;
  writeTree(path.join(work, 'root'));
  return { root: path.join(work, 'root'), version: VERSION, names: ['kmt_d', 'kmt-crc'] };
}

/** The child: runs the commands one after the other with the first bundle, which loads the
 *  others it needs on its way, then writes each one's cache to OUTDIR/0, 1, ... */
function child(outdir, files) {
  const bundles = compileBundle(files[0], fs.readFileSync(files[0], 'utf8'));
  const { exports } = bundles.get(files[0]).module;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-code-cache-'));
  const { root, version, names } = trainingTree(work);
  const conf = path.join(work, 'modprobe.d');
  fs.mkdirSync(conf);
  const policy = path.join(work, 'policy.conf');
  fs.writeFileSync(policy, '');
  const bundle = path.join(work, 'bundle');
  fs.mkdirSync(bundle);
  const state = path.join(work, 'state.json');
  fs.writeFileSync(state, JSON.stringify({ id: 'kmt', status: 'creating', bundle }));
  const asking = (env) => () =>
    fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify({ process: { env } }));
  const tree = ['-d', root, '-S', version, '-C', conf];
  const hook = ['hook', '--state', 'prestart', '--log', path.join(work, 'hook.log')];
  const seed = asking([`KERNEL_MODULES=${names.join(',')}`]);
  // [before, arguments, whether its failure fails the training]. --insecure-files: the work
  // tree is a temporary directory, and the runs are about the code the commands compile, not
  // about this machine's files; the third run does check them, and reads the policy where a
  // host keeps it, as a host runs the hook: that code is compiled whether they pass or not.
  const commands = [
    [asking(['PATH=/bin']), [...hook, '--insecure-files'], true],
    [seed, [...hook, '--insecure-files', '--policy', policy, '-n', ...tree], true],
    [seed, [...hook, '-n', ...tree], false],
    [() => undefined, ['load', '--show-depends', ...tree, ...names], true],
  ];
  // The first file's cache is made once the hook's runs are done: what the other commands
  // compile in it (the help texts, which `load` imports) a hook never runs.
  const firstFileAfter = 3;
  let firstCache;
  // The hook reads its state from stdin (this process's stdin is opened on `state`, which
  // the hook opens again each time through /proc/self/fd/0). Each command runs once the
  // one before it has left nothing for the event loop to do, from an immediate: a command
  // that does no I/O (all it reads is read at once) ends in promise callbacks, which do not
  // keep the loop alive for the next beforeExit.
  fs.closeSync(0);
  if (fs.openSync(state, 'r') !== 0) throw new Error('stdin was not reopened');
  let next = 0;
  process.on('beforeExit', () => {
    // A command that failed: no cache (the caller falls back), its status says so.
    if (process.exitCode) {
      if (commands[next - 1]?.[2] !== false) return;
      process.exitCode = 0;
    }
    if (next === firstFileAfter) firstCache = bundles.get(files[0]).script.createCachedData();
    const command = commands[next++];
    if (command) {
      setImmediate(() => {
        command[0]();
        exports.run(command[1]);
      });
      return;
    }
    if (next === commands.length + 1) {
      files.forEach((file, k) => {
        // A file that none of the commands loaded: its top level's cache.
        if (!bundles.has(file)) compileBundle(file, fs.readFileSync(file, 'utf8'), bundles);
        const { script } = bundles.get(file);
        const cache = k === 0 ? firstCache : script.createCachedData();
        fs.writeFileSync(path.join(outdir, String(k)), cache);
      });
      fs.rmSync(work, { recursive: true, force: true });
      process.exitCode = 0;
    }
  });
}

/**
 * The code caches for `bundles` (`[{ file, text }]`, the first requiring the others), made by a
 * process of this node after running the commands above, in the same order; each top level's
 * alone if that fails (a build must not fail over a slower start-up).
 */
function trainedCodeCaches(bundles) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-code-cache-'));
  try {
    const files = bundles.map((bundle) => bundle.file);
    const r = spawnSync(process.execPath, [path.join(__dirname, 'code-cache.js'), work, ...files], {
      stdio: ['ignore', 'ignore', 'pipe'],
      encoding: 'utf8',
    });
    const outs = files.map((_, k) => path.join(work, String(k)));
    if (r.status === 0 && outs.every((out) => fs.existsSync(out))) {
      return outs.map((out) => fs.readFileSync(out));
    }
    const why =
      r.status === 0
        ? 'they ended without writing the caches'
        : String(r.error || `exit status ${r.status}: ${r.stderr}`)
            .trim()
            .split('\n')[0];
    process.stderr.write(`code-cache: the top levels' alone (the commands failed: ${why})\n`);
    return bundles.map(topLevelCodeCache);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const [outdir, ...files] = process.argv.slice(2).map((arg) => path.resolve(arg));
  child(outdir, files);
}

module.exports = { trainedCodeCaches };
