// src/native/addon.ts: lazy loading, the KMODLOAD_ADDON override and a clear error when the
// addon is missing; and the two builds (node-gyp, cmake-js) compiling the same sources.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { afterEach, describe, expect, it, vi } from 'vitest';

import { EXIT } from '../../src/errors';
import type * as AddonModule from '../../src/native/addon';

const repoRoot = path.resolve(__dirname, '..', '..');
const savedOverride = process.env.KMODLOAD_ADDON;

async function freshAddonModule(): Promise<typeof AddonModule> {
  vi.resetModules();
  return import('../../src/native/addon.js');
}

afterEach(() => {
  if (savedOverride === undefined) delete process.env.KMODLOAD_ADDON;
  else process.env.KMODLOAD_ADDON = savedOverride;
});

describe('loadBinding', () => {
  it('defaults to build/Release/kmodload.node under the package root', async () => {
    const { defaultAddonPath, addonPath } = await freshAddonModule();
    expect(defaultAddonPath()).toBe(path.join(repoRoot, 'build', 'Release', 'kmodload.node'));
    expect(addonPath({})).toBe(defaultAddonPath());
    expect(addonPath({ KMODLOAD_ADDON: '/x/y.node' })).toBe('/x/y.node');
  });

  it('does not load the addon at import time', async () => {
    const before = Object.keys(require.cache).filter((k) => k.endsWith('.node'));
    process.env.KMODLOAD_ADDON = '/nonexistent/kmodload.node';
    await freshAddonModule();
    expect(Object.keys(require.cache).filter((k) => k.endsWith('.node'))).toEqual(before);
  });

  it('explains a missing addon in one line with the environment exit status', async () => {
    process.env.KMODLOAD_ADDON = '/nonexistent/kmodload.node';
    const { loadBinding } = await freshAddonModule();
    // The same module graph as the fresh addon.ts, so instanceof compares the same class.
    const { KmodloadError } = await import('../../src/errors.js');
    let error: unknown;
    try {
      loadBinding();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(KmodloadError);
    const k = error as InstanceType<typeof KmodloadError>;
    expect(k.exitStatus).toBe(EXIT.environment);
    expect(k.message).toBe(
      'native addon not built: run npm install (/nonexistent/kmodload.node is missing)',
    );
    expect(k.message).not.toContain('\n');
  });

  it('explains a file that is not an addon', async () => {
    process.env.KMODLOAD_ADDON = path.join(repoRoot, 'native', 'sources.txt');
    const { loadBinding } = await freshAddonModule();
    expect(() => loadBinding()).toThrow(/^cannot load native addon .*sources\.txt: /);
  });

  it('loads once and caches', async () => {
    const { loadBinding } = await freshAddonModule();
    const binding = loadBinding();
    expect(loadBinding()).toBe(binding);
    for (const fn of ['insertModule', 'readModuleImage', 'deleteModule', 'openIndex', 'flock']) {
      expect(typeof (binding as unknown as Record<string, unknown>)[fn], fn).toBe('function');
    }
    expect(binding.fnmatch('a*', 'abc')).toBe(true);
  });
});

describe('one source list for both builds', () => {
  it('node-gyp compiled exactly native/sources.txt', () => {
    const listed = fs
      .readFileSync(path.join(repoRoot, 'native', 'sources.txt'), 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .sort();
    expect(listed.length).toBeGreaterThan(0);
    // node-gyp's generated makefile names one object per source.
    const makefile = fs.readFileSync(path.join(repoRoot, 'build', 'kmodload.target.mk'), 'utf8');
    const objects = [...makefile.matchAll(/\$\(obj\)\.target\/\$\(TARGET\)\/(\S+)\.o/g)]
      .map((m) => `${m[1]}.cc`)
      .filter((v, i, all) => all.indexOf(v) === i)
      .sort();
    expect(objects).toEqual(listed);
    // native/CMakeLists.txt reads the same file rather than a list of its own.
    const cmake = fs.readFileSync(path.join(repoRoot, 'native', 'CMakeLists.txt'), 'utf8');
    expect(cmake).toMatch(/file\(STRINGS "\$\{CMAKE_CURRENT_SOURCE_DIR\}\/sources\.txt"/);
    expect(cmake).not.toMatch(/src\/addon\.cc/);
  });
});
