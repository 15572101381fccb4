// The documentation against the code: every `kmodload COMMAND ...` in README.md and docs/*.md
// names a command the CLI has, with options its --help lists, and every relative link leads
// somewhere. The CLI runs in-process (main() with in-memory streams).

import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main';
import { EXIT } from '../../src/errors';
import { memoryIO } from '../helpers/cli-io';
import type { HelpAnswer, HelpRunner } from '../helpers/docs';
import {
  cachedHelp,
  checkInvocation,
  checkLinks,
  codeSnippets,
  findInvocations,
  headingAnchors,
  optionsIn,
  subcommandsOf,
} from '../helpers/docs';
import { REPO_ROOT } from '../helpers/trees';

const DOCS_DIR = path.join(REPO_ROOT, 'docs');

function documents(): string[] {
  const docs = fs
    .readdirSync(DOCS_DIR)
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => path.join(DOCS_DIR, name));
  return [path.join(REPO_ROOT, 'README.md'), ...docs];
}

const cliHelp: HelpRunner = cachedHelp(async (argv) => {
  const memory = memoryIO();
  const status = await main(argv, memory.io);
  return { status, out: memory.out(), err: memory.err() };
});

async function problemsIn(markdown: string, file: string, help = cliHelp): Promise<string[]> {
  const problems: string[] = [];
  for (const call of findInvocations(markdown, file)) {
    problems.push(...(await checkInvocation(call, help)));
  }
  return problems;
}

describe('kmodload invocations in the documentation', () => {
  it('README.md and docs/*.md name existing commands with options their --help lists', async () => {
    const problems: string[] = [];
    let invocations = 0;
    for (const file of documents()) {
      const markdown = fs.readFileSync(file, 'utf8');
      const shown = path.relative(REPO_ROOT, file);
      invocations += findInvocations(markdown, shown).length;
      problems.push(...(await problemsIn(markdown, shown)));
    }
    expect(problems).toEqual([]);
    // The extractor finds them at all (the README alone shows more than ten).
    expect(invocations).toBeGreaterThan(40);
  });

  it('catches a made-up long option, with FILE:LINE', async () => {
    const doc =
      'Text.\n\n```sh\nkmodload load --show-depends ip_vs\nkmodload load --frobnicate ip_vs\n```\n';
    expect(await problemsIn(doc, 'x.md')).toEqual([
      'x.md:5: `kmodload load --frobnicate ip_vs`: option --frobnicate is not in `kmodload load --help`',
    ]);
  });

  it('catches a made-up short option, also inside a bundle and in inline code', async () => {
    const doc = 'Run `kmodload unload -nZ ip_vs` or\n`kmodload load -Q ip_vs`.\n';
    const problems = await problemsIn(doc, 'x.md');
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/^x\.md:1: .*option -Z is not in `kmodload unload --help`$/);
    expect(problems[1]).toMatch(/^x\.md:2: .*option -Q is not in `kmodload load --help`$/);
  });

  it('a command that does not exist fails with FILE:LINE', async () => {
    const doc = '# T\n\n```\n$ kmodload frobnicate --all\n```\n';
    const problems = await problemsIn(doc, 'docs/x.md');
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(
      /^docs\/x\.md:4: `kmodload frobnicate --all`: no command 'frobnicate'/,
    );
  });

  it('subcommands: the usage lines name them, and options are checked against theirs', async () => {
    const doc = [
      '`kmodload policy check --policy p.conf --source env ip_vs`',
      '`kmodload policy lint --policy p.conf --json`',
      '`kmodload policy check|lint --policy p.conf`',
      '`kmodload policy audit --policy p.conf`',
      '`kmodload policy check --unload ip_vs`',
    ].join('\n\n');
    expect(await problemsIn(doc, 'x.md')).toEqual([
      "x.md:7: `kmodload policy audit --policy p.conf`: 'policy' has no subcommand 'audit' (its usage lists check, lint, export)",
      'x.md:9: `kmodload policy check --unload ip_vs`: option --unload is not in `kmodload policy check --help`',
    ]);
  });

  it('a command added later with subcommands is handled from its usage (a stand-in CLI)', async () => {
    const helps: Record<string, HelpAnswer> = {
      'plugin --help': {
        status: 0,
        out: 'Usage: kmodload plugin run [--socket PATH]\n       kmodload plugin config [--format F]\n\nThe plugin.\n',
        err: '',
      },
      'plugin run --help': {
        status: 0,
        out: 'Usage: kmodload plugin run [--socket PATH]\n',
        err: '',
      },
      'plugin config --help': {
        status: 0,
        out: 'Usage: kmodload plugin config [--format F]\n',
        err: '',
      },
    };
    const standIn: HelpRunner = async (argv) =>
      helps[argv.join(' ')] ?? {
        status: 2,
        out: '',
        err: `kmodload: unknown command '${argv[0]}'\n`,
      };
    const doc = [
      '`kmodload plugin run --socket /run/p.sock`',
      '`kmodload plugin config --socket /run/p.sock`',
      '`kmodload plugin stop`',
      '`kmodload other run`',
    ].join('\n\n');
    expect(await problemsIn(doc, 'x.md', standIn)).toEqual([
      'x.md:3: `kmodload plugin config --socket /run/p.sock`: option --socket is not in `kmodload plugin config --help`',
      "x.md:5: `kmodload plugin stop`: 'plugin' has no subcommand 'stop' (its usage lists run, config)",
      "x.md:7: `kmodload other run`: no command 'other' (kmodload other --help exits 2: kmodload: unknown command 'other')",
    ]);
  });

  it('usage alternatives and brackets are read as the options they show', async () => {
    expect(optionsIn('[--install-wrapper')).toEqual(['--install-wrapper']);
    expect(optionsIn('--log=FILE|none]')).toEqual(['--log']);
    expect(optionsIn('[-n]')).toEqual(['-n']);
    expect(optionsIn('-nv')).toEqual(['-n', '-v']);
    expect(optionsIn('FILE|none')).toEqual([]);
    expect(optionsIn('-1')).toEqual([]);
    const doc =
      '`kmodload hook-config [--install-wrapper PATH | --wrapper PATH] [--log FILE|none]`';
    expect(await problemsIn(doc, 'x.md')).toEqual([]);
    const bad = '`kmodload hook-config [--install-wrapper PATH | --wraper PATH]`';
    expect(await problemsIn(bad, 'x.md')).toEqual([
      'x.md:1: `kmodload hook-config [--install-wrapper PATH | --wraper PATH]`: option --wraper is not in `kmodload hook-config --help`',
    ]);
  });

  it('subcommandsOf reads the usage block only', () => {
    const help =
      'Usage: kmodload policy check [OPTIONS] NAME...\n       kmodload policy lint [--json]\n\nkmodload policy audit is not a usage line\n';
    expect(subcommandsOf('policy', help)).toEqual(['check', 'lint']);
    expect(subcommandsOf('hook-config', 'Usage: kmodload hook-config [--format F]\n')).toEqual([]);
  });
});

describe('exit statuses', () => {
  it("docs/security.md's table has a row for every status of src/errors.ts", () => {
    const security = fs.readFileSync(path.join(DOCS_DIR, 'security.md'), 'utf8');
    const rows = [...security.matchAll(/^\| (\d+) \|/gm)].map((m) => Number(m[1]));
    expect(rows).toEqual(Object.values(EXIT));
  });
});

describe('finding invocations', () => {
  it('in command position only: prompts, launchers, paths, separators; not prose or paths', () => {
    const doc = [
      '```sh', // 1
      '$ kmodload status', // 2
      'npx kmodload load --show-depends ip_vs', // 3
      'sudo /usr/local/bin/kmodload hook-config --format oci \\', // 4
      '  --timeout 60', // 5
      'node bin/kmodload.js doctor --json | head -3 > /tmp/out', // 6
      'KMODLOAD_ADDON=/x.node kmodload gc --unload  # a comment --not-an-option', // 7
      'guest# kmodload load ip_vs', // 8
      'kmodload: cannot load ip_vs_wrx: module not found', // 9
      'an initramfs with busybox, node, runc, kmod, kmodload and modules', // 10
      '/var/log/kmodload/hook.log', // 11
      '```', // 12
      '', // 13
      'Paths such as `/run/kmodload` and `kmodload` alone are no invocation; `kmodload', // 14
      'unload ip_vs` spans two lines.', // 15
    ].join('\n');
    const found = findInvocations(doc, 'x.md').map((c) => [c.line, c.args.join(' ')]);
    expect(found).toEqual([
      [2, 'status'],
      [3, 'load --show-depends ip_vs'],
      [4, 'hook-config --format oci --timeout 60'],
      [6, 'doctor --json'],
      [7, 'gc --unload'],
      [8, 'load ip_vs'],
      [14, 'unload ip_vs'],
    ]);
  });

  it('code blocks close at their own fence; inline spans of several backticks', () => {
    const doc = '````\n```\nkmodload load a\n````\n\nSee ``kmodload unload `b` `` here.\n';
    const snippets = codeSnippets(doc);
    expect(snippets).toEqual([
      { text: '```', line: 2 },
      { text: 'kmodload load a', line: 3 },
      { text: 'kmodload unload `b`', line: 6 },
    ]);
  });
});

describe('links in the documentation', () => {
  it('every relative link of README.md and docs/*.md leads to a file (and heading)', () => {
    const problems = documents().flatMap((file) =>
      checkLinks(fs.readFileSync(file, 'utf8'), file, REPO_ROOT),
    );
    expect(problems).toEqual([]);
  });

  it('catches a missing file and a missing heading, with FILE:LINE', () => {
    const file = path.join(REPO_ROOT, 'docs', 'x.md');
    const doc = [
      '# Title',
      '',
      'See [policy](policy.md#precedence), [here](#title) and [the site](https://example.org/a).',
      'Broken: [gone](gone.md), [no heading](policy.md#no-such-heading), [self](#nothing), [two',
      'lines](gone2.md).',
      '`[in code](not-a-link.md)` and',
      '```',
      '[in a block](not-a-link-either.md)',
      '```',
    ].join('\n');
    expect(checkLinks(doc, file, REPO_ROOT)).toEqual([
      'docs/x.md:4: link to gone.md: docs/gone.md does not exist',
      'docs/x.md:4: link to policy.md#no-such-heading: no heading #no-such-heading in docs/policy.md',
      'docs/x.md:4: link to #nothing: no heading #nothing in docs/x.md',
      'docs/x.md:4: link to gone2.md: docs/gone2.md does not exist',
    ]);
  });

  it('heading anchors as GitHub makes them', () => {
    const anchors = headingAnchors(
      '# Checking a host: `kmodload doctor`\n## The single executable (no Node on the host)\n## Notes\n## Notes\n```\n# not a heading\n```\n',
    );
    expect([...anchors]).toEqual([
      'checking-a-host-kmodload-doctor',
      'the-single-executable-no-node-on-the-host',
      'notes',
      'notes-1',
    ]);
  });
});
