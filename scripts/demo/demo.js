#!/usr/bin/env node
// `npm run demo`: kmodload loading real modules on a machine whose own kernel cannot (a laptop
// VM, a CI runner, a container). It boots Debian's 6.1 kernel under qemu (TCG, no KVM needed)
// from the same initramfs as the end-to-end suite (scripts/test/qemu/), and the guest runs the
// `demo` set of scripts/test/qemu/guest/scenarios.sh: `lsmod | grep ip_vs`, then a runc container
// with KERNEL_MODULES=ip_vs,ip_vs_wrr through the hook `kmodload hook-config` installs, then
// `lsmod | grep ip_vs` again and the hook's log line. This script prints a progress line per
// phase and the guest's steps as they happen.
//
//   node scripts/demo/demo.js        (npm run demo)
//
// Needs Debian's apt (the kernel is Debian's package) and the Debian packages below; as root
// it installs the missing ones, otherwise it names them. Root is not needed otherwise.
// Exit status: 0 the modules were loaded and shown; 1 the guest did not show them (or did not
// finish); 2 bad arguments; 4 something is missing (a package, the built addon, the kernel).
'use strict';

const { Buffer } = require('node:buffer');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { setInterval, clearInterval } = require('node:timers');

const PROJECT = path.resolve(__dirname, '..', '..');
const SCRIPTS = path.join(PROJECT, 'scripts', 'test');
// The statuses of src/errors.ts EXIT that apply here.
const EXIT = { ok: 0, failed: 1, usage: 2, environment: 4, internal: 70 };
// What the image and the boot need (see scripts/test/qemu/build-initramfs.sh and run-guest.sh).
const PACKAGES = ['qemu-system-x86', 'runc', 'busybox-static', 'kmod', 'cpio', 'zstd', 'xz-utils'];
const REQUEST = 'ip_vs,ip_vs_wrr';
const FRAME = '@@KMODLOAD@@ ';
const GUEST_TIMEOUT_S = 300;

class DemoError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

const out = (line = '') => process.stdout.write(`${line}\n`);
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;
const indent = (text, by = '    ') =>
  text
    .replace(/\n+$/, '')
    .split('\n')
    .map((l) => by + l)
    .join('\n');

let current; // the child process running now, stopped if we are interrupted

/** Runs a command; resolves with its status and output (stdout, and stderr unless inherited). */
function runCommand(command, args, options = {}) {
  return new Promise((resolve, reject) => {
    // Its own process group, so that an interruption stops everything it started.
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    current = child;
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      current = undefined;
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

function lastLine(text) {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  return lines.length > 0 ? lines[lines.length - 1].trim() : '';
}

function onPath(tool) {
  return (process.env.PATH ?? '')
    .split(':')
    .some((dir) => dir !== '' && fs.existsSync(path.join(dir, tool)));
}

/** The cache of scripts/test/fetch-kernels.sh and build-initramfs.sh: the tests' own, unless this
 *  user cannot write there. */
function cacheDir() {
  if (process.env.KMODLOAD_CACHE) return process.env.KMODLOAD_CACHE;
  const shared = '/var/cache/kmodload';
  try {
    fs.accessSync(fs.existsSync(shared) ? shared : path.dirname(shared), fs.constants.W_OK);
    return shared;
  } catch {
    const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
    return path.join(base, 'kmodload');
  }
}

/** One guest observation (the framed lines of scripts/test/qemu/guest/lib.sh). */
function parseRecord(line) {
  const at = line.indexOf(FRAME);
  if (at < 0) return undefined;
  try {
    const raw = JSON.parse(line.slice(at + FRAME.length));
    const text = (field) => Buffer.from(String(raw[field] ?? ''), 'base64').toString('utf8');
    return {
      key: raw.key,
      rc: Number(raw.rc),
      cmd: text('cmd'),
      out: text('out'),
      err: text('err'),
    };
  } catch {
    return undefined;
  }
}

/** The hook entries `kmodload hook-config --format oci` printed, one line per stage. */
function describeHooks(printed) {
  try {
    const hooks = JSON.parse(printed).hooks;
    return Object.entries(hooks)
      .map(([stage, entries]) =>
        entries.map((e) => `${stage}: ${[e.path, ...e.args.slice(1)].join(' ')}`).join('\n'),
      )
      .join('\n');
  } catch {
    return printed;
  }
}

/** The hook's log line of the run that loaded the modules, without its long plan and verdict
 *  arrays (every module twice, with its path). */
function describeHookLog(log) {
  const lines = log.split('\n').filter((l) => l.trim() !== '');
  const entries = lines.map((l) => {
    try {
      return JSON.parse(l);
    } catch {
      return undefined;
    }
  });
  const at = entries.findIndex((e) => e && Array.isArray(e.request) && e.request.length > 0);
  if (at < 0) return { text: log.trim() || '(empty)', record: undefined };
  const record = entries[at];
  const rest = Object.fromEntries(
    Object.entries(record).filter(([key]) => key !== 'plan' && key !== 'verdict'),
  );
  rest.results = (record.results ?? []).map((r) =>
    Object.fromEntries(Object.entries(r).filter(([key]) => key !== 'path')),
  );
  return { text: JSON.stringify(rest), record };
}

const LSMOD = 'lsmod | grep ip_vs';

/** Prints one guest step as a person would see it at the guest's shell. */
function show(record, state) {
  switch (record.key) {
    case 'demo.before':
    case 'demo.after': {
      out(`  guest# ${LSMOD}`);
      const text = record.out.trim();
      out(text === '' ? '    (nothing: no ip_vs module is loaded)' : indent(text));
      if (record.key === 'demo.before') state.before = text;
      else state.after = text;
      break;
    }
    case 'demo.hook':
      out(`  guest# kmodload ${record.cmd.replace(/^\S*kmodload /, '')}`);
      if (record.rc !== 0) {
        out(indent(record.err || record.out));
        state.problem = `kmodload hook-config failed (exit ${record.rc}): ${lastLine(record.err)}`;
      } else {
        out('    wrote the wrapper; these entries go into the container\'s config.json "hooks":');
        out(indent(describeHooks(record.out), '      '));
      }
      break;
    case 'demo.runc':
      out(`  guest# runc run --bundle /run/demo kmodload-demo   # env KERNEL_MODULES=${REQUEST}`);
      if (record.out.trim()) out(indent(record.out));
      if (record.err.trim()) out(indent(record.err));
      if (record.rc !== 0) state.problem = `runc run failed (exit ${record.rc})`;
      state.runc = record.rc;
      break;
    case 'demo.hooklog': {
      const { text, record: entry } = describeHookLog(record.out);
      out(
        '  the hook\'s log line (/var/log/kmodload/hook.log; "plan", "verdict" and paths left out):',
      );
      out(indent(text));
      state.hookLog = entry;
      break;
    }
    default:
      break;
  }
}

/** Boots the guest, printing its steps as its results arrive on the second serial port. */
async function bootAndRun(kernel, image, logs, timings) {
  const consoleLog = path.join(logs, 'console.log');
  const resultsLog = path.join(logs, 'results.log');
  fs.writeFileSync(resultsLog, '');
  const child = spawn(
    'bash',
    [
      path.join(SCRIPTS, 'qemu', 'run-guest.sh'),
      kernel.vmlinuz,
      image,
      'max',
      'kmodload_e2e=demo',
      consoleLog,
      resultsLog,
      String(GUEST_TIMEOUT_S),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
  );
  current = child;
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const state = { ended: false };
  let offset = 0;
  let pending = '';
  const booting = Date.now();
  let running;
  const poll = () => {
    let fd;
    try {
      fd = fs.openSync(resultsLog, 'r');
    } catch {
      return;
    }
    try {
      const buffer = Buffer.alloc(1 << 16);
      for (;;) {
        const n = fs.readSync(fd, buffer, 0, buffer.length, offset);
        if (n <= 0) break;
        offset += n;
        pending += buffer.subarray(0, n).toString('utf8');
      }
    } finally {
      fs.closeSync(fd);
    }
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      const record = parseRecord(line.replace(/\r$/, ''));
      if (!record) continue;
      if (record.key === 'begin') {
        running = Date.now();
        timings.boot = running - booting;
        const uname = /uname=(\S+)/.exec(record.out)?.[1] ?? kernel.version;
        out(`      Linux ${uname} is up (${seconds(timings.boot)})`);
        out(`[4/4] running: a runc container with KERNEL_MODULES=${REQUEST}, in the guest`);
      } else if (record.key === 'end') {
        state.ended = true;
      } else {
        show(record, state);
      }
    }
  };
  const timer = setInterval(poll, 200);
  const code = await new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status) => resolve(status));
  });
  current = undefined;
  clearInterval(timer);
  poll();
  if (running) timings.run = Date.now() - running;
  if (stderr.trim()) fs.writeFileSync(path.join(logs, 'qemu.err'), stderr);
  if (!state.ended) {
    const why =
      code === 124
        ? `stopped after ${GUEST_TIMEOUT_S} s`
        : `qemu exit ${String(code)}${stderr.trim() ? `: ${lastLine(stderr)}` : ''}`;
    throw new DemoError(
      `the guest did not finish (${why}); its console: ${consoleLog}`,
      EXIT.failed,
    );
  }
  return state;
}

function names(lsmodLines) {
  return (lsmodLines ?? '')
    .split('\n')
    .map((l) => l.split(/\s+/)[0])
    .filter((n) => n);
}

async function main(argv) {
  if (argv.length > 0) {
    const help = argv.length === 1 && (argv[0] === '-h' || argv[0] === '--help');
    if (help) {
      out('Usage: npm run demo   (node scripts/demo/demo.js)');
      out('Boots Debian 6.1 under qemu and loads ip_vs,ip_vs_wrr there through the hook and runc.');
      return EXIT.ok;
    }
    throw new DemoError(`unexpected argument ${argv[0]} (usage: npm run demo)`, EXIT.usage);
  }
  const started = Date.now();
  const timings = {};
  const cache = cacheDir();
  const env = { ...process.env, KMODLOAD_CACHE: cache };

  out(`kmodload demo: Debian's 6.1 kernel under qemu, a container asking for ${REQUEST}`);
  if (!fs.existsSync(path.join(PROJECT, 'build', 'Release', 'kmodload.node'))) {
    throw new DemoError(
      'build/Release/kmodload.node is missing: run npm install first',
      EXIT.environment,
    );
  }
  if (!onPath('apt-get') || !onPath('dpkg-query')) {
    throw new DemoError(
      "needs a Debian system (apt-get, dpkg): the kernel is Debian's package",
      EXIT.environment,
    );
  }

  // 1. The Debian packages, then the kernel (scripts/test/fetch-kernels.sh, cached as in the tests).
  let t0 = Date.now();
  out(`[1/4] fetching: ${PACKAGES.join(' ')} when missing, Debian's 6.1 kernel package`);
  const deps = await runCommand('bash', [path.join(SCRIPTS, 'install-test-deps.sh'), ...PACKAGES]);
  if (deps.stdout.trim()) out(indent(deps.stdout.trim(), '      '));
  if (deps.code !== 0) {
    throw new DemoError(lastLine(deps.stderr) || 'installing packages failed', EXIT.environment);
  }
  const fetched = await runCommand('bash', [path.join(SCRIPTS, 'fetch-kernels.sh'), '6.1'], {
    env,
  });
  const [, root, version] = fetched.stdout.trim().split(' ');
  if (fetched.code !== 0 || !root || !version) {
    const why = lastLine(fetched.stderr) || `exit ${fetched.code}`;
    throw new DemoError(`fetching Debian's 6.1 kernel failed: ${why}`, EXIT.environment);
  }
  const kernel = { root, version, vmlinuz: path.join(root, 'boot', `vmlinuz-${version}`) };
  timings.fetch = Date.now() - t0;
  out(`      linux-image-${version}, in ${cache} (${seconds(timings.fetch)})`);

  // 2. The initramfs of the end-to-end suite: busybox, node, kmod, runc, the module subset,
  // and kmodload laid out as `npm install -g` does.
  t0 = Date.now();
  const logs = path.join(os.tmpdir(), 'kmodload-demo', version);
  fs.mkdirSync(logs, { recursive: true });
  out(
    '[2/4] building the image: an initramfs with busybox, node, runc, kmod, kmodload and modules',
  );
  const built = await runCommand(
    'bash',
    [path.join(SCRIPTS, 'qemu', 'build-initramfs.sh'), root, version, logs],
    { env },
  );
  fs.writeFileSync(path.join(logs, 'build.log'), built.stderr);
  if (built.code !== 0) {
    throw new DemoError(
      `building the image failed: ${lastLine(built.stderr)} (see ${path.join(logs, 'build.log')})`,
      EXIT.environment,
    );
  }
  timings.image = Date.now() - t0;
  const image = path.join(logs, 'initrd.img');
  const mib = (fs.statSync(image).size / (1 << 20)).toFixed(0);
  out(`      ${image}, ${mib} MiB (${seconds(timings.image)})`);

  // 3 and 4. One boot: the guest's init runs the demo set and powers off.
  out(`[3/4] booting: Linux ${version} under qemu (TCG: emulated, no KVM needed)`);
  const state = await bootAndRun(kernel, image, logs, timings);

  const after = names(state.after);
  const loaded = (state.hookLog?.results ?? []).filter((r) => r.status === 'loaded');
  const total = seconds(Date.now() - started);
  out('');
  if (state.problem) throw new DemoError(state.problem, EXIT.failed);
  if (state.before || !after.includes('ip_vs') || !after.includes('ip_vs_wrr')) {
    throw new DemoError(
      `lsmod did not show ip_vs and ip_vs_wrr loaded by the container's hook (logs: ${logs})`,
      EXIT.failed,
    );
  }
  out(
    `Done: the hook loaded ${loaded.map((r) => r.name).join(', ')} into the guest's kernel ` +
      `before the container started.`,
  );
  out(
    `${total} in all: fetching ${seconds(timings.fetch)}, image ${seconds(timings.image)}, ` +
      `boot ${seconds(timings.boot ?? 0)}, running ${seconds(timings.run ?? 0)}. Logs: ${logs}`,
  );
  return EXIT.ok;
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    // Each child leads its own process group (qemu under timeout(1) has another): stop all.
    if (current) {
      try {
        process.kill(-current.pid, 'SIGTERM');
      } catch {
        current.kill('SIGTERM');
      }
    }
    process.exit(128 + os.constants.signals[signal]);
  });
}

main(process.argv.slice(2)).then(
  (status) => process.exit(status),
  (error) => {
    if (error instanceof DemoError) {
      process.stderr.write(`kmodload demo: ${error.message}\n`);
      process.exit(error.status);
    }
    process.stderr.write(`kmodload demo: ${error && error.message ? error.message : error}\n`);
    process.exit(EXIT.internal);
  },
);
