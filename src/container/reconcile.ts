// "These containers run": after a restart, a front end that the runtime tells which containers
// exist (NRI's Synchronize) makes the holds match. A running container that asks for modules
// and holds none is admitted again (its modules loaded if they went, its hold recorded); a
// hold this front end took for a container that no longer runs is released. Holds taken by
// hooks are left to their pids.

import { admit, type Admission } from './admit';
import type { NodeOptions } from './options';
import { release, type Release } from './release';
import { requestedNames, type ContainerRequest } from './request';

export interface Reconciliation {
  /** The running containers that asked for modules and held none, admitted again. */
  readonly admitted: readonly Admission[];
  /** The holds of containers that are gone, released. */
  readonly released: readonly Release[];
}

/** Makes the holds taken `via` this front end match `running` (every container that runs,
 *  with or without a request). */
export async function reconcile(
  running: readonly ContainerRequest[],
  via: 'nri',
  options: NodeOptions = {},
): Promise<Reconciliation> {
  const { listHolds } = await import('../holds/index.js');
  const holds = await listHolds(options);
  const held = new Set(holds.map((hold) => hold.id));
  const runningIds = new Set(running.map((container) => container.id));
  const released: Release[] = [];
  for (const hold of holds) {
    if (hold.via !== via || runningIds.has(hold.id)) continue;
    released.push(await release({ id: hold.id, stage: 'synchronize' }, options));
  }
  const admitted: Admission[] = [];
  for (const container of running) {
    if (held.has(container.id) || !asksForModules(container)) continue;
    admitted.push(await admit({ ...container, stage: 'synchronize', via }, options));
  }
  return Object.freeze({ admitted, released });
}

/** Whether a running container asks for anything; one whose request does not parse is
 *  admitted anyway, so that its record says why it holds nothing. */
function asksForModules(container: ContainerRequest): boolean {
  try {
    return requestedNames(container.parts).modules.length > 0;
  } catch {
    return true;
  }
}
