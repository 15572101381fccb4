// specProblems: the rules the engines' CDI library applies when it loads a spec (strict
// fields, name grammars, hook names, env, versions), and the OCI runtime's for hooks.

import { describe, expect, it } from 'vitest';
import { buildSpecs, digitsFile, isDeviceName, parseSet, specProblems } from '../../src/cdi/index';
import { EXIT } from '../../src/errors';

const HOOK = {
  hookName: 'createRuntime',
  path: '/usr/local/libexec/kmodload/kmodload-hook',
  args: ['kmodload', 'hook', '--state', 'createRuntime', '--module', 'ip_vs'],
  env: ['PATH=/usr/bin'],
  timeout: 30,
};

function spec(overrides: Record<string, unknown> = {}, device: Record<string, unknown> = {}) {
  return {
    cdiVersion: '0.3.0',
    kind: 'kmodload.io/module',
    devices: [{ name: 'ip_vs', containerEdits: { hooks: [{ ...HOOK }] }, ...device }],
    ...overrides,
  };
}

function withHook(hook: Record<string, unknown>) {
  return spec({}, { containerEdits: { hooks: [{ ...HOOK, ...hook }] } });
}

describe('specProblems', () => {
  it('a hook-only device at 0.3.0 is fine', () => {
    expect(specProblems(spec())).toEqual([]);
  });

  it('fields the 0.5 library does not know are refused (its parse is strict)', () => {
    expect(specProblems(spec({ annotations: { a: 'b' } }))).toEqual([
      'spec.annotations: unknown field',
    ]);
    expect(specProblems(spec({}, { annotations: { a: 'b' } }))).toEqual([
      'devices[0].annotations: unknown field',
    ]);
    expect(specProblems(withHook({ stage: 'x' }))).toEqual([
      'devices[0].containerEdits.hooks[0].stage: unknown field',
    ]);
  });

  it('hooks: the six names, an absolute path, KEY=VALUE env, a timeout above 0', () => {
    const at = 'devices[0].containerEdits.hooks[0]';
    expect(specProblems(withHook({ hookName: 'preStart' }))).toEqual([
      `${at}.hookName: "preStart" is not one of prestart, createRuntime, createContainer, startContainer, poststart, poststop`,
    ]);
    expect(specProblems(withHook({ path: 'kmodload-hook' }))).toEqual([
      `${at}.path: "kmodload-hook" is not an absolute path`,
    ]);
    expect(specProblems(withHook({ env: ['PATH', '=x'] }))).toEqual([
      `${at}.env[0]: not KEY=VALUE: "PATH"`,
      `${at}.env[1]: not KEY=VALUE: "=x"`,
    ]);
    expect(specProblems(withHook({ timeout: 0 }))).toHaveLength(1);
    expect(specProblems(withHook({ timeout: 1.5 }))).toHaveLength(1);
    expect(specProblems(withHook({ args: ['kmodload', 3] }))).toEqual([
      `${at}.args[1]: not a string`,
    ]);
  });

  it('names: device, vendor and class grammars; a device twice; no device', () => {
    for (const name of ['_x', 'x_', 'a b', 'x/y', '']) {
      expect(specProblems(spec({}, { name }))).toHaveLength(1);
    }
    for (const name of ['8021q', 'a', 'ip_vs', 'a.b-c:d']) expect(isDeviceName(name)).toBe(true);
    const twice = spec();
    twice.devices.push({ ...twice.devices[0]! });
    expect(specProblems(twice)).toEqual(['devices[1].name: "ip_vs" twice']);
    expect(specProblems(spec({ kind: 'kmodload.io' }))).toEqual([
      'kind: "kmodload.io" is not VENDOR/CLASS',
    ]);
    expect(specProblems(spec({ kind: '1k/module' }))).toEqual(['kind: "1k" is not a vendor name']);
    // A dot in the class needs 0.6.0: not a class podman 4.3 reads.
    expect(specProblems(spec({ kind: 'kmodload.io/mod.ule' }))).toEqual([
      'kind: "mod.ule" is not a class name',
    ]);
    expect(specProblems(spec({ devices: [] }))).toEqual(['devices: no devices']);
    expect(specProblems(spec({}, { containerEdits: undefined }))).toEqual([
      'devices[0].containerEdits: no edits',
    ]);
  });

  it('versions: readable by podman 4.3 and later, and at least what the fields need', () => {
    expect(specProblems(spec({}, { name: '8021q' }))).toEqual([
      'cdiVersion: "0.3.0" is too low: devices[0].name "8021q" starts with a digit needs 0.5.0',
    ]);
    expect(specProblems(spec({ cdiVersion: '0.5.0' }, { name: '8021q' }))).toEqual([]);
    expect(specProblems(spec({ cdiVersion: '0.6.0' }))).toEqual([
      'cdiVersion: "0.6.0" is not one of 0.3.0, 0.4.0, 0.5.0',
    ]);
    expect(specProblems('{}')).toEqual(['spec: not an object']);
  });
});

describe('building', () => {
  const options = { wrapperPath: '/k', nodeArguments: ['--log', '/l'] };

  it('names that start with a digit go to their own file at 0.5.0; files in name order', () => {
    const specs = buildSpecs(
      [
        { name: 'veth', modules: ['veth'] },
        { name: '8021q', modules: ['8021q'] },
        { name: 'bonding', modules: ['bonding'] },
      ],
      options,
    );
    expect(specs.main?.devices.map((d) => d.name)).toEqual(['bonding', 'veth']);
    expect(specs.main?.cdiVersion).toBe('0.3.0');
    expect(specs.digits?.devices.map((d) => d.name)).toEqual(['8021q']);
    expect(specs.digits?.cdiVersion).toBe('0.5.0');
    expect(buildSpecs([{ name: 'veth', modules: ['veth'] }], options).digits).toBeUndefined();
    expect(digitsFile('/etc/cdi/kmodload.json')).toBe('/etc/cdi/kmodload-digits.json');
    expect(digitsFile('/etc/cdi/k.yaml')).toBe('/etc/cdi/k-digits.yaml');
  });

  it('--set NAME=M1,M2: a device name and module names', () => {
    expect(parseSet('ipvs=ip_vs,ip_vs_rr')).toEqual({
      name: 'ipvs',
      modules: ['ip_vs', 'ip_vs_rr'],
    });
    expect(parseSet('lb=ip_vs ip_vs,ip_vs_rr')).toEqual({
      name: 'lb',
      modules: ['ip_vs', 'ip_vs_rr'],
    });
    for (const bad of ['ipvs', '=ip_vs', 'a b=ip_vs', 'ipvs=', 'ipvs=ip/vs']) {
      expect(() => parseSet(bad)).toThrow(expect.objectContaining({ exitStatus: EXIT.usage }));
    }
  });
});
