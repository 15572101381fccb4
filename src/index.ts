/**
 * kmodload: load Linux kernel modules exactly as kmod's `modprobe` would, through a Node-API
 * addon that makes the syscalls itself.
 *
 * @example
 * ```ts
 * import { load, KmodloadError } from 'kmodload';
 *
 * const result = await load(['ip_vs', 'ip_vs_wrr']);
 * if (!result.ok) {
 *   for (const m of result.modules) if (m.error) console.error(m.name, m.error.message);
 * }
 * ```
 *
 * @packageDocumentation
 */

export { load, loadPlan, resolve, openModuleTree, unload, moduleState, status, gc } from './api';
export { admit, release } from './container/index';
export { doctor } from './doctor/checks';
export type {
  LoadOptions,
  LoadPlanOptions,
  CheckedPlan,
  PolicyCheck,
  GcOptions,
  UnloadOptions,
  StatusOptions,
  ModuleStateOptions,
  ModuleState,
  ModuleTree,
} from './api';
export type {
  LoadResult,
  ModuleResult,
  ModuleStatus,
  ModuleError,
  UnloadResult,
  UnloadModuleResult,
  UnloadStatus,
} from './loader/types';
export { failureSummary } from './loader/summary';
export type { HeldParameters, ParamConflictPolicy } from './loader/live-params';
export { EXIT, KmodloadError } from './errors';
export type { ExitStatus } from './errors';
export type { Kernel, InitState } from './kernel/kernel';
export {
  MODULE_INIT_IGNORE_MODVERSIONS,
  MODULE_INIT_IGNORE_VERMAGIC,
  MODULE_INIT_COMPRESSED_FILE,
  O_NONBLOCK,
  O_TRUNC,
} from './kernel/kernel';
export { LinuxKernel } from './kernel/linux';
export type { LinuxKernelOptions } from './kernel/linux';
export type {
  Plan,
  RequestPlan,
  Probe,
  ProbeStep,
  PlanError,
  PlanErrorReason,
} from './planner/plan';
export type { ResolverOptions, PlanOptions } from './planner/index';
export type { HostBlock } from './planner/plan';

// Holds: which container holds which module (the hook records them).
export { listHolds, DEFAULT_STATE_DIR } from './holds/index';
export type {
  Hold,
  HeldModule,
  HoldsOptions,
  TrackedModule,
  StatusReport,
  ReleasedModule,
} from './holds/index';

// The host policy: which modules containers may have.
export {
  parsePolicy,
  checkPolicy,
  readPolicy,
  readPolicyFiles,
  formatProblem,
  DEFAULT_POLICY_FILE,
  DEFAULT_POLICY_DIR,
  DEFAULT_MAX_MODULES,
} from './policy/index';
export type {
  Policy,
  PolicyRule,
  PolicyCondition,
  PolicySetting,
  PolicyProblem,
  PolicyDecision,
  PolicyVerdict,
  PolicyViolation,
  ModuleRole,
  Requester,
  RequestSource,
  Verdict,
  ReadPolicyResult,
} from './policy/index';

// The container core: one decision for "a container asks" and "a container goes", whichever
// front end (the hook, the NRI plugin, a Node service) asks.
export type {
  Admission,
  AdmissionAction,
  ContainerRequest,
  ContainerDeparture,
  NodeOptions,
  Release,
  AuditRecord,
  AuditRelease,
  AuditResult,
  AuditStep,
} from './container/index';
export type { Check, CheckLevel, DoctorOptions } from './doctor/checks';

// The OCI hook, for runtimes and services written in Node.
export {
  handleHook,
  serveHook,
  parseKernelModules,
  parseModuleRequest,
  readHookRequest,
  requestFromConfig,
  parseContainerState,
  inferStage,
  hookConfig,
  formatHookConfig,
  installWrapper,
  KERNEL_MODULES_ANNOTATION,
  KERNEL_MODULES_ENV,
  MAX_MODULE_NAME_LENGTH,
  DEFAULT_WRAPPER_PATH,
} from './hook/index';
export type {
  HookOptions,
  HookResult,
  HookRequest,
  HookLoader,
  HookStage,
  HookInput,
  ContainerState,
  HookConfigFormat,
  HookConfigOptions,
  ModuleEntry,
} from './hook/index';
