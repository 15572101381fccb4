// The prebuilt addons (scripts/make/prebuild.sh): what npm pack ships, the glibc 2.28 ceiling of
// every addon built here (scripts/make/check-glibc.sh), and the loader finding a prebuild where
// node-gyp-build (npm install) finds it.

import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { EXIT } from '../../src/errors';
import { addonCandidates, defaultAddonPath, PREBUILD_FILE } from '../../src/native/addon';
import { REPO_ROOT, toolEnv } from '../helpers/trees';
import { ensurePrebuilds, packDependencies, packTarball } from './pack';

const CHECK = path.join(REPO_ROOT, 'scripts', 'make', 'check-glibc.sh');
const prebuild = (arch: string): string =>
  path.join(REPO_ROOT, 'prebuilds', `linux-${arch}`, PREBUILD_FILE);

function check(...files: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('bash', [CHECK, ...files], { encoding: 'utf8', env: toolEnv() });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function machine(file: string): string {
  const header = execFileSync('readelf', ['-h', file], { encoding: 'utf8', env: { LC_ALL: 'C' } });
  return /Machine:\s+(.*)/.exec(header)?.[1]?.trim() ?? '';
}

let scratch: string;

beforeAll(() => {
  ensurePrebuilds();
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-prebuild-'));
});

afterAll(() => {
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

describe('prebuilds', () => {
  it('one Node-API addon per architecture: linux-x64 (x86-64) and linux-arm64 (AArch64)', () => {
    expect(machine(prebuild('x64'))).toBe('Advanced Micro Devices X86-64');
    expect(machine(prebuild('arm64'))).toBe('AArch64');
    expect(fs.readdirSync(path.join(REPO_ROOT, 'prebuilds')).sort()).toEqual([
      'linux-arm64',
      'linux-x64',
    ]);
  });

  it('need nothing newer than glibc 2.28, and neither does the development build', () => {
    const files = [
      prebuild('x64'),
      prebuild('arm64'),
      path.join(REPO_ROOT, 'build', 'Release', 'kmodload.node'),
    ];
    const result = check(...files);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const highest = [...result.stdout.matchAll(/highest GLIBC_(\d+)\.(\d+)/g)];
    expect(highest).toHaveLength(3);
    for (const [, major, minor] of highest) {
      expect(Number(major) * 1000 + Number(minor)).toBeLessThanOrEqual(2028);
    }
  });

  it('the check fails on a library that needs a newer glibc, naming the symbols', () => {
    // This machine's libstdc++ (GCC 12) is built against glibc 2.36.
    const ldd = execFileSync('ldd', [process.execPath], { encoding: 'utf8', env: toolEnv() });
    const libstdcxx = /libstdc\+\+\.so\.6 => (\S+)/.exec(ldd)?.[1];
    expect(libstdcxx).toBeDefined();
    const result = check(libstdcxx as string);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/needs more than glibc 2\.28: .*GLIBC_2\.(29|3\d) \w+/);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('npm pack ships both prebuilds, the compiled JS and the sources to fall back on', () => {
    const { files } = packTarball(scratch);
    for (const file of [
      `prebuilds/linux-x64/${PREBUILD_FILE}`,
      `prebuilds/linux-arm64/${PREBUILD_FILE}`,
      'dist/index.js',
      'dist/cli/main.js',
      'bin/kmodload.js',
      'binding.gyp',
      'native/sources.txt',
      'native/src/glibc_compat.h',
      'package.json',
    ]) {
      expect(files, file).toContain(file);
    }
    expect(files.filter((f) => f.startsWith('build/') || f.startsWith('test/'))).toEqual([]);
  });
});

describe('without a fitting prebuild', () => {
  it('npm install of the tarball compiles the addon with node-gyp, and it is used', () => {
    const packed = path.join(scratch, 'packed');
    const app = path.join(scratch, 'app');
    fs.mkdirSync(packed);
    fs.mkdirSync(app);
    const tarballs = [packTarball(packed).tarball, ...packDependencies(packed)];
    // node-gyp-build's own switch for "no prebuild fits": npm --build-from-source.
    const install = spawnSync(
      'npm',
      [
        'install',
        '--offline',
        '--no-audit',
        '--no-fund',
        '--foreground-scripts',
        '--build-from-source',
        ...tarballs,
      ],
      { cwd: app, encoding: 'utf8', env: toolEnv() },
    );
    expect(install.status, install.stdout + install.stderr).toBe(0);
    expect(install.stdout + install.stderr).toMatch(/gyp info ok/);
    const pkg = path.join(app, 'node_modules', 'kmodload');
    const built = path.join(pkg, 'build', 'Release', 'kmodload.node');
    expect(fs.existsSync(built)).toBe(true);
    const loaded = spawnSync(
      process.execPath,
      [
        '-e',
        "const a = require('kmodload/dist/native/addon'); a.loadBinding(); console.log(a.addonPath())",
      ],
      { cwd: app, encoding: 'utf8', env: { ...toolEnv(), KMODLOAD_ADDON: '' } },
    );
    expect(loaded.stderr).toBe('');
    expect(loaded.stdout.trim()).toBe(built);
  });
});

describe('finding the addon', () => {
  it('build/Release first, then prebuilds/<platform>-<arch>', () => {
    expect(addonCandidates('/pkg')).toEqual([
      '/pkg/build/Release/kmodload.node',
      `/pkg/prebuilds/${process.platform}-${process.arch}/${PREBUILD_FILE}`,
    ]);
  });

  it('a package with only prebuilds loads the one node-gyp-build chose at install', () => {
    const pkg = path.join(scratch, 'only-prebuilds');
    fs.mkdirSync(path.join(pkg, 'prebuilds'), { recursive: true });
    fs.cpSync(path.join(REPO_ROOT, 'prebuilds'), path.join(pkg, 'prebuilds'), {
      recursive: true,
    });
    fs.writeFileSync(path.join(pkg, 'package.json'), '{"name":"kmodload"}\n');
    const expected = path.join(pkg, 'prebuilds', `linux-${process.arch}`, PREBUILD_FILE);
    expect(defaultAddonPath(pkg)).toBe(expected);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const nodeGypBuild = require('node-gyp-build') as { path(dir: string): string };
    expect(nodeGypBuild.path(pkg)).toBe(expected);
    // And it loads in this Node.
    const loaded = spawnSync(
      process.execPath,
      ['-e', `console.log(typeof require(${JSON.stringify(expected)}).fnmatch)`],
      { encoding: 'utf8', env: toolEnv() },
    );
    expect(loaded.stdout.trim()).toBe('function');
  });

  it('a package with neither: one line naming both places, the environment exit status', () => {
    const pkg = path.join(scratch, 'neither');
    fs.cpSync(path.join(REPO_ROOT, 'dist'), path.join(pkg, 'dist'), { recursive: true });
    fs.copyFileSync(path.join(REPO_ROOT, 'package.json'), path.join(pkg, 'package.json'));
    fs.mkdirSync(path.join(pkg, 'bin'));
    expect(defaultAddonPath(pkg)).toBe(path.join(pkg, 'build', 'Release', 'kmodload.node'));
    const script = `try { require('./dist/native/addon').loadBinding() } catch (e) {
      console.log(JSON.stringify([e.message, e.exitStatus])) }`;
    const env = toolEnv();
    delete env.KMODLOAD_ADDON;
    const result = spawnSync(process.execPath, ['-e', script], { cwd: pkg, encoding: 'utf8', env });
    expect(JSON.parse(result.stdout)).toEqual([
      `native addon not built: run npm install (${pkg}/build/Release/kmodload.node is missing, ` +
        `nor prebuilds/linux-${process.arch}/${PREBUILD_FILE})`,
      EXIT.environment,
    ]);
  });
});
