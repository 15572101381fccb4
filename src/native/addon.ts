// Loads the compiled addon on first use, never at import: the OCI hook's fast path (nothing
// to load) must not pay for dlopen()ing it.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { EXIT, KmodloadError } from '../errors';
import { packageRoot } from '../package-root';
import type { NativeBinding } from './binding';
import { wrapBinding } from './system-error';
import { loadEmbeddedAddon, runningAsSingleExecutable } from './embedded';

/** The prebuilt addon's file name (scripts/make/prebuild.sh, prebuildify's naming, which
 *  node-gyp-build matches at install time). */
export const PREBUILD_FILE = 'kmodload.napi.glibc.node';

/** Where the addon is looked for unless KMODLOAD_ADDON names another file, in order: the
 *  addon compiled from source (npm install without a fitting prebuild, or a checkout), then
 *  the prebuilt one shipped for this platform and architecture. */
export function addonCandidates(root: string = packageRoot()): [string, string] {
  return [
    path.join(root, 'build', 'Release', 'kmodload.node'),
    path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, PREBUILD_FILE),
  ];
}

/** The first candidate that exists, or the first one (the build output) when none does. */
export function defaultAddonPath(root?: string): string {
  const candidates = addonCandidates(root);
  return candidates.find((file) => fs.existsSync(file)) ?? candidates[0];
}

let cached: NativeBinding | undefined;

/** The addon's path: env KMODLOAD_ADDON (resolved against the working directory) or the
 *  first candidate found. */
export function addonPath(env: NodeJS.ProcessEnv = process.env): string {
  const override = env.KMODLOAD_ADDON;
  return override ? path.resolve(override) : defaultAddonPath();
}

/** Whether there is an addon to load: the one embedded in the single executable, or a file
 *  (one that exists but cannot be read counts: loading it then says why). */
export function addonPresent(): boolean {
  if (!process.env.KMODLOAD_ADDON && runningAsSingleExecutable()) return true;
  try {
    fs.accessSync(addonPath());
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

/** The native binding, loaded once and cached. Throws KmodloadError (EXIT.environment) when
 *  the addon is missing or cannot be loaded. In the single executable (build/kmodload) the
 *  addon is the one embedded in it, unless KMODLOAD_ADDON names another file. */
export function loadBinding(): NativeBinding {
  if (cached) return cached;
  if (!process.env.KMODLOAD_ADDON && runningAsSingleExecutable()) {
    cached = wrapBinding(loadEmbeddedAddon<NativeBinding>());
    return cached;
  }
  const file = addonPath();
  if (!fs.existsSync(file)) {
    const prebuild = `prebuilds/${process.platform}-${process.arch}/${PREBUILD_FILE}`;
    const also = process.env.KMODLOAD_ADDON ? '' : `, nor ${prebuild}`;
    throw new KmodloadError(
      `native addon not built: run npm install (${file} is missing${also})`,
      EXIT.environment,
    );
  }
  try {
    // dlopen() itself, as require() would do it after resolving the path (a stat and a real
    // path per directory) and looking for a package.json: the path is absolute and known.
    const addon = { exports: {} as NativeBinding };
    process.dlopen(addon, file);
    cached = wrapBinding(addon.exports);
  } catch (error) {
    const reason = error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error);
    throw new KmodloadError(reason, EXIT.environment, {
      cause: error,
      subject: `cannot load native addon ${file}`,
    });
  }
  return cached;
}
