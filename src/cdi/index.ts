// Kernel modules as CDI devices (`podman run --device kmodload.io/module=ip_vs`): the spec
// built from the host's policy and module tree, checked by the engines' rules, and written.

import { EXIT, KmodloadError } from '../errors';
import { parseKernelModules } from '../container/request';
import { errorText, quote } from '../text';
import { offeredModules, type Offer, type OfferOptions } from './offer';
import { buildSpecs, type CdiSpecs, type DeviceRequest, type SpecOptions } from './spec';
import { isDeviceName, specProblems } from './validate';

export { cdiPolicy, offeredModules, treeModules, type Offer, type OfferOptions } from './offer';
export {
  CDI_DIGITS_VERSION,
  CDI_HOOK_ENV,
  CDI_KIND,
  CDI_VERSION,
  DEFAULT_CDI_DIR,
  DEFAULT_CDI_FILE,
  buildSpecs,
  digitsFile,
  formatSpec,
  startsWithDigit,
  type CdiDevice,
  type CdiHook,
  type CdiSpec,
  type CdiSpecs,
  type DeviceRequest,
  type SpecOptions,
} from './spec';
export { CDI_HOOK_NAMES, READABLE_CDI_VERSIONS, isDeviceName, specProblems } from './validate';
export { staleSpecFiles, writeSpecFiles, type SpecFile, type SpecFileAction } from './write';

export interface GenerateOptions extends OfferOptions, SpecOptions {
  /** Devices that stand for several modules (`--set NAME=M1,M2`). */
  sets?: DeviceRequest[];
}

export interface Generated {
  offer: Offer;
  specs: CdiSpecs;
  /** Devices in both files. */
  devices: number;
}

/** `NAME=M1,M2...` of `--set`, checked: a CDI device name and module names as a request
 *  takes them. */
export function parseSet(text: string): DeviceRequest {
  const eq = text.indexOf('=');
  const name = eq < 0 ? text : text.slice(0, eq);
  if (eq < 0 || !isDeviceName(name)) {
    throw new KmodloadError(
      `--set ${quote(text)}: NAME=MODULE,MODULE... with a device name of letters, digits, "_", ".", "-", ":" (first and last a letter or digit)`,
      EXIT.usage,
    );
  }
  let modules: string[];
  try {
    modules = parseKernelModules(text.slice(eq + 1), `--set ${name}`);
  } catch (error) {
    throw new KmodloadError(errorText(error), EXIT.usage);
  }
  if (modules.length === 0) {
    throw new KmodloadError(`--set ${name}: names no module`, EXIT.usage);
  }
  return { name, modules };
}

/**
 * The specs for the host: a device per module a container may ask for through CDI, and one per
 * set. A set may not take a module's name, nor another set's.
 */
export async function generateCdiSpecs(options: GenerateOptions): Promise<Generated> {
  const sets = options.sets ?? [];
  const taken = new Set<string>();
  for (const set of sets) {
    if (taken.has(set.name)) {
      throw new KmodloadError(`--set ${set.name} is given twice`, EXIT.usage);
    }
    taken.add(set.name);
  }
  const offer = await offeredModules(options, sets);
  for (const name of offer.treeModules) {
    if (taken.has(name)) {
      throw new KmodloadError(
        `--set ${name}: a module of the tree has that name; name the set otherwise`,
        EXIT.usage,
      );
    }
  }
  const devices: DeviceRequest[] = offer.modules.map((name) => ({ name, modules: [name] }));
  devices.push(...sets);
  const specs = buildSpecs(devices, options);
  for (const spec of [specs.main, specs.digits]) {
    const problem = spec ? specProblems(spec)[0] : undefined;
    if (problem !== undefined) {
      throw new KmodloadError(
        `the spec made is not one the engines read: ${problem}`,
        EXIT.internal,
      );
    }
  }
  return { offer, specs, devices: devices.length };
}
