// A CDI spec checked by the rules the engines' CDI library applies when it loads one (the
// library of podman 4.3, 0.5.x, and the later ones of Docker 25+ and containerd): a strict
// parse (a field it does not know refuses the whole file), the name grammars, hook names,
// a non-empty env `KEY=`, and the lowest cdiVersion the fields used need. Added: the OCI
// runtime's own rules for hooks (absolute path, timeout > 0), which runc applies later.

import { HOOK_STAGES } from '../hook/stage';

/** The versions every library from podman 4.3's (0.5) to today's reads. */
export const READABLE_CDI_VERSIONS: readonly string[] = ['0.3.0', '0.4.0', '0.5.0'];

/** A CDI hook's hookName: the OCI runtime spec's stages. */
export const CDI_HOOK_NAMES: readonly string[] = HOOK_STAGES;

const VENDOR = /^[A-Za-z]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/;
const CLASS = /^[A-Za-z]([A-Za-z0-9_-]*[A-Za-z0-9])?$/;
const DEVICE = /^[A-Za-z0-9]([A-Za-z0-9_.:-]*[A-Za-z0-9])?$/;

// The fields of the 0.5 library's types: any other is an unknown field there.
const SPEC_FIELDS = ['cdiVersion', 'kind', 'devices', 'containerEdits'];
const DEVICE_FIELDS = ['name', 'containerEdits'];
const EDITS_FIELDS = ['env', 'deviceNodes', 'hooks', 'mounts'];
const HOOK_FIELDS = ['hookName', 'path', 'args', 'env', 'timeout'];
const NODE_FIELDS = [
  'path',
  'hostPath',
  'type',
  'major',
  'minor',
  'fileMode',
  'permissions',
  'uid',
  'gid',
];
const MOUNT_FIELDS = ['hostPath', 'containerPath', 'options', 'type'];

type Json = Record<string, unknown>;

/** Whether `name` is a CDI device name. */
export function isDeviceName(name: string): boolean {
  return DEVICE.test(name);
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

class Checker {
  readonly problems: string[] = [];
  /** The lowest version the fields seen need. */
  needs = '0.3.0';
  private needsWhy = '';

  problem(where: string, message: string): void {
    this.problems.push(`${where}: ${message}`);
  }

  need(version: string, why: string): void {
    if (version > this.needs) {
      this.needs = version;
      this.needsWhy = why;
    }
  }

  get neededFor(): string {
    return this.needsWhy;
  }

  object(value: unknown, where: string, fields: readonly string[]): Json | undefined {
    if (!isObject(value)) {
      this.problem(where, 'not an object');
      return undefined;
    }
    for (const key of Object.keys(value)) {
      if (!fields.includes(key)) this.problem(`${where}.${key}`, 'unknown field');
    }
    return value;
  }

  string(value: unknown, where: string, required = true): string | undefined {
    if (value === undefined && !required) return undefined;
    if (typeof value !== 'string') {
      this.problem(where, 'not a string');
      return undefined;
    }
    return value;
  }

  strings(value: unknown, where: string): string[] {
    if (value === undefined) return [];
    if (!Array.isArray(value)) {
      this.problem(where, 'not an array');
      return [];
    }
    return value.filter((item: unknown, index) => {
      if (typeof item === 'string') return true;
      this.problem(`${where}[${index}]`, 'not a string');
      return false;
    });
  }

  array(value: unknown, where: string): unknown[] {
    if (value === undefined) return [];
    if (!Array.isArray(value)) {
      this.problem(where, 'not an array');
      return [];
    }
    return value;
  }

  env(value: unknown, where: string): void {
    this.strings(value, where).forEach((entry, index) => {
      if (entry.indexOf('=') <= 0) this.problem(`${where}[${index}]`, `not KEY=VALUE: "${entry}"`);
    });
  }

  hook(value: unknown, where: string): void {
    const hook = this.object(value, where, HOOK_FIELDS);
    if (!hook) return;
    const name = this.string(hook['hookName'], `${where}.hookName`);
    if (name !== undefined && !CDI_HOOK_NAMES.includes(name)) {
      this.problem(`${where}.hookName`, `"${name}" is not one of ${CDI_HOOK_NAMES.join(', ')}`);
    }
    const file = this.string(hook['path'], `${where}.path`);
    if (file !== undefined && !file.startsWith('/')) {
      this.problem(`${where}.path`, `"${file}" is not an absolute path`);
    }
    this.strings(hook['args'], `${where}.args`);
    this.env(hook['env'], `${where}.env`);
    const timeout = hook['timeout'];
    if (timeout !== undefined && (!Number.isInteger(timeout) || (timeout as number) <= 0)) {
      this.problem(`${where}.timeout`, 'not a whole number of seconds above 0');
    }
  }

  edits(value: unknown, where: string): boolean {
    if (value === undefined) return false;
    const edits = this.object(value, where, EDITS_FIELDS);
    if (!edits) return false;
    this.env(edits['env'], `${where}.env`);
    const hooks = this.array(edits['hooks'], `${where}.hooks`);
    hooks.forEach((hook, index) => this.hook(hook, `${where}.hooks[${index}]`));
    const nodes = this.array(edits['deviceNodes'], `${where}.deviceNodes`);
    nodes.forEach((node, index) => {
      const at = `${where}.deviceNodes[${index}]`;
      const checked = this.object(node, at, NODE_FIELDS);
      if (!checked) return;
      if (!this.string(checked['path'], `${at}.path`)) this.problem(`${at}.path`, 'empty');
      if (checked['hostPath'] !== undefined && checked['hostPath'] !== '') {
        this.need('0.5.0', `${at}.hostPath`);
      }
    });
    const mounts = this.array(edits['mounts'], `${where}.mounts`);
    mounts.forEach((mount, index) => {
      const at = `${where}.mounts[${index}]`;
      const checked = this.object(mount, at, MOUNT_FIELDS);
      if (!checked) return;
      if (!this.string(checked['hostPath'], `${at}.hostPath`)) this.problem(at, 'no hostPath');
      if (!this.string(checked['containerPath'], `${at}.containerPath`)) {
        this.problem(at, 'no containerPath');
      }
      if (checked['type'] !== undefined && checked['type'] !== '') {
        this.need('0.4.0', `${at}.type`);
      }
    });
    const envs = Array.isArray(edits['env']) ? edits['env'].length : 0;
    return envs + hooks.length + nodes.length + mounts.length > 0;
  }
}

/**
 * Why the engines would refuse `value` as a CDI spec file, one line each ("devices[3].name:
 * ..."); empty when they would load it.
 */
export function specProblems(value: unknown): string[] {
  const check = new Checker();
  const spec = check.object(value, 'spec', SPEC_FIELDS);
  if (!spec) return check.problems;
  const version = check.string(spec['cdiVersion'], 'cdiVersion');
  if (version !== undefined && !READABLE_CDI_VERSIONS.includes(version)) {
    check.problem('cdiVersion', `"${version}" is not one of ${READABLE_CDI_VERSIONS.join(', ')}`);
  }
  const kind = check.string(spec['kind'], 'kind');
  if (kind !== undefined) {
    const [vendor, cls, ...rest] = kind.split('/');
    if (rest.length > 0 || cls === undefined)
      check.problem('kind', `"${kind}" is not VENDOR/CLASS`);
    else {
      if (!VENDOR.test(vendor ?? '')) check.problem('kind', `"${vendor}" is not a vendor name`);
      if (!CLASS.test(cls)) check.problem('kind', `"${cls}" is not a class name`);
    }
  }
  if (spec['containerEdits'] !== undefined) check.edits(spec['containerEdits'], 'containerEdits');
  const devices = check.array(spec['devices'], 'devices');
  if (devices.length === 0) check.problem('devices', 'no devices');
  const seen = new Set<string>();
  devices.forEach((value, index) => {
    const where = `devices[${index}]`;
    const device = check.object(value, where, DEVICE_FIELDS);
    if (!device) return;
    const name = check.string(device['name'], `${where}.name`);
    if (name !== undefined) {
      if (!DEVICE.test(name)) {
        check.problem(
          `${where}.name`,
          `"${name}" is not a device name (letters, digits, "_", ".", "-", ":"; first and last a letter or digit)`,
        );
      }
      if (seen.has(name)) check.problem(`${where}.name`, `"${name}" twice`);
      seen.add(name);
      if (/^[0-9]/.test(name)) check.need('0.5.0', `${where}.name "${name}" starts with a digit`);
    }
    if (!check.edits(device['containerEdits'], `${where}.containerEdits`)) {
      check.problem(`${where}.containerEdits`, 'no edits');
    }
  });
  if (version !== undefined && READABLE_CDI_VERSIONS.includes(version) && version < check.needs) {
    check.problem('cdiVersion', `"${version}" is too low: ${check.neededFor} needs ${check.needs}`);
  }
  return check.problems;
}
