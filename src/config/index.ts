// modprobe.d configuration, read once per module database.
import { EXIT, KmodloadError } from '../errors';
import { FileReadError, readRegularFileSync } from '../files';
import { DEFAULT_CONFIG_DIRS, listConfigFiles } from './files';
import { parseKernelCommandLine } from './kcmdline';
import { parseConfigFile } from './parse';
import { emptyConfig, type ModprobeConfig } from './types';

export { DEFAULT_CONFIG_DIRS, listConfigFiles } from './files';
export { parseKernelCommandLine } from './kcmdline';
export { aliasNormalize, modnameNormalize, pathToModname } from './normalize';
export { parseConfigFile } from './parse';
export * from './types';

/** Largest modprobe.d file read: real ones are a few KiB; the cap bounds memory and time. */
export const MAX_CONFIG_FILE_BYTES = 4 * 1024 * 1024;

/** Where modprobe.d comes from and how strictly it is read: the module database's options
 *  (ResolverOptions) carry these under the same names. */
export interface ConfigSource {
  /** Directories or files to read instead of the defaults (modprobe -C). */
  configDirs?: string[];
  /** Kernel command line; default: /proc/cmdline (none when unreadable). */
  kernelCommandLine?: string;
  /** Fail instead of skipping what kmod skips: a configuration file that exists but cannot be
   *  read, a `*.conf` symlink to nothing, a -C path that does not exist. Where the configuration is a security boundary (the
   *  hook), a blacklist that is silently not read protects nothing. */
  strictConfig?: boolean;
}

export interface LoadConfigOptions extends ConfigSource {
  /** The module directory; its modules.softdep is read as a configuration file. */
  moduleDir: string;
}

/**
 * Reads modprobe.d (and modules.softdep and the kernel command line) as kmod 30 does, at once:
 * a few small files, each read in fewer microseconds than a thread-pool round trip takes.
 * @throws KmodloadError (EXIT.environment): a file that is not a regular file or is over
 *   MAX_CONFIG_FILE_BYTES (kmod would block on a FIFO or read /dev/zero forever); with
 *   `strict`, also an unreadable file or a missing -C path.
 */
export function loadModprobeConfig(opts: LoadConfigOptions): ModprobeConfig {
  const config = emptyConfig();
  const strict = opts.strictConfig === true;
  const files = listConfigFiles(
    opts.configDirs ?? DEFAULT_CONFIG_DIRS,
    opts.moduleDir,
    strict && opts.configDirs !== undefined,
    strict,
  );
  for (const { file } of files) {
    const content = readConfigFile(file, strict);
    if (content === undefined) continue;
    config.files.push(file);
    parseConfigFile(content.toString('utf8'), file, config);
  }
  const cmdline = opts.kernelCommandLine ?? readProcCmdline();
  if (cmdline !== undefined) parseKernelCommandLine(cmdline, config);
  return config;
}

/** One configuration file, or undefined where kmod would skip it. */
function readConfigFile(file: string, strict: boolean): Buffer | undefined {
  try {
    return readRegularFileSync(file, MAX_CONFIG_FILE_BYTES);
  } catch (error) {
    if (!(error instanceof FileReadError)) throw error;
    // kmod skips files it cannot open (modules.softdep may be absent from any tree); a FIFO
    // or an endless file it would hang on is an error here.
    const bounded = error.code === 'EFTYPE' || error.code === 'EFBIG';
    const gone = error.code === 'ENOENT' || error.code === 'EISDIR';
    if (gone || (!strict && !bounded)) return undefined;
    throw new KmodloadError(error.message, EXIT.environment, {
      subject: `cannot read modprobe configuration ${file}`,
    });
  }
}

/** The running kernel's command line; it is never large (the kernel caps it at a page or so). */
function readProcCmdline(): string | undefined {
  try {
    return readRegularFileSync('/proc/cmdline', 64 * 1024).toString('utf8');
  } catch {
    return undefined;
  }
}
