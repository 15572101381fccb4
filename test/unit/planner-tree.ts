// Small module trees written to a temporary directory, text files only (no depmod, no .bin):
// enough to pin down one planner or lookup rule per test.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import type { ModuleDatabase } from '../../src/planner';
import { openModuleDatabase } from '../../src/system';

export const VERSION = '6.0.0-test';

export interface TreeSpec {
  /** module name -> dependency names, in modules.dep order (files kernel/<name>.ko). */
  modules: Record<string, string[]>;
  /** [pattern, module] lines of modules.alias, in order. */
  aliases?: Array<[string, string]>;
  /** modules.softdep lines. */
  softdep?: string[];
  /** Names in modules.builtin. */
  builtin?: string[];
  /** [module, alias] entries of modules.builtin.modinfo. */
  builtinAliases?: Array<[string, string]>;
  /** [symbol, module] lines of modules.symbols. */
  symbols?: Array<[string, string]>;
  /** modprobe.d file name -> content. */
  config?: Record<string, string>;
  /** Module files not to create (a dangling modules.dep entry). */
  missingFiles?: string[];
}

export interface TestTree {
  root: string;
  moduleDir: string;
  configDir: string;
  open: (kernelCommandLine?: string) => Promise<ModuleDatabase>;
  cleanup: () => void;
}

const file = (name: string): string => `kernel/${name.replace(/_/g, '-')}.ko`;

export function writeTree(spec: TreeSpec): TestTree {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-tree-'));
  const moduleDir = path.join(root, 'lib', 'modules', VERSION);
  const configDir = path.join(root, 'modprobe.d');
  fs.mkdirSync(path.join(moduleDir, 'kernel'), { recursive: true });
  fs.mkdirSync(configDir);
  const write = (name: string, content: string): void =>
    fs.writeFileSync(path.join(moduleDir, name), content);

  const dep = Object.entries(spec.modules).map(
    ([name, deps]) => `${file(name)}:${deps.map((d) => ` ${file(d)}`).join('')}\n`,
  );
  write('modules.dep', dep.join(''));
  for (const name of Object.keys(spec.modules)) {
    if (!spec.missingFiles?.includes(name)) write(file(name), '');
  }
  write(
    'modules.alias',
    `# Aliases extracted from modules themselves.\n${(spec.aliases ?? [])
      .map(([p, m]) => `alias ${p} ${m}\n`)
      .join('')}`,
  );
  write('modules.softdep', (spec.softdep ?? []).map((l) => `${l}\n`).join(''));
  write('modules.builtin', (spec.builtin ?? []).map((n) => `${file(n)}\n`).join(''));
  write(
    'modules.builtin.modinfo',
    (spec.builtinAliases ?? []).map(([m, a]) => `${m}.alias=${a}\0`).join(''),
  );
  write(
    'modules.symbols',
    (spec.symbols ?? []).map(([s, m]) => `alias symbol:${s} ${m}\n`).join(''),
  );
  for (const [name, content] of Object.entries(spec.config ?? {})) {
    fs.writeFileSync(path.join(configDir, name), content);
  }
  return {
    root,
    moduleDir,
    configDir,
    open: (kernelCommandLine = '') =>
      openModuleDatabase({
        root,
        kernelVersion: VERSION,
        configDirs: [configDir],
        kernelCommandLine,
      }),
    cleanup: () => fs.rmSync(root, { recursive: true, force: true }),
  };
}

/** The module file path a step shows for `name` in a tree. */
export function modulePath(tree: TestTree, name: string): string {
  return `${tree.moduleDir}/${file(name)}`;
}
