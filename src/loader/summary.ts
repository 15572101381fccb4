// The one line that says why a load failed, for the CLI's stderr and the hook's runtime alike.

import type { LoadResult } from './types';

/**
 * Why `result` is not ok, as "cannot load NAME: REASON"; undefined when it is ok.
 * - ENOSYS (no module support) is about the kernel, not a module: it names every request.
 * - otherwise it names the first required module that failed, and the request it was for.
 * Soft dependencies never decide: their failures do not fail a request.
 */
export function failureSummary(result: LoadResult): string | undefined {
  if (result.ok) return undefined;
  const requested = result.plan.requests.map((request) => request.request).join(',');
  const noSupport = result.modules.find((module) => module.error?.code === 'ENOSYS');
  if (noSupport?.error) return `cannot load ${requested}: ${noSupport.error.message}`;
  const failed = result.modules.find((module) => module.status === 'failed' && module.required);
  if (!failed) return `cannot load ${requested}: a required module failed`;
  const which = failed.name === failed.request ? '' : `loading ${failed.name}: `;
  return `cannot load ${failed.request}: ${which}${failed.error?.message ?? 'unknown error'}`;
}
