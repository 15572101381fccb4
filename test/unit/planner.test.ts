// The planner's rules, one small tree per rule. The expected orders are kmod 30's (checked
// against modprobe on the real trees by test/differential).
import { afterEach, describe, expect, it } from 'vitest';

import {
  formatShowDepends,
  planRequests,
  showDependsExitStatus,
  type Plan,
  type ProbeStep,
} from '../../src/planner';
import { assertPlanRunnable } from '../../src/loader/load';
import { modulePath, writeTree, type TestTree, type TreeSpec } from './planner-tree';

let trees: TestTree[] = [];
afterEach(() => {
  for (const t of trees) t.cleanup();
  trees = [];
});

async function plan(spec: TreeSpec, names: string[], opts = {}, cmdline = ''): Promise<Plan> {
  const tree = writeTree(spec);
  trees.push(tree);
  const db = await tree.open(cmdline);
  try {
    return planRequests(db, names, opts);
  } finally {
    db.close();
  }
}

const names = (p: Plan): string[] =>
  p.requests.flatMap((r) => r.probes.flatMap((probe) => probe.steps.map((s) => s.name)));
const steps = (p: Plan): ProbeStep[] =>
  p.requests.flatMap((r) => r.probes.flatMap((probe) => probe.steps));

describe('probe order', () => {
  it('loads hard dependencies from the right end of the modules.dep list, then the module', async () => {
    const p = await plan({ modules: { top: ['a', 'b', 'c'], a: [], b: [], c: [] } }, ['top']);
    expect(names(p)).toEqual(['c', 'b', 'a', 'top']);
  });

  it('puts pre-softdeps before and post-softdeps after each module, resolved recursively', async () => {
    const p = await plan(
      {
        modules: { top: ['dep'], dep: [], pre1: ['pre1dep'], pre1dep: [], post1: [] },
        softdep: ['softdep top pre: pre1 post: post1'],
      },
      ['top'],
    );
    expect(names(p)).toEqual(['dep', 'pre1dep', 'pre1', 'top', 'post1']);
  });

  it('expands the softdeps of dependencies too', async () => {
    const p = await plan(
      { modules: { top: ['dep'], dep: [], early: [] }, softdep: ['softdep dep pre: early'] },
      ['top'],
    );
    expect(names(p)).toEqual(['early', 'dep', 'top']);
  });

  it('lists a dependency twice when a softdep also pulls it in, as modprobe does', async () => {
    // top: a b (loaded b, a); b has a pre-softdep on a: a is probed (listed) for b, then
    // listed again as top's own dependency.
    const p = await plan(
      { modules: { top: ['a', 'b'], a: [], b: [] }, softdep: ['softdep b pre: a'] },
      ['top'],
    );
    expect(names(p)).toEqual(['a', 'b', 'a', 'top']);
  });

  it('resolves softdeps through aliases, every match in alias priority order', async () => {
    const p = await plan(
      {
        modules: { lib: [], impl_fast: [], impl_generic: [] },
        aliases: [
          ['impl', 'impl_fast'],
          ['impl', 'impl_generic'],
        ],
        softdep: ['softdep lib pre: impl'],
      },
      ['lib'],
    );
    expect(names(p)).toEqual(['impl_fast', 'impl_generic', 'lib']);
  });

  it('survives softdep cycles', async () => {
    const p = await plan(
      { modules: { a: [], b: [] }, softdep: ['softdep a pre: b', 'softdep b pre: a'] },
      ['a'],
    );
    expect(names(p)).toEqual(['b', 'a']);
  });

  it('uses only the first softdep rule that matches (globs allowed)', async () => {
    const p = await plan(
      {
        modules: { nf_x: [], one: [], two: [] },
        config: { 'a.conf': 'softdep nf_* pre: one\nsoftdep nf_x pre: two\n' },
      },
      ['nf_x'],
    );
    expect(names(p)).toEqual(['one', 'nf_x']);
  });

  it('plans every name on its own, one after the other (modprobe -a)', async () => {
    const p = await plan({ modules: { a: ['c'], b: ['c'], c: [] } }, ['a', 'b']);
    expect(names(p)).toEqual(['c', 'a', 'c', 'b']);
    expect(p.requests.map((r) => r.request)).toEqual(['a', 'b']);
  });
});

describe('what each step is', () => {
  it('marks the target and its hard dependencies required, softdeps not', async () => {
    const p = await plan(
      { modules: { top: ['dep'], dep: [], soft: [] }, softdep: ['softdep top pre: soft'] },
      ['top'],
    );
    expect(steps(p).map((s) => [s.name, s.required, s.target])).toEqual([
      ['dep', true, false],
      ['soft', false, false],
      ['top', true, true],
    ]);
  });

  it('gives module paths under the module directory', async () => {
    const spec = { modules: { 'my-mod': [] } };
    const tree = writeTree(spec);
    trees.push(tree);
    const db = await tree.open();
    const p = planRequests(db, ['my_mod']);
    db.close();
    expect(steps(p)[0]).toMatchObject({ kind: 'insmod', path: modulePath(tree, 'my_mod') });
    expect(p.moduleDir).toBe(tree.moduleDir);
  });

  it('reports builtin modules and builtin aliases as builtin', async () => {
    const p = await plan(
      { modules: {}, builtin: ['core'], builtinAliases: [['core', 'fs-core']] },
      ['core', 'fs-core'],
    );
    expect(steps(p).map((s) => [s.kind, s.name])).toEqual([
      ['builtin', 'core'],
      ['builtin', 'core'],
    ]);
    expect(formatShowDepends(p)).toBe('builtin core\nbuiltin core\n');
  });

  it('joins options: config in order, kernel command line, then the caller for the target', async () => {
    const p = await plan(
      {
        modules: { top: ['dep'], dep: [] },
        config: { 'a.conf': 'options top a=1\noptions dep d=1\noptions top  b=2\n' },
      },
      ['top'],
      { extraOptions: { top: 'x=9' } },
      'top.k=3',
    );
    expect(steps(p).map((s) => s.options)).toEqual(['d=1 ', 'a=1  b=2 k=3 x=9']);
  });

  it('applies options written for the alias a module was found through', async () => {
    const p = await plan(
      {
        modules: { real: [] },
        config: { 'a.conf': 'alias nick real\noptions nick n=1\noptions real r=1\n' },
      },
      ['nick', 'real'],
    );
    expect(steps(p).map((s) => s.options)).toEqual(['n=1 r=1 ', 'r=1 ']); // config order
  });
});

describe('install rules', () => {
  const spec = (rule: string): TreeSpec => ({
    modules: { top: ['dep'], dep: [], soft: [] },
    config: { 'a.conf': rule },
  });

  it('understands /bin/true as nothing to load', async () => {
    const p = await plan(spec('install top /bin/true\n'), ['top']);
    expect(p.requests[0]?.error).toBeUndefined();
    expect(steps(p).at(-1)).toMatchObject({ kind: 'install', installAction: 'noop' });
    expect(formatShowDepends(p)).toBe(`insmod ${p.moduleDir}/kernel/dep.ko \ninstall /bin/true \n`);
  });

  it('refuses a request whose module or dependency is forbidden by /bin/false', async () => {
    for (const rule of ['install top /bin/false\n', 'install dep false\n']) {
      const p = await plan(spec(rule), ['top']);
      expect(p.requests[0]?.error?.reason).toBe('forbidden');
      expect(p.requests[0]?.error?.message).toMatch(/install (top|dep) /);
      expect(showDependsExitStatus(p)).toBe(0); // modprobe --show-depends just lists it
    }
  });

  it('lets a forbidden softdep fail quietly, as modprobe ignores softdep failures', async () => {
    const p = await plan(
      { ...spec('install soft /bin/false\n'), softdep: ['softdep top pre: soft'] },
      ['top'],
    );
    expect(p.requests[0]?.error).toBeUndefined();
    expect(steps(p).find((s) => s.name === 'soft')).toMatchObject({
      installAction: 'forbid',
      required: false,
    });
  });

  it('refuses other commands unless allowed', async () => {
    const rule = 'install top /sbin/modprobe --ignore-install top $CMDLINE_OPTS; echo x\n';
    const refused = await plan(spec(rule), ['top']);
    expect(refused.requests[0]?.error?.reason).toBe('install-command');
    expect(refused.requests[0]?.error?.message).toContain('/sbin/modprobe --ignore-install top');
    const allowed = await plan(spec(rule), ['top'], { allowInstallCommands: true });
    expect(allowed.requests[0]?.error).toBeUndefined();
    expect(formatShowDepends(allowed)).toContain(
      'install /sbin/modprobe --ignore-install top $CMDLINE_OPTS; echo x \n',
    );
  });

  it('ignores the install rule of a module that has softdeps', async () => {
    const p = await plan(
      { ...spec('install top /bin/false\n'), softdep: ['softdep top pre: soft'] },
      ['top'],
    );
    expect(steps(p).at(-1)).toMatchObject({ kind: 'insmod', name: 'top' });
    expect(p.requests[0]?.error).toBeUndefined();
  });

  it('refuses a shell install rule that modprobe ignores for a module with softdeps, unless allowed', async () => {
    const rule = 'install top /usr/local/sbin/load-top\n';
    const tree = { ...spec(rule), softdep: ['softdep top pre: soft'] };
    const refused = await plan(tree, ['top']);
    expect(refused.requests[0]?.error).toEqual({
      reason: 'install-command',
      message:
        "the rule 'install top /usr/local/sbin/load-top' needs a shell to run (not allowed); modprobe would ignore it, as top has softdeps, and insert top directly",
    });
    // With shell commands allowed, modprobe's behaviour: the rule is ignored, top inserted.
    const allowed = await plan(tree, ['top'], { allowInstallCommands: true });
    expect(allowed.requests[0]?.error).toBeUndefined();
    expect(steps(allowed).at(-1)).toMatchObject({
      kind: 'insmod',
      name: 'top',
      ignoredInstallCommand: '/usr/local/sbin/load-top',
    });
    expect(() => assertPlanRunnable(allowed)).toThrow(
      /the rule 'install top \/usr\/local\/sbin\/load-top' needs a shell to run \(not allowed\); modprobe would ignore it/,
    );
    expect(() => assertPlanRunnable(allowed, { allowInstallCommands: true })).not.toThrow();
  });

  it('finds a name that only has an install rule', async () => {
    const p = await plan(spec('install virtual /bin/true\n'), ['virtual']);
    expect(steps(p)).toMatchObject([{ kind: 'install', name: 'virtual', command: '/bin/true' }]);
  });
});

describe('blacklist', () => {
  const spec: TreeSpec = {
    modules: { bad: [], good: [] },
    aliases: [
      ['dev:1', 'bad'],
      ['dev:1', 'good'],
    ],
    config: { 'a.conf': 'blacklist bad\n' },
  };

  it('skips blacklisted alias matches silently and loads the rest', async () => {
    const p = await plan(spec, ['dev:1']);
    expect(p.requests[0]?.probes.map((pr) => [pr.module, pr.skipped])).toEqual([
      ['bad', 'blacklisted'],
      ['good', undefined],
    ]);
    expect(p.requests[0]?.error).toBeUndefined();
  });

  it('still loads a blacklisted module asked for by name, unless useBlacklist', async () => {
    expect(names(await plan(spec, ['bad']))).toEqual(['bad']);
    const p = await plan(spec, ['bad'], { useBlacklist: true });
    expect(p.requests[0]?.error).toEqual({
      reason: 'blacklisted',
      message: 'blacklisted on this host (bad)',
    });
    expect(formatShowDepends(p)).toBe('');
    expect(showDependsExitStatus(p)).toBe(0);
  });

  it('takes modprobe.blacklist= from the kernel command line', async () => {
    const p = await plan({ ...spec, config: {} }, ['dev:1'], {}, 'quiet modprobe.blacklist=good,x');
    expect(p.requests[0]?.probes.map((pr) => pr.skipped)).toEqual([undefined, 'blacklisted']);
  });
});

describe('names that cannot be planned', () => {
  it('reports unknown names, loads the others, exit status 1', async () => {
    const p = await plan({ modules: { a: [] } }, ['nope', 'a']);
    expect(p.requests[0]).toMatchObject({ probes: [], error: { reason: 'not-found' } });
    expect(p.requests[0]?.error?.message).toBe(`module nope not found in directory ${p.moduleDir}`);
    expect(names(p)).toEqual(['a']);
    expect(showDependsExitStatus(p)).toBe(1);
  });

  it('refuses names kmod cannot normalise, and module paths', async () => {
    const p = await plan({ modules: { a: [] } }, ['a]', 'x[', '/lib/a.ko', './a.ko']);
    expect(p.requests.map((r) => r.error?.reason)).toEqual([
      'invalid-name',
      'invalid-name',
      'invalid-name',
      'invalid-name',
    ]);
  });

  it('plans an alias to a module that is not there as a missing step (modprobe shows nothing)', async () => {
    const p = await plan({ modules: {}, config: { 'a.conf': 'alias nick gone\n' } }, ['nick']);
    expect(steps(p)).toMatchObject([{ kind: 'insmod', name: 'gone', missing: true }]);
    expect(p.requests[0]?.error?.reason).toBe('not-found');
    expect(formatShowDepends(p)).toBe('');
    expect(showDependsExitStatus(p)).toBe(0);
  });

  it('drops the dependency list when a dependency file is missing, as kmod does', async () => {
    const p = await plan({ modules: { top: ['gone'], gone: [] }, missingFiles: ['gone'] }, ['top']);
    expect(names(p)).toEqual(['top']);
  });

  it('settle(): the same answer with the files checked asynchronously, planned again', async () => {
    const tree = writeTree({ modules: { top: ['gone'], gone: [] }, missingFiles: ['gone'] });
    trees.push(tree);
    const db = await tree.open('');
    try {
      // The first pass assumes `gone` is there (top would need it first); the check says it
      // is not, and the plan made again drops the dependency list, as the synchronous one does.
      const settled = await db.settle(() => planRequests(db, ['top'], {}));
      expect(names(settled)).toEqual(['top']);
      expect(names(planRequests(db, ['top'], {}))).toEqual(['top']);
    } finally {
      db.close();
    }
  });
});
