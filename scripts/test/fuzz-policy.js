// Fuzzes the policy parser and evaluator (dist/policy) for SECONDS (default 10): mutated
// policies from a seed set must parse into problems or a policy, never throw, never take
// long, and every problem must name a line of the file; a policy that parses must evaluate
// against a plan without throwing. Mutations: byte flips, inserted tokens of the format,
// spliced lines, truncation. A failing input is written to .cache/fuzz/crashes/.
//   node scripts/test/fuzz-policy.js [SECONDS] [SEED]
'use strict';
const { Buffer } = require('node:buffer');
const fs = require('node:fs');
const path = require('node:path');

const repo = path.resolve(__dirname, '..', '..');
const { addPolicyText, emptyPolicy, checkPolicy } = require(
  path.join(repo, 'dist/policy/index.js'),
);

const seconds = Number(process.argv[2] || 10);
let state = Number(process.argv[3] || Date.now()) >>> 0;
/** xorshift32: reproducible with the seed printed at the start. */
function random(n) {
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  state >>>= 0;
  return state % n;
}

const SEEDS = [
  'default deny\nmax-modules 32\nallow ip_vs* nf_* libcrc32c crc32c*\ndeny xfs dccp sctp rds tipc\n',
  'allow dummy when annotation io.kubernetes.pod.namespace=kube-* source env\n',
  'deny [a-c]?x* when source annotation\n# comment\n\tallow a \\\n b\n',
  'default allow\ndeny af_alg algif_* when annotation team=[!n]*\n',
];
const TOKENS = [
  'allow',
  'deny',
  'default',
  'max-modules',
  'when',
  'annotation',
  'source',
  'env',
  ' ',
  '\t',
  '\n',
  '\\\n',
  '\\',
  '[',
  ']',
  '[!',
  '*',
  '**',
  '?',
  '=',
  '#',
  '\r',
  '\0',
  '-',
  '_',
  'ip_vs',
  'a=b',
  '4294967296',
  '0',
  '\u00e9',
  '\ufffd',
  'x'.repeat(5000),
];

function mutate(text) {
  const bytes = Buffer.from(text, 'utf8');
  switch (random(5)) {
    case 0: {
      if (bytes.length === 0) return text;
      const copy = Buffer.from(bytes);
      copy[random(copy.length)] = random(256);
      return copy;
    }
    case 1: {
      const at = random(text.length + 1);
      return text.slice(0, at) + TOKENS[random(TOKENS.length)] + text.slice(at);
    }
    case 2: {
      const lines = text.split('\n');
      const other = SEEDS[random(SEEDS.length)].split('\n');
      lines.splice(random(lines.length + 1), 0, other[random(other.length)]);
      return lines.join('\n');
    }
    case 3:
      return text.slice(0, random(text.length + 1));
    default:
      return text + text;
  }
}

const plan = {
  moduleDir: '/lib/modules/x',
  kernelVersion: 'x',
  requests: [
    {
      request: 'fs-xfs',
      probes: [
        {
          module: 'xfs',
          steps: [
            { name: 'libcrc32c', kind: 'insmod', options: '', required: true, target: false },
            { name: 'crc32c_generic', kind: 'insmod', options: '', required: false, target: false },
            { name: 'xfs', kind: 'insmod', options: '', required: true, target: true },
          ],
        },
      ],
    },
  ],
};
const requesters = [
  {},
  { source: 'env', annotations: { 'io.kubernetes.pod.namespace': 'kube-system', team: 'net' } },
  { source: { 'fs-xfs': ['env', 'annotation'] }, annotations: { constructor: 'x' } },
];

function fail(input, why) {
  const dir = path.join(repo, '.cache', 'fuzz', 'crashes');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `policy-${Date.now()}.conf`);
  fs.writeFileSync(file, input);
  console.error(`fuzz-policy: ${why}; input saved as ${file}`);
  process.exit(1);
}

function one(input) {
  const started = process.hrtime.bigint();
  let problems;
  const policy = emptyPolicy();
  try {
    problems = addPolicyText(policy, input, 'fuzz.conf');
  } catch (error) {
    fail(input, `the parser threw: ${error && error.stack}`);
  }
  const text = typeof input === 'string' ? input : input.toString('utf8');
  const lines = text.split('\n').length;
  for (const problem of problems) {
    if (!(problem.line >= 1 && problem.line <= lines)) fail(input, `bad line ${problem.line}`);
    if (/[\n\r]/.test(problem.message)) fail(input, 'a problem message spans lines');
  }
  if (problems.length === 0) {
    for (const requester of requesters) {
      try {
        const verdict = checkPolicy(plan, policy, requester);
        if (verdict.ok !== (verdict.violations.length === 0))
          fail(input, 'ok and violations disagree');
      } catch (error) {
        fail(input, `the evaluator threw: ${error && error.stack}`);
      }
    }
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (ms > 1000) fail(input, `one input took ${ms.toFixed(0)} ms`);
}

console.log(`fuzz-policy: ${seconds}s, seed ${state}`);
const deadline = Date.now() + seconds * 1000;
let runs = 0;
let corpus = SEEDS.slice();
while (Date.now() < deadline) {
  let input = corpus[random(corpus.length)];
  for (let i = 0, n = 1 + random(4); i < n; i++) {
    input = mutate(typeof input === 'string' ? input : input.toString('latin1'));
  }
  one(input);
  // Keep a bounded corpus of recent mutants, so mutations build on each other.
  if (typeof input === 'string' && input.length < 20000) {
    corpus.push(input);
    if (corpus.length > 256) corpus = SEEDS.concat(corpus.slice(-200));
  }
  runs++;
}
console.log(`fuzz-policy: ${runs} inputs, no failure`);
