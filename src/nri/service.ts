// The NRI plugin's decisions: each event the runtime sends becomes a request or a departure
// for the container core (src/container), exactly as the hook's do; nothing is decided here.
// A refusal fails the container's creation with the hook's one-line reason.

import {
  KERNEL_MODULES_ANNOTATION,
  KERNEL_MODULES_ENV,
  admit,
  asKmodloadError,
  auditRecord,
  findEnvRequest,
  reconcile,
  release,
  writeAuditRecord,
  type AuditRecord,
  type ContainerRequest,
  type NodeOptions,
} from '../container/index';
import { residentLoader } from '../container/resident';
import { EXIT, KmodloadError } from '../errors';
import type { NriContainer, NriHandlers, NriPod } from './plugin';

/** A pod annotation naming one container's modules: `org.kmodload.kernel-modules/container.NAME`. */
export const CONTAINER_ANNOTATION_PREFIX = `${KERNEL_MODULES_ANNOTATION}/container.`;

/** Where the plugin's records go: the log file and the runtime's journal (stderr). */
export type RecordSink = (record: AuditRecord) => void;

/**
 * The container's request: its env's KERNEL_MODULES, then the pod's annotation (every
 * container of the pod), then the pod's annotation for this container by name; the core
 * parses them. Throws a KmodloadError (exit 3) for two different KERNEL_MODULES entries.
 */
export function nriRequest(pod: NriPod, container: NriContainer): ContainerRequest {
  const malformed = (detail: string): KmodloadError =>
    new KmodloadError(`malformed container env: ${detail}`, EXIT.environment);
  const own = `${CONTAINER_ANNOTATION_PREFIX}${container.name}`;
  return {
    id: container.id,
    parts: [
      { value: findEnvRequest(container.env, malformed), source: 'env', what: KERNEL_MODULES_ENV },
      {
        value: annotation(pod.annotations, KERNEL_MODULES_ANNOTATION),
        source: 'annotation',
        what: `annotation ${KERNEL_MODULES_ANNOTATION}`,
      },
      { value: annotation(pod.annotations, own), source: 'annotation', what: `annotation ${own}` },
    ],
    // The pod's annotations, then the container's own (the policy's `when annotation`), then
    // the pod's identity as the runtime gives it, which no annotation a pod author writes
    // can replace.
    annotations: { ...pod.annotations, ...container.annotations, ...podIdentity(pod) },
    namespace: pod.namespace,
    podLabels: pod.labels,
    via: 'nri',
  };
}

function annotation(annotations: Record<string, string>, key: string): string | undefined {
  return Object.hasOwn(annotations, key) ? annotations[key] : undefined;
}

/** The pod's namespace and name under the keys the kubelet's runtimes use (and the record
 *  keeps), from the runtime's typed fields. */
function podIdentity(pod: NriPod): Record<string, string> {
  return { 'io.kubernetes.pod.namespace': pod.namespace, 'io.kubernetes.pod.name': pod.name };
}

/** The record of a request that could not be read: refused, nothing loaded. */
function unreadable(
  pod: NriPod,
  container: NriContainer,
  stage: string,
  error: unknown,
  options: NodeOptions,
): { record: AuditRecord; message: string } {
  const record = auditRecord({
    id: container.id,
    stage,
    dryRun: options.dryRun === true,
    annotations: podIdentity(pod),
    modules: [],
    started: process.hrtime.bigint(),
    failure: asKmodloadError(error, []),
    warnings: [],
  });
  return { record, message: record.error as string };
}

/** The plugin's handlers over the container core. `options` are the node's, as the hook's. */
export function nriHandlers(nodeOptions: NodeOptions, sink: RecordSink): NriHandlers {
  // Resident: the tree stays open between decisions (read again when it changes). The
  // options are read at each call: a runtime's configuration may set them after the start.
  const loader = residentLoader(nodeOptions);
  const current = (): NodeOptions => ({ loader, ...nodeOptions });
  const departed = async (pod: NriPod, container: NriContainer, stage: string): Promise<void> => {
    const gone = await release(
      { id: container.id, stage, annotations: podIdentity(pod) },
      current(),
    );
    // A container that held nothing leaves no line: stops outnumber requests by far.
    if (gone.release || gone.warnings.length > 0) sink(gone.record);
  };
  return {
    async createContainer(pod, container) {
      let request: ContainerRequest;
      try {
        request = { ...nriRequest(pod, container), stage: 'CreateContainer' };
      } catch (error) {
        const refused = unreadable(pod, container, 'CreateContainer', error, current());
        sink(refused.record);
        throw new Error(`kmodload: ${refused.message}`);
      }
      const decided = await admit(request, current());
      sink(decided.record);
      if (!decided.ok) throw new Error(`kmodload: ${decided.message ?? 'refused'}`);
    },
    stopContainer: (pod, container) => departed(pod, container, 'StopContainer'),
    removeContainer: (pod, container) => departed(pod, container, 'RemoveContainer'),
    async synchronize(pods, containers) {
      const podsById = new Map(pods.map((pod) => [pod.id, pod]));
      const running: ContainerRequest[] = [];
      for (const container of containers) {
        const pod = podsById.get(container.podSandboxId);
        if (!pod) continue;
        try {
          running.push(nriRequest(pod, container));
        } catch (error) {
          // It runs already: nothing to refuse; its line says why it holds nothing.
          sink(unreadable(pod, container, 'synchronize', error, current()).record);
          running.push({ id: container.id, parts: [], annotations: {}, via: 'nri' });
        }
      }
      const result = await reconcile(running, 'nri', current());
      for (const decided of [...result.released, ...result.admitted]) sink(decided.record);
    },
  };
}

/** Records to the log file (when there is one) and to stderr, one JSON line each. */
export function recordSink(
  options: NodeOptions,
  stderr: NodeJS.WritableStream,
  warn: (line: string) => void,
): RecordSink {
  return (record) => {
    stderr.write(`${JSON.stringify(record)}\n`);
    const problem = writeAuditRecord(options.logFile, record);
    if (problem !== undefined) warn(problem);
  };
}
