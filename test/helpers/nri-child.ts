// A plugin process as a runtime starts it from its plugin directory: NRI_PLUGIN_SOCKET,
// NRI_PLUGIN_NAME and NRI_PLUGIN_IDX in the environment, the connected socket on fd 3. It
// prints its log lines and its handlers' calls on stdout, and exits when the plugin ends.

import { preRegisteredPlugin, startNriPlugin } from '../../src/nri/plugin';

const say = (line: string) => process.stdout.write(`${line}\n`);
const identity = preRegisteredPlugin(process.env);
if (identity === undefined) {
  say('no NRI_PLUGIN_SOCKET');
  process.exit(2);
}

const plugin = startNriPlugin({
  ...identity,
  log: (line) => say(`log: ${line}`),
  handlers: {
    async synchronize(pods, containers) {
      say(`synchronize ${pods.length} ${containers.length}`);
    },
    async createContainer(_pod, container) {
      say(`create ${container.id}`);
      const refusal = container.annotations['test/refuse'];
      if (refusal !== undefined) throw new Error(refusal);
    },
    async stopContainer(_pod, container) {
      say(`stop ${container.id}`);
    },
    async removeContainer(_pod, container) {
      say(`remove ${container.id}`);
    },
  },
});

// Nothing else keeps the process: it exits once the plugin has closed everything.
plugin.done.then(
  () => say('done'),
  (error: Error) => {
    say(`failed: ${error.message}`);
    process.exitCode = 1;
  },
);
