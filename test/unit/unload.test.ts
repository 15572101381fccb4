import { describe, expect, it } from 'vitest';
import { EXIT, KmodloadError } from '../../src/errors';
import { O_NONBLOCK, O_TRUNC } from '../../src/kernel/kernel';
import type { UnloadDatabase } from '../../src/loader/unload';
import { executeUnload } from '../../src/loader/unload';
import { FakeKernel } from '../helpers/fake-kernel';

// The 6.1 tree's shape for ip_vs: modules.dep order and the libcrc32c softdep; plus a made-up
// post softdep so the whole modprobe -r order shows.
const DEPS: Record<string, string[]> = {
  ip_vs: ['nf_conntrack', 'nf_defrag_ipv6', 'nf_defrag_ipv4', 'libcrc32c'],
  nf_conntrack: ['nf_defrag_ipv6', 'nf_defrag_ipv4', 'libcrc32c'],
};

function database(
  overrides: {
    softdeps?: Record<string, { pre: string[]; post: string[] }>;
    builtin?: string[];
    remove?: Record<string, string>;
  } = {},
): UnloadDatabase {
  return {
    dependencies: (name) => DEPS[name] ?? [],
    softdeps: (name) => overrides.softdeps?.[name] ?? { pre: [], post: [] },
    isBuiltin: (name) => (overrides.builtin ?? []).includes(name),
    removeCommand: (name) => overrides.remove?.[name],
  };
}

/** A kernel where ip_vs and what it needs are live, with the references they hold. */
function loadedKernel(): FakeKernel {
  const kernel = new FakeKernel();
  for (const name of [
    'crc32c_generic',
    'libcrc32c',
    'nf_defrag_ipv4',
    'nf_defrag_ipv6',
    'nf_conntrack',
    'ip_vs',
    'ip_vs_extra',
  ]) {
    kernel.setState(name, 'live');
  }
  kernel.setRefcount('nf_conntrack', 1).setHolders('nf_conntrack', ['ip_vs']);
  kernel.setRefcount('nf_defrag_ipv4', 1).setHolders('nf_defrag_ipv4', ['nf_conntrack']);
  kernel.setRefcount('nf_defrag_ipv6', 1).setHolders('nf_defrag_ipv6', ['nf_conntrack']);
  kernel.setRefcount('libcrc32c', 1).setHolders('libcrc32c', ['nf_conntrack']);
  return kernel;
}

const IP_VS_SOFTDEPS = {
  ip_vs: { pre: [], post: ['ip_vs_extra'] },
  libcrc32c: { pre: ['crc32c_intel', 'crc32c_generic'], post: [] },
};

describe('executeUnload', () => {
  it('removes post softdeps, the module, unused dependencies in modules.dep order', async () => {
    const kernel = loadedKernel();
    const result = await executeUnload(
      [{ request: 'ip_vs', modules: ['ip_vs'] }],
      database({ softdeps: IP_VS_SOFTDEPS }),
      { kernel },
    );
    expect(result.ok).toBe(true);
    // nf_conntrack comes first in ip_vs's modules.dep list; removing it frees the others.
    expect(kernel.deleted()).toEqual([
      'ip_vs_extra',
      'ip_vs',
      'nf_conntrack',
      'nf_defrag_ipv6',
      'nf_defrag_ipv4',
      'libcrc32c',
    ]);
    expect(kernel.calls.every((c) => c.op === 'deleteModule' && c.flags === O_NONBLOCK)).toBe(true);
    expect(result.modules.map((m) => `${m.status} ${m.name} ${m.required}`)).toEqual([
      'removed ip_vs_extra false',
      'removed ip_vs true',
      'removed nf_conntrack false',
      'removed nf_defrag_ipv6 false',
      'removed nf_defrag_ipv4 false',
      'removed libcrc32c false',
    ]);
  });

  it('leaves a dependency that something else still holds', async () => {
    const kernel = loadedKernel()
      .setRefcount('libcrc32c', 2)
      .setHolders('libcrc32c', ['nf_conntrack', 'btrfs']);
    const result = await executeUnload(
      [{ request: 'nf_conntrack', modules: ['nf_conntrack'] }],
      database({ softdeps: IP_VS_SOFTDEPS }),
      { kernel: kernel.setRefcount('nf_conntrack', 0).setHolders('nf_conntrack', []) },
    );
    expect(result.ok).toBe(true);
    expect(kernel.deleted()).toEqual(['nf_conntrack', 'nf_defrag_ipv6', 'nf_defrag_ipv4']);
    expect(kernel.state('libcrc32c')).toBe('live');
  });

  it('pre softdeps of the module itself go after its dependencies, in reverse', async () => {
    const kernel = new FakeKernel();
    for (const n of ['a', 'b', 'c', 'x']) kernel.setState(n, 'live');
    const db = database({ softdeps: { x: { pre: ['a', 'b'], post: ['c'] } } });
    const result = await executeUnload([{ request: 'x', modules: ['x'] }], db, { kernel });
    expect(result.ok).toBe(true);
    expect(kernel.deleted()).toEqual(['c', 'x', 'b', 'a']);
  });

  it('refuses a module in use, naming its holders, before removing anything', async () => {
    const kernel = loadedKernel();
    const error = await executeUnload(
      [
        { request: 'nf_conntrack', modules: ['nf_conntrack'] },
        { request: 'ip_vs', modules: ['ip_vs'] },
      ],
      database({ softdeps: IP_VS_SOFTDEPS }),
      { kernel },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KmodloadError);
    expect((error as KmodloadError).exitStatus).toBe(EXIT.refused);
    expect((error as KmodloadError).message).toBe(
      'cannot unload nf_conntrack: module nf_conntrack is in use by ip_vs',
    );
    expect(kernel.calls).toEqual([]);
  });

  it('a holder asked for earlier in the same call does not count: it goes first', async () => {
    // `unload ip_vs_wrr ip_vs`: ip_vs is held by ip_vs_wrr only until ip_vs_wrr is removed.
    const kernel = new FakeKernel().setState('ip_vs_wrr', 'live').setState('ip_vs', 'live');
    kernel.setRefcount('ip_vs', 1).setHolders('ip_vs', ['ip_vs_wrr']);
    const result = await executeUnload(
      [
        { request: 'ip_vs_wrr', modules: ['ip_vs_wrr'] },
        { request: 'ip_vs', modules: ['ip_vs'] },
      ],
      database(),
      { kernel },
    );
    expect(result.ok).toBe(true);
    expect(kernel.deleted()).toEqual(['ip_vs_wrr', 'ip_vs']);
  });

  it('a holder going first makes the reference count unknowable until it is gone', async () => {
    // A real kernel shows refcnt 2 on ip_vs with ip_vs_wrr its only holder: registering the
    // scheduler takes a second reference. Only delete_module can tell; the dry run trusts it.
    const kernel = new FakeKernel().setState('ip_vs_wrr', 'live').setState('ip_vs', 'live');
    kernel.setRefcount('ip_vs', 2).setHolders('ip_vs', ['ip_vs_wrr']);
    const result = await executeUnload(
      [
        { request: 'ip_vs_wrr', modules: ['ip_vs_wrr'] },
        { request: 'ip_vs', modules: ['ip_vs'] },
      ],
      database(),
      { kernel, dryRun: true },
    );
    expect(result.ok).toBe(true);
    expect(kernel.calls).toEqual([]);
  });

  it('refuses a module with a reference count but no holders', async () => {
    const kernel = new FakeKernel().setState('dummy', 'live').setRefcount('dummy', 2);
    const error = await executeUnload([{ request: 'dummy', modules: ['dummy'] }], database(), {
      kernel,
    }).catch((e: unknown) => e);
    expect((error as KmodloadError).message).toBe(
      'cannot unload dummy: module dummy is in use (reference count 2)',
    );
    expect(kernel.calls).toEqual([]);
  });

  it('refuses a builtin module', async () => {
    const kernel = new FakeKernel();
    const error = await executeUnload(
      [{ request: 'crc32c', modules: ['crc32c'] }],
      database({ builtin: ['crc32c'] }),
      {
        kernel,
      },
    ).catch((e: unknown) => e);
    expect((error as KmodloadError).exitStatus).toBe(EXIT.refused);
    expect((error as KmodloadError).message).toBe('cannot unload crc32c: module crc32c is builtin');
  });

  it('a module that is not loaded is a success with nothing done, as modprobe -r', async () => {
    const kernel = new FakeKernel();
    const result = await executeUnload([{ request: 'dummy', modules: ['dummy'] }], database(), {
      kernel,
    });
    expect(result).toEqual({
      ok: true,
      modules: [{ request: 'dummy', name: 'dummy', status: 'not-loaded', required: true }],
    });
    expect(kernel.calls).toEqual([]);
  });

  it('adds O_TRUNC only when forced', async () => {
    const kernel = new FakeKernel().setState('dummy', 'live');
    await executeUnload([{ request: 'dummy', modules: ['dummy'] }], database(), {
      kernel,
      force: true,
    });
    expect(kernel.calls).toEqual([
      { op: 'deleteModule', name: 'dummy', flags: O_NONBLOCK | O_TRUNC },
    ]);
  });

  it('dry run removes nothing and shows what would go, dependencies included', async () => {
    const kernel = loadedKernel();
    const result = await executeUnload(
      [{ request: 'ip_vs', modules: ['ip_vs'] }],
      database({ softdeps: IP_VS_SOFTDEPS }),
      { kernel, dryRun: true },
    );
    expect(kernel.calls).toEqual([]);
    expect(result.modules.map((m) => `${m.status} ${m.name}`)).toEqual([
      'would-remove ip_vs_extra',
      'would-remove ip_vs',
      'would-remove nf_conntrack',
      'would-remove nf_defrag_ipv6',
      'would-remove nf_defrag_ipv4',
      'would-remove libcrc32c',
    ]);
  });

  it('a kernel failure of the requested module gives ok: false with the error', async () => {
    const kernel = new FakeKernel().setState('dummy', 'live').fail('dummy', 'EBUSY');
    const result = await executeUnload([{ request: 'dummy', modules: ['dummy'] }], database(), {
      kernel,
    });
    expect(result.ok).toBe(false);
    expect(result.modules[0]).toMatchObject({ status: 'failed', required: true });
    expect(result.modules[0]?.error?.code).toBe('EBUSY');
  });

  it('a soft dependency still in use is left in place, not an error', async () => {
    const kernel = new FakeKernel().setState('x', 'live').setState('c', 'live').setRefcount('c', 1);
    const db = database({ softdeps: { x: { pre: [], post: ['c'] } } });
    const result = await executeUnload([{ request: 'x', modules: ['x'] }], db, { kernel });
    expect(result.ok).toBe(true);
    expect(kernel.deleted()).toEqual(['x']);
    expect(result.modules.map((m) => `${m.status} ${m.name}`)).toEqual(['in-use c', 'removed x']);
  });

  it('remove rules: /bin/true does nothing, /bin/false and shell commands refuse', async () => {
    const kernel = new FakeKernel().setState('dummy', 'live');
    const skipped = await executeUnload(
      [{ request: 'dummy', modules: ['dummy'] }],
      database({ remove: { dummy: '/bin/true' } }),
      { kernel },
    );
    expect(skipped.modules.map((m) => m.status)).toEqual(['skipped']);
    for (const command of ['/bin/false', 'rmmod dummy']) {
      const error = await executeUnload(
        [{ request: 'dummy', modules: ['dummy'] }],
        database({ remove: { dummy: command } }),
        { kernel },
      ).catch((e: unknown) => e);
      expect((error as KmodloadError).exitStatus).toBe(EXIT.refused);
      expect((error as KmodloadError).message).toContain(`remove dummy ${command}`);
    }
    expect(kernel.calls).toEqual([]);
  });

  it('remove rules are read as the planner reads install rules: /usr/bin/false x protects', async () => {
    const kernel = new FakeKernel().setState('dummy', 'live');
    const error = await executeUnload(
      [{ request: 'dummy', modules: ['dummy'] }],
      database({ remove: { dummy: '/usr/bin/false x' } }),
      { kernel, allowRemoveCommands: true, runCommand: () => Promise.reject(new Error('ran')) },
    ).catch((e: unknown) => e);
    expect((error as KmodloadError).exitStatus).toBe(EXIT.refused);
    expect((error as KmodloadError).message).toBe(
      "cannot unload dummy: the rule 'remove dummy /usr/bin/false x' forbids removing module dummy",
    );
    expect(kernel.calls).toEqual([]);
  });
});
