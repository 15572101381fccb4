import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/errors';
import { DEFAULT_HOOK_LOG } from '../../src/container/audit';
import { runHookConfigCommand } from '../../src/cli/hook-command';
import {
  DEFAULT_WRAPPER_PATH,
  HOOK_CONFIG_FORMATS,
  defaultCliPath,
  formatHookConfig,
  hookConfig,
  installWrapper,
  wrapperScript,
} from '../../src/hook/config';
import { KERNEL_MODULES_ANNOTATION } from '../../src/container/request';
import { memoryIO } from '../helpers/cli-io';

const repo = path.resolve(__dirname, '..', '..');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-config-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

function readExample(name: string): unknown {
  return JSON.parse(fs.readFileSync(path.join(repo, 'examples', name), 'utf8'));
}

async function run(argv: string[]) {
  const streams = memoryIO();
  const status = await runHookConfigCommand(argv, streams.io);
  return { status, out: streams.out(), err: streams.err() };
}

describe('hook configurations', () => {
  it('the shipped examples are what the generator prints by default', async () => {
    // The CLI adds the audit log unless told --log none.
    const logged = { extraArgs: ['--log', DEFAULT_HOOK_LOG] };
    expect(readExample('hookspec.json')).toEqual(hookConfig('isulad', logged));
    expect(readExample('oci-hooks.json')).toEqual(hookConfig('oci', logged));
    expect(readExample('hooks.d/kmodload.json')).toEqual(hookConfig('hooks.d', logged));
    expect(readExample('hooks.d/kmodload-poststop.json')).toEqual(
      hookConfig('hooks.d-poststop', { ...logged, unloadOnStop: true }),
    );
    const printed = await run(['--format', 'hooks.d']);
    expect(printed.status).toBe(0);
    expect(JSON.parse(printed.out)).toEqual(readExample('hooks.d/kmodload.json'));
  });

  it('iSulad: prestart, poststart and poststop with the original argv shape', () => {
    const spec = hookConfig('isulad') as Record<string, Array<Record<string, unknown>>>;
    expect(Object.keys(spec)).toEqual(['prestart', 'poststart', 'poststop']);
    for (const [stage, entries] of Object.entries(spec)) {
      expect(entries).toEqual([
        {
          path: DEFAULT_WRAPPER_PATH,
          args: ['kmodload', 'hook', '--state', stage],
          env: [],
          // Always explicit: lcr's own default, then SIGKILL.
          timeout: 30,
        },
      ]);
    }
  });

  it('hook-config --format isulad refuses a hook path iSulad would refuse', async () => {
    const missing = await run(['--format', 'isulad', '--wrapper', path.join(scratch, 'nope')]);
    expect(missing.status).toBe(EXIT.environment);
    expect(missing.err).toBe(
      `kmodload: iSulad would refuse the hook: ${path.join(scratch, 'nope')} does not exist (create it with --install-wrapper ${path.join(scratch, 'nope')})\n`,
    );
    const open = path.join(scratch, 'world-writable');
    fs.writeFileSync(open, '#!/bin/sh\n');
    fs.chmodSync(open, 0o777);
    const writable = await run(['--format', 'isulad', '--wrapper', open]);
    expect([writable.status, writable.out]).toEqual([EXIT.environment, '']);
    expect(writable.err).toContain(`${open} is world-writable`);
    fs.chownSync(open, 1000, 1000);
    fs.chmodSync(open, 0o755);
    expect((await run(['--format', 'isulad', '--wrapper', open])).err).toContain(
      'is owned by uid 1000, not root',
    );
    // The other runtimes do not check: a note only.
    expect((await run(['--format', 'oci', '--wrapper', open])).status).toBe(0);
  });

  it('--binary names the single executable, with no wrapper (and never writes one)', async () => {
    const missing = path.join(scratch, 'kmodload-binary');
    const refused = await run(['--format', 'isulad', '--binary', missing]);
    expect(refused.status).toBe(EXIT.environment);
    expect(refused.err).toBe(
      `kmodload: iSulad would refuse the hook: ${missing} does not exist (copy build/kmodload, made by npm run build:binary, to ${missing})\n`,
    );
    const oci = await run(['--format', 'oci', '--binary', missing, '--log', 'none']);
    expect(oci.status).toBe(0);
    expect(oci.err).toBe(
      `kmodload: note: ${missing} does not exist yet; copy build/kmodload, made by npm run build:binary, to ${missing}\n`,
    );
    expect(JSON.parse(oci.out)).toEqual(hookConfig('oci', { wrapperPath: missing }));
    expect(fs.existsSync(missing)).toBe(false);
    const both = await run(['--binary', missing, '--install-wrapper', missing]);
    expect(both.status).toBe(EXIT.usage);
    expect(both.err).toBe(
      'kmodload: --binary and --install-wrapper exclude each other (see kmodload hook-config --help)\n',
    );
    expect(fs.existsSync(missing)).toBe(false);
  });

  it('hooks.d: version 1.0.0, selected by the annotation, prestart', () => {
    const file = hookConfig('hooks.d') as {
      version: string;
      when: { annotations: Record<string, string> };
      stages: string[];
    };
    expect(file.version).toBe('1.0.0');
    expect(file.stages).toEqual(['prestart']);
    const [[key, value]] = Object.entries(file.when.annotations) as [[string, string]];
    // The patterns are Go regexps; these ones mean the same in JavaScript.
    expect(new RegExp(key).test(KERNEL_MODULES_ANNOTATION)).toBe(true);
    expect(new RegExp(key).test('org.kmodload.kernel-modulesX')).toBe(false);
    expect(new RegExp(key).test('orgXkmodload.kernel-modules')).toBe(false);
    expect(new RegExp(`^(?:${value})$`).test('ip_vs')).toBe(true);
    expect(new RegExp(`^(?:${value})$`).test('')).toBe(false);
    expect(hookConfig('hooks.d', { always: true })).toMatchObject({ when: { always: true } });
  });

  it('puts loader options, absolute, into every entry', async () => {
    const printed = await run([
      '--format',
      'oci',
      '--wrapper',
      '/opt/k/hook',
      '--log',
      'rel/hook.log',
      '-d',
      '/trees/6.1',
      '-S',
      '6.1.0-56-amd64',
      '-C',
      'conf.d',
      '-n',
      '--timeout',
      '30',
    ]);
    expect(printed.status).toBe(0);
    expect(printed.err).toBe(
      'kmodload: note: /opt/k/hook does not exist yet; create it with --install-wrapper /opt/k/hook\n',
    );
    const config = JSON.parse(printed.out) as { hooks: Record<string, unknown> };
    expect(Object.keys(config.hooks)).toEqual(['createRuntime', 'poststop']);
    expect(config.hooks['createRuntime']).toEqual([
      {
        path: '/opt/k/hook',
        args: [
          'kmodload',
          'hook',
          '--state',
          'createRuntime',
          '--log',
          path.resolve('rel/hook.log'),
          '-d',
          '/trees/6.1',
          '-S',
          '6.1.0-56-amd64',
          '-C',
          path.resolve('conf.d'),
          '--dry-run',
        ],
        env: [],
        timeout: 30,
      },
    ]);
  });

  it('bad options: exit 2, one line, nothing printed', async () => {
    for (const argv of [
      ['--format', 'docker'],
      ['--timeout', '0'],
      ['--timeout', '1.5'],
      ['--wrapper'],
      ['--state', 'prestart'],
    ]) {
      const printed = await run(argv);
      expect(printed.status).toBe(EXIT.usage);
      expect(printed.out).toBe('');
      expect(printed.err).toMatch(/^kmodload: [^\n]+\n$/);
    }
  });

  it('formats as two-space JSON with a final newline', () => {
    expect(formatHookConfig('isulad')).toBe(`${JSON.stringify(hookConfig('isulad'), null, 2)}\n`);
  });
});

describe('the hook wrapper', () => {
  it('names node and the CLI by absolute path, quoted for sh', () => {
    expect(wrapperScript({ nodePath: "/opt/no'de/node", cliPath: '/a b/kmodload.js' })).toBe(
      [
        '#!/bin/sh',
        '# kmodload OCI hook, written by `kmodload hook-config --install-wrapper`.',
        '# Runtimes start hooks with the environment of their entry, often empty (no PATH),',
        '# so node and the CLI are named by absolute path.',
        `exec '/opt/no'\\''de/node' '/a b/kmodload.js' "$@"`,
        '',
      ].join('\n'),
    );
    expect(wrapperScript()).toContain(`exec '${process.execPath}' '${defaultCliPath()}' "$@"`);
    expect(defaultCliPath()).toBe(path.join(repo, 'bin', 'kmodload.js'));
  });

  it('is installed root-owned 0755 and runs with an empty environment', () => {
    // A stand-in CLI that shows what the wrapper hands it.
    const cli = path.join(scratch, 'show-args.js');
    fs.writeFileSync(
      cli,
      'process.stdout.write(JSON.stringify([process.argv.slice(2), process.env]));',
    );
    const wrapper = path.join(scratch, 'libexec', 'kmodload', 'kmodload-hook');
    installWrapper(wrapper, { cliPath: cli });
    installWrapper(wrapper, { cliPath: cli }); // replacing an existing one works too
    const stat = fs.statSync(wrapper);
    expect(stat.mode & 0o7777).toBe(0o755);
    expect(stat.uid).toBe(0);
    expect(stat.gid).toBe(0);
    expect(fs.statSync(path.dirname(wrapper)).mode & 0o777).toBe(0o755);
    expect(fs.readdirSync(path.dirname(wrapper))).toEqual(['kmodload-hook']);
    const output = execFileSync(wrapper, ['hook', '--state', 'prestart', 'a b'], {
      env: {},
      encoding: 'utf8',
    });
    const [args, env] = JSON.parse(output) as [string[], Record<string, string>];
    expect(args).toEqual(['hook', '--state', 'prestart', 'a b']);
    expect(env['PATH']).toBeUndefined();
  });

  it('--install-wrapper writes it and names it in the config', async () => {
    const wrapper = path.join(scratch, 'w2', 'hook');
    const printed = await run(['--format', 'isulad', '--install-wrapper', wrapper]);
    expect(printed.status).toBe(0);
    expect(printed.err).toBe('');
    expect(fs.readFileSync(wrapper, 'utf8')).toContain(`'${defaultCliPath()}' "$@"`);
    expect(JSON.parse(printed.out)).toEqual(
      hookConfig('isulad', { wrapperPath: wrapper, extraArgs: ['--log', DEFAULT_HOOK_LOG] }),
    );
  });

  it('--unload-on-stop goes to the poststop entry only; hooks.d has a poststop file for it', async () => {
    const isulad = await run([
      '--format',
      'isulad',
      '--install-wrapper',
      path.join(scratch, 'w3', 'hook'),
      '--log',
      'none',
      '--unload-on-stop',
      '--state-dir',
      '/run/k',
    ]);
    const spec = JSON.parse(isulad.out) as Record<string, Array<{ args: string[] }>>;
    expect(spec['prestart']?.[0]?.args).toEqual([
      'kmodload',
      'hook',
      '--state',
      'prestart',
      '--state-dir',
      '/run/k',
    ]);
    expect(spec['poststop']?.[0]?.args).toEqual([
      'kmodload',
      'hook',
      '--state',
      'poststop',
      '--state-dir',
      '/run/k',
      '--unload-on-stop',
    ]);
    // One hooks.d file cannot name two stages: the poststop entry has a file of its own.
    const both = await run(['--format', 'hooks.d', '--log', 'none', '--unload-on-stop']);
    expect([both.status, both.out]).toEqual([EXIT.usage, '']);
    expect(both.err).toMatch(/--format hooks\.d-poststop --unload-on-stop/);
    const prestart = JSON.parse((await run(['--format', 'hooks.d', '--log', 'none'])).out) as {
      hook: { args: string[] };
      stages: string[];
    };
    expect(prestart.hook.args).toEqual(['kmodload', 'hook', '--state', 'prestart']);
    expect(prestart.stages).toEqual(['prestart']);
    const poststop = JSON.parse(
      (await run(['--format', 'hooks.d-poststop', '--log', 'none', '--unload-on-stop'])).out,
    ) as { hook: { args: string[] }; stages: string[] };
    expect(poststop.hook.args).toEqual([
      'kmodload',
      'hook',
      '--state',
      'poststop',
      '--unload-on-stop',
    ]);
    expect(poststop.stages).toEqual(['poststop']);
  });

  it('every entry of every format names its stage (crun sends "created" before the start)', () => {
    for (const format of HOOK_CONFIG_FORMATS) {
      const config = JSON.stringify(hookConfig(format, { unloadOnStop: true }));
      const entries = [...config.matchAll(/"args":\[([^\]]*)\]/g)].map((m) => m[1] as string);
      expect(entries.length).toBeGreaterThan(0);
      for (const args of entries) expect(args).toMatch(/"--state","[a-zA-Z]+"/);
    }
  });

  it('--log none leaves the log out; --policy files are passed to every entry', async () => {
    const printed = await run(['--format', 'oci', '--log', 'none', '--policy', 'p.conf']);
    expect(printed.status).toBe(0);
    const policy = path.resolve('p.conf');
    expect(JSON.parse(printed.out)).toEqual(hookConfig('oci', { extraArgs: ['--policy', policy] }));
  });

  it('a wrapper that cannot be written: exit 4, one line', async () => {
    fs.writeFileSync(path.join(scratch, 'file'), '');
    const printed = await run(['--install-wrapper', path.join(scratch, 'file', 'hook')]);
    expect(printed.status).toBe(EXIT.environment);
    expect(printed.out).toBe('');
    expect(printed.err).toMatch(
      /^kmodload: cannot install the hook wrapper .*file\/hook: E[A-Z]+: /,
    );
  });
});
