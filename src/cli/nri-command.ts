// `kmodload nri`: the resident NRI plugin for containerd, CRI-O and iSulad. Parse, start the
// plugin over the container core, run until the runtime shuts it down or a signal comes.

import { EXIT, KmodloadError } from '../errors';
import { oneLine } from '../text';
import { flag, lastValue, parseArgs, usageError } from './args';
import { INSECURE_FILES_SPEC, NODE_SPECS, nodeOptions } from './common';
import type { CliIO } from './io';
import type { NodeOptions } from '../container/options';

const COMMAND = 'nri';

const NRI_SPECS = [
  ...NODE_SPECS,
  INSECURE_FILES_SPEC,
  { long: 'socket', value: true },
  { long: 'name', value: true },
  { long: 'idx', value: true },
];

/** The name and index NRI accepts: NAME of `[A-Za-z0-9_.+-]`, two digits. */
const PLUGIN_NAME = /^[A-Za-z0-9_.+-]+$/;
export const PLUGIN_IDX = /^[0-9]{2}$/;

export const DEFAULT_PLUGIN_NAME = 'kmodload';
/** Where containerd and CRI-O look for the plugins they start (`NN-NAME`, executable) and
 *  for their configurations (`NN-NAME.conf`): plugin_path and plugin_config_path. */
export const NRI_PLUGIN_DIR = '/opt/nri/plugins';
export const NRI_CONF_DIR = '/etc/nri/conf.d';
/** How a runtime is told to offer NRI, for messages. */
export const ENABLE_NRI =
  'containerd 1.7: [plugins."io.containerd.nri.v1.nri"] disable = false in config.toml; CRI-O: [crio.nri] enable_nri = true';

/**
 * The options of a configuration the runtime hands over: `kmodload nri`'s node flags,
 * separated by blanks or lines, `#` starting a comment. Throws a one-line KmodloadError.
 */
export function configuredOptions(config: string): NodeOptions {
  const words: string[] = [];
  for (const line of config.split('\n')) {
    for (const word of line.split(/[ \t\r]+/)) {
      if (word.startsWith('#')) break;
      if (word !== '') words.push(word);
    }
  }
  const parsed = parseArgs(
    words,
    NODE_SPECS.filter((spec) => spec.long !== 'help'),
    COMMAND,
  );
  if (parsed.operands[0] !== undefined) {
    throw usageError(
      `unexpected word '${oneLine(parsed.operands[0])}' in the configuration`,
      COMMAND,
    );
  }
  return nodeOptions(parsed);
}

export async function runNriCommand(
  argv: string[],
  io: CliIO,
  signals: Pick<NodeJS.Process, 'once' | 'off'> = process,
): Promise<number> {
  const parsed = parseArgs(argv, NRI_SPECS, COMMAND);
  if (flag(parsed, 'help')) {
    io.stdout.write((await import('./help.js')).NRI_HELP);
    return EXIT.ok;
  }
  const extra = parsed.operands[0];
  if (extra !== undefined) throw usageError(`unexpected argument '${oneLine(extra)}'`, COMMAND);
  const options = nodeOptions(parsed);
  const { preRegisteredPlugin, startNriPlugin, DEFAULT_SOCKET_PATH } =
    await import('../nri/plugin.js');
  const { nriHandlers, recordSink } = await import('../nri/service.js');
  // Started by the runtime from its plugin directory: its socket on a descriptor, its name
  // and index in the environment (the command line still wins for name and index).
  let inherited: ReturnType<typeof preRegisteredPlugin>;
  try {
    inherited = preRegisteredPlugin(io.env);
  } catch (error) {
    throw new KmodloadError(oneLine((error as Error).message), EXIT.environment);
  }
  const socket = lastValue(parsed, 'socket');
  if (inherited && socket !== undefined) {
    throw usageError('--socket and NRI_PLUGIN_SOCKET exclude each other', COMMAND);
  }
  const name = lastValue(parsed, 'name') ?? (inherited?.name || DEFAULT_PLUGIN_NAME);
  const idx = lastValue(parsed, 'idx') ?? (inherited?.idx || '10');
  if (!PLUGIN_NAME.test(name)) {
    throw usageError(`--name '${oneLine(name)}': letters, digits, '_', '.', '+' and '-'`, COMMAND);
  }
  if (!PLUGIN_IDX.test(idx)) throw usageError(`--idx '${oneLine(idx)}': two digits`, COMMAND);

  // Resident for days: memory before speed (docs/nri.md).
  (await import('../nri/heap.js')).favourMemoryOverSpeed();
  const say = (line: string): void => void io.stderr.write(`kmodload: nri: ${oneLine(line)}\n`);
  const plugin = startNriPlugin({
    ...(inherited
      ? { socketFd: inherited.socketFd }
      : { socketPath: socket ?? DEFAULT_SOCKET_PATH }),
    name,
    idx,
    handlers: {
      ...nriHandlers(
        options,
        recordSink(options, io.stderr, (line) => say(`warning: ${line}`)),
      ),
      // A plugin the runtime starts gets its flags from the runtime's configuration file
      // for it (containerd: /etc/nri/conf.d/NN-NAME.conf), on top of the command line's.
      configure(config) {
        Object.assign(options, configuredOptions(config));
      },
    },
    log: say,
  });
  let stoppedBy: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    stoppedBy = signal;
    void plugin.stop();
  };
  signals.once('SIGTERM', onSignal);
  signals.once('SIGINT', onSignal);
  try {
    await plugin.done;
    say(stoppedBy ? `stopped by ${stoppedBy}` : 'stopped');
    return EXIT.ok;
  } catch (error) {
    throw new KmodloadError(oneLine((error as Error).message), EXIT.failed, {
      subject: 'nri plugin ended',
    });
  } finally {
    signals.off('SIGTERM', onSignal);
    signals.off('SIGINT', onSignal);
  }
}
