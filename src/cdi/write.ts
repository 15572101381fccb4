// Spec files written as the engines need them: atomically (a temporary name that does not end
// in .json or .yaml, which the engines' directory watchers skip, then rename), 0644, and left
// alone when their content would not change (a watcher would reload them for nothing).

import fs from 'node:fs';
import path from 'node:path';
import { EXIT, KmodloadError } from '../errors';
import { errorText } from '../text';

/** A spec file and its content; undefined: the file must not exist (a spec without devices
 *  is refused by the engines, and one left over would publish what the policy now denies). */
export interface SpecFile {
  file: string;
  text: string | undefined;
}

export type SpecFileAction = 'written' | 'unchanged' | 'removed' | 'absent';

/** Largest existing spec read back for comparison. */
const MAX_SPEC_BYTES = 256 * 1024 * 1024;

/** The file's content, or undefined when there is none. */
function currentText(file: string): string | undefined {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  if (!stat.isFile()) throw new Error('not a regular file');
  if (stat.size > MAX_SPEC_BYTES) throw new Error(`larger than ${MAX_SPEC_BYTES} bytes`);
  return fs.readFileSync(file, 'utf8');
}

function replace(file: string, text: string): void {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
    fs.writeFileSync(temporary, text, { mode: 0o644, flag: 'wx' });
    fs.chmodSync(temporary, 0o644); // the umask may have taken bits away
    fs.renameSync(temporary, file);
  } catch (error) {
    fs.rmSync(temporary, { force: true });
    throw error;
  }
}

/** Brings each file to its content; what was done to each, in order. */
export function writeSpecFiles(files: readonly SpecFile[]): SpecFileAction[] {
  return files.map(({ file, text }) => {
    try {
      const current = currentText(file);
      if (text === undefined) {
        if (current === undefined) return 'absent';
        fs.rmSync(file);
        return 'removed';
      }
      if (current === text) return 'unchanged';
      replace(file, text);
      return 'written';
    } catch (error) {
      throw new KmodloadError(errorText(error), EXIT.environment, {
        subject: `cannot ${text === undefined ? 'remove' : 'write'} ${file}`,
      });
    }
  });
}

/** Why each file that is not as it would be written is stale (none: all fresh). */
export function staleSpecFiles(files: readonly SpecFile[]): string[] {
  const stale: string[] = [];
  for (const { file, text } of files) {
    let current: string | undefined;
    try {
      current = currentText(file);
    } catch (error) {
      throw new KmodloadError(errorText(error), EXIT.environment, {
        subject: `cannot read ${file}`,
      });
    }
    if (current === text) continue;
    if (text === undefined) stale.push(`${file} should not exist (it would publish no device)`);
    else if (current === undefined) stale.push(`${file} does not exist`);
    else stale.push(`${file} differs from what the policy and the module tree give now`);
  }
  return stale;
}
