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
 * (the caller named them: -C), not something to skip as kmod does. With `strict`, a `*.conf`
 * entry that is a dangling symlink (or a loop) is an error too: kmod skips it silently, so a
 * blacklist whose link lost its target would protect nothing without anyone hearing of it.
 * Synchronous: a listing and a stat per file, microseconds each.
 */
export function listConfigFiles(
  configPaths: readonly string[],
  moduleDir: string,
  mustExist = false,
  strict = false,
): ConfigFile[] {
  const byName = new Map<string, ConfigFile>();
  const add = (name: string, file: string): void => {
    if (!byName.has(name)) byName.set(name, { name, file });
  };

  add('modules.softdep', `${moduleDir}/modules.softdep`);
  // Shadowing follows the given order; the first bad path given fails.
  for (const configPath of configPaths) {
    for (const { name, file } of listPath(configPath, mustExist, strict)) add(name, file);
  }
  return [...byName.values()].sort((a, b) =>
    Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)),
  );
}

/** The candidate files of one -C path or directory, in directory order. */
function listPath(configPath: string, mustExist: boolean, strict: boolean): ConfigFile[] {
  // Listed first (the usual case is a directory); what cannot be listed is looked at.
  let entries: string[];
  try {
    entries = fs.readdirSync(configPath);
  } catch (listing) {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(configPath);
    } catch (error) {
      if (mustExist) throw unreadable(configPath, error);
      return []; // a missing directory is normal (/run/modprobe.d)
    }
    // A file given directly (-C FILE) is read whatever its name.
    if (stat.isFile()) return [{ name: path.basename(configPath), file: configPath }];
    if (!stat.isDirectory()) return [];
    if (mustExist) throw unreadable(configPath, listing);
    return [];
  }
  const kept: ConfigFile[] = [];
  for (const name of entries) {
    if (name.startsWith('.') || name.length < 6 || !name.endsWith('.conf')) continue;
    const file = `${configPath}/${name}`;
    try {
      if (!fs.statSync(file).isDirectory()) kept.push({ name, file });
    } catch (error) {
      // A dangling symlink (or a loop): kmod skips it.
      if (!strict) continue;
      const reason = String((error as Error).message).split(', ')[0] ?? '';
      throw new KmodloadError(
        `a symlink to nothing (${reason}); modprobe skips it, here it is an error: fix or remove the link`,
        EXIT.environment,
        { subject: `cannot read modprobe configuration ${file}` },
      );
    }
  }
  return kept;
}

function unreadable(configPath: string, error: unknown): KmodloadError {
  const reason = String((error as Error).message).split(', ')[0] ?? '';
  return new KmodloadError(reason, EXIT.environment, {
    subject: `cannot read modprobe configuration ${configPath}`,
  });
}
