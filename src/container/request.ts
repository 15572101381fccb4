// A container asking for modules, as every front end describes it to the core.

import type { RequestSource } from '../policy/types';

export interface ContainerRequest {
  /** The container's id. */
  id: string;
  /** The names asked for, in order, without duplicates. */
  modules: string[];
  /** Where each name came from (a name in both the env and the annotation has both). */
  sources: Record<string, RequestSource[]>;
  /** The container's annotations: the policy's `when annotation` tests them. */
  annotations: Record<string, string>;
  /** The container's process, when it exists already: its hold goes stale once it is gone. */
  pid?: number;
  /** Where in the container's life the front end asks (the hook's stage), for the record. */
  stage?: string;
  /** The status the runtime reported, for the record. */
  status?: string;
}
