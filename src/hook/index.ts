// The programmatic hook API: the same parsing and handling `kmodload hook` uses, for runtimes
// and services written in Node. Requiring this module does not load the addon or the planner.
// The `kmodload hook` command itself lives in src/cli/hook-command.ts.

export { finishRefusedRun, handleHook, startHook } from './handler';
export type { HookAction, HookRunHandle, HookLoader, HookOptions, HookResult } from './handler';
export {
  KERNEL_MODULES_ANNOTATION,
  KERNEL_MODULES_ENV,
  MAX_MODULE_NAME_LENGTH,
  MAX_REQUEST_LENGTH,
  parseKernelModules,
  parseModuleRequest,
  type ModuleEntry,
} from '../container/request';
export { MAX_CONFIG_BYTES, readHookRequest, requestFromConfig } from './request';
export type { HookRequest, ReadRequestOptions } from './request';
export { HOOK_STAGES, LOAD_STAGES, inferStage, isLoadStage, parseStage } from './stage';
export type { HookStage } from './stage';
export { MAX_STATE_BYTES, checkContainerState, parseContainerState } from './state';
export type { ContainerState, ContainerStatus } from './state';
export {
  DEFAULT_WRAPPER_PATH,
  HOOK_CONFIG_FORMATS,
  formatHookConfig,
  hookConfig,
  installWrapper,
  wrapperScript,
} from './config';
export type { HookConfigFormat, HookConfigOptions, WrapperOptions } from './config';
export { DEFAULT_STDIN_TIMEOUT, serveHook } from './serve';
export type { HookInput } from './serve';
