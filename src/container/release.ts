// "A container goes": its hold is dropped and, with unloadOnStop, what no container holds any
// more is unloaded. Never fails the caller: a container that goes cannot be stopped from going.

import { errorText, quote } from '../text';
import { INSECURE_FILES_WARNING } from '../trust';
import { auditRecord, type AuditRecord, type AuditRelease } from './audit';
import type { NodeOptions } from './options';

export interface ContainerDeparture {
  /** The container's id. */
  id: string;
  /** Where in the container's life the front end tells (the hook's stage), for the record. */
  stage?: string;
  /** The status the runtime reported, for the record. */
  status?: string;
  /** The container's annotations, for the record (the pod's name and namespace). */
  annotations?: Record<string, string>;
}

export interface Release {
  /** What releasing the hold did; absent when the container held nothing. */
  readonly release?: AuditRelease;
  readonly warnings: readonly string[];
  readonly record: AuditRecord;
}

/** Drops the container's hold and, with `unloadOnStop`, unloads what nobody holds. A container
 *  that holds nothing costs a stat(2). */
export async function release(
  departure: ContainerDeparture,
  options: NodeOptions = {},
): Promise<Release> {
  const started = process.hrtime.bigint();
  const warnings: string[] = options.insecureFiles ? [INSECURE_FILES_WARNING] : [];
  let released: AuditRelease | undefined;
  const holds = await import('../holds/index.js');
  if (await holds.holdExists(options, departure.id)) {
    try {
      const kernel = options.kernel ?? new (await import('../kernel/linux.js')).LinuxKernel();
      const keep = options.unloadOnStop ? await holds.removeRuleKeeper(options) : undefined;
      const result = await holds.releaseHold(options, departure.id, {
        unload: options.unloadOnStop === true,
        kernel,
        ...(keep ? { keep } : {}),
      });
      released = {
        released: result.released,
        stale: result.stale.map((hold) => hold.id),
        modules: result.modules,
      };
      warnings.push(...result.warnings);
    } catch (error) {
      warnings.push(
        `cannot release the hold of container ${quote(departure.id)}: ${errorText(error)}`,
      );
    }
  }
  const record = auditRecord({
    id: departure.id,
    stage: departure.stage,
    status: departure.status,
    dryRun: options.dryRun === true,
    annotations: departure.annotations,
    release: released,
    modules: [],
    started,
    warnings,
  });
  return Object.freeze({ ...(released ? { release: released } : {}), warnings, record });
}
