// `kmodload install-node`: puts the hook on a node, for CRI-O and podman (hooks.d), the way
// the Kubernetes DaemonSet in deploy/kubernetes runs it with the host's directories mounted
// under --root. Idempotent: every file is replaced atomically, so a re-run (an upgrade) never
// leaves a runtime a half-written hook; --uninstall removes the hooks.d file first, so that
// runtimes stop calling the hook before it goes.
//
// Host layout (paths as the host sees them; written under --root):
//   LIBEXEC/node            this Node.js binary
//   LIBEXEC/lib/            this package: bin/, dist/, the addon, package.json
//   LIBEXEC/kmodload-hook   the wrapper the hooks.d file names
//   HOOKS_DIR/kmodload.json the hooks.d file (CRI-O picks it up without a restart)
//   /etc/kmodload/policy.conf  the host policy, when --policy gives one

import fs from 'node:fs';
import path from 'node:path';
import { EXIT, KmodloadError } from '../errors';
import { DEFAULT_HOOK_LOG, loaderArguments } from './hook-command';
import { formatHookConfig, installWrapper } from '../hook/config';
import { defaultAddonPath } from '../native/addon';
import { packageRoot } from '../package-root';
import { DEFAULT_POLICY_FILE } from '../policy/types';
import { errorText } from '../text';
import type { OptionSpec } from './args';
import { allValues, flag, lastValue, parseArgs, usageError } from './args';
import { INSTALL_NODE_HELP } from './help';
import { TREE_SPECS } from './common';
import type { CliIO } from './io';

export const DEFAULT_LIBEXEC = '/usr/local/libexec/kmodload';
export const DEFAULT_HOOKS_DIR = '/etc/containers/oci/hooks.d';
const HOOKS_FILE = 'kmodload.json';

const SPECS: OptionSpec[] = [
  { long: 'root', value: true },
  { long: 'libexec', value: true },
  { long: 'hooks-dir', value: true },
  { long: 'policy', value: true },
  { long: 'log', value: true },
  { long: 'unload-on-stop' },
  { long: 'always' },
  { long: 'uninstall' },
  ...TREE_SPECS,
  { long: 'dry-run', short: 'n' },
  { long: 'help', short: 'h' },
];

function failure(what: string, error: unknown): KmodloadError {
  return new KmodloadError(`cannot ${what}: ${errorText(error)}`, EXIT.environment);
}

/** Writes `content` to `file` through a temporary file and a rename. */
function replaceFile(file: string, content: string | Buffer, mode: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, content, { mode });
  fs.chmodSync(temporary, mode);
  fs.renameSync(temporary, file);
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

export async function runInstallNodeCommand(argv: string[], io: CliIO): Promise<number> {
  const parsed = parseArgs(argv, SPECS, 'install-node');
  if (flag(parsed, 'help')) {
    io.stdout.write(INSTALL_NODE_HELP);
    return EXIT.ok;
  }
  const extra = parsed.operands[0];
  if (extra !== undefined) throw usageError(`unexpected argument '${extra}'`, 'install-node');
  const root = path.resolve(lastValue(parsed, 'root') ?? '/');
  const libexec = lastValue(parsed, 'libexec') ?? DEFAULT_LIBEXEC;
  const hooksDir = lastValue(parsed, 'hooks-dir') ?? DEFAULT_HOOKS_DIR;
  for (const [option, value] of [
    ['--libexec', libexec],
    ['--hooks-dir', hooksDir],
  ] as const) {
    if (!path.isAbsolute(value)) {
      throw usageError(`${option} must be an absolute path on the host`, 'install-node');
    }
  }
  const onHost = (hostPath: string): string => path.join(root, hostPath);
  const hooksFile = path.join(hooksDir, HOOKS_FILE);

  if (flag(parsed, 'uninstall')) {
    try {
      fs.rmSync(onHost(hooksFile), { force: true });
      // What was installed, not the directory itself: it may be a mount point.
      for (const name of ['kmodload-hook', 'node', 'lib']) {
        fs.rmSync(onHost(path.join(libexec, name)), { recursive: true, force: true });
      }
      try {
        fs.rmdirSync(onHost(libexec));
      } catch {
        // not empty, or a mount point: left as it is
      }
    } catch (error) {
      throw failure('uninstall', error);
    }
    io.stdout.write(`removed ${hooksFile} and ${libexec}\n`);
    return EXIT.ok;
  }

  // A policy is checked before anything is written: a broken one must not reach the node.
  const policies = allValues(parsed, 'policy');
  let policyText: Buffer | undefined;
  if (policies.length > 0) {
    const { readPolicy } = await import('../policy/read.js');
    await readPolicy(policies);
    policyText = Buffer.concat(policies.map((file) => fs.readFileSync(file)));
  }

  const wrapper = path.join(libexec, 'kmodload-hook');
  const log = lastValue(parsed, 'log') ?? DEFAULT_HOOK_LOG;
  // The loader's options go to the hook's arguments (a tree elsewhere, or a dry run).
  const hookArgs = [...(log === 'none' ? [] : ['--log', log]), ...loaderArguments(parsed)];
  try {
    replaceFile(onHost(path.join(libexec, 'node')), fs.readFileSync(process.execPath), 0o755);
    replacePackage(onHost(path.join(libexec, 'lib')));
    installWrapper(onHost(wrapper), {
      nodePath: path.join(libexec, 'node'),
      cliPath: path.join(libexec, 'lib', 'bin', 'kmodload.js'),
    });
    if (policyText !== undefined) replaceFile(onHost(DEFAULT_POLICY_FILE), policyText, 0o644);
    // The hooks.d file last: runtimes see it only once everything it names is in place.
    const config = formatHookConfig('hooks.d', {
      wrapperPath: wrapper,
      extraArgs: hookArgs,
      ...(flag(parsed, 'unload-on-stop') ? { unloadOnStop: true } : {}),
      ...(flag(parsed, 'always') ? { always: true } : {}),
    });
    replaceFile(onHost(hooksFile), config, 0o644);
  } catch (error) {
    if (error instanceof KmodloadError) throw error;
    throw failure(`install into ${root}`, error);
  }
  io.stdout.write(`installed ${wrapper} and ${hooksFile}${root === '/' ? '' : ` under ${root}`}\n`);
  return EXIT.ok;
}
