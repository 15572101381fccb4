// Which configuration files kmod 30 reads, in which order. Every directory contributes its
// `*.conf` files; a file name already seen in an earlier directory (or earlier -C path) hides
// later ones; then all files are parsed in byte order of their NAME, whatever directory they
// come from. The tree's modules.softdep takes part under its own name.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EXIT, KmodloadError } from '../errors';

/** Debian 12's kmod 30 (strace of `modprobe`): /usr/lib/modprobe.d is not read by this version. */
export const DEFAULT_CONFIG_DIRS: readonly string[] = [
  '/etc/modprobe.d',
  '/run/modprobe.d',
  '/usr/local/lib/modprobe.d',
  '/lib/modprobe.d',
];

export interface ConfigFile {
  /** Name used for ordering and shadowing. */
  name: string;
  /** File to read. */
  file: string;
}

/**
 * The files to parse, in parse order. `moduleDir` supplies modules.softdep. With
 * `mustExist`, a path that does not exist or a directory that cannot be listed is an error
 * (the caller named them: -C), not something to skip as kmod does.
 */
export function listConfigFiles(
  configPaths: readonly string[],
  moduleDir: string,
  mustExist = false,
): ConfigFile[] {
  const byName = new Map<string, ConfigFile>();
  const add = (name: string, file: string): void => {
    if (!byName.has(name)) byName.set(name, { name, file });
  };

  add('modules.softdep', `${moduleDir}/modules.softdep`);
  for (const configPath of configPaths) {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(configPath);
    } catch (error) {
      if (mustExist) throw unreadable(configPath, error);
      continue; // a missing directory is normal (/run/modprobe.d)
    }
    if (stat.isFile()) {
      // A file given directly (-C FILE) is read whatever its name.
      add(path.basename(configPath), configPath);
      continue;
    }
    if (!stat.isDirectory()) continue;
    let entries: string[];
    try {
      entries = fs.readdirSync(configPath);
    } catch (error) {
      if (mustExist) throw unreadable(configPath, error);
      continue;
    }
    for (const name of entries) {
      if (name.startsWith('.') || name.length < 6 || !name.endsWith('.conf')) continue;
      const file = `${configPath}/${name}`;
      try {
        if (fs.statSync(file).isDirectory()) continue;
      } catch {
        continue; // dangling symlink
      }
      add(name, file);
    }
  }
  return [...byName.values()].sort((a, b) =>
    Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)),
  );
}

function unreadable(configPath: string, error: unknown): KmodloadError {
  const reason = String((error as Error).message).split(', ')[0];
  return new KmodloadError(
    `cannot read modprobe configuration ${configPath}: ${reason}`,
    EXIT.environment,
  );
}
