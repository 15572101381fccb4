// The few messages of the CRI (k8s.io/cri-api, package runtime.v1) that the guest's scenario
// needs, encoded and decoded by hand on protobuf's wire format. Field numbers are those of
// runtime.v1's api.proto; fields left out here are skipped when decoding, and omitted when
// encoding (the runtime's defaults).

import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';

export const RUNTIME_SERVICE = 'runtime.v1.RuntimeService';

/** NamespaceMode: POD shares the pod's namespace, NODE the host's. */
export const NamespaceMode = { POD: 0, CONTAINER: 1, NODE: 2 } as const;

/** ContainerState's numbers, and the names the CLI prints. */
export const CONTAINER_STATES = ['CREATED', 'RUNNING', 'EXITED', 'UNKNOWN'] as const;
export const POD_STATES = ['READY', 'NOTREADY'] as const;

export interface PodSandboxConfig {
  name: string;
  uid: string;
  namespace: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** NamespaceOption.network of the sandbox; NODE needs no CNI. */
  network: number;
}

export interface ContainerConfig {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: Record<string, string>;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  network: number;
  /** NamespaceOption.pid (the kubelet sets CONTAINER). */
  pid: number;
  /** Fully qualified CDI device names (CDI_devices: what a device plugin allocated). */
  cdiDevices?: string[];
}

// ---------- encoding ----------

type Writer = BinaryWriter;

function string(w: Writer, field: number, value: string | undefined): void {
  if (value) w.tag(field, WireType.LengthDelimited).string(value);
}

function varint(w: Writer, field: number, value: number | undefined): void {
  if (value) w.tag(field, WireType.Varint).int32(value);
}

function message(w: Writer, field: number, body: (w: Writer) => void): void {
  w.tag(field, WireType.LengthDelimited).fork();
  body(w);
  w.join();
}

/** A map<string, string>: one entry message {key = 1, value = 2} per pair, in key order. */
function map(w: Writer, field: number, value: Record<string, string> | undefined): void {
  for (const key of Object.keys(value ?? {}).sort()) {
    message(w, field, (e) => {
      string(e, 1, key);
      string(e, 2, value![key]);
    });
  }
}

function encodePodSandboxConfig(w: Writer, config: PodSandboxConfig): void {
  message(w, 1, (m) => {
    // PodSandboxMetadata
    string(m, 1, config.name);
    string(m, 2, config.uid);
    string(m, 3, config.namespace);
  });
  map(w, 6, config.labels);
  map(w, 7, config.annotations);
  message(w, 8, (linux) =>
    // LinuxPodSandboxConfig.security_context
    message(linux, 2, (security) =>
      // LinuxSandboxSecurityContext.namespace_options
      message(security, 1, (ns) => varint(ns, 1, config.network)),
    ),
  );
}

function encode(body: (w: Writer) => void): Uint8Array {
  const w = new BinaryWriter();
  body(w);
  return w.finish();
}

export function encodeVersionRequest(version: string): Uint8Array {
  return encode((w) => string(w, 1, version));
}

/** runtimeHandler names a runtime of the runtime's configuration ('' or none: its default). */
export function encodeRunPodSandboxRequest(
  config: PodSandboxConfig,
  runtimeHandler?: string,
): Uint8Array {
  return encode((w) => {
    message(w, 1, (c) => encodePodSandboxConfig(c, config));
    string(w, 2, runtimeHandler);
  });
}

export function encodeCreateContainerRequest(
  podSandboxId: string,
  config: ContainerConfig,
  sandbox: PodSandboxConfig,
): Uint8Array {
  return encode((w) => {
    string(w, 1, podSandboxId);
    message(w, 2, (c) => {
      message(c, 1, (m) => string(m, 1, config.name));
      message(c, 2, (image) => string(image, 1, config.image));
      for (const part of config.command ?? []) c.tag(3, WireType.LengthDelimited).string(part);
      for (const part of config.args ?? []) c.tag(4, WireType.LengthDelimited).string(part);
      for (const [key, value] of Object.entries(config.env ?? {})) {
        // KeyValue, in the order given (a container's environment is ordered)
        message(c, 6, (kv) => {
          string(kv, 1, key);
          string(kv, 2, value);
        });
      }
      map(c, 9, config.labels);
      map(c, 10, config.annotations);
      message(c, 15, (linux) =>
        // LinuxContainerConfig.security_context.namespace_options
        message(linux, 2, (security) =>
          message(security, 3, (ns) => {
            varint(ns, 1, config.network);
            varint(ns, 2, config.pid);
          }),
        ),
      );
      for (const name of config.cdiDevices ?? []) message(c, 17, (d) => string(d, 1, name));
    });
    message(w, 3, (s) => encodePodSandboxConfig(s, sandbox));
  });
}

/** Start, Remove and ContainerStatus requests: the container id alone. */
export function encodeContainerIdRequest(containerId: string): Uint8Array {
  return encode((w) => string(w, 1, containerId));
}

export function encodeStopContainerRequest(
  containerId: string,
  timeoutSeconds: number,
): Uint8Array {
  return encode((w) => {
    string(w, 1, containerId);
    if (timeoutSeconds) w.tag(2, WireType.Varint).int64(timeoutSeconds);
  });
}

/** StopPodSandbox and RemovePodSandbox requests. */
export function encodePodSandboxIdRequest(podSandboxId: string): Uint8Array {
  return encode((w) => string(w, 1, podSandboxId));
}

/** ListContainers, filtered by pod when one is given (ContainerFilter.pod_sandbox_id). */
export function encodeListContainersRequest(podSandboxId?: string): Uint8Array {
  return encode((w) => {
    if (podSandboxId) message(w, 1, (f) => string(f, 3, podSandboxId));
  });
}

export function encodeListPodSandboxRequest(): Uint8Array {
  return new Uint8Array(0);
}

// ---------- decoding ----------

/** Calls `field` for each field of the message in `bytes`; what it does not read is skipped. */
function fields(
  bytes: Uint8Array,
  field: (no: number, r: BinaryReader, type: WireType) => boolean,
): void {
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [no, type] = r.tag();
    if (!field(no, r, type)) r.skip(type, no);
  }
}

/** Reads field `no` of a message as a string (or reports it unread). */
function readString(r: BinaryReader, type: WireType, set: (s: string) => void): boolean {
  if (type !== WireType.LengthDelimited) return false;
  set(r.string());
  return true;
}

function readVarint(r: BinaryReader, type: WireType, set: (n: number) => void): boolean {
  if (type !== WireType.Varint) return false;
  set(r.int32());
  return true;
}

function readMapEntry(r: BinaryReader, type: WireType, into: Record<string, string>): boolean {
  if (type !== WireType.LengthDelimited) return false;
  let key = '';
  let value = '';
  fields(r.bytes(), (no, e, t) =>
    no === 1
      ? readString(e, t, (s) => (key = s))
      : no === 2 && readString(e, t, (s) => (value = s)),
  );
  into[key] = value;
  return true;
}

export interface VersionResponse {
  version: string;
  runtimeName: string;
  runtimeVersion: string;
  runtimeApiVersion: string;
}

export function decodeVersionResponse(bytes: Uint8Array): VersionResponse {
  const out: VersionResponse = {
    version: '',
    runtimeName: '',
    runtimeVersion: '',
    runtimeApiVersion: '',
  };
  const keys = ['version', 'runtimeName', 'runtimeVersion', 'runtimeApiVersion'] as const;
  fields(bytes, (no, r, t) => {
    const key = keys[no - 1];
    return key !== undefined && readString(r, t, (s) => (out[key] = s));
  });
  return out;
}

/** RunPodSandboxResponse.pod_sandbox_id and CreateContainerResponse.container_id. */
export function decodeIdResponse(bytes: Uint8Array): string {
  let id = '';
  fields(bytes, (no, r, t) => no === 1 && readString(r, t, (s) => (id = s)));
  return id;
}

export interface PodSandbox {
  id: string;
  name: string;
  namespace: string;
  state: number;
  annotations: Record<string, string>;
}

export function decodeListPodSandboxResponse(bytes: Uint8Array): PodSandbox[] {
  const items: PodSandbox[] = [];
  fields(bytes, (no, r, t) => {
    if (no !== 1 || t !== WireType.LengthDelimited) return false;
    const pod: PodSandbox = { id: '', name: '', namespace: '', state: 0, annotations: {} };
    fields(r.bytes(), (n, p, pt) => {
      switch (n) {
        case 1:
          return readString(p, pt, (s) => (pod.id = s));
        case 2:
          if (pt !== WireType.LengthDelimited) return false;
          fields(p.bytes(), (m, q, qt) =>
            m === 1
              ? readString(q, qt, (s) => (pod.name = s))
              : m === 3 && readString(q, qt, (s) => (pod.namespace = s)),
          );
          return true;
        case 3:
          return readVarint(p, pt, (v) => (pod.state = v));
        case 6:
          return readMapEntry(p, pt, pod.annotations);
        default:
          return false;
      }
    });
    items.push(pod);
    return true;
  });
  return items;
}

export interface Container {
  id: string;
  podSandboxId: string;
  name: string;
  state: number;
}

export function decodeListContainersResponse(bytes: Uint8Array): Container[] {
  const containers: Container[] = [];
  fields(bytes, (no, r, t) => {
    if (no !== 1 || t !== WireType.LengthDelimited) return false;
    const c: Container = { id: '', podSandboxId: '', name: '', state: 0 };
    fields(r.bytes(), (n, p, pt) => {
      switch (n) {
        case 1:
          return readString(p, pt, (s) => (c.id = s));
        case 2:
          return readString(p, pt, (s) => (c.podSandboxId = s));
        case 3:
          if (pt !== WireType.LengthDelimited) return false;
          fields(p.bytes(), (m, q, qt) => m === 1 && readString(q, qt, (s) => (c.name = s)));
          return true;
        case 6:
          return readVarint(p, pt, (v) => (c.state = v));
        default:
          return false;
      }
    });
    containers.push(c);
    return true;
  });
  return containers;
}

export interface ContainerStatus {
  id: string;
  state: number;
  exitCode: number;
  reason: string;
  message: string;
}

export function decodeContainerStatusResponse(bytes: Uint8Array): ContainerStatus {
  const status: ContainerStatus = { id: '', state: 0, exitCode: 0, reason: '', message: '' };
  fields(bytes, (no, r, t) => {
    if (no !== 1 || t !== WireType.LengthDelimited) return false;
    fields(r.bytes(), (n, p, pt) => {
      switch (n) {
        case 1:
          return readString(p, pt, (s) => (status.id = s));
        case 3:
          return readVarint(p, pt, (v) => (status.state = v));
        case 7:
          return readVarint(p, pt, (v) => (status.exitCode = v));
        case 10:
          return readString(p, pt, (s) => (status.reason = s));
        case 11:
          return readString(p, pt, (s) => (status.message = s));
        default:
          return false;
      }
    });
    return true;
  });
  return status;
}
