// Evaluates an exported ValidatingAdmissionPolicy as the API server does, with a real CEL
// implementation (@bufbuild/cel, RE2 regexes, the strings extension): the variables in order,
// each seeing the ones before it, then the validation and, on failure, its messageExpression.

import { CelScalar, celMethod, isCelError, listType, run, type CelFunc } from '@bufbuild/cel';
import { strings } from '@bufbuild/cel/ext';
import { RE2JS } from '@bufbuild/re2';
import { parseAllDocuments } from 'yaml';

/** A pod as the API server holds it (JSON). */
export type Pod = Record<string, unknown>;

export interface AdmissionResult {
  allowed: boolean;
  message?: string;
}

interface PolicyDocument {
  kind: string;
  spec: {
    matchConditions?: Array<{ name: string; expression: string }>;
    variables: Array<{ name: string; expression: string }>;
    validations: Array<{ expression: string; messageExpression: string; message: string }>;
  };
}

/** Plain JSON as CEL input: objects as maps, whole numbers as ints. */
function celInput(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(celInput);
  if (value !== null && typeof value === 'object') {
    return new Map(Object.entries(value).map(([k, v]) => [k, celInput(v)]));
  }
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  return value;
}

/** The cost of the calls whose cost grows with their arguments, by the rules of cel-go's
 *  interpreter (runtimecost.go: matches, contains) and the Kubernetes CEL library (cost.go:
 *  replace, split). A select, an identifier, a comparison or a step of a macro costs 1 and is
 *  not counted here. */
export interface CostMeter {
  cost: number;
  /** Calls metered, by function. */
  calls: Record<string, number>;
}

const { STRING, BOOL } = CelScalar;
const traversal = (text: string, factor = 0.1): number => Math.ceil(text.length * factor);

/** `matches` and the strings extension, the same functions, their cost added to `meter`. */
function meteredFuncs(meter: CostMeter): CelFunc[] {
  const charge = (name: string, cost: number): void => {
    meter.cost += cost;
    meter.calls[name] = (meter.calls[name] ?? 0) + 1;
  };
  return [
    ...strings.filter((f) => !['replace', 'split'].includes(f.name)),
    celMethod('matches', STRING, [STRING], BOOL, function (this: string, pattern: string) {
      charge('matches', Math.ceil((1 + this.length) * 0.1) * traversal(pattern, 0.25));
      return RE2JS.compile(pattern).test(this);
    }),
    celMethod('contains', STRING, [STRING], BOOL, function (this: string, part: string) {
      charge('contains', traversal(this) * traversal(part));
      return this.includes(part);
    }),
    celMethod(
      'replace',
      STRING,
      [STRING, STRING],
      STRING,
      function (this: string, a: string, b: string) {
        charge('replace', traversal(this, 0.2));
        return this.split(a).join(b);
      },
    ),
    celMethod(
      'split',
      STRING,
      [STRING],
      listType(STRING),
      function (this: string, separator: string) {
        charge('split', traversal(this, 0.2));
        return this.split(separator);
      },
    ),
  ];
}

let meter: CostMeter | undefined;

/** Runs `body` with the size-dependent CEL calls metered; returns what they cost. */
export function metered(body: () => void): CostMeter {
  meter = { cost: 0, calls: {} };
  try {
    body();
    return meter;
  } finally {
    meter = undefined;
  }
}

function evaluate(expression: string, bindings: Record<string, unknown>): unknown {
  const funcs = meter ? meteredFuncs(meter) : strings;
  const value = run(expression, bindings as never, { funcs });
  if (isCelError(value)) throw new Error(`CEL error: ${value.message} in ${expression}`);
  return value;
}

export function policyDocuments(yamlText: string): PolicyDocument[] {
  return parseAllDocuments(yamlText).map((doc) => doc.toJS() as PolicyDocument);
}

/** The policy's verdict on creating `pod` in `namespace`, or on updating `oldPod` to it. A
 *  request that no match condition selects is allowed without its validations. */
export function admitPod(
  yamlText: string,
  pod: Pod,
  namespace: string,
  oldPod?: Pod,
): AdmissionResult {
  const policy = policyDocuments(yamlText).find((d) => d.kind === 'ValidatingAdmissionPolicy');
  if (!policy) throw new Error('no ValidatingAdmissionPolicy');
  const inNamespace = (p: Pod): unknown =>
    celInput({ ...p, metadata: { ...(p.metadata as object), namespace } });
  const object = inNamespace(pod);
  const oldObject = oldPod === undefined ? null : inNamespace(oldPod);
  const operation = oldPod === undefined ? 'CREATE' : 'UPDATE';
  const request = celInput({ namespace, operation, kind: { kind: 'Pod' } });
  const variables = new Map<string, unknown>();
  const bindings = { object, request, variables, namespaceObject: null, oldObject };
  for (const condition of policy.spec.matchConditions ?? []) {
    if (evaluate(condition.expression, bindings) !== true) return { allowed: true };
  }
  for (const variable of policy.spec.variables) {
    variables.set(variable.name, evaluate(variable.expression, bindings));
  }
  for (const validation of policy.spec.validations) {
    if (evaluate(validation.expression, bindings) === true) continue;
    return { allowed: false, message: String(evaluate(validation.messageExpression, bindings)) };
  }
  return { allowed: true };
}
