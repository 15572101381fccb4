// The NRI messages the plugin reads and writes (containerd/nri pkg/api/api.proto, package
// nri.pkg.api.v1alpha1; field numbers as in NRI 0.6.1, the version containerd 1.7 speaks, and
// unchanged since). Only the fields the plugin uses are read.

import type { BinaryReader } from '@bufbuild/protobuf/wire';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import type { FieldReaders } from './proto';
import { decode, readMessage, readStringMapEntry, stringMap } from './proto';

export const RUNTIME_SERVICE = 'nri.pkg.api.v1alpha1.Runtime';
export const PLUGIN_SERVICE = 'nri.pkg.api.v1alpha1.Plugin';

/** api.proto's Event enum: the ones the plugin subscribes to. */
export const NriEvent = {
  createContainer: 4,
  stopContainer: 10,
  removeContainer: 11,
} as const;

/** ConfigureResponse.events: bit (event - 1) per event. NRI 0.6 refuses the plugin when a
 *  bit past REMOVE_CONTAINER (its last event, 11) is set. */
export function eventMask(...events: number[]): number {
  return events.reduce((mask, event) => mask | (1 << (event - 1)), 0);
}

/** A pod as the runtime describes it. Maps have no prototype: any key is plain data. */
export interface NriPod {
  id: string;
  name: string;
  uid: string;
  /** The Kubernetes namespace, set by the runtime from the kubelet's request. */
  namespace: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** A container as the runtime describes it. Maps have no prototype: any key is plain data. */
export interface NriContainer {
  id: string;
  podSandboxId: string;
  name: string;
  /** api.proto's ContainerState: 0 unknown, 1 created, 2 paused, 3 running, 4 stopped. */
  state: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  args: string[];
  /** "KEY=VALUE" strings. */
  env: string[];
  /** The container's process, when the runtime gives one (not at creation). */
  pid?: number;
}

export interface ConfigureRequest {
  config: string;
  runtimeName: string;
  runtimeVersion: string;
}

export interface SynchronizeRequest {
  pods: NriPod[];
  containers: NriContainer[];
  /** NRI >= 0.7 splits a large state over several requests; 0.6 never sets this. */
  more: boolean;
}

/** CreateContainerRequest, StopContainerRequest, UpdateContainerRequest and (NRI >= 0.11)
 *  RemoveContainerRequest: pod = 1, container = 2. */
export interface ContainerRequest {
  pod?: NriPod;
  container?: NriContainer;
}

/** StateChangeEvent: event = 1, pod = 2, container = 3. */
export interface StateChangeEvent extends ContainerRequest {
  event: number;
}

const POD_FIELDS: FieldReaders<NriPod> = {
  1: [WireType.LengthDelimited, (r, p) => (p.id = r.string())],
  2: [WireType.LengthDelimited, (r, p) => (p.name = r.string())],
  3: [WireType.LengthDelimited, (r, p) => (p.uid = r.string())],
  4: [WireType.LengthDelimited, (r, p) => (p.namespace = r.string())],
  5: [WireType.LengthDelimited, (r, p) => readStringMapEntry(r, p.labels)],
  6: [WireType.LengthDelimited, (r, p) => readStringMapEntry(r, p.annotations)],
};

const CONTAINER_FIELDS: FieldReaders<NriContainer> = {
  1: [WireType.LengthDelimited, (r, c) => (c.id = r.string())],
  2: [WireType.LengthDelimited, (r, c) => (c.podSandboxId = r.string())],
  3: [WireType.LengthDelimited, (r, c) => (c.name = r.string())],
  4: [WireType.Varint, (r, c) => (c.state = r.int32())],
  5: [WireType.LengthDelimited, (r, c) => readStringMapEntry(r, c.labels)],
  6: [WireType.LengthDelimited, (r, c) => readStringMapEntry(r, c.annotations)],
  7: [WireType.LengthDelimited, (r, c) => c.args.push(r.string())],
  8: [WireType.LengthDelimited, (r, c) => c.env.push(r.string())],
  12: [
    WireType.Varint,
    (r, c) => {
      const pid = r.uint32();
      if (pid === 0) delete c.pid;
      else c.pid = pid;
    },
  ],
};

function readPod(reader: BinaryReader): NriPod {
  const pod: NriPod = {
    id: '',
    name: '',
    uid: '',
    namespace: '',
    labels: stringMap(),
    annotations: stringMap(),
  };
  return readMessage(reader, pod, POD_FIELDS);
}

function readContainer(reader: BinaryReader): NriContainer {
  const container: NriContainer = {
    id: '',
    podSandboxId: '',
    name: '',
    state: 0,
    labels: stringMap(),
    annotations: stringMap(),
    args: [],
    env: [],
  };
  return readMessage(reader, container, CONTAINER_FIELDS);
}

export function decodeConfigureRequest(bytes: Uint8Array): ConfigureRequest {
  const into = { config: '', runtimeName: '', runtimeVersion: '' };
  return decode('ConfigureRequest', bytes, into, {
    1: [WireType.LengthDelimited, (r, m) => (m.config = r.string())],
    2: [WireType.LengthDelimited, (r, m) => (m.runtimeName = r.string())],
    3: [WireType.LengthDelimited, (r, m) => (m.runtimeVersion = r.string())],
  });
}

export function decodeSynchronizeRequest(bytes: Uint8Array): SynchronizeRequest {
  const into: SynchronizeRequest = { pods: [], containers: [], more: false };
  return decode('SynchronizeRequest', bytes, into, {
    1: [WireType.LengthDelimited, (r, m) => m.pods.push(readPod(r))],
    2: [WireType.LengthDelimited, (r, m) => m.containers.push(readContainer(r))],
    3: [WireType.Varint, (r, m) => (m.more = r.bool())],
  });
}

export function decodeContainerRequest(what: string, bytes: Uint8Array): ContainerRequest {
  return decode(what, bytes, {} as ContainerRequest, {
    1: [WireType.LengthDelimited, (r, m) => (m.pod = readPod(r))],
    2: [WireType.LengthDelimited, (r, m) => (m.container = readContainer(r))],
  });
}

export function decodeStateChangeEvent(bytes: Uint8Array): StateChangeEvent {
  return decode('StateChangeEvent', bytes, { event: 0 } as StateChangeEvent, {
    1: [WireType.Varint, (r, m) => (m.event = r.int32())],
    2: [WireType.LengthDelimited, (r, m) => (m.pod = readPod(r))],
    3: [WireType.LengthDelimited, (r, m) => (m.container = readContainer(r))],
  });
}

/** RegisterPluginRequest {plugin_name = 1, plugin_idx = 2}. */
export function encodeRegisterPluginRequest(name: string, idx: string): Uint8Array {
  const writer = new BinaryWriter();
  writer.tag(1, WireType.LengthDelimited).string(name);
  writer.tag(2, WireType.LengthDelimited).string(idx);
  return writer.finish();
}

/** ConfigureResponse {events = 2} (field 1 is unused in api.proto). */
export function encodeConfigureResponse(events: number): Uint8Array {
  return new BinaryWriter().tag(2, WireType.Varint).int32(events).finish();
}

/** SynchronizeResponse {update = 1, more = 2}: no updates; `more` echoes the request's, as
 *  NRI >= 0.7 requires of a plugin that takes a split state (0.6 knows no field 2 and never
 *  asks: it gets an empty message). */
export function encodeSynchronizeResponse(more: boolean): Uint8Array {
  const writer = new BinaryWriter();
  if (more) writer.tag(2, WireType.Varint).bool(true);
  return writer.finish();
}

/** Empty, and the responses the plugin leaves empty (no adjustments, updates or evictions). */
export const EMPTY = new Uint8Array();
