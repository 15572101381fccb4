// Which OCI hook stage we run in, and whether that stage loads modules.

import { EXIT, KmodloadError } from '../errors';
import type { ContainerState } from './state';
import { quote } from '../text';

export const HOOK_STAGES = [
  'prestart',
  'createRuntime',
  'createContainer',
  'startContainer',
  'poststart',
  'poststop',
] as const;

export type HookStage = (typeof HOOK_STAGES)[number];

/** Stages that load: both run in the runtime's namespaces, before the container's process
 *  starts, so the modules are there when it does. createContainer/startContainer run inside
 *  the container's mount namespace, where neither the hook nor the host's modules are. */
export const LOAD_STAGES: readonly HookStage[] = ['prestart', 'createRuntime'];

export function isLoadStage(stage: HookStage): boolean {
  return LOAD_STAGES.includes(stage);
}

/** `--state VALUE`: the stage names of the runtime spec, in any letter case (the original
 *  hook took lowercase `prestart`/`poststart`/`poststop`). */
export function parseStage(value: string): HookStage {
  const stage = HOOK_STAGES.find((candidate) => candidate.toLowerCase() === value.toLowerCase());
  if (!stage) {
    throw new KmodloadError(
      `unknown hook stage ${quote(value)} (expected one of ${HOOK_STAGES.join(', ')})`,
      EXIT.usage,
    );
  }
  return stage;
}

/**
 * The stage from the state's `status` when no `--state` was given: `creating` is before the
 * process starts (runc's prestart/createRuntime: load), `running` after it (poststart),
 * `stopped` after it ended (poststop; crun sends pid 0 there). `created` cannot tell: runc
 * sends it at poststart, crun at prestart and createRuntime, so guessing either way is wrong
 * under one of them.
 */
export function inferStage(state: Pick<ContainerState, 'status'>): HookStage {
  switch (state.status) {
    case 'creating':
      return 'prestart';
    case 'running':
      return 'poststart';
    case 'stopped':
      return 'poststop';
    case 'created':
      throw new KmodloadError(
        'the container status "created" does not tell the stage (crun sends it before the container starts, runc after): pass --state STAGE in the hook arguments (kmodload hook-config writes it)',
        EXIT.usage,
      );
    case undefined:
      throw new KmodloadError(
        'the container state has no "status": pass --state STAGE in the hook arguments',
        EXIT.usage,
      );
    default:
      throw new KmodloadError(
        `unknown container status ${quote(state.status)}: pass --state STAGE in the hook arguments`,
        EXIT.usage,
      );
  }
}
