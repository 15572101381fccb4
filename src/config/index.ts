// modprobe.d configuration, read once per module database.
import * as fs from 'node:fs';

import { DEFAULT_CONFIG_DIRS, listConfigFiles } from './files';
import { parseKernelCommandLine } from './kcmdline';
import { parseConfigFile } from './parse';
import { emptyConfig, type ModprobeConfig } from './types';

export { DEFAULT_CONFIG_DIRS, listConfigFiles } from './files';
export { parseKernelCommandLine } from './kcmdline';
export { aliasNormalize, modnameNormalize, pathToModname } from './normalize';
export { parseConfigFile } from './parse';
export * from './types';

export interface LoadConfigOptions {
  /** Directories or files to read instead of the defaults (modprobe -C). */
  configDirs?: readonly string[];
  /** The module directory; its modules.softdep is read as a configuration file. */
  moduleDir: string;
  /** Kernel command line; default: /proc/cmdline (none when unreadable). */
  kernelCommandLine?: string;
}

export function loadModprobeConfig(opts: LoadConfigOptions): ModprobeConfig {
  const config = emptyConfig();
  for (const { file } of listConfigFiles(opts.configDirs ?? DEFAULT_CONFIG_DIRS, opts.moduleDir)) {
    let content: string;
    try {
      content = fs.readFileSync(file, 'utf8');
    } catch {
      continue; // kmod skips files it cannot open (modules.softdep may be absent)
    }
    config.files.push(file);
    parseConfigFile(content, file, config);
  }
  const cmdline = opts.kernelCommandLine ?? readProcCmdline();
  if (cmdline !== undefined) parseKernelCommandLine(cmdline, config);
  return config;
}

function readProcCmdline(): string | undefined {
  try {
    return fs.readFileSync('/proc/cmdline', 'utf8');
  } catch {
    return undefined;
  }
}
