import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT, KmodloadError } from '../../src/errors';
import {
  KERNEL_MODULES_ANNOTATION,
  MAX_MODULE_NAME_LENGTH,
  MAX_REQUEST_LENGTH,
  parseKernelModules,
} from '../../src/container/request';
import { MAX_CONFIG_BYTES, readHookRequest, requestFromConfig } from '../../src/hook/request';
import type { ContainerState } from '../../src/hook/state';
import { writeBundle } from '../helpers/bundle';
import { thrown } from '../helpers/errors';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-request-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

let bundleCount = 0;
/** A bundle directory whose config.json holds `content` (a value to JSON-encode, raw bytes,
 *  or nothing at all). */
function bundle(content?: unknown): string {
  return writeBundle(path.join(scratch, `bundle-${bundleCount++}`), content);
}

function state(dir: string | undefined, annotations: Record<string, string> = {}): ContainerState {
  const result: ContainerState = { id: 'c1', status: 'creating', annotations };
  if (dir !== undefined) result.bundle = dir;
  return result;
}

function envConfig(env: unknown[]): unknown {
  return { ociVersion: '1.0.2', process: { args: ['/bin/sh'], env } };
}

async function refusal(promise: Promise<unknown>): Promise<KmodloadError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(KmodloadError);
  return error as KmodloadError;
}

describe('parseKernelModules', () => {
  it('splits on commas and blanks, skips empty items', () => {
    expect(parseKernelModules('ip_vs,ip_vs_wrr')).toEqual(['ip_vs', 'ip_vs_wrr']);
    expect(parseKernelModules('ip_vs ip_vs_wrr')).toEqual(['ip_vs', 'ip_vs_wrr']);
    expect(parseKernelModules('ip_vs\tip_vs_wrr, nf_conntrack\n')).toEqual([
      'ip_vs',
      'ip_vs_wrr',
      'nf_conntrack',
    ]);
    expect(parseKernelModules(' ip_vs , ip_vs_wrr\t,')).toEqual(['ip_vs', 'ip_vs_wrr']);
    expect(parseKernelModules(',,ip_vs,,')).toEqual(['ip_vs']);
    expect(parseKernelModules('')).toEqual([]);
    expect(parseKernelModules(' , ,')).toEqual([]);
  });

  it('keeps names spelled with - and drops exact duplicates', () => {
    expect(parseKernelModules('ip-vs,ip_vs,ip-vs,nf_conntrack')).toEqual([
      'ip-vs',
      'ip_vs',
      'nf_conntrack',
    ]);
  });

  it('refuses the whole request over one invalid name, naming it', () => {
    for (const [value, shown] of [
      ['ip_vs|reboot', '"ip_vs|reboot"'],
      ['ip_vs,../x', '"../x"'],
      ['ip_vs,a.b', '"a.b"'],
      ['ip_vs,$(reboot)', '"$(reboot)"'],
      ['x/y', '"x/y"'],
    ] as const) {
      const error = thrown(() => parseKernelModules(value));
      expect(error.exitStatus).toBe(EXIT.refused);
      expect(error.message).toBe(
        `cannot load ${shown}: invalid module name in KERNEL_MODULES (only letters, digits, "_" and "-" are allowed)`,
      );
    }
  });

  it(`accepts ${MAX_MODULE_NAME_LENGTH} characters, refuses more (and a 300-character name)`, () => {
    const longest = 'a'.repeat(MAX_MODULE_NAME_LENGTH);
    expect(parseKernelModules(longest)).toEqual([longest]);
    const tooLong = thrown(() => parseKernelModules(`ip_vs,${longest}b`));
    expect(tooLong.message).toMatch(/longer than 55 characters/);
    const name300 = 'x'.repeat(300);
    const error = thrown(() => parseKernelModules(name300));
    expect(error.exitStatus).toBe(EXIT.refused);
    // Quoted, cut, and still one line.
    expect(error.message).toBe(
      `cannot load "${'x'.repeat(64)}...(300 characters)": invalid module name in KERNEL_MODULES (longer than 55 characters)`,
    );
  });

  it('escapes control bytes, newlines and escape sequences in the message', () => {
    // Blanks (a newline too) separate names; the escape sequence is what is refused.
    const error = thrown(() => parseKernelModules('ip_vs,evil\n\u001b[31mkmodload: ok\r'));
    expect(error.message).toContain('cannot load "\\x1b[31mkmodload:": invalid module name');
    expect(error.message).not.toMatch(/[\n\r]/);
    expect(error.message).not.toContain('\u001b');
    const unicode = thrown(() => parseKernelModules('m\u00e9t\u{1f600}'));
    expect(unicode.message).toContain('"m\\xe9t\\u{1f600}"');
  });

  it('names the source in the message', () => {
    const error = thrown(() =>
      parseKernelModules('a.b', `annotation ${KERNEL_MODULES_ANNOTATION}`),
    );
    expect(error.message).toContain(
      'invalid module name in annotation org.kmodload.kernel-modules',
    );
  });

  it('refuses a value longer than the limit', () => {
    const value = Array.from({ length: MAX_REQUEST_LENGTH / 4 + 1 }, () => 'abc').join(',');
    const error = thrown(() => parseKernelModules(value));
    expect(error.exitStatus).toBe(EXIT.refused);
    expect(error.message).toMatch(/^KERNEL_MODULES is too long \(\d+ characters, at most 65536\)$/);
  });
});

describe('requestFromConfig', () => {
  it('takes everything after the FIRST = as the value', () => {
    // The original cut the value at the second '=' and loaded dummy alone.
    const request = requestFromConfig(envConfig(['KERNEL_MODULES=dummy numdummies=3']));
    expect(request.modules).toEqual(['dummy']);
    expect(request.params).toEqual({ dummy: 'numdummies=3' });
    const error = thrown(() => requestFromConfig(envConfig(['KERNEL_MODULES=ip_vs,a=b'])));
    expect(error.message).toContain(
      'cannot load "ip_vs,a=b": invalid module name in KERNEL_MODULES entry "ip_vs,a=b"',
    );
  });

  it('two entries with different values are refused; the same value twice is one', () => {
    const error = thrown(() =>
      requestFromConfig(envConfig(['KERNEL_MODULES=ip_vs', 'KERNEL_MODULES=nf_conntrack'])),
    );
    expect(error.exitStatus).toBe(EXIT.refused);
    expect(error.message).toBe(
      'KERNEL_MODULES is set twice with different values, "ip_vs" and "nf_conntrack": remove one (the container would see only the last)',
    );
    const same = requestFromConfig(envConfig(['KERNEL_MODULES=ip_vs', 'KERNEL_MODULES=ip_vs']));
    expect(same.modules).toEqual(['ip_vs']);
  });

  it('skips entries without =, and names that only start like it', () => {
    const request = requestFromConfig(
      envConfig(['KERNEL_MODULES', 'KERNEL_MODULES_X=a', 'kernel_modules=b', 'HOME=/root']),
    );
    expect(request.modules).toEqual([]);
    expect(request.env).toBeUndefined();
    expect(
      requestFromConfig(envConfig(['KERNEL_MODULES', 'KERNEL_MODULES=ip_vs'])).modules,
    ).toEqual(['ip_vs']);
  });

  it('an empty value asks for nothing', () => {
    const request = requestFromConfig(envConfig(['KERNEL_MODULES=']));
    expect(request.env).toBe('');
    expect(request.modules).toEqual([]);
  });

  it('no process, or no env: nothing from the environment', () => {
    expect(requestFromConfig({ ociVersion: '1.0.2' }).modules).toEqual([]);
    expect(requestFromConfig({ process: null }).modules).toEqual([]);
    expect(requestFromConfig({ process: { args: ['/bin/sh'] } }).modules).toEqual([]);
  });

  it("reads keys in another letter case as runc's Go decoder does (case-insensitive, in order)", () => {
    const modules = (text: string) => requestFromConfig(JSON.parse(text)).modules;
    expect(modules('{"Process":{"Env":["KERNEL_MODULES=ip_vs"]}}')).toEqual(['ip_vs']);
    expect(modules('{"PROCESS":{"ENV":["KERNEL_MODULES=tun"]}}')).toEqual(['tun']);
    // Unicode simple folding: U+017F (long s) is an s to Go.
    expect(modules('{"proce\u017fs":{"env":["KERNEL_MODULES=tun"]}}')).toEqual(['tun']);
    // Every matching key is decoded in order: objects merge, a later env replaces.
    expect(modules('{"process":{"env":["KERNEL_MODULES=tun"]},"Process":{"cwd":"/"}}')).toEqual([
      'tun',
    ]);
    expect(
      modules(
        '{"process":{"env":["KERNEL_MODULES=tun"]},"Process":{"Env":["KERNEL_MODULES=dummy"]}}',
      ),
    ).toEqual(['dummy']);
    expect(modules('{"Process":{"env":["KERNEL_MODULES=tun"]},"process":null}')).toEqual([]);
    // Not a fold of "process": no request.
    expect(modules('{"processes":{"env":["KERNEL_MODULES=tun"]},"proc":{}}')).toEqual([]);
    // Annotations too (the keys inside the map are exact).
    const annotated = requestFromConfig(
      JSON.parse('{"Annotations":{"org.kmodload.kernel-modules":"dummy"}}'),
    );
    expect(annotated.modules).toEqual(['dummy']);
    expect(() => requestFromConfig({ Process: 'x' })).toThrow('"process" is not an object');
  });

  it('refuses shapes no runtime would accept', () => {
    for (const [config, detail] of [
      [[], 'not a JSON object'],
      ['text', 'not a JSON object'],
      [null, 'not a JSON object'],
      [{ process: 'x' }, '"process" is not an object'],
      [{ process: { env: 'KERNEL_MODULES=ip_vs' } }, 'process.env is not an array'],
      [envConfig(['A=b', 7, 'KERNEL_MODULES=ip_vs']), 'process.env[1] is not a string'],
      [envConfig(['KERNEL_MODULES=ip_vs', null]), 'process.env[1] is not a string'],
      [{ annotations: [] }, '"annotations" is not an object'],
      [{ annotations: { [KERNEL_MODULES_ANNOTATION]: 1 } }, 'annotation "org.kmodload'],
    ] as const) {
      const error = thrown(() => requestFromConfig(config, {}, '/b/config.json'));
      expect(error.exitStatus).toBe(EXIT.environment);
      expect(error.message).toContain(`malformed container config /b/config.json: ${detail}`);
    }
  });

  it('reads the annotation from the state, else from config.json, after the env names', () => {
    const config = {
      process: { env: ['KERNEL_MODULES=ip_vs, nf_conntrack'] },
      annotations: { [KERNEL_MODULES_ANNOTATION]: 'from_config' },
    };
    expect(requestFromConfig(config).modules).toEqual(['ip_vs', 'nf_conntrack', 'from_config']);
    const fromState = requestFromConfig(config, {
      [KERNEL_MODULES_ANNOTATION]: 'ip_vs_wrr,ip_vs',
    });
    expect(fromState.modules).toEqual(['ip_vs', 'nf_conntrack', 'ip_vs_wrr']);
    expect(fromState.annotation).toBe('ip_vs_wrr,ip_vs');
    expect(fromState.env).toBe('ip_vs, nf_conntrack');
  });

  it('an invalid annotation refuses the request even when the env is fine', () => {
    const error = thrown(() =>
      requestFromConfig(envConfig(['KERNEL_MODULES=ip_vs']), {
        [KERNEL_MODULES_ANNOTATION]: 'ip_vs;$(reboot)',
      }),
    );
    expect(error.exitStatus).toBe(EXIT.refused);
    expect(error.message).toContain('"$(reboot)"');
  });
});

describe('readHookRequest', () => {
  it('reads <bundle>/config.json', async () => {
    const dir = bundle(envConfig(['PATH=/bin', 'KERNEL_MODULES=ip_vs,ip_vs_wrr']));
    const request = await readHookRequest(state(dir));
    expect(request).toEqual({
      modules: ['ip_vs', 'ip_vs_wrr'],
      env: 'ip_vs,ip_vs_wrr',
      configPath: path.join(dir, 'config.json'),
      annotations: {},
      sources: { ip_vs: ['env'], ip_vs_wrr: ['env'] },
      params: {},
    });
  });

  it("falls back to iSulad 1.x's ociconfig.json when there is no config.json", async () => {
    const dir = bundle(envConfig(['KERNEL_MODULES=ip_vs']));
    fs.renameSync(path.join(dir, 'config.json'), path.join(dir, 'ociconfig.json'));
    const request = await readHookRequest(state(dir));
    expect(request.modules).toEqual(['ip_vs']);
    expect(request.configPath).toBe(path.join(dir, 'ociconfig.json'));
    fs.rmSync(path.join(dir, 'ociconfig.json'));
    const missing = await refusal(readHookRequest(state(dir)));
    expect(missing.message).toMatch(/cannot read container config .*\/config\.json: ENOENT/);
  });

  it('resolves a relative bundle against the working directory runtimes give hooks', async () => {
    const dir = bundle(envConfig(['KERNEL_MODULES=ip_vs']));
    const request = await readHookRequest(state(path.basename(dir)), { cwd: scratch });
    expect(request.modules).toEqual(['ip_vs']);
  });

  it('a state without a bundle is an error, even with an annotation request', async () => {
    const error = await refusal(
      readHookRequest(state(undefined, { [KERNEL_MODULES_ANNOTATION]: 'ip_vs' })),
    );
    expect(error.exitStatus).toBe(EXIT.environment);
    expect(error.message).toBe(
      'container "c1": the state names no bundle, cannot read its KERNEL_MODULES',
    );
  });

  it('a missing config.json is an error: the request cannot be seen', async () => {
    const dir = bundle();
    const error = await refusal(readHookRequest(state(dir)));
    expect(error.exitStatus).toBe(EXIT.environment);
    expect(error.message).toBe(
      `cannot read container config ${dir}/config.json: ENOENT: no such file or directory (cannot tell which kernel modules it needs)`,
    );
    // The same when the state's annotation asks for modules: the env might ask for more.
    await refusal(readHookRequest(state(dir, { [KERNEL_MODULES_ANNOTATION]: 'ip_vs' })));
    // And when the bundle itself is gone.
    await refusal(readHookRequest(state(path.join(scratch, 'no-such-bundle'))));
  });

  it('an unreadable config.json is an error', async () => {
    const dir = bundle();
    fs.mkdirSync(path.join(dir, 'config.json'));
    const error = await refusal(readHookRequest(state(dir)));
    expect(error.exitStatus).toBe(EXIT.environment);
    expect(error.message).toMatch(
      /^cannot read container config .*config\.json: not a regular file/,
    );
    const faulty = await refusal(
      readHookRequest(state(bundle()), {
        readFile: () =>
          Promise.reject(
            Object.assign(new Error('EACCES: permission denied, open'), { code: 'EACCES' }),
          ),
      }),
    );
    expect(faulty.message).toMatch(/config\.json: EACCES: permission denied \(cannot tell/);
  });

  it('a malformed config.json is an error', async () => {
    for (const content of [
      '{"process": {"env": ["KERNEL_MODULES=ip_vs"]',
      '',
      '\ufeff{}',
      'null',
    ]) {
      const dir = bundle(content);
      const error = await refusal(readHookRequest(state(dir)));
      expect(error.exitStatus).toBe(EXIT.environment);
      expect(error.message).toMatch(/^malformed container config .*config\.json: /);
    }
  });

  it(`a config.json over ${MAX_CONFIG_BYTES} bytes is an error, whatever it holds`, async () => {
    const config = JSON.stringify(envConfig(['KERNEL_MODULES=ip_vs']));
    const dir = bundle(config + ' '.repeat(MAX_CONFIG_BYTES - config.length + 1));
    const error = await refusal(readHookRequest(state(dir)));
    expect(error.exitStatus).toBe(EXIT.environment);
    expect(error.message).toBe(
      `container config ${dir}/config.json is larger than ${MAX_CONFIG_BYTES} bytes`,
    );
    // Exactly at the limit is fine.
    const atLimit = bundle(config + ' '.repeat(MAX_CONFIG_BYTES - config.length));
    expect((await readHookRequest(state(atLimit))).modules).toEqual(['ip_vs']);
  });

  it('a huge KERNEL_MODULES value is refused', async () => {
    const dir = bundle(envConfig([`KERNEL_MODULES=${'ip_vs,'.repeat(200_000)}`]));
    const error = await refusal(readHookRequest(state(dir)));
    expect(error.exitStatus).toBe(EXIT.refused);
    expect(error.message).toMatch(/^KERNEL_MODULES is too long \(1200000 characters/);
  });

  it('non-UTF-8 bytes: ignored elsewhere, an invalid name inside the request', async () => {
    const encode = (text: string) => Buffer.from(text, 'latin1');
    // Go runtimes read such bytes as U+FFFD and start the container: so do we.
    const elsewhere = bundle(
      Buffer.concat([
        encode('{"hostname":"h\xff\xfe","process":{"env":["X=\xc3\x28","KERNEL_MODULES=ip_vs"]}}'),
      ]),
    );
    expect((await readHookRequest(state(elsewhere))).modules).toEqual(['ip_vs']);
    const inside = bundle(encode('{"process":{"env":["KERNEL_MODULES=ip_vs,ip_\xff_vs"]}}'));
    const error = await refusal(readHookRequest(state(inside)));
    expect(error.exitStatus).toBe(EXIT.refused);
    expect(error.message).toBe(
      'cannot load "ip_\\ufffd_vs": invalid module name in KERNEL_MODULES (only letters, digits, "_" and "-" are allowed)',
    );
  });

  it('takes the request from annotations alone (CRI-O, podman --annotation)', async () => {
    const dir = bundle({ process: { env: ['PATH=/bin'] } });
    const request = await readHookRequest(state(dir, { [KERNEL_MODULES_ANNOTATION]: 'ip_vs' }));
    expect(request.modules).toEqual(['ip_vs']);
    expect(request.env).toBeUndefined();
    expect(request.annotation).toBe('ip_vs');
  });
});
