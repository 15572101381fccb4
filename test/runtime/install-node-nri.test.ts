// `kmodload install-node --nri`: the plugin containerd starts itself, into a temporary root
// (files, modes, its configuration, a re-run, the uninstall's order), then the installed plugin
// run as containerd runs it (no PATH, its socket on fd 3, the configuration's flags handed over
// in Configure), and what `kmodload doctor` says about NRI on such a node.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/container/audit';
import { EXIT } from '../../src/errors';
import { RuntimeConnection, asking } from '../helpers/nri-runtime';
import { type Fixture, type Installation, removeScratch, setUpInstallation } from './harness';

let scratch: string;
let fixture: Fixture;
let kmodload: Installation;

beforeAll(() => {
  ({ scratch, fixture, kmodload } = setUpInstallation('install-node-nri'));
}, 120_000);
afterAll(() => removeScratch(scratch));

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [kmodload.cli, ...args], { encoding: 'utf8' });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** Every file under `dir`, relative, with its mode, sorted (the package's lib/ counted as one,
 *  without a mode: the umask makes it). */
function files(dir: string): string[] {
  const found: string[] = [];
  const walk = (sub: string): void => {
    for (const entry of fs.readdirSync(path.join(dir, sub), { withFileTypes: true })) {
      const rel = path.join(sub, entry.name);
      const mode = (fs.statSync(path.join(dir, rel)).mode & 0o777).toString(8);
      if (rel.endsWith('kmodload/lib')) found.push(rel);
      else if (entry.isDirectory()) walk(rel);
      else found.push(`${rel} ${mode}`);
    }
  };
  walk('');
  return found.sort();
}

const ENABLE =
  'containerd 1.7: [plugins."io.containerd.nri.v1.nri"] disable = false in config.toml; CRI-O: [crio.nri] enable_nri = true';

describe('kmodload install-node --nri', () => {
  it('installs the plugin and its flags into a root, idempotently, and uninstalls', () => {
    const root = path.join(scratch, 'root');
    const policy = path.join(scratch, 'policy.conf');
    fs.writeFileSync(policy, 'default deny\nallow ip_vs*\n');
    const args = ['install-node', '--nri', '--root', root, '--policy', policy, '--unload-on-stop'];
    const installed = cli([...args, '-d', '/srv/tree', '-S', '6.1.0-test', '-C', '/srv/m', '-n']);
    expect(installed).toEqual({
      status: 0,
      stdout:
        `installed /opt/nri/plugins/10-kmodload and /etc/nri/conf.d/10-kmodload.conf under ${root}\n` +
        `the runtime starts the plugin when it starts: restart it (NRI enabled: ${ENABLE})\n`,
      stderr: '',
    });
    expect(files(root)).toEqual([
      'etc/kmodload/policy.conf 644',
      'etc/nri/conf.d/10-kmodload.conf 644',
      'opt/nri/plugins/10-kmodload 755',
      'usr/local/libexec/kmodload/lib',
      'usr/local/libexec/kmodload/node 755',
    ]);
    expect(fs.readFileSync(path.join(root, 'opt/nri/plugins/10-kmodload'), 'utf8')).toBe(
      [
        '#!/bin/sh',
        '# kmodload NRI plugin, written by `kmodload install-node --nri`: the runtime starts it.',
        '# Runtimes start hooks with the environment of their entry, often empty (no PATH),',
        '# so node and the CLI are named by absolute path.',
        "exec '/usr/local/libexec/kmodload/node' '--max-semi-space-size=1' '/usr/local/libexec/kmodload/lib/bin/kmodload.js' \"$@\"",
        '',
      ].join('\n'),
    );
    expect(fs.readFileSync(path.join(root, 'etc/nri/conf.d/10-kmodload.conf'), 'utf8')).toBe(
      [
        '# Flags of the kmodload NRI plugin (see kmodload nri --help), written by',
        '# `kmodload install-node --nri`. The runtime reads this file when it starts the plugin,',
        '# /opt/nri/plugins/10-kmodload, and hands it over: restart the runtime after an edit.',
        "# Blank-separated; '#' starts a comment.",
        '--policy /etc/kmodload/policy.conf',
        '--log /var/log/kmodload/nri.log',
        '--unload-on-stop',
        '-d /srv/tree',
        '-S 6.1.0-test',
        '-C /srv/m',
        '--dry-run',
        '',
      ].join('\n'),
    );
    expect(fs.readFileSync(path.join(root, 'etc/kmodload/policy.conf'), 'utf8')).toBe(
      'default deny\nallow ip_vs*\n',
    );

    // A re-run replaces everything and leaves nothing else (no temporary names).
    const before = files(root);
    expect(cli([...args, '-d', '/srv/tree', '-S', '6.1.0-test', '-C', '/srv/m', '-n']).status).toBe(
      0,
    );
    expect(files(root)).toEqual(before);
    // Other flags, another index and directories: the configuration says only what was given.
    const otherRoot = path.join(scratch, 'other-root');
    const elsewhere = ['--root', otherRoot, '--nri-idx', '42', '--nri-plugins', '/usr/lib/nri'];
    elsewhere.push('--nri-conf', '/etc/nri/other');
    expect(cli(['install-node', '--nri', ...elsewhere, '--log', 'none']).status).toBe(0);
    expect(files(otherRoot)).toEqual([
      'etc/nri/other/42-kmodload.conf 644',
      'usr/lib/nri/42-kmodload 755',
      'usr/local/libexec/kmodload/lib',
      'usr/local/libexec/kmodload/node 755',
    ]);
    expect(fs.readFileSync(path.join(otherRoot, 'etc/nri/other/42-kmodload.conf'), 'utf8')).toMatch(
      /^(#.*\n){4}$/,
    );
    expect(cli(['install-node', '--nri', ...elsewhere, '--uninstall']).status).toBe(0);
    expect(files(otherRoot)).toEqual([]);

    // The configuration cannot go: the plugin is gone already, LIBEXEC is still there.
    const conf = path.join(root, 'etc/nri/conf.d/10-kmodload.conf');
    fs.rmSync(conf);
    fs.mkdirSync(conf);
    fs.writeFileSync(path.join(conf, 'x'), '');
    const stuck = cli(['install-node', '--nri', '--root', root, '--uninstall']);
    expect(stuck.status).toBe(EXIT.environment);
    expect(stuck.stderr).toMatch(/^kmodload: cannot uninstall: .*10-kmodload\.conf.*\n$/);
    expect(fs.existsSync(path.join(root, 'opt/nri/plugins/10-kmodload'))).toBe(false);
    expect(fs.existsSync(path.join(root, 'usr/local/libexec/kmodload/node'))).toBe(true);
    // Then it goes, and LIBEXEC after it; the policy stays.
    fs.rmSync(conf, { recursive: true });
    const removed = cli(['install-node', '--nri', '--root', root, '--uninstall']);
    expect(removed.stdout).toBe(
      'removed /opt/nri/plugins/10-kmodload, /etc/nri/conf.d/10-kmodload.conf and /usr/local/libexec/kmodload; a plugin the runtime started runs until the runtime restarts\n',
    );
    expect(files(root)).toEqual(['etc/kmodload/policy.conf 644']);
    expect(cli(['install-node', '--nri', '--root', root, '--uninstall']).status).toBe(0);
  });

  it('a single executable is installed as the plugin itself, without LIBEXEC', () => {
    // Anything that answers --version as kmodload does passes the check; what is copied is
    // compared byte for byte.
    const binary = path.join(scratch, 'kmodload-binary');
    fs.writeFileSync(binary, '#!/bin/sh\necho "kmodload 0.1.0"\n', { mode: 0o700 });
    const root = path.join(scratch, 'binary-root');
    const run = cli(['install-node', '--nri', '--binary', binary, '--root', root]);
    expect([run.status, run.stderr]).toEqual([0, '']);
    expect(files(root)).toEqual([
      'etc/nri/conf.d/10-kmodload.conf 644',
      'opt/nri/plugins/10-kmodload 755',
    ]);
    expect(fs.readFileSync(path.join(root, 'opt/nri/plugins/10-kmodload'))).toEqual(
      fs.readFileSync(binary),
    );
    expect(fs.readFileSync(path.join(root, 'etc/nri/conf.d/10-kmodload.conf'), 'utf8')).toMatch(
      /\n--log \/var\/log\/kmodload\/nri\.log\n$/,
    );
  });

  it('refuses what it cannot install, in one line, writing nothing', () => {
    const root = path.join(scratch, 'refused-root');
    const notKmodload = path.join(scratch, 'not-kmodload');
    fs.writeFileSync(notKmodload, '#!/bin/sh\necho hello\n', { mode: 0o755 });
    for (const [args, status, message] of [
      [['--nri', '--always'], 2, '--always is for the hook, not with --nri'],
      [['--nri', '--hooks-dir', '/etc/x'], 2, '--hooks-dir is for the hook, not with --nri'],
      [['--nri-idx', '11'], 2, '--nri-idx needs --nri'],
      [['--binary', notKmodload], 2, '--binary needs --nri'],
      [['--nri', '--nri-idx', '7'], 2, "--nri-idx '7': two digits"],
      [['--nri', '--nri-plugins', 'plugins'], 2, '--nri-plugins must be an absolute path'],
      [['--nri', '--log', '/var/log/a b'], 2, '--log "/var/log/a b": the NRI configuration'],
      [['--nri', '-S', '#1'], 2, '-S "#1": the NRI configuration'],
      [['--nri', '--binary', notKmodload], 4, `--binary ${notKmodload} is not a kmodload`],
    ] as const) {
      const run = cli(['install-node', '--root', root, ...args]);
      expect([run.status, run.stdout]).toEqual([status, '']);
      expect(run.stderr).toContain(`kmodload: ${message}`);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(fs.existsSync(root)).toBe(false);
  });

  it('the installed plugin, started as containerd starts it, registers and decides with its configuration', async () => {
    // Host paths that are this machine's, so that the wrapper's absolute paths hold.
    const libexec = path.join(scratch, 'host', 'libexec');
    const plugins = path.join(scratch, 'host', 'plugins');
    const confDir = path.join(scratch, 'host', 'conf.d');
    const log = path.join(scratch, 'host', 'nri.log');
    const modprobeD = path.join(scratch, 'host', 'modprobe.d');
    fs.mkdirSync(modprobeD, { recursive: true });
    const installed = cli([
      ...['install-node', '--nri', '--nri-idx', '42', '--libexec', libexec],
      ...['--nri-plugins', plugins, '--nri-conf', confDir, '--log', log],
      ...['-d', fixture.root, '-S', fixture.version, '-C', modprobeD, '-n'],
    ]);
    expect([installed.status, installed.stderr]).toEqual([0, '']);

    // What containerd does: a socket pair, the peer on fd 3, three variables and nothing
    // else, no arguments; then the configuration file's content in Configure.
    const child = spawn(path.join(plugins, '42-kmodload'), [], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
      env: { NRI_PLUGIN_NAME: 'kmodload', NRI_PLUGIN_IDX: '42', NRI_PLUGIN_SOCKET: '3' },
    });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      const conn = new RuntimeConnection(child.stdio[3] as net.Socket);
      expect(await conn.registered).toEqual({ name: 'kmodload', idx: '42' });
      const config = fs.readFileSync(path.join(confDir, '42-kmodload.conf'), 'utf8');
      expect(await conn.configure('containerd', '1.7.24', config)).toBe(0x608);
      const pod = { id: 'p', name: 'lb', namespace: 'default' };
      await conn.createContainer(pod, asking('c1', 'ip_vs,ip_vs_wrr'));
      await expect(conn.createContainer(pod, asking('c2', 'no_such_module'))).rejects.toThrow(
        /^kmodload: cannot load no_such_module: /,
      );
      conn.socket.end();
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
    expect(stderr).toMatch(/^kmodload: nri: registered with containerd 1\.7\.24 as 42-kmodload\n/);
    // The configuration's flags: the log file, the dry run, the tree given by -d and -S.
    const records = fs
      .readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as AuditRecord);
    expect(records.map((r) => [r.id, r.stage, r.exitStatus, r.dryRun])).toEqual([
      ['c1', 'CreateContainer', 0, true],
      ['c2', 'CreateContainer', EXIT.refused, true],
    ]);
    expect(records[0]?.plan.map((step) => step.path)).toContain(
      path.join(fixture.moduleDir, 'kernel/net/netfilter/ipvs/ip_vs_wrr.ko'),
    );

    // doctor on this node: the plugin runs and its flags are ones it takes.
    const hooksDir = path.join(scratch, 'host', 'hooks.d');
    fs.mkdirSync(hooksDir);
    const socketPath = path.join(scratch, 'host', 'nri.sock');
    const doctor = () =>
      cli([
        ...['doctor', '--hooks-dir', hooksDir, '--nri-socket', socketPath],
        ...['--nri-plugins', plugins, '--nri-conf', confDir],
      ]).stdout.split('\n');
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    try {
      const lines = doctor();
      expect(lines).toContain('ok   hook configurations: none (the NRI plugin serves)');
      expect(lines).toContain(`ok   nri socket: ${socketPath} is a socket: a runtime offers NRI`);
      expect(lines).toContain(
        `ok   nri plugin ${plugins}/42-kmodload: runs, with its flags from ${confDir}/42-kmodload.conf`,
      );
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    // A configuration the plugin would refuse, and a file containerd would choke on.
    fs.appendFileSync(path.join(confDir, '42-kmodload.conf'), '--bogus\n');
    fs.writeFileSync(path.join(plugins, 'kmodload-old'), '#!/bin/sh\n', { mode: 0o755 });
    const lines = doctor();
    expect(lines).toContain(
      `warn nri socket: ${socketPath} does not exist: no runtime offers NRI here (${ENABLE}); the hook does not need it`,
    );
    expect(lines).toContain(
      `fail nri plugin ${plugins}/42-kmodload: ${confDir}/42-kmodload.conf: unknown option '--bogus' (see kmodload nri --help): the plugin refuses to register`,
    );
    expect(lines).toContain(
      `fail nri plugin ${plugins}/kmodload-old: not named NN-NAME: containerd starts no plugin of ${plugins}`,
    );
  });

  it('doctor on a node without NRI only warns', () => {
    const none = path.join(scratch, 'no-nri');
    const run = cli([
      ...['doctor', '--json', '--nri-socket', path.join(none, 'nri.sock')],
      ...['--nri-plugins', path.join(none, 'plugins'), '--nri-conf', path.join(none, 'conf.d')],
    ]);
    const checks = (JSON.parse(run.stdout) as { checks: { name: string; level: string }[] }).checks;
    expect(checks.filter((check) => check.name.startsWith('nri'))).toEqual([
      expect.objectContaining({ name: 'nri socket', level: 'warn' }),
      expect.objectContaining({ name: 'nri plugin', level: 'ok' }),
    ]);
  });
});
