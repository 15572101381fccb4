// An OCI bundle as a runtime hands it to a hook: a directory holding config.json.

import fs from 'node:fs';
import path from 'node:path';

/** Creates `dir` (and its parents) and writes `config` as its config.json: a value is
 *  JSON-encoded, a string or bytes are written as they are, undefined writes no config.json.
 *  Returns `dir`. */
export function writeBundle(dir: string, config?: unknown): string {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'config.json');
  if (typeof config === 'string' || config instanceof Uint8Array) fs.writeFileSync(file, config);
  else if (config !== undefined) fs.writeFileSync(file, JSON.stringify(config));
  return dir;
}
