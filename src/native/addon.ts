// Loads the compiled addon on first use, never at import: the OCI hook's fast path (nothing
// to load) must not pay for dlopen()ing it.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { EXIT, KmodloadError } from '../errors';
import { packageRoot } from '../package-root';
import type { NativeBinding } from './binding';
import { loadEmbeddedAddon, runningAsSingleExecutable } from './embedded';

/** Where the addon is looked for unless KMODLOAD_ADDON names another file. */
export function defaultAddonPath(): string {
  return path.join(packageRoot(), 'build', 'Release', 'kmodload.node');
}

let cached: NativeBinding | undefined;

/** The addon's path: env KMODLOAD_ADDON (resolved against the working directory) or the
 *  default build output. */
export function addonPath(env: NodeJS.ProcessEnv = process.env): string {
  const override = env.KMODLOAD_ADDON;
  return override ? path.resolve(override) : defaultAddonPath();
}

/** The native binding, loaded once and cached. Throws KmodloadError (EXIT.environment) when
 *  the addon is missing or cannot be loaded. In the single executable (build/kmodload) the
 *  addon is the one embedded in it, unless KMODLOAD_ADDON names another file. */
export function loadBinding(): NativeBinding {
  if (cached) return cached;
  if (!process.env.KMODLOAD_ADDON && runningAsSingleExecutable()) {
    cached = loadEmbeddedAddon<NativeBinding>();
    return cached;
  }
  const file = addonPath();
  if (!fs.existsSync(file)) {
    throw new KmodloadError(
      `native addon not built: run npm install (${file} is missing)`,
      EXIT.environment,
    );
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    cached = require(file) as NativeBinding;
  } catch (error) {
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new KmodloadError(`cannot load native addon ${file}: ${reason}`, EXIT.environment, {
      cause: error,
    });
  }
  return cached;
}
