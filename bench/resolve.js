#!/usr/bin/env node
// `npm run bench`: how fast kmodload resolves a request, as ratios against baselines measured
// in the same run on the same tree. Not a test: it prints figures, it asserts nothing.
//
//   node bench/resolve.js [--rounds N] [--process-only | --nri-only]
//     --rounds N       rounds of every whole-process row (default 31); a busy machine needs more
//     --process-only   only the whole-process rows (start-up against node -e 0)
//     --nri-only       only the NRI plugin's rows
//
//   in-process resolution (a Node service with the database open) vs spawning
//   `modprobe -a --show-depends` for the same names; cold resolution (open + plan, what one
//   hook process pays) vs the same spawn; .bin index lookups vs the text-file fallback.
'use strict';

const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { monitorEventLoopDelay } = require('node:perf_hooks');
const { setImmediate: nextTurn, setTimeout: sleep } = require('node:timers/promises');
const { planRequests, formatShowDepends } = require('../dist/planner');
const { openModuleDatabase } = require('../dist/system');

const SEED = ['ip_vs', 'ip_vs_wrr'];
/** Runs of the NRI plugin's create/stop cycles (each side a process of its own per run). */
const CYCLE_ROUNDS = 5;

/** The command line: `--rounds N`, `--process-only`, `--nri-only`. */
function benchOptions(argv) {
  const options = { rounds: 31, processOnly: false, nriOnly: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--process-only') options.processOnly = true;
    else if (argv[i] === '--nri-only') options.nriOnly = true;
    else if (argv[i] === '--rounds' && /^[1-9][0-9]*$/.test(argv[i + 1] ?? '')) {
      options.rounds = Number(argv[++i]);
    } else {
      throw new Error(
        `unknown argument ${argv[i]} (expected --rounds N, --process-only, --nri-only)`,
      );
    }
  }
  if (options.processOnly && options.nriOnly) {
    throw new Error('--process-only and --nri-only exclude each other');
  }
  return options;
}

function fixture() {
  const fetchKernels = path.join(__dirname, '..', 'scripts', 'test', 'fetch-kernels.sh');
  const out = execFileSync('bash', [fetchKernels], { encoding: 'utf8' });
  const [, root, version] = out
    .split('\n')
    .find((l) => l.startsWith('6.1 '))
    .split(' ');
  return { root, version };
}

// Deterministic "random" sample: a small LCG over the module list.
function sample(names, count, seed = 42) {
  const picked = [];
  let x = seed;
  for (let i = 0; i < count; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    picked.push(names[x % names.length]);
  }
  return picked;
}

async function timeIt(iterations, fn) {
  await fn(); // warm-up
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) await fn();
  return Number(process.hrtime.bigint() - start) / 1e6 / iterations;
}

function modprobe(root, version, names) {
  const r = spawnSync('modprobe', ['-d', root, '-S', version, '-a', '--show-depends', ...names], {
    encoding: 'utf8',
  });
  return r.stdout;
}

function textOnlyTree(root, version) {
  // Same tree without the .bin indexes: the text fallback has to answer.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-bench-'));
  const src = path.join(root, 'lib/modules', version);
  const dst = path.join(dir, 'lib/modules', version);
  fs.mkdirSync(dst, { recursive: true });
  for (const f of fs.readdirSync(src)) {
    if (f === 'kernel') fs.symlinkSync(path.join(src, f), path.join(dst, f));
    else if (f.startsWith('modules.') && !f.endsWith('.bin'))
      fs.copyFileSync(path.join(src, f), path.join(dst, f));
  }
  return dir;
}

/** Runs `a` and `b` alternately `rounds` times each (after one warm-up of each), so that
 *  drift on a noisy machine hits both alike; returns each one's times in ms. */
async function alternate(rounds, a, b) {
  const times = { a: [], b: [] };
  await a();
  await b();
  for (let i = 0; i < rounds; i++) {
    for (const [key, fn] of i % 2 === 0
      ? [
          ['a', a],
          ['b', b],
        ]
      : [
          ['b', b],
          ['a', a],
        ]) {
      const start = process.hrtime.bigint();
      await fn();
      times[key].push(Number(process.hrtime.bigint() - start) / 1e6);
    }
  }
  return times;
}

function stats(times) {
  const sorted = [...times].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median, min: sorted[0], max: sorted[sorted.length - 1] };
}

/** A row of medians (min-max) and the extra cost of `ours` over `baseline`, in percent. */
function overheadRow(label, ours, baseline, baselineLabel) {
  const o = stats(ours);
  const b = stats(baseline);
  const range = (s) => `${s.median.toFixed(3)} (${s.min.toFixed(3)}-${s.max.toFixed(3)})`;
  const extra = ((o.median / b.median - 1) * 100).toFixed(1);
  console.log(
    `${label.padEnd(44)} ${range(o).padStart(26)} ms   ${baselineLabel.padEnd(18)} ${range(b).padStart(26)} ms   ${extra >= 0 ? '+' : ''}${extra}%`,
  );
}

/** A policy of 200 rules of every kind, that allows the seed set. */
function bigPolicy(all) {
  const head = ['default deny', 'max-modules 64', 'allow ip_vs* when source env'];
  const rules = [];
  // None of the generated rules may name the seed set or its dependencies.
  const names = sample(all, 400, 7).filter((n) => !/^(ip_v|nf_|libc|crc3)/.test(n));
  for (let i = 0; rules.length < 199; i++) {
    const name = names[i % names.length];
    const glob = i % 3 === 0 ? `${name.slice(0, 4)}*` : name;
    if (/^(ip_v|nf_|libc|crc3)/.test(glob)) continue;
    if (i % 4 === 0) rules.push(`allow ${glob} when annotation io.kubernetes.pod.namespace=kube-*`);
    else if (i % 4 === 1) rules.push(`deny ${glob} when source annotation`);
    else rules.push(`${i % 2 ? 'allow' : 'deny'} ${glob}`);
  }
  return `${[...head, ...rules].join('\n')}\n`;
}

/** Hook runs, with a 200-rule policy and without, in process and as whole processes. */
async function policyRows(root, version, all) {
  const { handleHook } = require('../dist/index.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-bench-policy-'));
  try {
    const policy = path.join(dir, 'policy.conf');
    fs.writeFileSync(policy, bigPolicy(all));
    const rules = fs.readFileSync(policy, 'utf8').split('\n').filter(Boolean).length - 2;
    const bundle = path.join(dir, 'bundle');
    fs.mkdirSync(bundle);
    fs.writeFileSync(
      path.join(bundle, 'config.json'),
      JSON.stringify({ process: { env: [`KERNEL_MODULES=${SEED.join(',')}`] } }),
    );
    const modprobeD = path.join(dir, 'modprobe.d');
    fs.mkdirSync(modprobeD);
    const state = JSON.stringify({ id: 'bench', status: 'creating', bundle });
    const base = { root, kernelVersion: version, dryRun: true, configDirs: [modprobeD] };
    const hook = (options) => async () => {
      const result = await handleHook(state, options);
      if (!result.ok) throw new Error(`hook failed: ${result.message}`);
    };
    const inProcess = await alternate(41, hook({ ...base, policyFiles: [policy] }), hook(base));
    overheadRow(
      `hook, seed dry run, ${rules}-rule policy (in-process)`,
      inProcess.a,
      inProcess.b,
      'no policy',
    );
    const cli = path.join(__dirname, '..', 'bin', 'kmodload.js');
    const args = ['hook', '-n', '-d', root, '-S', version, '-C', modprobeD];
    const spawnHook = (extra) => () => {
      const r = spawnSync(process.execPath, [cli, ...args, ...extra], { input: state });
      if (r.status !== 0) throw new Error(`hook process failed: ${r.stderr}`);
    };
    const processes = await alternate(51, spawnHook(['--policy', policy]), spawnHook([]));
    overheadRow(
      `hook, seed dry run, ${rules}-rule policy (process)`,
      processes.a,
      processes.b,
      'no policy',
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const STDIN_FIFO = path.join(os.tmpdir(), `kmodload-bench-stdin-${process.pid}`);
const STDIN_FILE = path.join(os.tmpdir(), `kmodload-bench-state-${process.pid}.json`);

/** Spawns `argv` with `input` on stdin as a runtime gives a hook its state: by default in a
 *  pipe (runc: Go's os/exec makes one for a reader and closes it once written), not the
 *  socket pair that spawnSync's `input` makes; with `stdinKind` 'file', a regular file opened
 *  for reading (a runtime or a script that redirects a saved state). */
function spawnWithInput(argv, input, options = {}, stdinKind = 'pipe') {
  if (input === undefined) return spawnSync(argv[0], argv.slice(1), options);
  let reader;
  if (stdinKind === 'file') {
    fs.writeFileSync(STDIN_FILE, input, { mode: 0o600 });
    reader = fs.openSync(STDIN_FILE, fs.constants.O_RDONLY);
  } else {
    if (!fs.existsSync(STDIN_FIFO)) execFileSync('mkfifo', ['-m', '600', STDIN_FIFO]);
    reader = fs.openSync(STDIN_FIFO, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  }
  try {
    if (stdinKind !== 'file') {
      const writer = fs.openSync(STDIN_FIFO, fs.constants.O_WRONLY);
      fs.writeSync(writer, input);
      fs.closeSync(writer);
    }
    return spawnSync(argv[0], argv.slice(1), { ...options, stdio: [reader, 'pipe', 'pipe'] });
  } finally {
    fs.closeSync(reader);
  }
}

/** A preload for NODE_OPTIONS=--require (which the single executable honours too) that writes
 *  the process's peak RSS (KiB) and the CPU time it used (user + system, µs: an exec before
 *  node's, /usr/bin/env's, included) to `out` at exit: no external tool is needed, and every
 *  side pays the same preload. Returns its path. */
function usageProbe(dir, out) {
  const preload = path.join(dir, 'usage-probe.js');
  fs.writeFileSync(
    preload,
    `process.on('exit', () => { const u = process.resourceUsage(); require('fs').writeFileSync(${JSON.stringify(out)}, u.maxRSS + ' ' + (u.userCPUTime + u.systemCPUTime)); });`,
  );
  return preload;
}

/** Runs each of `fns` once per round, `rounds` times (after one warm-up each), in an order
 *  that rotates every round, so that drift on a noisy machine hits all alike; returns each
 *  one's times in ms. */
async function alternateAll(rounds, fns) {
  const times = fns.map(() => []);
  for (const fn of fns) await fn();
  for (let i = 0; i < rounds; i++) {
    for (let k = 0; k < fns.length; k++) {
      const j = (i + k) % fns.length;
      const start = process.hrtime.bigint();
      await fns[j]();
      times[j].push(Number(process.hrtime.bigint() - start) / 1e6);
    }
  }
  return times;
}

/** A fake /sys/module in which the seed's modules (and their dependencies) are live, and a
 *  wrapper that runs a command in a private mount namespace with it mounted over /sys/module
 *  (unshare and mount: root only). */
function liveSysModule(dir, names) {
  const fake = path.join(dir, 'sys-module');
  for (const name of names) {
    fs.mkdirSync(path.join(fake, name, 'holders'), { recursive: true });
    fs.writeFileSync(path.join(fake, name, 'initstate'), 'live\n');
    fs.writeFileSync(path.join(fake, name, 'refcnt'), '1\n');
  }
  return (argv) => [
    'unshare',
    '-m',
    '--propagation',
    'private',
    'sh',
    '-c',
    `mount --bind ${fake} /sys/module && exec "$@"`,
    'sh',
    ...argv,
  ];
}

/** The command as `npm install -g` or `npm link` installs it: PREFIX/bin/kmodload, a symlink to
 *  the package's bin/kmodload.js (PREFIX/lib/node_modules/kmodload, here a symlink to this
 *  checkout), run through its `#!/usr/bin/env node` line with this node first on PATH. */
function binLink(dir) {
  const prefix = path.join(dir, 'prefix');
  const modules = path.join(prefix, 'lib', 'node_modules');
  fs.mkdirSync(modules, { recursive: true });
  fs.mkdirSync(path.join(prefix, 'bin'));
  fs.symlinkSync(path.join(__dirname, '..'), path.join(modules, 'kmodload'));
  const link = path.join(prefix, 'bin', 'kmodload');
  fs.symlinkSync('../lib/node_modules/kmodload/bin/kmodload.js', link);
  const env = {
    ...process.env,
    PATH: [path.join(prefix, 'bin'), path.dirname(process.execPath), process.env.PATH].join(':'),
  };
  return { link, env };
}

/** Whole processes against `node -e 0` in the same run: what a runtime pays per hook. The
 *  installed command (its npm bin link), the CLI run as `node bin/kmodload.js` and, when
 *  built, the single executable (build/kmodload) run in the same rounds as the baseline. */
async function processRows(root, version, rounds) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-bench-process-'));
  try {
    const cli = path.join(__dirname, '..', 'bin', 'kmodload.js');
    const binary = path.join(__dirname, '..', 'build', 'kmodload');
    const { link, env } = binLink(dir);
    const conf = path.join(dir, 'modprobe.d');
    fs.mkdirSync(conf);
    const bundleOf = (env) => {
      const bundle = fs.mkdtempSync(path.join(dir, 'bundle-'));
      fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify({ process: { env } }));
      return JSON.stringify({ id: 'bench', status: 'creating', bundle });
    };
    const tree = ['-d', root, '-S', version, '-C', conf];
    const hook = ['hook', '--state', 'prestart', '--log', path.join(dir, 'hook.log')];
    const nothingState = bundleOf(['PATH=/bin']);
    const seedState = bundleOf([`KERNEL_MODULES=${SEED.join(',')}`]);
    const seedModules = formatShowDepends(
      planRequests(await openModuleDatabase({ root, kernelVersion: version }), SEED),
    )
      .split('\n')
      .filter((l) => l.startsWith('insmod '))
      .map((l) =>
        path
          .basename(l.split(' ')[1])
          .replace(/\.ko(\..*)?$/, '')
          .replace(/-/g, '_'),
      );
    const live = liveSysModule(dir, seedModules);
    const direct = (argv) => argv;
    const seedPlanned = [...hook, '-n', ...tree];
    // [label, arguments, stdin's content, wrapper, stdin's kind]
    const rows = [
      ['hook, nothing asked', hook, nothingState, direct, 'pipe'],
      ['hook, nothing asked, state in a file', hook, nothingState, direct, 'file'],
      ['hook, seed planned (dry run)', seedPlanned, seedState, direct, 'pipe'],
      ['hook, seed planned (dry run), state in a file', seedPlanned, seedState, direct, 'file'],
      ['hook, seed already live (dry run)*', seedPlanned, seedState, live, 'pipe'],
      [
        'load --show-depends (seed)',
        ['load', '--show-depends', ...tree, ...SEED],
        undefined,
        direct,
        'pipe',
      ],
      ['--help', ['--help'], undefined, direct, 'pipe'],
    ];
    const sides = [
      ['kmodload (npm bin link)', link, []],
      ['node bin/kmodload.js', process.execPath, [cli]],
    ];
    if (fs.existsSync(binary)) sides.push(['build/kmodload', binary, []]);
    const run =
      (argv, input, stdinKind, runEnv = env) =>
      () => {
        const r = spawnWithInput(argv, input, { env: runEnv }, stdinKind);
        if (r.status !== 0) throw new Error(`${argv.join(' ')}: exit ${r.status}: ${r.stderr}`);
      };
    // Runs with the usage probe, in the same rounds as the timed ones (not timed themselves):
    // CPU time moves far less than wall time on a machine that other work keeps busy.
    const usageOut = path.join(dir, 'usage');
    const probeEnv = { ...env, NODE_OPTIONS: `--require ${usageProbe(dir, usageOut)}` };
    const probed = (argv, input, stdinKind, usages) => {
      const once = run(argv, input, stdinKind, probeEnv);
      return () => {
        once();
        const [rss, cpu] = fs.readFileSync(usageOut, 'utf8').split(' ').map(Number);
        usages.push({ rss, cpu });
      };
    };
    const range = (x) => `${x.median.toFixed(1)} (${x.min.toFixed(1)}-${x.max.toFixed(1)})`;
    const ratioText = (x) => `x${x.median.toFixed(2)} (${x.min.toFixed(2)}-${x.max.toFixed(2)})`;
    const mib = (kib) => `${(kib / 1024).toFixed(1)} MiB`;
    for (const [label, args, input, wrap, stdinKind] of rows) {
      const argvs = [wrap([process.execPath, '-e', '0'])];
      for (const [, command, pre] of sides) argvs.push(wrap([command, ...pre, ...args]));
      const usages = argvs.map(() => []);
      const fns = argvs.map((argv, k) => run(argv, k === 0 ? undefined : input, stdinKind));
      argvs.forEach((argv, k) =>
        fns.push(probed(argv, k === 0 ? undefined : input, stdinKind, usages[k])),
      );
      const times = await alternateAll(rounds, fns);
      // The warm-up runs are not counted.
      for (const list of usages) list.shift();
      const cpu = usages.map((list) => list.map((u) => u.cpu));
      const rss = usages.map((list) => stats(list.map((u) => u.rss)).median);
      console.log(`${label}: node -e 0 ${range(stats(times[0]))} ms, RSS ${mib(rss[0])}`);
      sides.forEach(([name], side) => {
        const k = side + 1;
        // Each round runs both back to back: the ratio within a round cancels the machine's
        // drift between rounds, which the ratio of the two medians does not.
        const ratio = stats(times[k].map((t, round) => t / times[0][round]));
        const cpuRatio = stats(cpu[k].map((t, round) => t / cpu[0][round]));
        console.log(
          `  ${name.padEnd(24)} ${range(stats(times[k])).padStart(22)} ms  ${ratioText(ratio)}  CPU ${ratioText(cpuRatio)}  RSS ${mib(rss[k])} (+${((rss[k] - rss[0]) / 1024).toFixed(1)})`,
        );
      });
    }
    if (!sides.some(([, command]) => command === binary)) {
      console.log('(npm run build:binary adds the single executable to these rows)');
    }
    console.log(
      "* in a mount namespace where /sys/module is a fake tree with the seed's modules live; node -e 0 runs under the same unshare/mount wrapper",
    );
    console.log(
      '(the hook rows get their state on stdin in a pipe, as runc gives it, or in a regular file where the row says so; the npm bin link is PREFIX/bin/kmodload -> ../lib/node_modules/kmodload/bin/kmodload.js, run through its #!/usr/bin/env node; CPU: the ratio of user + system time within a round, and RSS the median peak, from runs with a preloaded probe in the same rounds)',
    );
  } finally {
    fs.rmSync(STDIN_FIFO, { force: true });
    fs.rmSync(STDIN_FILE, { force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The NRI plugin against the hook: the plugin's CreateContainer handling of the seed request
 *  in-process (decision + dry-run plan, what a resident plugin does per container) and a hook
 *  process doing the same, alternating in one run; then the plugin's RSS after 100 and 1,000
 *  create/stop cycles in a process of its own. */
async function nriRows(root, version, rounds) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-bench-nri-'));
  try {
    const { nriHandlers } = require('../dist/nri/service');
    const conf = path.join(dir, 'modprobe.d');
    fs.mkdirSync(conf);
    const options = { root, kernelVersion: version, configDirs: [conf], dryRun: true };
    const handlers = nriHandlers(options, () => undefined);
    const { POD, askingContainer } = require('./nri-cycles');
    const env = [`KERNEL_MODULES=${SEED.join(',')}`];
    let n = 0;
    const create = () => handlers.createContainer(POD, askingContainer(`c${n++}`, SEED));
    const bundle = fs.mkdtempSync(path.join(dir, 'bundle-'));
    fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify({ process: { env } }));
    const state = JSON.stringify({ id: 'bench', status: 'creating', bundle });
    const cli = path.join(__dirname, '..', 'bin', 'kmodload.js');
    const hookArgv = [process.execPath, cli, 'hook', '--state', 'prestart', '-n'];
    hookArgv.push('-d', root, '-S', version, '-C', conf);
    const hook = () => {
      const r = spawnWithInput(hookArgv, state);
      if (r.status !== 0) throw new Error(`hook: exit ${r.status}: ${r.stderr}`);
    };
    const [plugin, process_] = await alternateAll(rounds, [create, hook]);
    const p = stats(plugin);
    const h = stats(process_);
    const ratio = stats(process_.map((t, round) => t / plugin[round]));
    const range = (x) => `${x.median.toFixed(2)} (${x.min.toFixed(2)}-${x.max.toFixed(2)})`;
    console.log(`plugin CreateContainer, seed (dry run)        ${range(p).padStart(24)} ms`);
    console.log(`hook process, seed (dry run)                  ${range(h).padStart(24)} ms`);
    console.log(
      `  the plugin is x${ratio.median.toFixed(1)} (${ratio.min.toFixed(1)}-${ratio.max.toFixed(1)}) faster (median of the per-round ratios)`,
    );
    // As deployed (docs/nri.md): a small young generation, which V8 otherwise grows to tens
    // of MiB in a process that runs for days. Each run a process of its own, the plugin's heap
    // tuning and V8's default compaction alternating.
    const counts = [100, 200, 500, 1000, 2000, 3000];
    const runCycles = (extra) => {
      const cycles = spawnSync(
        process.execPath,
        [
          '--expose-gc',
          '--max-semi-space-size=1',
          path.join(__dirname, 'nri-cycles.js'),
          ...extra,
          root,
          version,
          ...counts.map(String),
        ],
        { encoding: 'utf8' },
      );
      if (cycles.status !== 0) throw new Error(`nri-cycles: ${cycles.stderr}`);
      return cycles.stdout
        .trim()
        .split('\n')
        .map((line) => line.split(' ').map(Number));
    };
    const tuned = [];
    const untuned = [];
    for (let round = 0; round < CYCLE_ROUNDS; round++) {
      tuned.push(runCycles([]));
      untuned.push(runCycles(['--v8-default']));
    }
    const signed = (x) => `${x >= 0 ? '+' : ''}${x.toFixed(1)}`;
    const growth = (runs, k) => {
      const g = stats(runs.map((points) => ((points[k][1] - points[0][1]) / points[0][1]) * 100));
      return `${signed(g.median)} (${signed(g.min)}..${signed(g.max)})%`;
    };
    const mib = (runs, k, field) => {
      const m = stats(runs.map((points) => points[k][field] / 1048576));
      return `${m.median.toFixed(1)} (${m.min.toFixed(1)}-${m.max.toFixed(1)}) MiB`;
    };
    console.log(
      `plugin RSS after N create/stop cycles, % of its RSS after 100, medians (min..max) of ${CYCLE_ROUNDS} alternating runs:`,
    );
    console.log(
      `  ${'cycles'.padStart(6)}   ${'as kmodload nri runs'.padEnd(26)} V8's default compaction`,
    );
    for (let k = 1; k < counts.length; k++) {
      console.log(
        `  ${String(counts[k]).padStart(6)}   ${growth(tuned, k).padEnd(26)} ${growth(untuned, k)}`,
      );
    }
    const last = counts.length - 1;
    console.log(
      `  RSS after 100: ${mib(tuned, 0, 1)} and ${mib(untuned, 0, 1)}; V8 heap in use after ${counts[last]}: ${mib(tuned, last, 2)} and ${mib(untuned, last, 2)}`,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The longest event-loop stall (ms, from monitorEventLoopDelay at 1 ms resolution) while a
 *  service opens the tree with openModuleTree() and resolves `names` one request each, as
 *  separate requests would come, then closes it. */
async function serviceStall(root, version, names) {
  const { openModuleTree } = require('../dist/index.js');
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  // Let the monitor's timer start before the work does.
  await sleep(5);
  const tree = await openModuleTree({ root, kernelVersion: version });
  for (const name of names) {
    tree.resolve([name]);
    await nextTurn();
  }
  tree.close();
  await sleep(5);
  histogram.disable();
  return histogram.max / 1e6;
}

/** Stall rows: the .bin tree and its text-only copy, alternately, medians (min-max). */
async function stallRows(root, textRoot, version, names) {
  const bin = [];
  const text = [];
  await alternate(
    9,
    async () => bin.push(await serviceStall(root, version, names)),
    async () => text.push(await serviceStall(textRoot, version, names)),
  );
  // alternate() runs one warm-up of each first (the addon's dlopen, module loading): drop it.
  bin.shift();
  text.shift();
  const range = (s) => `${s.median.toFixed(1)} (${s.min.toFixed(1)}-${s.max.toFixed(1)})`;
  console.log(
    `${'longest event-loop stall, open + 200 names'.padEnd(44)} ${range(stats(bin)).padStart(20)} ms   ${'text files'.padEnd(10)} ${range(stats(text)).padStart(20)} ms`,
  );
}

/** A modprobe.d file at the 4 MiB cap, of the lines real files hold, parsed by the loader's
 *  parser against a bare split of the same text into lines (medians of 9 alternating runs). */
async function configParseRow() {
  const { parseConfigFile } = require('../dist/config/parse.js');
  const { emptyConfig } = require('../dist/config/types.js');
  const lines = [];
  let size = 0;
  for (let i = 0; size < 4 * 1024 * 1024 - 200; i++) {
    const line =
      i % 4 === 0
        ? `# comment ${i}`
        : i % 4 === 1
          ? `options mod_${i % 5000} param${i}=${i} other=value`
          : i % 4 === 2
            ? `alias pci:v0000${i}d*sv*sd*bc*sc*i* mod-${i % 5000}`
            : `blacklist mod_${i}`;
    lines.push(line);
    size += line.length + 1;
  }
  const text = `${lines.join('\n')}\n`;
  const times = await alternate(
    9,
    async () => parseConfigFile(text, 'big.conf', emptyConfig()),
    async () => text.split('\n'),
  );
  const show = (s) => `${s.median.toFixed(1)} (${s.min.toFixed(1)}-${s.max.toFixed(1)})`;
  console.log(
    `${`modprobe.d file of ${(text.length / 1048576).toFixed(1)} MiB, parse`.padEnd(44)} ${show(stats(times.a)).padStart(20)} ms   ${'split into lines'.padEnd(16)} ${show(stats(times.b)).padStart(20)} ms`,
  );
}

function row(label, ours, baseline, baselineLabel) {
  const ratio = baseline / ours;
  console.log(
    `${label.padEnd(44)} ${ours.toFixed(3).padStart(9)} ms   ${baselineLabel.padEnd(26)} ${baseline
      .toFixed(3)
      .padStart(9)} ms   x${ratio.toFixed(1)}`,
  );
}

/** The whole-process rows' heading and rows. */
async function startupRows(root, version, rounds) {
  console.log(
    `\nwhole processes: medians (min-max) of ${rounds} alternating rounds, x: median (min-max) of the ratios to node -e 0 within a round, of wall time and (CPU) of user + system time; peak RSS`,
  );
  await processRows(root, version, rounds);
}

async function main() {
  const { rounds, processOnly, nriOnly } = benchOptions(process.argv.slice(2));
  const { root, version } = fixture();
  if (processOnly) {
    console.log(`kernel tree: ${root} (${version}); node ${process.version}`);
    await startupRows(root, version, rounds);
    return;
  }
  const opts = { root, kernelVersion: version };
  const depLines = fs.readFileSync(path.join(root, 'lib/modules', version, 'modules.dep'), 'utf8');
  const all = depLines
    .split('\n')
    .filter(Boolean)
    .map((l) => path.basename(l.slice(0, l.indexOf(':'))).replace(/\.ko(\..*)?$/, ''));
  const random = sample(all, 200);

  if (nriOnly) {
    console.log(`kernel tree: ${root} (${version}); node ${process.version}`);
    console.log(
      `NRI plugin (in-process) against the hook (a process), medians (min-max) of ${rounds} alternating rounds`,
    );
    await nriRows(root, version, rounds);
    return;
  }

  // Sanity: the thing measured gives modprobe's answer.
  const db = await openModuleDatabase(opts);
  if (formatShowDepends(planRequests(db, SEED)) !== modprobe(root, version, SEED)) {
    throw new Error('kmodload and modprobe disagree on the seed set; fix that before timing it');
  }

  console.log(`kernel tree: ${root} (${version}), ${all.length} modules; node ${process.version}`);
  console.log(
    `${'measure'.padEnd(44)} ${'kmodload'.padStart(12)}   ${'baseline'.padEnd(26)} ${'time'.padStart(12)}   speed-up`,
  );

  const seedSpawn = await timeIt(50, () => modprobe(root, version, SEED));
  row(
    'seed set, in-process (db open)',
    await timeIt(2000, () => planRequests(db, SEED)),
    seedSpawn,
    'spawn modprobe -a',
  );
  row(
    'seed set, cold (open db + plan + close)',
    await timeIt(100, async () => {
      const d = await openModuleDatabase(opts);
      planRequests(d, SEED);
      d.close();
    }),
    seedSpawn,
    'spawn modprobe -a',
  );

  // What a hook process pays: node's own start-up included, against modprobe's.
  const cli = path.join(__dirname, '..', 'bin', 'kmodload.js');
  const cliArgs = ['load', '-d', root, '-S', version, '--show-depends', ...SEED];
  row(
    'seed set, whole CLI process (node start-up)',
    await timeIt(20, () => spawnSync(process.execPath, [cli, ...cliArgs])),
    seedSpawn,
    'spawn modprobe -a',
  );

  const randomSpawnEach = await timeIt(3, () =>
    random.forEach((n) => modprobe(root, version, [n])),
  );
  row(
    '200 random names, in-process, one by one',
    await timeIt(50, () => random.forEach((n) => planRequests(db, [n]))),
    randomSpawnEach,
    '200 x spawn modprobe',
  );
  const randomSpawnOnce = await timeIt(10, () => modprobe(root, version, random));
  row(
    '200 random names, in-process, one request',
    await timeIt(50, () => planRequests(db, random)),
    randomSpawnOnce,
    '1 x spawn modprobe -a',
  );
  db.close();

  await startupRows(root, version, rounds);

  console.log(
    `\nNRI plugin (in-process) against the hook (a process), medians (min-max) of ${rounds} alternating rounds`,
  );
  await nriRows(root, version, rounds);

  console.log(
    `\n${'host policy: medians (min-max) of alternating runs'.padEnd(44)} ${'with policy'.padStart(26)}      ${'baseline'.padEnd(18)} ${'time'.padStart(26)}      extra`,
  );
  await policyRows(root, version, all);
  console.log('');

  const textRoot = textOnlyTree(root, version);
  try {
    const textDb = await openModuleDatabase({ root: textRoot, kernelVersion: version });
    planRequests(textDb, random); // loads the text files once
    const binDb = await openModuleDatabase(opts);
    row(
      '200 random names, .bin indexes',
      await timeIt(50, () => planRequests(binDb, random)),
      await timeIt(50, () => planRequests(textDb, random)),
      'text files (warm)',
    );
    row(
      'seed set cold, .bin indexes',
      await timeIt(50, async () => {
        const d = await openModuleDatabase(opts);
        planRequests(d, SEED);
        d.close();
      }),
      await timeIt(5, async () => {
        const d = await openModuleDatabase({ root: textRoot, kernelVersion: version });
        planRequests(d, SEED);
        d.close();
      }),
      'text files (cold)',
    );
    binDb.close();
    textDb.close();
    console.log(
      `\n${'event loop: max delay (monitorEventLoopDelay, 1 ms), medians (min-max) of 9 runs'}`,
    );
    await stallRows(root, textRoot, version, random);
    await configParseRow();
  } finally {
    fs.rmSync(textRoot, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`bench: ${err.message}`);
  process.exit(1);
});
