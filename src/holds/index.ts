// Holds: which container holds which module, and unloading what no container needs any more.
export {
  collectGarbage,
  heldModules,
  holdExists,
  holdStatus,
  listHolds,
  recordLoad,
  releaseHold,
  takeProvisionalHold,
  type HoldsOptions,
  type ModuleParams,
  type ProvisionalHold,
  type TrackedModule,
  type ReleaseOptions,
  type ReleaseResult,
  type ReleasedModule,
  type StatusReport,
} from './holds';
export { removeRuleKeeper } from './keep';
export { processLiveness, processStartTime, type Liveness } from './process';
export {
  DEFAULT_STATE_DIR,
  STATE_VERSION,
  withStateLock,
  type HeldModule,
  type Hold,
  type InsertedModule,
  type StoreOptions,
  type StoreStep,
} from './store';
