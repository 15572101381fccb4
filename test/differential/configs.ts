// modprobe.d fixtures that use every directive kmod 30 knows (and a few it rejects), with
// module names from the real tree, written to temporary directories for modprobe -C.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { deviceModaliases, aliasLines } from './names';
import type { KernelTree } from '../helpers/trees';

export interface ConfigFixture {
  /** What to pass as -C, in order: two directories (sharing a file name) and a file. */
  configPaths: string[];
  /** Names whose result the configuration changes. */
  names: string[];
  cleanup: () => void;
}

/** A modalias of the tree that resolves to `module` (to blacklist an alias match). */
function modaliasFor(tree: KernelTree, module: string): string | undefined {
  const patterns = aliasLines(tree)
    .filter((a) => a.module === module && a.pattern.startsWith('pci:'))
    .map((a) => a.pattern);
  return deviceModaliases(patterns.slice(0, 1))[0];
}

export function writeConfigFixture(tree: KernelTree): ConfigFixture {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-conf-'));
  const first = path.join(base, 'first');
  const second = path.join(base, 'second');
  const single = path.join(base, 'single.rules');
  fs.mkdirSync(first);
  fs.mkdirSync(second);

  fs.writeFileSync(
    path.join(first, '10-every-directive.conf'),
    [
      '# every directive, with names from the real tree',
      '   # an indented comment is a bad line for kmod',
      'alias my-net e1000e',
      'alias wild-net-* igb',
      'alias crc32c crc32c-generic',
      'alias alias-to-nothing no_such_module_kmodload',
      'options crc16 answer=42  spaced="a b"\tafter_tab=1',
      'options my_net copybreak=64',
      'options e1000e InterruptThrottleRate=3000',
      'blacklist igb',
      'blacklist crc32c_intel',
      'install dummy /bin/true',
      'install ifb /bin/false',
      'install nlmon /sbin/modprobe --ignore-install nlmon $CMDLINE_OPTS && echo loaded',
      'install jbd2 /bin/true',
      'install install-only-name /bin/echo only an install rule',
      'remove bonding /bin/true',
      'remove remove-only-name /bin/false',
      'softdep ip_vs pre: crc16 dummy post: e1000e nlmon',
      'softdep xfs pre: no_such_softdep_kmodload crc32c post: ifb',
      'softdep nf_conntrack_* pre: crc-itu-t',
      'softdep veth',
      'options nf_conntrack hashsize=1024 \\',
      '    expect_hashsize=512',
      'weakdep ext4 crc16',
      'alias broken[ ext4',
      'options',
      'include /etc/other.conf',
      'frobnicate ext4',
      'options back\\slash a\\b=c\\\\d',
      '',
    ].join('\n'),
  );
  // Same file name in a later directory: hidden by the first one.
  fs.writeFileSync(path.join(first, 'shadow.conf'), 'options crc_itu_t from=first\n');
  fs.writeFileSync(path.join(second, 'shadow.conf'), 'options crc_itu_t from=second\n');
  fs.writeFileSync(
    path.join(second, '05-early.conf'),
    'options crc16 early=1\ninstall crc[78] /bin/true\n',
  );
  fs.writeFileSync(path.join(second, 'ignored.txt'), 'install ext4 /bin/false\n');
  fs.mkdirSync(path.join(second, 'subdir.conf'));
  // A file given directly is read whatever its name.
  fs.writeFileSync(single, 'options dummy numdummies=2\nalias net-pf-99 dummy\n');

  const blacklistedModalias = modaliasFor(tree, 'igb');
  const names = [
    'my-net',
    'my_net',
    'wild-net-anything',
    'crc32c',
    'alias-to-nothing',
    'crc16',
    'crc-itu-t',
    'crc7',
    'crc8',
    'e1000e',
    ...(blacklistedModalias ? [blacklistedModalias] : []),
    'dummy',
    'ifb',
    'nlmon',
    'jbd2',
    'ext4',
    'install-only-name',
    'remove-only-name',
    'bonding',
    'ip_vs',
    'xfs',
    'nf_conntrack_ftp',
    'veth',
    'nf_conntrack',
    'net-pf-99',
    'back_slash',
  ];
  return {
    configPaths: [first, second, single],
    names,
    cleanup: () => fs.rmSync(base, { recursive: true, force: true }),
  };
}

/** A kernel command line with module options, a blacklist and both quoting styles. */
export const TEST_CMDLINE =
  'BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet crc16.cmd_param=5 modprobe.blacklist=e1000e,dummy ' +
  '"crc16.quoted=a b" ip_vs.conn_tab_bits="12 13" bad.param.name=1 crc_itu_t.x=1\tcrc-ccitt.dash=2 ' +
  'noval.flag -- crc16.after_dashes=1\n';
