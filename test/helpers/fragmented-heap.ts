// A process whose old space ends up half free: objects that outlive two scavenges (so they
// reach old space), then every other one dropped. Prints the old space's committed bytes per
// byte in use, both counted from before the objects, after full collections. Run with
// --expose-gc; `tuned` as its argument tunes the heap first, as `kmodload nri` does.

import v8 from 'node:v8';
import { favourMemoryOverSpeed } from '../../src/nri/heap';

const collect = globalThis.gc;
if (collect === undefined) throw new Error('run with --expose-gc');
if (process.argv[2] === 'tuned') favourMemoryOverSpeed();

function oldSpace(): v8.HeapSpaceInfo {
  const space = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'old_space');
  if (space === undefined) throw new Error('no old_space');
  return space;
}

const before = oldSpace();
let all: { n: number; text: string }[] | undefined = [];
for (let n = 0; n < 60_000; n++) all.push({ n, text: `x${n}` });
collect({ type: 'minor' });
collect({ type: 'minor' });
const kept = all.filter((_, n) => n % 2 === 0);
all = undefined;
// V8 picks the pages to compact from what the previous collection's sweep found free. A bare
// gc() is a full collection with V8's usual heuristics ({ type: 'major' } compacts anyway).
for (let round = 0; round < 4; round++) collect();
const after = oldSpace();
const committed = after.space_size - before.space_size;
const used = after.space_used_size - before.space_used_size;
process.stdout.write(`${JSON.stringify({ ratio: committed / used, kept: kept.length })}\n`);
