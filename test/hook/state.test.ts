import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { EXIT, type KmodloadError } from '../../src/errors';
import { inferStage, isLoadStage, parseStage } from '../../src/hook/stage';
import { MAX_STATE_BYTES, parseContainerState } from '../../src/hook/state';
import { decodeUtf8, readBounded } from '../../src/hook/text';
import { thrown } from '../helpers/errors';

describe('parseContainerState', () => {
  it('reads the state runc sends', () => {
    // Captured from runc 1.1.5 on this machine (prestart).
    const text =
      '{"ociVersion":"1.0.2-dev","id":"test1","status":"creating","pid":10100,"bundle":"/tmp/bundle","annotations":{"org.kmodload.kernel-modules":"ip_vs"}}';
    expect(parseContainerState(text)).toEqual({
      ociVersion: '1.0.2-dev',
      id: 'test1',
      status: 'creating',
      pid: 10100,
      bundle: '/tmp/bundle',
      annotations: { 'org.kmodload.kernel-modules': 'ip_vs' },
    });
  });

  it('accepts the older bundlePath, iSulad root, no status, no pid (poststop), extra fields', () => {
    expect(
      parseContainerState(
        JSON.stringify({
          ociVersion: '1.0.0',
          id: 'sys1',
          pid: 42,
          root: '/var/lib/isulad/rootfs',
          bundlePath: '/var/lib/isulad/engines/lcr/sys1',
          future: { x: 1 },
        }),
      ),
    ).toEqual({
      ociVersion: '1.0.0',
      id: 'sys1',
      pid: 42,
      root: '/var/lib/isulad/rootfs',
      bundle: '/var/lib/isulad/engines/lcr/sys1',
      annotations: {},
    });
    expect(parseContainerState('{"id":"x","status":"stopped","bundle":"/b"}').pid).toBeUndefined();
    // iSulad's lcr: pid -1 when lxc has no pid (poststop), printf-built state without status.
    const lcr = parseContainerState(
      '{"ociVersion":"","id":"c9","pid":-1,"root":"/r","bundle":"/b"}',
    );
    expect(lcr).toEqual({ ociVersion: '', id: 'c9', root: '/r', bundle: '/b', annotations: {} });
    // bundle wins over bundlePath when both are there.
    expect(parseContainerState('{"id":"x","bundle":"/new","bundlePath":"/old"}').bundle).toBe(
      '/new',
    );
  });

  it('reads bytes with invalid UTF-8 as the runtimes do', () => {
    const bytes = Buffer.from('{"id":"c\xff","bundle":"/b"}', 'latin1');
    expect(parseContainerState(bytes).id).toBe('c\ufffd');
    // As the Encoding Standard's decoder replaces them (TextDecoder), a BOM kept: overlong
    // forms, surrogates, truncated sequences, bytes that never start one, in a subarray.
    const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
    const samples = [
      'efbbbf41',
      'c0af',
      'e080af',
      'eda080',
      'f4908080',
      'f5',
      'ff',
      'e282',
      'e2',
      'f09f98',
      'c328',
      'e228a1',
      '80bf',
      'f09f9880f0',
      '41c2a9e282ace2',
      '00',
      '',
    ];
    for (const hex of samples) {
      const framed = Buffer.from(`aa${hex}bb`, 'hex');
      const bytes = new Uint8Array(framed.buffer, framed.byteOffset + 1, framed.length - 2);
      expect(decodeUtf8(bytes), hex).toBe(decoder.decode(bytes));
    }
  });

  it('refuses malformed states with one line', () => {
    for (const [text, detail] of [
      ['', 'empty input'],
      ['  \n', 'empty input'],
      ['{"id":', 'not JSON'],
      ['[]', 'not a JSON object'],
      ['"creating"', 'not a JSON object'],
      ['null', 'not a JSON object'],
      ['{"status":"creating"}', 'no "id"'],
      ['{"id":7}', '"id" is not a string'],
      ['{"id":"x","status":1}', '"status" is not a string'],
      ['{"id":"x","pid":-2}', '"pid" is not a process id'],
      ['{"id":"x","pid":"12"}', '"pid" is not a process id'],
      ['{"id":"x","bundle":["/b"]}', '"bundle" is not a string'],
      ['{"id":"x","annotations":"a=b"}', '"annotations" is not an object'],
      ['{"id":"x","annotations":{"k\\n":1}}', 'annotation "k\\x0a" is not a string'],
    ] as const) {
      const error = thrown(() => parseContainerState(text));
      expect(error.exitStatus).toBe(EXIT.environment);
      expect(error.message).toContain(`malformed container state on stdin: ${detail}`);
      expect(error.message).not.toContain('\n');
    }
  });

  it('reads stdin, refusing more than the limit', async () => {
    const read = (stdin: Readable) =>
      readBounded(stdin, MAX_STATE_BYTES, 'container state on stdin').then(parseContainerState);
    const state = await read(Readable.from([Buffer.from('{"id":'), '"a"}']));
    expect(state.id).toBe('a');
    const big = Readable.from(
      (function* () {
        for (let i = 0; i <= MAX_STATE_BYTES / 65536; i++) yield Buffer.alloc(65536, 0x20);
      })(),
    );
    const error = await read(big).then(
      () => undefined,
      (caught: unknown) => caught as KmodloadError,
    );
    expect(error?.exitStatus).toBe(EXIT.environment);
    expect(error?.message).toBe(`container state on stdin is larger than ${MAX_STATE_BYTES} bytes`);
  });
});

describe('stages', () => {
  it('takes --state values in the spec spelling or lowercase', () => {
    expect(parseStage('prestart')).toBe('prestart');
    expect(parseStage('createRuntime')).toBe('createRuntime');
    expect(parseStage('createruntime')).toBe('createRuntime');
    expect(parseStage('POSTSTOP')).toBe('poststop');
    const error = thrown(() => parseStage('pre-start'));
    expect(error.exitStatus).toBe(EXIT.usage);
    expect(error.message).toBe(
      'unknown hook stage "pre-start" (expected one of prestart, createRuntime, createContainer, startContainer, poststart, poststop)',
    );
  });

  it('loads at prestart and createRuntime only', () => {
    expect(isLoadStage('prestart')).toBe(true);
    expect(isLoadStage('createRuntime')).toBe(true);
    for (const stage of ['createContainer', 'startContainer', 'poststart', 'poststop'] as const) {
      expect(isLoadStage(stage)).toBe(false);
    }
  });

  it('infers the stage from the status', () => {
    expect(inferStage({ status: 'creating' })).toBe('prestart');
    // runc sends "created" at poststart, crun at prestart and createRuntime: no guess.
    const created = thrown(() => inferStage({ status: 'created' }));
    expect(created.exitStatus).toBe(EXIT.usage);
    expect(created.message).toMatch(/"created" does not tell the stage .*pass --state STAGE/);
    expect(inferStage({ status: 'running' })).toBe('poststart');
    expect(inferStage({ status: 'stopped' })).toBe('poststop');
    const missing = thrown(() => inferStage({}));
    expect(missing.exitStatus).toBe(EXIT.usage);
    expect(missing.message).toMatch(/no "status": pass --state STAGE/);
    const odd = thrown(() => inferStage({ status: 'paused' }));
    expect(odd.exitStatus).toBe(EXIT.usage);
    expect(odd.message).toBe(
      'unknown container status "paused": pass --state STAGE in the hook arguments',
    );
  });
});
