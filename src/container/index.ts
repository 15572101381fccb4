// The container core: one decision path for "a container asks" (admit) and "a container goes"
// (release), which the hook, the NRI plugin and the library call.

export {
  admit,
  asKmodloadError,
  containerPlanOptions,
  failureAction,
  startAdmission,
  type Admission,
  type AdmissionAction,
  type AdmissionHandle,
} from './admit';
export { release, type ContainerDeparture, type Release } from './release';
export { reconcile, type Reconciliation } from './reconcile';
export {
  KERNEL_MODULES_ANNOTATION,
  KERNEL_MODULES_ENV,
  findEnvRequest,
  parseKernelModules,
  parseModuleRequest,
  requestedNames,
  type ModuleEntry,
  type ContainerRequest,
  type RequestPart,
  type RequestedNames,
} from './request';
export type { ContainerLoadOptions, ContainerLoader, NodeOptions } from './options';
export {
  MAX_RECORD_BYTES,
  appendLogLine,
  auditLine,
  auditRecord,
  writeAuditRecord,
  type AuditFacts,
  type AuditRecord,
  type AuditRelease,
  type AuditResult,
  type AuditStep,
} from './audit';
