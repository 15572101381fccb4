// Evaluates an exported ValidatingAdmissionPolicy as the API server does, with a real CEL
// implementation (@bufbuild/cel, RE2 regexes, the strings extension): the variables in order,
// each seeing the ones before it, then the validation and, on failure, its messageExpression.

import { isCelError, run } from '@bufbuild/cel';
import { strings } from '@bufbuild/cel/ext';
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

function evaluate(expression: string, bindings: Record<string, unknown>): unknown {
  const value = run(expression, bindings as never, { funcs: strings });
  if (isCelError(value)) throw new Error(`CEL error: ${value.message} in ${expression}`);
  return value;
}

export function policyDocuments(yamlText: string): PolicyDocument[] {
  return parseAllDocuments(yamlText).map((doc) => doc.toJS() as PolicyDocument);
}

/** The policy's verdict on creating `pod` in `namespace`. */
export function admitPod(yamlText: string, pod: Pod, namespace: string): AdmissionResult {
  const policy = policyDocuments(yamlText).find((d) => d.kind === 'ValidatingAdmissionPolicy');
  if (!policy) throw new Error('no ValidatingAdmissionPolicy');
  const object = celInput({ ...pod, metadata: { ...(pod.metadata as object), namespace } });
  const request = celInput({ namespace, operation: 'CREATE', kind: { kind: 'Pod' } });
  const variables = new Map<string, unknown>();
  const bindings = { object, request, variables, namespaceObject: null, oldObject: null };
  for (const variable of policy.spec.variables) {
    variables.set(variable.name, evaluate(variable.expression, bindings));
  }
  for (const validation of policy.spec.validations) {
    if (evaluate(validation.expression, bindings) === true) continue;
    return { allowed: false, message: String(evaluate(validation.messageExpression, bindings)) };
  }
  return { allowed: true };
}
