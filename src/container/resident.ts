// The planner for a front end that lives for days (the NRI plugin): the module tree and
// modprobe.d are read once and kept between decisions, and read again as soon as depmod or an
// edit changed them, so that a decision is a plan in memory, never a stale one. (Opening the
// tree for each decision, as a hook does, would also churn the process's memory with the
// indexes' large buffers.)

import fs from 'node:fs';
import path from 'node:path';
import type { ModuleTree } from '../api';
import { DEFAULT_CONFIG_DIRS } from '../config/files';
import { moduleDirectory } from '../db/module-dir';
import type { ContainerLoader, NodeOptions } from './options';

/** What depmod writes that a plan reads. */
const INDEX_FILES = [
  'modules.dep',
  'modules.dep.bin',
  'modules.alias',
  'modules.alias.bin',
  'modules.softdep',
  'modules.symbols',
  'modules.symbols.bin',
  'modules.builtin',
  'modules.builtin.bin',
  'modules.builtin.alias.bin',
];

export interface ResidentLoader extends ContainerLoader {
  /** Releases the tree kept open. */
  close(): void;
}

async function stamp(file: string): Promise<string> {
  try {
    const st = await fs.promises.stat(file);
    return `${file}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  } catch (error) {
    return `${file}:${(error as NodeJS.ErrnoException).code ?? 'error'}`;
  }
}

/** A string that changes when any file the tree was read from changes (or appears). */
async function fingerprint(options: NodeOptions): Promise<string> {
  const moduleDir = moduleDirectory(options.root, options.kernelVersion);
  const files = INDEX_FILES.map((name) => path.join(moduleDir, name));
  // As modprobe reads them (-d does not move them); a -C path may be a file.
  for (const configDir of options.configDirs ?? DEFAULT_CONFIG_DIRS) {
    files.push(configDir);
    try {
      for (const entry of await fs.promises.readdir(configDir)) {
        files.push(path.join(configDir, entry));
      }
    } catch {
      // Not there: its stamp says so.
    }
  }
  return (await Promise.all(files.map(stamp))).join('\n');
}

/** A loader that keeps the tree `options` name open, for as long as it does not change. */
export function residentLoader(options: NodeOptions): ResidentLoader {
  let tree: ModuleTree | undefined;
  let treeStamp = '';
  return {
    async resolve(names, planWith = {}) {
      const api = await import('../api.js');
      const now = await fingerprint(options);
      if (!tree || now !== treeStamp) {
        tree?.close();
        tree = undefined;
        tree = await api.openModuleTree({ ...options, strictConfig: true });
        treeStamp = now;
      }
      return tree.resolve(names, planWith);
    },
    async loadPlan(plan, loadWith) {
      return (await import('../api.js')).loadPlan(plan, loadWith);
    },
    close() {
      tree?.close();
      tree = undefined;
    },
  };
}
