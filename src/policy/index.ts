// The host policy: which modules containers may have (see check.ts for the precedence).
export { annotationKeysUsed, checkPolicy } from './check';
export { MAX_POLICY_LINE, addPolicyText, emptyPolicy, formatProblem } from './parse';
export {
  MAX_POLICY_FILE_BYTES,
  brokenPolicyError,
  parsePolicy,
  readPolicy,
  readPolicyFiles,
  type ReadPolicyResult,
} from './read';
export * from './types';
