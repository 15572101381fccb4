// A small CRI client for the qemu guest (scenario 14), bundled into /opt/e2e/cri.js by
// scripts/qemu/build-initramfs.sh. It does what a kubelet does for a pod, one step per call:
//
//   cri.js [--socket PATH] [--timeout S] version
//   cri.js ... up NAME [--image REF] [--env K=V]... [--annotation K=V]... [--pod-annotation K=V]...
//                      [--cdi-device VENDOR/CLASS=NAME]... [--runtime-handler NAME]
//       RunPodSandbox (host network; with the runtime handler, e.g. one of containerd's
//       runtimes), CreateContainer (CDI devices in its CDI_devices field, as a kubelet passes a
//       device plugin's), StartContainer, ContainerStatus; prints {"pod","container","state"}
//   cri.js ... down NAME
//       every container of the pods named NAME: StopContainer (no grace), RemoveContainer;
//       then StopPodSandbox, RemovePodSandbox; prints {"pods","containers","left"} (left: the
//       pods of that name the runtime still lists afterwards)
//   cri.js ... ps
//       the pods and containers, one JSON line each
//
// A failed call prints "cri: METHOD: STATUS: MESSAGE" (the runtime's own message, where an NRI
// plugin's refusal appears) on stderr and exits 1; `up` still prints the pod it made, so that
// `down` can remove it. Bad usage exits 2.

import { GrpcClient, GrpcError } from './grpc';
import {
  CONTAINER_STATES,
  decodeContainerStatusResponse,
  decodeIdResponse,
  decodeListContainersResponse,
  decodeListPodSandboxResponse,
  decodeVersionResponse,
  encodeContainerIdRequest,
  encodeCreateContainerRequest,
  encodeListContainersRequest,
  encodeListPodSandboxRequest,
  encodePodSandboxIdRequest,
  encodeRunPodSandboxRequest,
  encodeStopContainerRequest,
  encodeVersionRequest,
  NamespaceMode,
  POD_STATES,
  RUNTIME_SERVICE,
  type PodSandbox,
  type PodSandboxConfig,
} from './runtime-v1';

const DEFAULT_SOCKET = '/run/containerd/containerd.sock';
const DEFAULT_IMAGE = 'localhost/kmodload-e2e:1';
/** The pods' Kubernetes namespace (PodSandboxMetadata.namespace). */
const POD_NAMESPACE = 'kmodload-e2e';

class UsageError extends Error {}

interface Options {
  socket: string;
  timeoutSeconds: number;
  image: string;
  env: Record<string, string>;
  annotations: Record<string, string>;
  podAnnotations: Record<string, string>;
  cdiDevices: string[];
  runtimeHandler: string;
  words: string[];
}

function parseArgs(argv: string[]): Options {
  const options: Options = {
    socket: DEFAULT_SOCKET,
    timeoutSeconds: 120,
    image: DEFAULT_IMAGE,
    env: {},
    annotations: {},
    podAnnotations: {},
    cdiDevices: [],
    runtimeHandler: '',
    words: [],
  };
  const pair = (flag: string, value: string): [string, string] => {
    const at = value.indexOf('=');
    if (at <= 0) throw new UsageError(`${flag} wants KEY=VALUE, got "${value}"`);
    return [value.slice(0, at), value.slice(at + 1)];
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      options.words.push(arg);
      continue;
    }
    const value = argv[++i];
    if (value === undefined) throw new UsageError(`${arg} needs a value`);
    switch (arg) {
      case '--socket':
        options.socket = value;
        break;
      case '--timeout':
        options.timeoutSeconds = Number(value);
        if (!(options.timeoutSeconds > 0)) throw new UsageError(`bad --timeout "${value}"`);
        break;
      case '--image':
        options.image = value;
        break;
      case '--env': {
        const [key, v] = pair(arg, value);
        options.env[key] = v;
        break;
      }
      case '--annotation': {
        const [key, v] = pair(arg, value);
        options.annotations[key] = v;
        break;
      }
      case '--pod-annotation': {
        const [key, v] = pair(arg, value);
        options.podAnnotations[key] = v;
        break;
      }
      case '--cdi-device':
        options.cdiDevices.push(value);
        break;
      case '--runtime-handler':
        options.runtimeHandler = value;
        break;
      default:
        throw new UsageError(`unknown option ${arg}`);
    }
  }
  return options;
}

class Cri {
  private readonly grpc: GrpcClient;
  constructor(socket: string, timeoutSeconds: number) {
    this.grpc = new GrpcClient(socket, timeoutSeconds * 1000);
  }
  call(method: string, request: Uint8Array): Promise<Uint8Array> {
    return this.grpc.call(RUNTIME_SERVICE, method, request);
  }
  close(): void {
    this.grpc.close();
  }
}

function podConfig(name: string, annotations: Record<string, string>): PodSandboxConfig {
  return {
    name,
    uid: `${name}-uid`,
    namespace: POD_NAMESPACE,
    annotations,
    network: NamespaceMode.NODE,
  };
}

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

async function up(cri: Cri, name: string, options: Options): Promise<void> {
  const sandbox = podConfig(name, options.podAnnotations);
  const pod = decodeIdResponse(
    await cri.call('RunPodSandbox', encodeRunPodSandboxRequest(sandbox, options.runtimeHandler)),
  );
  const result: Record<string, string> = { pod };
  try {
    const container = decodeIdResponse(
      await cri.call(
        'CreateContainer',
        encodeCreateContainerRequest(
          pod,
          {
            name: 'main',
            image: options.image,
            env: options.env,
            annotations: options.annotations,
            network: NamespaceMode.NODE,
            pid: NamespaceMode.CONTAINER,
            cdiDevices: options.cdiDevices,
          },
          sandbox,
        ),
      ),
    );
    result['container'] = container;
    await cri.call('StartContainer', encodeContainerIdRequest(container));
    const status = decodeContainerStatusResponse(
      await cri.call('ContainerStatus', encodeContainerIdRequest(container)),
    );
    result['state'] = CONTAINER_STATES[status.state] ?? String(status.state);
  } finally {
    print(result);
  }
}

async function podsNamed(cri: Cri, name: string): Promise<PodSandbox[]> {
  return decodeListPodSandboxResponse(
    await cri.call('ListPodSandbox', encodeListPodSandboxRequest()),
  ).filter((p) => p.name === name && p.namespace === POD_NAMESPACE);
}

async function down(cri: Cri, name: string): Promise<void> {
  const pods = await podsNamed(cri, name);
  if (pods.length === 0) throw new GrpcError('ListPodSandbox', 5, `no pod named ${name}`);
  const removed: string[] = [];
  for (const pod of pods) {
    const containers = decodeListContainersResponse(
      await cri.call('ListContainers', encodeListContainersRequest(pod.id)),
    );
    for (const container of containers) {
      await cri.call('StopContainer', encodeStopContainerRequest(container.id, 0));
      await cri.call('RemoveContainer', encodeContainerIdRequest(container.id));
      removed.push(container.id);
    }
    await cri.call('StopPodSandbox', encodePodSandboxIdRequest(pod.id));
    await cri.call('RemovePodSandbox', encodePodSandboxIdRequest(pod.id));
  }
  // What the runtime still lists afterwards: it must have forgotten them.
  const left = (await podsNamed(cri, name)).length;
  print({ pods: pods.map((p) => p.id), containers: removed, left });
}

async function ps(cri: Cri): Promise<void> {
  const pods = decodeListPodSandboxResponse(
    await cri.call('ListPodSandbox', encodeListPodSandboxRequest()),
  );
  for (const pod of pods) {
    print({ pod: pod.id, name: pod.name, state: POD_STATES[pod.state] ?? String(pod.state) });
  }
  const containers = decodeListContainersResponse(
    await cri.call('ListContainers', encodeListContainersRequest()),
  );
  for (const c of containers) {
    print({
      container: c.id,
      pod: c.podSandboxId,
      name: c.name,
      state: CONTAINER_STATES[c.state] ?? String(c.state),
    });
  }
}

async function main(argv: string[]): Promise<number> {
  let options: Options;
  try {
    options = parseArgs(argv);
    const [command, name, ...rest] = options.words;
    const wantsName = command === 'up' || command === 'down';
    if (!['version', 'up', 'down', 'ps'].includes(command ?? '')) {
      throw new UsageError(
        'usage: cri.js [--socket PATH] [--timeout S] version|up NAME|down NAME|ps',
      );
    }
    if (wantsName ? name === undefined || rest.length > 0 : name !== undefined) {
      throw new UsageError(`${command}: ${wantsName ? 'one pod name' : 'no arguments'} expected`);
    }
  } catch (error) {
    process.stderr.write(`cri: ${(error as Error).message}\n`);
    return 2;
  }
  const [command, name] = options.words as [string, string];
  const cri = new Cri(options.socket, options.timeoutSeconds);
  try {
    if (command === 'version') {
      print(decodeVersionResponse(await cri.call('Version', encodeVersionRequest('v1'))));
    } else if (command === 'up') {
      await up(cri, name, options);
    } else if (command === 'down') {
      await down(cri, name);
    } else {
      await ps(cri);
    }
    return 0;
  } catch (error) {
    process.stderr.write(`cri: ${(error as Error).message}\n`);
    return 1;
  } finally {
    cri.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (error: unknown) => {
    process.stderr.write(`cri: ${String(error)}\n`);
    process.exitCode = 1;
  },
);
