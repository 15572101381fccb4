// The differential suite for one kernel tree: kmodload's --show-depends against kmod 30's
// modprobe, name by name (stdout byte for byte and exit status), with the .bin indexes and
// again from the text files alone.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { formatShowDepends, planRequests, type ModuleDatabase } from '../../src/planner';
import { openModuleDatabase } from '../../src/system';
import { TEST_CMDLINE, writeConfigFixture, type ConfigFixture } from './configs';
import {
  aliasQueries,
  builtinAliases,
  builtinNames,
  moduleNames,
  ODD_NAMES,
  plainAliases,
  symbolNames,
} from './names';
import { compareNames, describeMismatches, textOnlyCopy, type OracleSetup } from './oracle';
import { kernelTree, type KernelTree } from '../helpers/trees';

async function expectSame(
  db: ModuleDatabase,
  setup: OracleSetup,
  names: string[],
  rewrite?: (s: string) => string,
): Promise<void> {
  expect(names.length).toBeGreaterThan(0);
  const mismatches = await compareNames(db, setup, names, rewrite);
  expect(mismatches.length, describeMismatches(mismatches)).toBe(0);
}

/** Every name set the suite asks about, built from the tree. */
function nameSets(tree: KernelTree): Record<string, string[]> {
  const modules = moduleNames(tree);
  return {
    modules,
    dashed: modules.filter((n) => n.includes('_')).map((n) => n.replace(/_/g, '-')),
    aliases: [...plainAliases(tree), ...aliasQueries(tree)],
    builtins: [
      ...builtinNames(tree),
      ...builtinNames(tree).map((n) => n.replace(/_/g, '-')),
      ...builtinAliases(tree),
    ],
    odd: [...ODD_NAMES, ...symbolNames(tree, 30)],
  };
}

export function differentialSuite(flavour: string): void {
  describe(`kmodload --show-depends = modprobe --show-depends (${flavour} tree)`, () => {
    let tree: KernelTree;
    let names: Record<string, string[]>;
    let db: ModuleDatabase;
    let setup: OracleSetup;

    beforeAll(async () => {
      tree = kernelTree(flavour);
      names = nameSets(tree);
      db = await openModuleDatabase({ root: tree.root, kernelVersion: tree.version });
      setup = { root: tree.root, version: tree.version };
    });
    afterAll(() => db?.close());

    it('reads the .bin indexes', () => {
      expect(db.usesBinaryIndex('dep')).toBe(true);
      expect(db.usesBinaryIndex('alias')).toBe(true);
    });

    it('every module name in modules.dep', async () => {
      await expectSame(db, setup, names.modules as string[]);
    });

    it('module names spelled with -', async () => {
      await expectSame(db, setup, names.dashed as string[]);
    });

    it('aliases: plain, instantiated wildcards, pci/usb/cpu modaliases, literal globs', async () => {
      const aliases = names.aliases as string[];
      // The queries must exercise kmod's match order: many match several modules.
      const multi = aliases.filter((a) => planRequests(db, [a]).requests[0]!.probes.length > 1);
      expect(multi.length).toBeGreaterThan(50);
      await expectSame(db, setup, aliases);
    });

    it('builtin modules and builtin aliases', async () => {
      expect(formatShowDepends(planRequests(db, names.builtins as string[]))).toMatch(/^builtin /m);
      await expectSame(db, setup, names.builtins as string[]);
    });

    it('unknown, invalid and odd names, symbols', async () => {
      await expectSame(db, setup, names.odd as string[]);
    });

    it('a database reading its indexes as needed plans the same through settle()', async () => {
      // Every name of every set, a few at a time, each batch on a database just opened: the
      // passes that find an index missing must leave no trace in the final plan.
      const all = Object.values(names).flat();
      for (let at = 0; at < all.length; at += 40) {
        const batch = all.slice(at, at + 40);
        const lazy = await openModuleDatabase(
          { root: tree.root, kernelVersion: tree.version },
          'as-needed',
        );
        try {
          const plan = await lazy.settle(() => planRequests(lazy, batch));
          expect(plan).toEqual(planRequests(db, batch));
        } finally {
          lazy.close();
        }
      }
    });

    describe('with a configuration using every directive (-C)', () => {
      let fixture: ConfigFixture;
      let configured: ModuleDatabase;
      let configuredSetup: OracleSetup;

      beforeAll(async () => {
        fixture = writeConfigFixture(tree);
        configured = await openModuleDatabase({
          root: tree.root,
          kernelVersion: tree.version,
          configDirs: fixture.configPaths,
        });
        configuredSetup = { ...setup, configPaths: fixture.configPaths };
      });
      afterAll(() => {
        configured?.close();
        fixture?.cleanup();
      });

      it('the names the configuration is about', async () => {
        const shown = formatShowDepends(planRequests(configured, fixture.names));
        expect(shown).toMatch(/^install \/bin\/true /m);
        expect(shown).toMatch(/^install \/bin\/false /m);
        expect(shown).toMatch(/ answer=42 /);
        await expectSame(configured, configuredSetup, fixture.names);
      });

      it('every module name', async () => {
        await expectSame(configured, configuredSetup, names.modules as string[]);
      });

      it('with the blacklist applied to every name (-b)', async () => {
        await expectSame(configured, { ...configuredSetup, useBlacklist: true }, [
          ...fixture.names,
          'igb',
          'crc32c_intel',
        ]);
      });

      it('and a kernel command line with options and a blacklist', async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-cmdline-'));
        const cmdlineFile = path.join(dir, 'cmdline');
        fs.writeFileSync(cmdlineFile, TEST_CMDLINE);
        const withCmdline = await openModuleDatabase({
          root: tree.root,
          kernelVersion: tree.version,
          configDirs: fixture.configPaths,
          kernelCommandLine: TEST_CMDLINE,
        });
        try {
          await expectSame(withCmdline, { ...configuredSetup, cmdlineFile }, [
            ...fixture.names,
            'crc_itu_t',
            'crc-ccitt',
            'noval',
          ]);
        } finally {
          withCmdline.close();
          fs.rmSync(dir, { recursive: true, force: true });
        }
      });
    });

    describe('from the text files alone (no .bin)', () => {
      let copy: { root: string; cleanup: () => void };
      let textDb: ModuleDatabase;
      // Our paths start at the copy; modprobe (reading the original's .bin) at the original.
      const rewrite = (s: string): string =>
        s.split(`${copy.root}/lib/modules/`).join(`${tree.root}/lib/modules/`);

      beforeAll(async () => {
        copy = textOnlyCopy(tree);
        textDb = await openModuleDatabase({ root: copy.root, kernelVersion: tree.version });
      });
      afterAll(() => {
        textDb?.close();
        copy?.cleanup();
      });

      it('answers from the text files', () => {
        expect(textDb.usesBinaryIndex('dep')).toBe(false);
        expect(textDb.usesBinaryIndex('alias')).toBe(false);
      });

      it('every module name', async () => {
        await expectSame(textDb, setup, names.modules as string[], rewrite);
      });

      it('aliases, builtins and odd names', async () => {
        await expectSame(
          textDb,
          setup,
          [
            ...(names.aliases as string[]),
            ...(names.builtins as string[]),
            ...(names.odd as string[]),
          ],
          rewrite,
        );
      });

      describe('with the every-directive configuration (-C)', () => {
        let fixture: ConfigFixture;
        let configured: ModuleDatabase;
        let configuredSetup: OracleSetup;

        beforeAll(async () => {
          fixture = writeConfigFixture(tree);
          configured = await openModuleDatabase({
            root: copy.root,
            kernelVersion: tree.version,
            configDirs: fixture.configPaths,
          });
          configuredSetup = { ...setup, configPaths: fixture.configPaths };
        });
        afterAll(() => {
          configured?.close();
          fixture?.cleanup();
        });

        it('the names the configuration is about and dashed module names', async () => {
          await expectSame(
            configured,
            configuredSetup,
            [...fixture.names, ...(names.dashed as string[]).slice(0, 500)],
            rewrite,
          );
        });

        it('with the blacklist applied to every name (-b)', async () => {
          const blacklisted = [...fixture.names, 'igb', 'crc32c_intel'];
          // The text files must reach the blacklist: some names are refused or answered
          // differently under -b.
          expect(
            formatShowDepends(planRequests(configured, blacklisted, { useBlacklist: true })),
          ).not.toBe(formatShowDepends(planRequests(configured, blacklisted)));
          await expectSame(
            configured,
            { ...configuredSetup, useBlacklist: true },
            blacklisted,
            rewrite,
          );
        });

        it('and a kernel command line with options and a blacklist', async () => {
          const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-cmdline-'));
          const cmdlineFile = path.join(dir, 'cmdline');
          fs.writeFileSync(cmdlineFile, TEST_CMDLINE);
          const withCmdline = await openModuleDatabase({
            root: copy.root,
            kernelVersion: tree.version,
            configDirs: fixture.configPaths,
            kernelCommandLine: TEST_CMDLINE,
          });
          try {
            await expectSame(
              withCmdline,
              { ...configuredSetup, cmdlineFile },
              [...fixture.names, 'crc_itu_t', 'crc-ccitt', 'noval'],
              rewrite,
            );
          } finally {
            withCmdline.close();
            fs.rmSync(dir, { recursive: true, force: true });
          }
        });
      });
    });
  });
}
