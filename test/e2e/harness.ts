// Boots Debian kernels under qemu with an initramfs holding node, kmodload (as installed),
// kmod's modprobe and runc, and reads back what the guest's scenario scripts observed.
// The shell side lives in scripts/test/qemu/; this module only builds, boots and parses.

import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseKernelTrees, type KernelTree } from '../helpers/trees';

const execFileAsync = promisify(execFile);

export const PROJECT_ROOT = path.resolve(__dirname, '..', '..');
const QEMU_SCRIPTS = path.join(PROJECT_ROOT, 'scripts', 'test', 'qemu');

/** The marker that starts each result line on the guest's second serial port. */
export const FRAME = '@@KMODLOAD@@ ';

export type { KernelTree };

/** The kernels of scripts/test/fetch-kernels.sh (downloaded once, then cached). */
export async function fetchKernels(): Promise<KernelTree[]> {
  const { stdout } = await execFileAsync(
    'bash',
    [path.join(PROJECT_ROOT, 'scripts', 'test', 'fetch-kernels.sh')],
    {
      maxBuffer: 1 << 20,
    },
  );
  return parseKernelTrees(stdout);
}

export async function kernelByFlavour(flavour: string): Promise<KernelTree> {
  const kernel = (await fetchKernels()).find((k) => k.flavour === flavour);
  if (!kernel) throw new Error(`scripts/test/fetch-kernels.sh has no ${flavour} kernel`);
  return kernel;
}

export interface GuestImage {
  initrd: string;
  /** The full module tree after recompression and depmod (host-side oracle). */
  tree: string;
  /** Module files (relative to the tree) that are in the image. */
  modules: string[];
  /** Where logs of this kernel's boots go. */
  dir: string;
}

/** A scratch directory per checkout and kernel for images and logs (kept for a look after a
 *  failure). Per checkout: two checkouts on one machine must not boot each other's images. */
export function workDir(kernel: KernelTree): string {
  const dir = path.join(os.tmpdir(), 'kmodload-e2e', path.basename(PROJECT_ROOT), kernel.version);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export interface ImageOptions {
  /** Add Debian 13's containerd, a local OCI image and the CRI client (scenario 14). */
  containerd?: boolean;
}

/** Builds the initramfs for one kernel (scripts/test/qemu/build-initramfs.sh). */
export async function buildImage(
  kernel: KernelTree,
  options: ImageOptions = {},
): Promise<GuestImage> {
  const dir = workDir(kernel);
  try {
    await execFileAsync(
      'bash',
      [
        path.join(QEMU_SCRIPTS, 'build-initramfs.sh'),
        ...(options.containerd ? ['--containerd'] : []),
        kernel.root,
        kernel.version,
        dir,
      ],
      { maxBuffer: 16 << 20 },
    );
  } catch (error) {
    const failure = error as { stderr?: string; message: string };
    throw new Error(`build-initramfs.sh failed for ${kernel.version}:\n${failure.stderr ?? ''}`);
  }
  const modules = fs
    .readFileSync(path.join(dir, 'modules.txt'), 'utf8')
    .split('\n')
    .filter((line) => line !== '');
  return { initrd: path.join(dir, 'initrd.img'), tree: path.join(dir, 'tree'), modules, dir };
}

/** One observation of the guest: a command, its status and output, the modules after it. */
export interface GuestRecord {
  key: string;
  rc: number;
  cmd: string;
  out: string;
  err: string;
  /** /proc/modules after the step; a module not Live shows as `name(State)`. */
  mods: string[];
  /** Duration of the command in the guest. */
  ms: number;
}

export interface BootOptions {
  kernel: KernelTree;
  image: GuestImage;
  /** The scenario set the guest runs (a `set_NAME` function in guest/scenarios.sh). */
  set: string;
  /** qemu CPU model; `max` has SSE4.2, `qemu64` has not. */
  cpu: string;
  /** Extra kernel command line. */
  append?: string;
  timeoutSeconds?: number;
}

export class GuestRun {
  readonly records = new Map<string, GuestRecord>();
  /** Lines that carried the frame but did not parse: a corrupted channel. */
  readonly garbled: string[] = [];

  constructor(
    readonly name: string,
    readonly exitStatus: number | null,
    readonly seconds: number,
    readonly consoleLog: string,
    resultsText: string,
  ) {
    for (const line of resultsText.split('\n')) {
      const at = line.indexOf(FRAME);
      if (at < 0) continue;
      try {
        const raw = JSON.parse(line.slice(at + FRAME.length).trim()) as Record<string, unknown>;
        const text = (field: string): string =>
          Buffer.from(String(raw[field] ?? ''), 'base64').toString('utf8');
        const record: GuestRecord = {
          key: String(raw.key),
          rc: Number(raw.rc),
          cmd: text('cmd'),
          out: text('out'),
          err: text('err'),
          mods: String(raw.mods ?? '')
            .split(' ')
            .filter((m) => m !== ''),
          ms: Number(raw.ms),
        };
        this.records.set(record.key, record);
      } catch {
        this.garbled.push(line);
      }
    }
  }

  /** The guest reached the end of its scenario set. */
  get completed(): boolean {
    return this.records.has('end');
  }

  /** The last lines of the guest's console, for failure messages. */
  consoleTail(lines = 40): string {
    return this.consoleLog.split('\n').slice(-lines).join('\n');
  }

  /** A record the scenarios must have produced; a missing one fails with the guest's story. */
  get(key: string): GuestRecord {
    const record = this.records.get(key);
    if (!record) {
      throw new Error(
        `${this.name}: the guest did not report "${key}" (exit ${String(this.exitStatus)}, ` +
          `${this.completed ? 'completed' : 'did NOT complete'}).\n` +
          `Console tail:\n${this.consoleTail()}\n` +
          `Last records: ${[...this.records.keys()].slice(-8).join(', ')}`,
      );
    }
    return record;
  }

  /** Records whose key starts with `prefix`, in the guest's order. */
  matching(prefix: string): GuestRecord[] {
    return [...this.records.values()].filter((r) => r.key.startsWith(prefix));
  }

  /** A readable account of records, for assertion messages. */
  describe(...keys: string[]): string {
    return keys
      .map((key) => {
        const r = this.records.get(key);
        if (!r) return `[${key}] (missing)`;
        return [
          `[${key}] $ ${r.cmd}  -> exit ${r.rc} (${r.ms} ms)`,
          r.out.trim() && `  stdout: ${indent(r.out.trim())}`,
          r.err.trim() && `  stderr: ${indent(r.err.trim())}`,
          `  modules after: ${r.mods.join(' ') || '(none)'}`,
        ]
          .filter(Boolean)
          .join('\n');
      })
      .join('\n');
  }
}

function indent(text: string): string {
  return text.split('\n').join('\n          ');
}

/** Boots one guest and waits for it to power off (or for the timeout). */
export async function boot(options: BootOptions): Promise<GuestRun> {
  const { kernel, image, set, cpu } = options;
  const timeout = options.timeoutSeconds ?? 360;
  const name = `${kernel.version} [${set}, -cpu ${cpu}]`;
  const consolePath = path.join(image.dir, `${set}-${cpu}.console.log`);
  const resultsPath = path.join(image.dir, `${set}-${cpu}.results.log`);
  const append = `kmodload_e2e=${set} ${options.append ?? ''}`.trim();
  const started = Date.now();
  const exitStatus = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(
      'bash',
      [
        path.join(QEMU_SCRIPTS, 'run-guest.sh'),
        kernel.vmlinuz,
        image.initrd,
        cpu,
        append,
        consolePath,
        resultsPath,
        String(timeout),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (stderr.trim()) fs.writeFileSync(path.join(image.dir, `${set}-${cpu}.qemu.err`), stderr);
      resolve(code);
    });
  });
  const read = (file: string): string => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '');
  const run = new GuestRun(
    name,
    exitStatus,
    (Date.now() - started) / 1000,
    read(consolePath),
    read(resultsPath),
  );
  if (!run.completed) {
    throw new Error(
      `${name}: the guest did not finish (qemu exit ${String(exitStatus)}` +
        `${exitStatus === 124 ? `, killed after ${timeout} s` : ''}). ` +
        `Logs: ${consolePath}, ${resultsPath}\nConsole tail:\n${run.consoleTail()}\n` +
        `Last records: ${[...run.records.keys()].slice(-8).join(', ')}`,
    );
  }
  return run;
}

/** Module names (as in /proc/modules) of module file paths. */
export function moduleNameOfPath(file: string): string {
  return path
    .basename(file)
    .replace(/\.ko(\.(xz|zst|gz))?$/, '')
    .replace(/-/g, '_');
}

/** Names in `after` that are not in `before`, and the other way round. */
export function difference(
  before: string[],
  after: string[],
): { added: string[]; removed: string[] } {
  const b = new Set(before);
  const a = new Set(after);
  return {
    added: after.filter((m) => !b.has(m)),
    removed: before.filter((m) => !a.has(m)),
  };
}
