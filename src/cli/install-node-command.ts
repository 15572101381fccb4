// `kmodload install-node`: puts kmodload on a node, either as the hook for CRI-O and podman
// (hooks.d), the way the Kubernetes DaemonSet in deploy/kubernetes runs it with the host's
// directories mounted under --root, or with --nri as a plugin that containerd (or CRI-O)
// starts itself. Idempotent: every file is replaced atomically, so a re-run (an upgrade) never
// leaves a runtime a half-written file; --uninstall removes what the runtime reads first, so
// that it stops calling kmodload before the rest goes.
//
// Host layout (paths as the host sees them; written under --root):
//   LIBEXEC/node            this Node.js binary
//   LIBEXEC/lib/            this package: bin/, dist/, the addon, package.json
//   LIBEXEC/kmodload-hook   the wrapper the hooks.d file names
//   HOOKS_DIR/kmodload.json the hooks.d file (CRI-O picks it up without a restart)
//   HOOKS_DIR/kmodload-poststop.json  with --unload-on-stop: the poststop entry (a hooks.d
//                           entry names one stage; one file has one entry)
//   /etc/kmodload/policy.conf  the host policy, when --policy gives one
// With --nri, instead of the last three:
//   PLUGINS/NN-kmodload     the plugin: a wrapper running LIBEXEC's node and package, or the
//                           single executable itself (then LIBEXEC is not needed)
//   CONF/NN-kmodload.conf   its flags, which the runtime hands it when it starts it

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { EXIT, KmodloadError } from '../errors';
import { DEFAULT_HOOK_LOG } from '../container/audit';
import { loaderArguments } from './hook-command';
import { formatHookConfig, installWrapper, wrapperScript } from '../hook/config';
import { defaultAddonPath } from '../native/addon';
import { packageRoot } from '../package-root';
import { DEFAULT_POLICY_FILE } from '../policy/types';
import { errorText, oneLine } from '../text';
import type { OptionSpec, ParsedArgs } from './args';
import { allValues, flag, lastValue, parseArgs, usageError } from './args';
import { TREE_SPECS } from './common';
import type { CliIO } from './io';
import {
  DEFAULT_PLUGIN_NAME,
  ENABLE_NRI,
  NRI_CONF_DIR,
  NRI_PLUGIN_DIR,
  PLUGIN_IDX,
} from './nri-command';

export const DEFAULT_LIBEXEC = '/usr/local/libexec/kmodload';
export const DEFAULT_HOOKS_DIR = '/etc/containers/oci/hooks.d';
/** The plugin's log unless --log says otherwise: a runtime discards what the plugins it
 *  starts write to stderr. */
export const DEFAULT_NRI_LOG = '/var/log/kmodload/nri.log';
export const DEFAULT_NRI_IDX = '10';
const HOOKS_FILE = 'kmodload.json';
const POSTSTOP_HOOKS_FILE = 'kmodload-poststop.json';
const COMMAND = 'install-node';

const NRI_ONLY = ['nri-idx', 'nri-plugins', 'nri-conf', 'binary'];
const HOOK_ONLY = ['hooks-dir', 'always'];

const SPECS: OptionSpec[] = [
  { long: 'root', value: true },
  { long: 'libexec', value: true },
  { long: 'hooks-dir', value: true },
  { long: 'policy', value: true },
  { long: 'log', value: true },
  { long: 'unload-on-stop' },
  { long: 'always' },
  { long: 'uninstall' },
  { long: 'nri' },
  { long: 'nri-idx', value: true },
  { long: 'nri-plugins', value: true },
  { long: 'nri-conf', value: true },
  { long: 'binary', value: true },
  ...TREE_SPECS,
  { long: 'dry-run', short: 'n' },
  { long: 'help', short: 'h' },
];

/** Where everything goes: host paths, and where they are written (under --root). */
interface Target {
  root: string;
  libexec: string;
  onHost(hostPath: string): string;
}

function failure(what: string, error: unknown): KmodloadError {
  return new KmodloadError(`cannot ${what}: ${errorText(error)}`, EXIT.environment);
}

/**
 * Writes `content` to `file` atomically: into a private directory beside it, then renamed.
 * Never under a temporary name in the directory itself: containerd starts every executable
 * file of its plugin directory, and would take `10-kmodload.123.tmp` for a plugin.
 */
export function replaceFile(file: string, content: string | Buffer, mode: number): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const staging = fs.mkdtempSync(path.join(dir, '.kmodload-'));
  try {
    const temporary = path.join(staging, path.basename(file));
    fs.writeFileSync(temporary, content, { mode });
    fs.chmodSync(temporary, mode); // the umask may have taken bits away
    fs.renameSync(temporary, file);
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

/** Copies this package into `dir`, swapping the old copy out in one rename. */
function replacePackage(dir: string): void {
  const fresh = `${dir}.${process.pid}.new`;
  const old = `${dir}.${process.pid}.old`;
  fs.rmSync(fresh, { recursive: true, force: true });
  const from = packageRoot();
  // The addon this process would load: built from source or the prebuild.
  for (const part of ['bin', 'dist', 'package.json', path.relative(from, defaultAddonPath(from))]) {
    fs.cpSync(path.join(from, part), path.join(fresh, part), { recursive: true });
  }
  if (fs.existsSync(dir)) fs.renameSync(dir, old);
  fs.renameSync(fresh, dir);
  fs.rmSync(old, { recursive: true, force: true });
}

/** LIBEXEC/node and LIBEXEC/lib, which the hook's and the plugin's wrappers run. */
function installLibexec(target: Target): void {
  replaceFile(
    target.onHost(path.join(target.libexec, 'node')),
    fs.readFileSync(process.execPath),
    0o755,
  );
  replacePackage(target.onHost(path.join(target.libexec, 'lib')));
}

/** The wrapper's arguments: LIBEXEC's node and CLI, by their host paths. */
function libexecCommand(libexec: string): { nodePath: string; cliPath: string } {
  return {
    nodePath: path.join(libexec, 'node'),
    cliPath: path.join(libexec, 'lib', 'bin', 'kmodload.js'),
  };
}

function removeLibexec(target: Target): void {
  // What was installed, not the directory itself: it may be a mount point.
  for (const name of ['kmodload-hook', 'node', 'lib']) {
    fs.rmSync(target.onHost(path.join(target.libexec, name)), { recursive: true, force: true });
  }
  try {
    fs.rmdirSync(target.onHost(target.libexec));
  } catch {
    // not empty, or a mount point: left as it is
  }
}

/** The policy files' content, checked: a broken policy must not reach the node. */
async function checkedPolicy(parsed: ParsedArgs): Promise<Buffer | undefined> {
  const policies = allValues(parsed, 'policy');
  if (policies.length === 0) return undefined;
  const { readPolicy } = await import('../policy/read.js');
  await readPolicy(policies);
  return Buffer.concat(policies.map((file) => fs.readFileSync(file)));
}

function absolute(option: string, value: string): string {
  if (!path.isAbsolute(value)) {
    throw usageError(`${option} must be an absolute path on the host`, COMMAND);
  }
  return value;
}

export async function runInstallNodeCommand(argv: string[], io: CliIO): Promise<number> {
  const parsed = parseArgs(argv, SPECS, COMMAND);
  if (flag(parsed, 'help')) {
    io.stdout.write((await import('./help.js')).INSTALL_NODE_HELP);
    return EXIT.ok;
  }
  const extra = parsed.operands[0];
  if (extra !== undefined) throw usageError(`unexpected argument '${oneLine(extra)}'`, COMMAND);
  const nri = flag(parsed, 'nri');
  for (const name of nri ? HOOK_ONLY : NRI_ONLY) {
    if (parsed.options.has(name)) {
      throw usageError(
        nri ? `--${name} is for the hook, not with --nri` : `--${name} needs --nri`,
        COMMAND,
      );
    }
  }
  const root = path.resolve(lastValue(parsed, 'root') ?? '/');
  const target: Target = {
    root,
    libexec: absolute('--libexec', lastValue(parsed, 'libexec') ?? DEFAULT_LIBEXEC),
    onHost: (hostPath) => path.join(root, hostPath),
  };
  return nri ? installPlugin(parsed, target, io) : installHook(parsed, target, io);
}

async function installHook(parsed: ParsedArgs, target: Target, io: CliIO): Promise<number> {
  const { root, libexec, onHost } = target;
  const hooksDir = absolute('--hooks-dir', lastValue(parsed, 'hooks-dir') ?? DEFAULT_HOOKS_DIR);
  const hooksFile = path.join(hooksDir, HOOKS_FILE);
  const poststopFile = path.join(hooksDir, POSTSTOP_HOOKS_FILE);
  const unloadOnStop = flag(parsed, 'unload-on-stop');

  if (flag(parsed, 'uninstall')) {
    try {
      fs.rmSync(onHost(hooksFile), { force: true });
      fs.rmSync(onHost(poststopFile), { force: true });
      removeLibexec(target);
    } catch (error) {
      throw failure('uninstall', error);
    }
    io.stdout.write(`removed ${hooksFile}, ${poststopFile} and ${libexec}\n`);
    return EXIT.ok;
  }

  const policyText = await checkedPolicy(parsed);
  const wrapper = path.join(libexec, 'kmodload-hook');
  const log = lastValue(parsed, 'log') ?? DEFAULT_HOOK_LOG;
  // The loader's options go to the hook's arguments (a tree elsewhere, or a dry run).
  const hookArgs = [...(log === 'none' ? [] : ['--log', log]), ...loaderArguments(parsed)];
  try {
    installLibexec(target);
    installWrapper(onHost(wrapper), libexecCommand(libexec));
    if (policyText !== undefined) replaceFile(onHost(DEFAULT_POLICY_FILE), policyText, 0o644);
    // The hooks.d files last: runtimes see them only once everything they name is in place.
    const configOptions = {
      wrapperPath: wrapper,
      extraArgs: hookArgs,
      ...(unloadOnStop ? { unloadOnStop: true } : {}),
      ...(flag(parsed, 'always') ? { always: true } : {}),
    };
    if (unloadOnStop) {
      const poststop = formatHookConfig('hooks.d-poststop', configOptions);
      replaceFile(onHost(poststopFile), poststop, 0o644);
    } else {
      // Left by an install with --unload-on-stop.
      fs.rmSync(onHost(poststopFile), { force: true });
    }
    replaceFile(onHost(hooksFile), formatHookConfig('hooks.d', configOptions), 0o644);
  } catch (error) {
    if (error instanceof KmodloadError) throw error;
    throw failure(`install into ${root}`, error);
  }
  const files = unloadOnStop ? `${hooksFile} and ${poststopFile}` : hooksFile;
  io.stdout.write(`installed ${wrapper} and ${files}${root === '/' ? '' : ` under ${root}`}\n`);
  return EXIT.ok;
}

/** One word of the plugin's configuration, which the plugin splits at blanks and `#`. */
function configurationWord(option: string, value: string): string {
  if (value === '' || /\s/.test(value) || value.startsWith('#')) {
    throw usageError(
      `${option} ${JSON.stringify(oneLine(value))}: the NRI configuration cannot hold an empty value, a blank or a leading '#'`,
      COMMAND,
    );
  }
  return value;
}

/** The plugin's configuration file: `kmodload nri`'s node flags, one per line. */
function pluginConfiguration(parsed: ParsedArgs, pluginFile: string, withPolicy: boolean): string {
  const lines: string[] = [
    '# Flags of the kmodload NRI plugin (see kmodload nri --help), written by',
    '# `kmodload install-node --nri`. The runtime reads this file when it starts the plugin,',
    `# ${pluginFile}, and hands it over: restart the runtime after an edit.`,
    "# Blank-separated; '#' starts a comment.",
  ];
  // The policy as installed: named, so that a policy gone missing refuses every request.
  if (withPolicy) lines.push(`--policy ${DEFAULT_POLICY_FILE}`);
  const log = lastValue(parsed, 'log') ?? DEFAULT_NRI_LOG;
  if (log !== 'none') lines.push(`--log ${configurationWord('--log', path.resolve(log))}`);
  if (flag(parsed, 'unload-on-stop')) lines.push('--unload-on-stop');
  const loader = loaderArguments(parsed);
  for (let i = 0; i < loader.length; i++) {
    const option = loader[i] as string;
    if (option === '--dry-run') lines.push(option);
    else lines.push(`${option} ${configurationWord(option, loader[++i] as string)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The executable to install as the plugin, when it is a single executable (no wrapper). */
async function singleExecutable(parsed: ParsedArgs): Promise<string | undefined> {
  const given = lastValue(parsed, 'binary');
  if (given === undefined) {
    const { runningAsSingleExecutable } = await import('../native/embedded.js');
    return runningAsSingleExecutable() ? process.execPath : undefined;
  }
  const binary = path.resolve(given);
  // As the runtime will start it: no environment at all.
  const run = spawnSync(binary, ['--version'], { encoding: 'utf8', env: {}, timeout: 20_000 });
  if (run.status !== 0 || !run.stdout.startsWith('kmodload ')) {
    const why = run.error ? run.error.message : (run.stderr || run.stdout).split('\n')[0];
    throw new KmodloadError(
      `--binary ${binary} is not a kmodload executable (npm run build:binary makes one): ${oneLine(why ?? '')}`,
      EXIT.environment,
    );
  }
  return binary;
}

async function installPlugin(parsed: ParsedArgs, target: Target, io: CliIO): Promise<number> {
  const { root, libexec, onHost } = target;
  const idx = lastValue(parsed, 'nri-idx') ?? DEFAULT_NRI_IDX;
  if (!PLUGIN_IDX.test(idx)) throw usageError(`--nri-idx '${oneLine(idx)}': two digits`, COMMAND);
  const pluginsDir = absolute('--nri-plugins', lastValue(parsed, 'nri-plugins') ?? NRI_PLUGIN_DIR);
  const confDir = absolute('--nri-conf', lastValue(parsed, 'nri-conf') ?? NRI_CONF_DIR);
  const pluginFile = path.join(pluginsDir, `${idx}-${DEFAULT_PLUGIN_NAME}`);
  const confFile = path.join(confDir, `${idx}-${DEFAULT_PLUGIN_NAME}.conf`);

  if (flag(parsed, 'uninstall')) {
    try {
      fs.rmSync(onHost(pluginFile), { force: true });
      fs.rmSync(onHost(confFile), { force: true });
      removeLibexec(target);
    } catch (error) {
      throw failure('uninstall', error);
    }
    io.stdout.write(
      `removed ${pluginFile}, ${confFile} and ${libexec}; a plugin the runtime started runs until the runtime restarts\n`,
    );
    return EXIT.ok;
  }

  const policyText = await checkedPolicy(parsed);
  const configuration = pluginConfiguration(parsed, pluginFile, policyText !== undefined);
  const binary = await singleExecutable(parsed);
  try {
    if (binary === undefined) installLibexec(target);
    if (policyText !== undefined) replaceFile(onHost(DEFAULT_POLICY_FILE), policyText, 0o644);
    replaceFile(onHost(confFile), configuration, 0o644);
    // The plugin last: a runtime starting now finds everything it runs and its flags.
    const plugin =
      binary === undefined
        ? wrapperScript({
            ...libexecCommand(libexec),
            what: 'kmodload NRI plugin, written by `kmodload install-node --nri`: the runtime starts it.',
            // A resident process: a small young generation keeps its memory flat (V8 grows
            // it to tens of MiB over days otherwise).
            nodeArgs: ['--max-semi-space-size=1'],
          })
        : fs.readFileSync(binary);
    replaceFile(onHost(pluginFile), plugin, 0o755);
  } catch (error) {
    if (error instanceof KmodloadError) throw error;
    throw failure(`install into ${root}`, error);
  }
  io.stdout.write(
    `installed ${pluginFile} and ${confFile}${root === '/' ? '' : ` under ${root}`}\n` +
      `the runtime starts the plugin when it starts: restart it (NRI enabled: ${ENABLE_NRI})\n`,
  );
  return EXIT.ok;
}
