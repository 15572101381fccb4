// `kmodload nfd`: the feature file for node-feature-discovery on the Debian 6.1 tree under the
// starter policy (golden), the cap under NFD's 64 KiB, the atomic rewrite, the exit statuses.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main';
import { doctor } from '../../src/doctor/checks';
import { EXIT } from '../../src/errors';
import { NFD_FILE_LIMIT, explicitlyAllowed, featureFile } from '../../src/policy/features';
import { parsePolicy } from '../../src/policy/index';
import { readTreeNames } from '../../src/policy/tree';
import { memoryIO } from '../helpers/cli-io';
import { REPO_ROOT, kernelTree, type KernelTree } from '../helpers/trees';

const GOLDEN = path.join(REPO_ROOT, 'test', 'fixtures', 'nfd', 'starter-6.1.features');
/** The starter policy of deploy/kubernetes/kmodload-node.yaml. */
const STARTER = /policy\.conf: \|\n((?: {4}.*\n)+)/
  .exec(fs.readFileSync(path.join(REPO_ROOT, 'deploy/kubernetes/kmodload-node.yaml'), 'utf8'))?.[1]
  ?.replace(/^ {4}/gm, '') as string;

let tree: KernelTree;
let scratch: string;
let emptyDir: string;
const noConfig = { install: [], blacklist: [] };

beforeAll(() => {
  tree = kernelTree('6.1');
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-nfd-'));
  emptyDir = path.join(scratch, 'empty');
  fs.mkdirSync(emptyDir);
});
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

async function nfd(args: string[]): Promise<{ status: number; out: string; err: string }> {
  const memory = memoryIO();
  const status = await main(['nfd', ...args], memory.io);
  return { status, out: memory.out(), err: memory.err() };
}

/** The node options of a run on the 6.1 tree with no hooks, no NRI and no modprobe.d. */
function treeArgs(policyFile: string): string[] {
  return [
    '--policy',
    policyFile,
    '-d',
    tree.root,
    '-S',
    tree.version,
    '-C',
    emptyDir,
    '--hooks-dir',
    emptyDir,
    '--nri-socket',
    path.join(scratch, 'no-socket'),
  ];
}

describe('the feature file', () => {
  it('the starter policy on the 6.1 tree (golden)', async () => {
    const names = await readTreeNames(tree.root, tree.version);
    const modules = explicitlyAllowed(parsePolicy(STARTER), names, noConfig);
    expect(featureFile(true, modules)).toBe(fs.readFileSync(GOLDEN, 'utf8'));
  });

  it('leaves out what the host blocks and what an unconditional deny matches', async () => {
    const names = await readTreeNames(tree.root, tree.version);
    const policy = parsePolicy(
      'allow ip_vs* dummy tun\ndeny ip_vs_sh\nallow xfs when source env\n',
    );
    const config = {
      blacklist: ['dummy'],
      install: [{ module: 'ip_vs_w*', command: '/bin/true', origin: 'x' }],
    };
    const modules = explicitlyAllowed(policy, names, config as never);
    expect(modules).toContain('ip_vs_rr');
    expect(modules).toContain('tun');
    for (const gone of ['ip_vs_sh', 'dummy', 'ip_vs_wrr', 'ip_vs_wlc', 'xfs']) {
      expect(modules).not.toContain(gone);
    }
  });

  it('stays under 64 KiB, saying how many modules were left out', async () => {
    const names = await readTreeNames(tree.root, tree.version);
    const all = explicitlyAllowed(parsePolicy('allow *\n'), names, noConfig);
    expect(all.length).toBeGreaterThan(2000);
    const text = featureFile(false, all);
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(NFD_FILE_LIMIT);
    const lines = text.trimEnd().split('\n');
    const written = lines.filter((l) => l.startsWith('kmodload.io/module.'));
    expect(lines[1]).toBe('kmodload.io/ready=false');
    expect(lines.at(-1)).toBe(
      `# ${all.length - written.length} more allowed modules left out: NFD reads at most 65536 bytes`,
    );
    // As many as fit: one more line would not.
    const next = `kmodload.io/module.${all[written.length] as string}=true\n`;
    expect(Buffer.byteLength(text) + Buffer.byteLength(next)).toBeGreaterThan(NFD_FILE_LIMIT);
    expect(written.map((l) => l.slice(19, -5))).toEqual(all.slice(0, written.length));
    // Under the limit: every module, no comment.
    expect(featureFile(true, ['a', 'b'])).toBe(
      '# Written by kmodload nfd: node labels for node-feature-discovery.\nkmodload.io/ready=true\nkmodload.io/module.a=true\nkmodload.io/module.b=true\n',
    );
  });
});

describe('kmodload nfd', () => {
  it('writes DIR/kmodload: ready as doctor says, the allowed modules; rewrites atomically', async () => {
    const out = path.join(scratch, 'features.d');
    const policyFile = path.join(scratch, 'policy.conf');
    fs.writeFileSync(policyFile, STARTER);
    const args = ['--output', out, ...treeArgs(policyFile)];
    const first = await nfd(args);
    expect(first.status).toBe(EXIT.ok);
    const file = path.join(out, 'kmodload');
    const checks = await doctor({
      root: tree.root,
      kernelVersion: tree.version,
      configDirs: [emptyDir],
      policyFiles: [policyFile],
      hooksDirs: [emptyDir],
      hookspecs: [],
      nriSocket: path.join(scratch, 'no-socket'),
    });
    const ready = !checks.some((c) => c.level === 'fail');
    expect(first.err).toMatch(
      /^kmodload: wrote .*features\.d\/kmodload \(ready=(true|false), \d+ allowed modules\)\n$/,
    );
    const golden = fs.readFileSync(GOLDEN, 'utf8').replace('ready=true', `ready=${ready}`);
    expect(fs.readFileSync(file, 'utf8')).toBe(golden);
    const stat = fs.statSync(file);
    expect(stat.mode & 0o777).toBe(0o644);

    // Unchanged: the file is left as it is (NFD sees no change).
    expect(await nfd(args)).toEqual({ status: 0, out: '', err: '' });
    expect(fs.statSync(file).ino).toBe(stat.ino);

    // A new policy: a new file renamed over the old one, nothing else left in features.d.
    fs.writeFileSync(policyFile, 'allow dummy\n');
    expect((await nfd(args)).status).toBe(EXIT.ok);
    expect(fs.statSync(file).ino).not.toBe(stat.ino);
    expect(fs.readFileSync(file, 'utf8')).toMatch(/\nkmodload\.io\/module\.dummy=true\n$/);
    expect(fs.readdirSync(out)).toEqual(['kmodload']);

    // No policy file: no module label.
    fs.rmSync(policyFile);
    const none = await nfd(['--output', out, ...treeArgs(policyFile).slice(2)]);
    expect(none.status).toBe(EXIT.ok);
    expect(fs.readFileSync(file, 'utf8')).not.toMatch(/module\./);
  });

  it('exit statuses: 2 for a bad command line, 4 for what cannot be read or written', async () => {
    expect((await nfd(['--frobnicate'])).status).toBe(EXIT.usage);
    expect((await nfd(['extra'])).status).toBe(EXIT.usage);
    const help = await nfd(['--help']);
    expect(help.status).toBe(0);
    expect(help.out).toMatch(/^Usage: kmodload nfd/);
    const broken = path.join(scratch, 'broken.conf');
    fs.writeFileSync(broken, 'alow x\n');
    const bad = await nfd(['--output', scratch, ...treeArgs(broken)]);
    expect(bad.status).toBe(EXIT.environment);
    expect(bad.err).toMatch(/^kmodload: invalid policy: .*broken\.conf:1: unknown directive/);
    const good = path.join(scratch, 'good.conf');
    fs.writeFileSync(good, 'allow dummy\n');
    const notADir = path.join(scratch, 'a-file');
    fs.writeFileSync(notADir, '');
    const unwritable = await nfd(['--output', notADir, ...treeArgs(good)]);
    expect(unwritable.status).toBe(EXIT.environment);
    expect(unwritable.err).toMatch(/^kmodload: cannot write .*a-file\/kmodload: /);
    expect(unwritable.err.split('\n')).toHaveLength(2);
  });
});
