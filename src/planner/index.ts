// The resolver: module database + modprobe.d -> ordered plan, and its --show-depends text.
// It plans against a database it is given (src/system.ts opens one, with the addon).

export { ModuleDatabase, type IndexReading, type ResolverOptions } from '../db';
export { classifyInstallCommand, installVerdict, ruleText, ruleVerdict } from './rules';
export type { RuleKind, RuleVerdict } from './rules';
export * from './plan';
export { planRequests, type PlanOptions } from './plan-requests';
export { formatShowDepends, showDependsExitStatus } from './show-depends';
