// The policy as a Kubernetes ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1): the
// API server refuses a pod whose containers ask for a module the policy would not allow as a
// request, with the node's reason, instead of the node failing the container later.
//
// What the CEL does, per container (containers, init and ephemeral ones), as the node reads
// that container's request (src/container/request.ts, REQUEST_SYNTAX): the literal value of its
// last KERNEL_MODULES env entry, the pod's org.kmodload.kernel-modules annotation and the pod's
// org.kmodload.kernel-modules/container.NAME annotation; names split as the node splits them.
// Then, in the node's order: a value over 64 KiB, an invalid name, more names than max-modules
// (counted once each), and for each name the policy's verdict on it as a target: the first
// applicable deny that matches, else an applicable allow or the default. Globs become RE2
// regexes on the name with `-` read as `_`.
//
// Only the CEL of Kubernetes 1.29 (what a 1.30 API server accepts in a new policy): the
// standard library, its macros and the strings extension (replace, split, trim, indexOf,
// substring). No Kubernetes-only function: a plain CEL evaluator gives the same answers.

import {
  KERNEL_MODULES_ANNOTATION,
  KERNEL_MODULES_ENV,
  MAX_MODULE_NAME_LENGTH,
  MAX_REQUEST_LENGTH,
  REQUEST_SYNTAX,
} from '../container/request';
import type { Policy, PolicyCondition, PolicyRule } from './types';

/** The per-container annotation of the NRI plugin (src/nri/service.ts). */
const CONTAINER_ANNOTATION_PREFIX = `${KERNEL_MODULES_ANNOTATION}/container.`;
/** Annotation keys the runtime sets from the pod's own fields, and what admission reads for them. */
const RUNTIME_KEYS: Readonly<Record<string, string>> = {
  'io.kubernetes.pod.namespace': 'request.namespace',
  'io.kubernetes.pod.name': "(has(object.metadata.name) ? object.metadata.name : '')",
  'io.kubernetes.container.name': 'c.name',
};
/** Other keys under this prefix are the runtime's (cri-o, containerd): unknown at admission. */
const RUNTIME_PREFIX = 'io.kubernetes.';
/** Above this many names (as written), duplicates are not looked for: the count is the
 *  names as written (the comparison is quadratic). */
const DEDUP_LIMIT = 256;

export interface AdmissionExport {
  text: string;
  /** An upper bound of the CEL runtime cost for one container asking for 64 names of 55
   *  characters (Kubernetes: 1,000,000 per expression). */
  cost: number;
}

/** A CEL string literal. */
export function celString(text: string): string {
  let out = "'";
  for (const c of text) {
    const code = c.codePointAt(0) ?? 0;
    if (c === '\\' || c === "'") out += `\\${c}`;
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += c;
  }
  return `${out}'`;
}

const CLASS_RANGES: Record<string, string> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  blank: '\\x09\\x20',
  cntrl: '\\x00-\\x1f\\x7f',
  digit: '0-9',
  graph: '\\x21-\\x7e',
  lower: 'a-z',
  print: '\\x20-\\x7e',
  punct: '\\x21-\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7e',
  space: '\\x09-\\x0d\\x20',
  upper: 'A-Z',
  xdigit: '0-9A-Fa-f',
};
const NEVER = '\\b\\B';

/** One character as a regex literal, in or out of a class. */
function regexChar(c: string): string {
  const code = c.charCodeAt(0);
  if (/[A-Za-z0-9_]/.test(c)) return c;
  if (code < 0x20 || code > 0x7e) return `\\x{${code.toString(16)}}`;
  return `\\${c}`;
}

/** `[...]` at glob[start] as a regex class and where it ends; undefined: not closed (the `[`
 *  is then a literal, as fnmatch takes it). Mirrors src/db/fnmatch.ts. */
function bracketRegex(glob: string, start: number): { end: number; regex: string } | undefined {
  let i = start + 1;
  let negate = false;
  if (glob[i] === '!' || glob[i] === '^') {
    negate = true;
    i++;
  }
  let members = '';
  let first = true;
  for (;;) {
    if (i >= glob.length) return undefined;
    let ch = glob[i] as string;
    if (ch === ']' && !first) {
      i++;
      break;
    }
    first = false;
    if (ch === '[' && glob[i + 1] === ':') {
      const close = glob.indexOf(':]', i + 2);
      if (close < 0) return undefined;
      members += CLASS_RANGES[glob.slice(i + 2, close)] ?? '';
      i = close + 2;
      continue;
    }
    if (ch === '\\') {
      i++;
      if (i >= glob.length) return undefined;
      ch = glob[i] as string;
    }
    i++;
    if (glob[i] === '-' && i + 1 < glob.length && glob[i + 1] !== ']') {
      let high = glob[i + 1] as string;
      i += 2;
      if (high === '\\') {
        if (i >= glob.length) return undefined;
        high = glob[i] as string;
        i++;
      }
      // An empty range (z-a) matches nothing, as in fnmatch; RE2 would refuse it.
      if (high.charCodeAt(0) >= ch.charCodeAt(0)) members += `${regexChar(ch)}-${regexChar(high)}`;
    } else {
      members += regexChar(ch);
    }
  }
  if (members === '') return { end: i, regex: negate ? '(?s:.)' : NEVER };
  return { end: i, regex: `[${negate ? '^' : ''}${members}]` };
}

/** An fnmatch glob (no flags) as an unanchored RE2 regex matching the same strings. */
export function globToRegex(glob: string): string {
  let out = '';
  let i = 0;
  while (i < glob.length) {
    const c = glob[i] as string;
    if (c === '*') {
      while (glob[i] === '*') i++;
      out += '.*';
      continue;
    }
    if (c === '?') {
      out += '.';
      i++;
      continue;
    }
    if (c === '[') {
      const bracket = bracketRegex(glob, i);
      if (bracket) {
        out += bracket.regex;
        i = bracket.end;
        continue;
      }
    }
    if (c === '\\') {
      // A trailing backslash never matches anything.
      if (i + 1 >= glob.length) return NEVER;
      out += regexChar(glob[i + 1] as string);
      i += 2;
      continue;
    }
    out += regexChar(c);
    i++;
  }
  return out;
}

/** The anchored regex of a list of globs; `.` takes newlines too, as `*` and `?` do. */
export function globsRegex(globs: readonly string[]): string {
  return `^(?s:${globs.map((g) => `(?:${globToRegex(g)})`).join('|')})$`;
}

/** CEL: the names of the request value `value` (a string expression), as parseModuleRequest
 *  splits them (REQUEST_SYNTAX), empty items dropped. */
export function namesCel(value: string): string {
  const [comma, ...others] = [...REQUEST_SYNTAX.nameSeparators];
  const unify = (expr: string, to: string, chars: string[]): string =>
    chars.reduce((e, c) => `${e}.replace(${celString(c)}, ${celString(to)})`, expr);
  const list = `${unify(value, comma as string, others)}.split(${celString(comma as string)}).filter(w, w != '')`;
  const entry = REQUEST_SYNTAX.entrySeparator;
  if (entry === null) return list;
  // NAME PARAM=VALUE... entries: the name is the first word of each.
  const blanks = others.filter((c) => c !== ' ');
  const firstWord =
    `[${unify('e', ' ', blanks)}.trim()].map(t, ` +
    `t.indexOf(' ') < 0 ? t : t.substring(0, t.indexOf(' ')))[0]`;
  const entries = `${value}.contains(${celString(entry)}) || ${value}.contains(${celString(REQUEST_SYNTAX.paramSeparator)})`;
  return (
    `(${entries} ? ` +
    `${value}.split(${celString(entry)}).map(e, ${firstWord}).filter(w, w != '') : ${list})`
  );
}

function matchCel(subject: string, glob: string): string {
  return `${subject}.matches(${celString(globsRegex([glob]))})`;
}

/** CEL: whether `condition` holds, in the scope of a container `c`, a name `n` and its
 *  request's lists `env` and `ann`. A fact admission does not have: as the node does for a
 *  fact it lacks, an allow does not apply, a deny does. */
function conditionCel(condition: PolicyCondition, rule: PolicyRule): string {
  const unknown = rule.verdict === 'deny' ? 'true' : 'false';
  switch (condition.kind) {
    case 'annotation': {
      const runtime = RUNTIME_KEYS[condition.key];
      if (runtime !== undefined) return matchCel(runtime, condition.value);
      if (condition.key.startsWith(RUNTIME_PREFIX)) return unknown;
      const key = celString(condition.key);
      return `(${key} in variables.annotations && ${matchCel(`string(variables.annotations[${key}])`, condition.value)})`;
    }
    case 'namespace':
      return matchCel('request.namespace', condition.value);
    case 'pod-label': {
      const key = celString(condition.key);
      return `(${key} in variables.labels && ${matchCel(`string(variables.labels[${key}])`, condition.value)})`;
    }
    case 'source': {
      // A name from both lists: an allow needs every source to match, a deny any one.
      if (condition.source === 'cdi') return 'false';
      const [own, other] = condition.source === 'env' ? ['env', 'ann'] : ['ann', 'env'];
      return rule.verdict === 'deny' ? `(n in ${own})` : `(n in ${own} && !(n in ${other}))`;
    }
  }
}

/** CEL: the rule applies and matches the normalised name `m`. */
function ruleCel(rule: PolicyRule): string {
  const parts = rule.conditions.map((c) => conditionCel(c, rule));
  parts.push(`m.matches(${celString(globsRegex(rule.patterns))})`);
  return parts.length === 1 ? (parts[0] as string) : `(${parts.join(' && ')})`;
}

/** CEL: why the name `n` is refused ('' when it is not), as the node words it for a target. */
function reasonCel(policy: Policy): string {
  const denies = policy.rules.filter((r) => r.verdict === 'deny');
  const allows = policy.rules.filter((r) => r.verdict === 'allow');
  let tail = "''";
  if (policy.default.value === 'deny') {
    const where = policy.default.origin ? `, ${policy.default.origin}` : '';
    const refusal = `m + ${celString(` is not allowed for this container (default deny${where})`)}`;
    tail =
      allows.length === 0
        ? refusal
        : `(${allows.map(ruleCel).join('\n        || ')}) ? '' : ${refusal}`;
  }
  if (denies.length === 0 && tail === "''") return "''";
  if (denies.length === 0) return `[n.replace('-', '_')].map(m, ${tail})[0]`;
  // The denies as a list, the first that holds reported: a flat literal, not a chain of
  // ternaries as deep as the policy is long (the CEL parser limits nesting).
  const refusals = denies
    .map((r) => `${ruleCel(r)} ? m + ${celString(` is denied by ${r.origin} (${r.text})`)} : ''`)
    .join(',\n      ');
  return (
    `[n.replace('-', '_')].map(m, [[\n      ${refusals}\n    ].filter(d, d != '')].map(denied,\n` +
    `    size(denied) > 0 ? denied[0] : ${tail})[0])[0]`
  );
}

/** CEL: the names of `all` counted once each (as the node counts them). */
function countCel(maxModules: number): string {
  if (maxModules >= DEDUP_LIMIT) return 'size(all)';
  return (
    `(size(all) <= ${maxModules} || size(all) > ${DEDUP_LIMIT} ? size(all) : ` +
    'size(variables.positions.filter(i, i < size(all) && ' +
    '!variables.positions.exists(j, j < i && all[j] == all[i]))))'
  );
}

/** CEL: the refusal of container `c` ('' when its request passes). */
function containerCel(policy: Policy): string {
  const max = policy.maxModules;
  const prefix = "'container ' + c.name + ': '";
  const valid = `'^[A-Za-z0-9_-]{1,${MAX_MODULE_NAME_LENGTH}}$'`;
  const reason = reasonCel(policy);
  const verdicts =
    reason === "''"
      ? "''"
      : `[all.filter(n, ${reason} != '')].map(bad, size(bad) == 0 ? '' :\n` +
        `    ${prefix} + 'cannot load ' + bad[0] + ': ' + [bad[0]].map(n, ${reason})[0])[0]`;
  const envValue =
    `[has(c.env) ? c.env.filter(e, e.name == ${celString(KERNEL_MODULES_ENV)}) : []].map(l,\n` +
    "  size(l) == 0 || !has(l[size(l) - 1].value) ? '' :\n" +
    "  l[size(l) - 1].value.contains('$(') ? '' : l[size(l) - 1].value)[0]";
  const ownValue =
    `[${celString(CONTAINER_ANNOTATION_PREFIX)} + c.name].map(k,\n` +
    "  k in variables.annotations ? string(variables.annotations[k]) : '')[0]";
  return [
    `[${envValue}].map(ev, [${ownValue}].map(ov,`,
    `size(ev) > ${MAX_REQUEST_LENGTH} || size(ov) > ${MAX_REQUEST_LENGTH} || size(variables.podValue) > ${MAX_REQUEST_LENGTH} ?`,
    `  ${prefix} + ${celString(`a request is longer than ${MAX_REQUEST_LENGTH} characters (${KERNEL_MODULES_ENV} or an annotation ${KERNEL_MODULES_ANNOTATION})`)} :`,
    `[${namesCel('ev')}].map(env, [variables.podModules + ${namesCel('ov')}].map(ann, [env + ann].map(all,`,
    `!all.all(n, n.matches(${valid})) ?`,
    `  ${prefix} + ${celString(`invalid module name in ${KERNEL_MODULES_ENV} or an annotation ${KERNEL_MODULES_ANNOTATION} (only letters, digits, "_" and "-", at most ${MAX_MODULE_NAME_LENGTH} characters)`)} :`,
    `[${countCel(max.value)}].map(count, count > ${max.value} ?`,
    `  ${prefix} + 'cannot load: the request names ' + string(count) + ${celString(` modules, more than max-modules ${max.value} (${max.origin ?? 'the default'})`)} :`,
    `  ${verdicts})[0])[0])[0])[0])[0])[0]`,
  ].join('\n');
}

/** Each line of `text` indented by `spaces`, for a YAML block scalar. */
function block(text: string, spaces: number): string {
  const pad = ' '.repeat(spaces);
  return text
    .split('\n')
    .map((line) => (line.trim() === '' ? '' : `${pad}${line.trimEnd()}`))
    .join('\n');
}

/** An upper bound of the runtime cost of the CEL for one container asking for `names` names of
 *  `length` characters, by the cost rules of cel-go's interpreter (runtimecost.go) and the
 *  Kubernetes CEL library (cost.go): a select or an ident 1, a call 1, `in` the list's size,
 *  `matches` ceil((1 + string) / 10) * ceil(regex / 4), `replace`/`split` a fifth of the string,
 *  a list literal 40. Every condition and regex is counted for every name, as if no `&&`
 *  stopped early, and twice over (the verdict and the message). */
export function admissionCostBound(policy: Policy, names = 64, length = 55): number {
  const matches = (regex: string): number =>
    Math.ceil((1 + length) / 10) * Math.ceil(regex.length / 4);
  const valueLength = names * (length + 1);
  // Parsing: whether it is entries (two contains), then a list (6 replaces and a split of the
  // value, the filter's steps per name) or entries (a split, then per entry 5 replaces, a
  // trim, two indexOf and a substring of it, a list literal and the steps).
  const separators = REQUEST_SYNTAX.nameSeparators.length;
  const list = separators * Math.ceil(valueLength / 5) + 10 * names + 50;
  const entries = 9 * Math.ceil(valueLength / 5) + 70 * names + 50;
  const parse = 2 * Math.ceil(valueLength / 5) + Math.max(list, entries);
  let perName = 10 + matches(`^[A-Za-z0-9_-]{1,${MAX_MODULE_NAME_LENGTH}}$`);
  // The binding of m and its replace, the list of denies and its filter.
  perName += 40 + 10 + Math.ceil(length / 5) + 80 + 5 * policy.rules.length;
  for (const rule of policy.rules) {
    perName += 10 + matches(globsRegex(rule.patterns));
    for (const condition of rule.conditions) {
      // Regex conditions cost as a match of a 253-character value; source ones two list scans.
      perName += condition.kind === 'source' ? 2 * names + 10 : 10 + matches('x'.repeat(300));
    }
  }
  const max = policy.maxModules.value;
  const cap = Math.min(DEDUP_LIMIT, names);
  const count = max >= DEDUP_LIMIT || names <= max ? 20 : cap * cap * 8 + cap * 10;
  // Two parses (env and the container's annotation, the pod's once), list literals and
  // bindings per container, every name checked twice over.
  return 3 * parse + 40 * 12 + count + 2 * names * perName;
}

/** True for a create, and for an update that changes the annotations or the containers. */
const UNCHANGED_ON_UPDATE = [
  "request.operation != 'UPDATE'",
  '|| (has(object.metadata.annotations) ? object.metadata.annotations : {})',
  '  != (has(oldObject.metadata.annotations) ? oldObject.metadata.annotations : {})',
  '|| object.spec != oldObject.spec',
].join('\n');

export interface AdmissionOptions {
  /** metadata.name of the policy and its binding. */
  name: string;
}

/** The ValidatingAdmissionPolicy and its binding for `policy`, as YAML. */
export function exportAdmissionPolicy(policy: Policy, options: AdmissionOptions): AdmissionExport {
  const cost = admissionCostBound(policy);
  const max = policy.maxModules.value;
  const variables: Array<[string, string]> = [
    ['annotations', 'has(object.metadata.annotations) ? object.metadata.annotations : {}'],
    ['labels', 'has(object.metadata.labels) ? object.metadata.labels : {}'],
    [
      'podValue',
      `${celString(KERNEL_MODULES_ANNOTATION)} in variables.annotations ? string(variables.annotations[${celString(KERNEL_MODULES_ANNOTATION)}]) : ''`,
    ],
    [
      'podModules',
      `size(variables.podValue) > ${MAX_REQUEST_LENGTH} ? [] : ${namesCel('variables.podValue')}`,
    ],
    [
      'containers',
      [
        '(has(object.spec.containers) ? object.spec.containers : [])',
        '+ (has(object.spec.initContainers) ? object.spec.initContainers : [])',
        '+ (has(object.spec.ephemeralContainers) ? object.spec.ephemeralContainers : [])',
      ].join('\n'),
    ],
  ];
  if (max < DEDUP_LIMIT) {
    const positions = Array.from({ length: DEDUP_LIMIT }, (_, i) => i);
    const rows: string[] = [];
    for (let i = 0; i < positions.length; i += 16) rows.push(positions.slice(i, i + 16).join(', '));
    variables.push(['positions', `[\n${rows.join(',\n')}\n]`]);
  }
  variables.push([
    'violations',
    `variables.containers.map(c,\n${containerCel(policy)}\n).filter(v, v != '')`,
  ]);
  const files = policy.files.join(', ') || 'no file';
  const lines = [
    '# Written by kmodload policy export --format validating-admission-policy: the host policy',
    `# (${files}) as a ValidatingAdmissionPolicy (Kubernetes 1.30 and later). The API server`,
    '# refuses a pod (create; update when its annotations or spec change) whose containers, init',
    '# or ephemeral ones, ask for a module',
    '# this policy would not allow as a request: KERNEL_MODULES, the annotation',
    `# ${KERNEL_MODULES_ANNOTATION} and ${CONTAINER_ANNOTATION_PREFIX}NAME.`,
    '# Admission cannot see, and the node still enforces (it checks the whole plan):',
    "# - dependencies and softdeps (they need the node's module tree), aliases (a name is",
    "#   matched as written: fs-xfs is not xfs), the node's modprobe.d blocks, max-modules on",
    '#   the plan (admission counts the names);',
    '# - KERNEL_MODULES from valueFrom or envFrom, or with $(VAR) references, and CDI devices;',
    '# - annotations the runtime sets, except io.kubernetes.pod.namespace, io.kubernetes.pod.name',
    '#   and io.kubernetes.container.name: a rule needing one is an allow that does not apply, a',
    '#   deny that does.',
    "# namespace and pod-label conditions read the pod's namespace and labels, as the NRI plugin",
    '# does; under the hook they never let an allow apply (the node is stricter).',
    `# CEL runtime cost for a container asking for 64 names: at most ${cost} (the limit is`,
    '# 1000000 per expression). Export again after a policy change.',
    'apiVersion: admissionregistration.k8s.io/v1',
    'kind: ValidatingAdmissionPolicy',
    'metadata:',
    `  name: ${options.name}`,
    'spec:',
    '  failurePolicy: Fail',
    '  matchConstraints:',
    '    resourceRules:',
    "      - apiGroups: ['']",
    "        apiVersions: ['v1']",
    "        operations: ['CREATE', 'UPDATE']",
    "        resources: ['pods', 'pods/ephemeralcontainers']",
    // An update that leaves the request as it was (a finalizer removed, a label added) is not
    // judged again: a pod admitted under an older policy must still be able to terminate.
    '  matchConditions:',
    '    - name: request-written-or-changed',
    '      expression: |-',
    block(UNCHANGED_ON_UPDATE, 8),
    '  variables:',
  ];
  for (const [name, expression] of variables) {
    lines.push(`    - name: ${name}`, '      expression: |-', block(expression, 8));
  }
  lines.push(
    '  validations:',
    '    - expression: size(variables.violations) == 0',
    '      messageExpression: string(variables.violations[0])',
    '      message: a container asks for a kernel module the host policy does not allow',
    '      reason: Forbidden',
    '---',
    'apiVersion: admissionregistration.k8s.io/v1',
    'kind: ValidatingAdmissionPolicyBinding',
    'metadata:',
    `  name: ${options.name}`,
    'spec:',
    `  policyName: ${options.name}`,
    "  validationActions: ['Deny']",
    '',
  );
  return { text: lines.join('\n'), cost };
}
