// Will this host load modules for containers, and if not, why: each check a typed finding,
// ok / warn / fail and the reason (`kmodload doctor` prints them).

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { errnoName } from '../errno';

export type CheckLevel = 'ok' | 'warn' | 'fail';

export interface Check {
  name: string;
  level: CheckLevel;
  reason: string;
}

/** Where iSulad's hook specs and the hooks.d directories usually are. */
const DEFAULT_HOOKSPECS = ['/etc/isulad-tools/hookspec.json', '/etc/isulad/hooks/default.json'];
const DEFAULT_HOOKS_DIRS = ['/usr/share/containers/oci/hooks.d', '/etc/containers/oci/hooks.d'];

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

async function kernelSupport(): Promise<Check> {
  const name = 'kernel module support';
  try {
    const { addon } = await import('../system.js');
    const errno = (await addon()).probeModuleSupport();
    const code = errno === 0 ? 'none' : errnoName(errno);
    if (code === 'EBADF') return { name, level: 'ok', reason: 'finit_module is available' };
    if (code === 'ENOSYS') {
      return {
        name,
        level: 'fail',
        reason: `the running kernel (${os.release()}) has no module support (finit_module: ENOSYS)`,
      };
    }
    if (code === 'EPERM') {
      return {
        name,
        level: 'fail',
        reason: 'finit_module: EPERM (run as root with CAP_SYS_MODULE; or modules are disabled)',
      };
    }
    return { name, level: 'warn', reason: `finit_module answered ${code}` };
  } catch (error) {
    return {
      name,
      level: 'fail',
      reason: `cannot load the native addon: ${String((error as Error).message)}`,
    };
  }
}

function modulesDisabled(): Check {
  const name = 'modules_disabled';
  const value = readText('/proc/sys/kernel/modules_disabled');
  if (value === undefined)
    return { name, level: 'ok', reason: 'not present (no module support or an old kernel)' };
  return value === '1'
    ? {
        name,
        level: 'fail',
        reason: '/proc/sys/kernel/modules_disabled is 1: no module can load until reboot',
      }
    : { name, level: 'ok', reason: 'modules may be loaded' };
}

function lockdown(): Check {
  const name = 'lockdown';
  const value = readText('/sys/kernel/security/lockdown');
  const active = value?.match(/\[([a-z]+)\]/)?.[1];
  if (active === undefined || active === 'none')
    return { name, level: 'ok', reason: active ? 'none' : 'not active' };
  return { name, level: 'warn', reason: `lockdown=${active}: only signed modules load` };
}

function signatures(): Check {
  const name = 'module signatures';
  const value = readText('/sys/module/module/parameters/sig_enforce');
  return value === 'Y'
    ? { name, level: 'warn', reason: 'module.sig_enforce=1: only correctly signed modules load' }
    : { name, level: 'ok', reason: 'not enforced' };
}

function moduleTree(moduleDir: string): Check[] {
  const name = 'module tree';
  if (!fs.existsSync(moduleDir))
    return [{ name, level: 'fail', reason: `${moduleDir} does not exist` }];
  const dep = path.join(moduleDir, 'modules.dep');
  const bin = path.join(moduleDir, 'modules.dep.bin');
  if (!fs.existsSync(dep))
    return [{ name, level: 'fail', reason: `${dep} is missing: run depmod` }];
  const checks: Check[] = [];
  if (!fs.existsSync(bin)) {
    checks.push({
      name,
      level: 'warn',
      reason: `${bin} is missing: the text files are read (slower)`,
    });
  } else if (fs.statSync(bin).mtimeMs < fs.statSync(dep).mtimeMs) {
    checks.push({ name, level: 'warn', reason: `${bin} is older than modules.dep: run depmod` });
  } else {
    checks.push({ name, level: 'ok', reason: `${moduleDir} with current indexes` });
  }
  // The tree's compression against the kernel's own decompression.
  const first = fs.readFileSync(dep, 'utf8').split('\n', 1)[0] ?? '';
  const ext = /\.ko\.(xz|zst|gz)\b/.exec(first)?.[1];
  const format = ext === 'zst' ? 'zstd' : ext === 'gz' ? 'gzip' : ext;
  const kernel = (readText('/sys/module/compression') ?? '').split(/\s+/).filter(Boolean);
  checks.push({
    name: 'compression',
    level: 'ok',
    reason:
      format === undefined
        ? 'modules are not compressed'
        : kernel.includes(format)
          ? `${format}: the kernel decompresses it`
          : `${format}: decompressed in user space (the kernel does not)`,
  });
  return checks;
}

async function modprobeConfig(moduleDir: string, configDirs: string[] | undefined): Promise<Check> {
  const name = 'modprobe.d';
  const { loadModprobeConfig } = await import('../config/index.js');
  try {
    const config = loadModprobeConfig({ moduleDir, strictConfig: true, configDirs });
    if (config.warnings.length > 0) {
      return {
        name,
        level: 'warn',
        reason: `${config.warnings.length} line(s) kmod ignores, first: ${config.warnings[0]}`,
      };
    }
    return { name, level: 'ok', reason: `${config.files.length} file(s) read` };
  } catch (error) {
    return { name, level: 'fail', reason: String((error as Error).message) };
  }
}

async function policy(files: string[]): Promise<Check> {
  const name = 'host policy';
  const { formatProblem, readPolicyFiles } = await import('../policy/index.js');
  const { policy: read, problems } = await readPolicyFiles(files);
  const first = problems[0];
  if (first) {
    return {
      name,
      level: 'fail',
      reason: `${problems.length} problem(s), first: ${formatProblem(first)}`,
    };
  }
  if (read === null)
    return { name, level: 'ok', reason: 'no policy file (the host modprobe.d blocks apply)' };
  return { name, level: 'ok', reason: `${read.files.join(', ')}: ${read.rules.length} rule(s)` };
}

/** Whether the kernel's own autoload (request_module runs modprobe) could load a module the
 *  policy denies outright: no `install NAME /bin/false` (kmodload policy export) for it. */
async function kernelAutoload(
  files: string[],
  root: string | undefined,
  kernelVersion: string | undefined,
  configDirs: string[] | undefined,
): Promise<Check | undefined> {
  const name = 'kernel autoload';
  const { readPolicyFiles } = await import('../policy/index.js');
  const { policy: read, problems } = await readPolicyFiles(files);
  // No policy, or a broken one (the policy check fails already): nothing to compare.
  if (read === null || problems.length > 0) return undefined;
  const { readTreeNames } = await import('../policy/tree.js');
  const { autoloadableDenied } = await import('../policy/export.js');
  const { loadModprobeConfig } = await import('../config/index.js');
  try {
    const tree = await readTreeNames(root, kernelVersion);
    const config = loadModprobeConfig({
      moduleDir: tree.moduleDir,
      strictConfig: true,
      configDirs,
    });
    const open = autoloadableDenied(read, tree, config);
    if (open.length === 0) {
      return {
        name,
        level: 'ok',
        reason: "modprobe.d keeps the policy's denies from the kernel's autoload too",
      };
    }
    const shown = open.slice(0, 5).join(' ') + (open.length > 5 ? ` ... (${open.length})` : '');
    return {
      name,
      level: 'warn',
      reason: `the policy denies ${shown}, but the kernel's own autoload could load them (a socket, a mount, a link type): kmodload policy export --format modprobe.d --output /etc/modprobe.d/kmodload-policy.conf`,
    };
  } catch (error) {
    // The tree or modprobe.d checks say what is wrong with them.
    return { name, level: 'warn', reason: `cannot tell: ${String((error as Error).message)}` };
  }
}

/** Whether a load stage would trust this node's files (src/trust.ts): node and the package
 *  (every file of bin/ and dist/), the policy, modprobe.d, the state directory, the log's. */
async function fileTrust(options: DoctorOptions): Promise<Check> {
  const name = 'file trust';
  const { untrustedNodeFiles, untrustedPolicy } = await import('../container/trust.js');
  const { readPolicyFiles } = await import('../policy/index.js');
  const { untrustedEntries } = await import('../trust.js');
  const { packageRoot } = await import('../package-root.js');
  const { DEFAULT_HOOK_LOG } = await import('../container/audit.js');
  const nodeOptions = {
    ...(options.configDirs ? { configDirs: options.configDirs } : {}),
    ...(options.policyFiles ? { policyFiles: options.policyFiles } : {}),
    logFile: DEFAULT_HOOK_LOG,
  };
  const read = await readPolicyFiles(options.policyFiles);
  const tree = (dir: string): string[] => {
    let names: fs.Dirent[];
    try {
      names = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return [];
    }
    return names.flatMap((entry) => {
      const file = path.join(dir, entry.name);
      return entry.isDirectory() ? [file, ...tree(file)] : [file];
    });
  };
  const root = packageRoot();
  const reason =
    untrustedNodeFiles(nodeOptions) ??
    untrustedPolicy(read.policy ? read.policy.files : null, nodeOptions) ??
    untrustedEntries('the kmodload package', [
      ...tree(path.join(root, 'bin')),
      ...tree(path.join(root, 'dist')),
      ...tree(path.join(root, 'build', 'Release')),
    ]);
  if (reason !== undefined) {
    return { name, level: 'fail', reason: `load stages refuse: untrusted file: ${reason}` };
  }
  return {
    name,
    level: 'ok',
    reason: 'node, the package, policy, modprobe.d, state and log are root-only',
  };
}

/** The hook entries of a hookspec or hooks.d file that run kmodload. */
function kmodloadEntries(file: string): Array<{ path: string; args: string[] }> {
  let config: unknown;
  try {
    config = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return [];
  }
  const entries: Array<{ path: string; args: string[] }> = [];
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(visit);
    else if (value && typeof value === 'object') {
      const object = value as Record<string, unknown>;
      if (typeof object['path'] === 'string' && Array.isArray(object['args'])) {
        const args = object['args'].filter((a): a is string => typeof a === 'string');
        if (args.includes('hook') && (args[0] === 'kmodload' || /kmodload/.test(object['path']))) {
          entries.push({ path: object['path'], args });
        }
      } else Object.values(object).forEach(visit);
    }
  };
  visit(config);
  return entries;
}

/** Why a runtime could not run `file` as kmodload (a hook or an NRI plugin), or undefined. */
function executableProblem(file: string): string | undefined {
  if (!path.isAbsolute(file)) return `${file} is not absolute`;
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    return `${file} does not exist`;
  }
  if (stat.uid !== 0) return `${file} is not owned by root`;
  if (stat.mode & 0o002) return `${file} is world-writable`;
  if (!(stat.mode & 0o111)) return `${file} is not executable`;
  // It runs: as a runtime would start it, with an empty environment.
  const run = spawnSync(file, ['--version'], { encoding: 'utf8', env: {}, timeout: 20_000 });
  if (run.status !== 0 || !run.stdout.startsWith('kmodload ')) {
    const why = run.error ? run.error.message : `exit status ${run.status}`;
    return `${file} does not run (${why}): ${(run.stderr || run.stdout).trim().split('\n')[0] ?? ''}`;
  }
  return undefined;
}

function hookConfigurations(
  hookspecs: string[],
  hooksDirs: string[],
  pluginInstalled: boolean,
): Check[] {
  const files = [...hookspecs.filter((f) => fs.existsSync(f))];
  for (const dir of hooksDirs) {
    try {
      for (const name of fs.readdirSync(dir).sort()) {
        if (name.endsWith('.json')) files.push(path.join(dir, name));
      }
    } catch {
      // no such directory: nothing installed there
    }
  }
  const checks: Check[] = [];
  for (const file of files) {
    for (const entry of kmodloadEntries(file)) {
      const problem = executableProblem(entry.path);
      checks.push(
        problem
          ? { name: `hook ${file}`, level: 'fail', reason: problem }
          : {
              name: `hook ${file}`,
              level: 'ok',
              reason: `${entry.path} (${entry.args.slice(1).join(' ')})`,
            },
      );
    }
  }
  if (checks.length === 0) {
    const where = [...hookspecs, ...hooksDirs].join(', ');
    checks.push(
      pluginInstalled
        ? { name: 'hook configurations', level: 'ok', reason: `none (the NRI plugin serves)` }
        : {
            name: 'hook configurations',
            level: 'warn',
            reason: `none found (${where}): see kmodload hook-config`,
          },
    );
  }
  return checks;
}

/** Is there a runtime's NRI socket, which an external plugin (`kmodload nri`) dials? */
function nriSocket(socketPath: string, enable: string): Check {
  const name = 'nri socket';
  let stat: fs.Stats;
  try {
    stat = fs.statSync(socketPath);
  } catch {
    return {
      name,
      level: 'warn',
      reason: `${socketPath} does not exist: no runtime offers NRI here (${enable}); the hook does not need it`,
    };
  }
  if (!stat.isSocket()) return { name, level: 'warn', reason: `${socketPath} is not a socket` };
  return { name, level: 'ok', reason: `${socketPath} is a socket: a runtime offers NRI` };
}

/** The NRI plugin containerd or CRI-O starts from its plugin directory, and its flags. */
async function nriPlugins(
  pluginsDir: string,
  confDir: string,
): Promise<{ checks: Check[]; installed: boolean }> {
  const { DEFAULT_PLUGIN_NAME, configuredOptions } = await import('../cli/nri-command.js');
  let names: string[];
  try {
    names = fs.readdirSync(pluginsDir).sort();
  } catch {
    const none: Check = { name: 'nri plugin', level: 'ok', reason: `none (no ${pluginsDir})` };
    return { checks: [none], installed: false };
  }
  const found: Check[] = [];
  const misnamed: string[] = [];
  for (const entry of names) {
    const file = path.join(pluginsDir, entry);
    // As containerd 1.7 lists them: directories and files no one may execute are skipped,
    // symbolic links taken as they are.
    const stat = fs.lstatSync(file, { throwIfNoEntry: false });
    if (!stat || stat.isDirectory() || !(stat.mode & 0o111)) continue;
    const match = /^([0-9]{2})-(.+)$/.exec(entry);
    if (!match) misnamed.push(file);
    if (match?.[2] !== DEFAULT_PLUGIN_NAME) continue;
    const name = `nri plugin ${file}`;
    const problem = executableProblem(file);
    if (problem) {
      found.push({ name, level: 'fail', reason: problem });
      continue;
    }
    // What the runtime hands it: NN-NAME.conf, else NAME.conf, else nothing.
    const confFile = [`${entry}.conf`, `${DEFAULT_PLUGIN_NAME}.conf`]
      .map((conf) => path.join(confDir, conf))
      .find((conf) => fs.existsSync(conf));
    if (confFile === undefined) {
      found.push({ name, level: 'ok', reason: `runs, with no configuration (${confDir})` });
      continue;
    }
    try {
      configuredOptions(fs.readFileSync(confFile, 'utf8'));
      found.push({ name, level: 'ok', reason: `runs, with its flags from ${confFile}` });
    } catch (error) {
      found.push({
        name,
        level: 'fail',
        reason: `${confFile}: ${String((error as Error).message)}: the plugin refuses to register`,
      });
    }
  }
  const installed = found.length > 0;
  // containerd 1.7 starts none of the directory's plugins while one name is not NN-NAME.
  for (const file of misnamed) {
    found.push({
      name: `nri plugin ${file}`,
      level: installed ? 'fail' : 'warn',
      reason: `not named NN-NAME: containerd starts no plugin of ${pluginsDir}`,
    });
  }
  if (found.length === 0) {
    found.push({ name: 'nri plugin', level: 'ok', reason: `none in ${pluginsDir}` });
  }
  return { checks: found, installed };
}

/** What to check: the module tree, the policy, where the runtimes' hook configurations are. */
export interface DoctorOptions {
  root?: string;
  kernelVersion?: string;
  configDirs?: string[];
  policyFiles?: string[];
  hookspecs?: string[];
  hooksDirs?: string[];
  /** The runtime's NRI socket (default /var/run/nri/nri.sock). */
  nriSocket?: string;
  /** Where the runtime finds the NRI plugins it starts, and their configurations. */
  nriPluginsDir?: string;
  nriConfDir?: string;
}

/** Every check, in order. */
export async function doctor(options: DoctorOptions = {}): Promise<Check[]> {
  const { moduleDirectory } = await import('../db/module-dir.js');
  const moduleDir = moduleDirectory(options.root, options.kernelVersion);
  const { ENABLE_NRI, NRI_CONF_DIR, NRI_PLUGIN_DIR } = await import('../cli/nri-command.js');
  const { DEFAULT_SOCKET_PATH } = await import('../nri/plugin.js');
  const plugins = await nriPlugins(
    options.nriPluginsDir ?? NRI_PLUGIN_DIR,
    options.nriConfDir ?? NRI_CONF_DIR,
  );
  return [
    await kernelSupport(),
    modulesDisabled(),
    lockdown(),
    signatures(),
    ...moduleTree(moduleDir),
    await modprobeConfig(moduleDir, options.configDirs),
    await policy(options.policyFiles ?? []),
    ...[
      await kernelAutoload(
        options.policyFiles ?? [],
        options.root,
        options.kernelVersion,
        options.configDirs,
      ),
    ].filter((check): check is Check => check !== undefined),
    await fileTrust(options),
    ...hookConfigurations(
      options.hookspecs ?? DEFAULT_HOOKSPECS,
      options.hooksDirs ?? DEFAULT_HOOKS_DIRS,
      plugins.installed,
    ),
    nriSocket(options.nriSocket ?? DEFAULT_SOCKET_PATH, ENABLE_NRI),
    ...plugins.checks,
  ];
}
