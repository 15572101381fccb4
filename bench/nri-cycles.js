'use strict';
// The NRI plugin's decisions in one resident process, as a node runs it for days: N create +
// stop cycles of the seed request (dry run: planned, recorded, nothing loaded), then the
// process's RSS and V8 heap in use after a full garbage collection. Run with --expose-gc (and
// the plugin's --max-semi-space-size, as deployed); the heap is tuned as `kmodload nri` tunes
// it at its start, unless --v8-default (V8's own compaction, for comparison):
//   node --expose-gc --max-semi-space-size=1 bench/nri-cycles.js [--v8-default] ROOT VERSION CYCLES...
// prints one line per CYCLES value: "<cycles> <rss bytes> <heap used bytes>".

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { favourMemoryOverSpeed } = require('../dist/nri/heap');
const { nriHandlers } = require('../dist/nri/service');

/** The pod every bench container runs in, and container `id` of it asking for `names`. */
const POD = { id: 'p', name: 'web', uid: 'u', namespace: 'default', labels: {}, annotations: {} };
function askingContainer(id, names) {
  return {
    id,
    podSandboxId: 'p',
    name: 'main',
    state: 1,
    labels: {},
    annotations: {},
    args: [],
    env: [`KERNEL_MODULES=${names.join(',')}`],
  };
}

async function main() {
  const args = process.argv.slice(2);
  const v8Default = args[0] === '--v8-default';
  const [root, version, ...counts] = v8Default ? args.slice(1) : args;
  if (!v8Default) favourMemoryOverSpeed();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-nri-cycles-'));
  try {
    const conf = path.join(dir, 'modprobe.d');
    fs.mkdirSync(conf);
    const options = {
      root,
      kernelVersion: version,
      configDirs: [conf],
      dryRun: true,
      stateDir: path.join(dir, 'state'),
      unloadOnStop: true,
    };
    const handlers = nriHandlers(options, () => undefined);
    let done = 0;
    for (const target of counts.map(Number)) {
      for (; done < target; done++) {
        const container = askingContainer(`c${done}`, ['ip_vs', 'ip_vs_wrr']);
        await handlers.createContainer(POD, container);
        await handlers.stopContainer(POD, container);
      }
      global.gc();
      const memory = process.memoryUsage();
      console.log(`${done} ${memory.rss} ${memory.heapUsed}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

module.exports = { POD, askingContainer };

if (require.main === module) {
  main().catch((error) => {
    console.error(`nri-cycles: ${error.message}`);
    process.exit(1);
  });
}
