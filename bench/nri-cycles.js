'use strict';
// The NRI plugin's decisions in one resident process, as a node runs it for days: N create +
// stop cycles of the seed request (dry run: planned, recorded, nothing loaded), then the
// process's RSS and V8 heap in use after a full garbage collection. Run with --expose-gc (and
// the plugin's --max-semi-space-size, as deployed):
//   node --expose-gc --max-semi-space-size=1 bench/nri-cycles.js ROOT VERSION CYCLES...
// prints one line per CYCLES value: "<cycles> <rss bytes> <heap used bytes>".

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { nriHandlers } = require('../dist/nri/service');

async function main() {
  const [root, version, ...counts] = process.argv.slice(2);
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
    const pod = {
      id: 'p',
      name: 'web',
      uid: 'u',
      namespace: 'default',
      labels: {},
      annotations: {},
    };
    let done = 0;
    for (const target of counts.map(Number)) {
      for (; done < target; done++) {
        const container = {
          id: `c${done}`,
          podSandboxId: 'p',
          name: 'main',
          state: 1,
          labels: {},
          annotations: {},
          args: [],
          env: ['KERNEL_MODULES=ip_vs,ip_vs_wrr'],
        };
        await handlers.createContainer(pod, container);
        await handlers.stopContainer(pod, container);
      }
      global.gc();
      console.log(
        `${done} ${process.memoryUsage().rss} ${process.memoryUsage().heapUsed} ${process.memoryUsage().external} ${process.memoryUsage().arrayBuffers}`,
      );
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(`nri-cycles: ${error.message}`);
  process.exit(1);
});
