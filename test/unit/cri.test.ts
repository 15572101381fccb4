// The guest's CRI client (test/e2e/cri): its protobuf bytes against hand-computed ones, and its
// gRPC calls against a local HTTP/2 server on a unix socket (success, the two ways a server
// reports an error, and a server that never answers).

import fs from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeGrpcMessage,
  frameMessage,
  GrpcClient,
  GrpcError,
  unframeMessage,
} from '../e2e/cri/grpc';
import {
  decodeContainerStatusResponse,
  decodeListContainersResponse,
  decodeListPodSandboxResponse,
  decodeVersionResponse,
  encodeCreateContainerRequest,
  encodeRunPodSandboxRequest,
  encodeStopContainerRequest,
  encodeVersionRequest,
  NamespaceMode,
} from '../e2e/cri/runtime-v1';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const bytes = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

const SANDBOX = {
  name: 'p',
  uid: 'u',
  namespace: 'n',
  annotations: { k: 'v' },
  network: NamespaceMode.NODE,
};
// PodSandboxConfig: metadata {name "p", uid "u", namespace "n"}, annotations {k: v},
// linux.security_context.namespace_options.network = NODE (2).
const SANDBOX_BYTES = '0a09 0a0170 120175 1a016e  3a06 0a016b 120176  4206 1204 0a02 0802';

describe('CRI runtime.v1 encoding', () => {
  it('VersionRequest{version: "v1"}', () => {
    expect(hex(encodeVersionRequest('v1'))).toBe('0a027631');
  });

  it('RunPodSandboxRequest: metadata, annotations, host network', () => {
    expect(hex(encodeRunPodSandboxRequest(SANDBOX))).toBe(hex(bytes(`0a1b ${SANDBOX_BYTES}`)));
    expect(hex(encodeRunPodSandboxRequest(SANDBOX, ''))).toBe(hex(bytes(`0a1b ${SANDBOX_BYTES}`)));
  });

  it('RunPodSandboxRequest: a runtime handler after the config', () => {
    expect(hex(encodeRunPodSandboxRequest(SANDBOX, 'crun'))).toBe(
      hex(bytes(`0a1b ${SANDBOX_BYTES}  1204 6372756e`)),
    );
  });

  it('CreateContainerRequest: env in order, namespaces, the sandbox config again', () => {
    const request = encodeCreateContainerRequest(
      'P',
      {
        name: 'c',
        image: 'i',
        env: { B: '2', A: '1' },
        network: NamespaceMode.NODE,
        pid: NamespaceMode.CONTAINER,
      },
      SANDBOX,
    );
    const config = [
      '0a03 0a0163', // metadata {name "c"}
      '1203 0a0169', // image {image "i"}
      '3206 0a0142 120132', // envs {B=2}
      '3206 0a0141 120131', // envs {A=1}
      '7a08 1206 1a04 0802 1001', // linux.security_context.namespace_options {NODE, CONTAINER}
    ].join(' ');
    expect(hex(request)).toBe(hex(bytes(`0a0150  1224 ${config}  1a1b ${SANDBOX_BYTES}`)));
  });

  it('CreateContainerRequest: CDI devices as CDI_devices (field 17), in order', () => {
    const request = encodeCreateContainerRequest(
      'P',
      {
        name: 'c',
        image: 'i',
        network: NamespaceMode.NODE,
        pid: NamespaceMode.CONTAINER,
        cdiDevices: ['v/c=d', 'v/c=e'],
      },
      SANDBOX,
    );
    const config = [
      '0a03 0a0163', // metadata {name "c"}
      '1203 0a0169', // image {image "i"}
      '7a08 1206 1a04 0802 1001', // linux.security_context.namespace_options {NODE, CONTAINER}
      '8a01 07 0a05 762f633d64', // CDI_devices {name "v/c=d"}
      '8a01 07 0a05 762f633d65', // CDI_devices {name "v/c=e"}
    ].join(' ');
    expect(hex(request)).toBe(hex(bytes(`0a0150  1228 ${config}  1a1b ${SANDBOX_BYTES}`)));
  });

  it('StopContainerRequest: the timeout only when not 0', () => {
    expect(hex(encodeStopContainerRequest('c', 0))).toBe('0a0163');
    expect(hex(encodeStopContainerRequest('c', 30))).toBe('0a0163101e');
  });
});

describe('CRI runtime.v1 decoding', () => {
  it('VersionResponse', () => {
    const reply = bytes('0a027631 12026364 1a03312e37 22027631');
    expect(decodeVersionResponse(reply)).toEqual({
      version: 'v1',
      runtimeName: 'cd',
      runtimeVersion: '1.7',
      runtimeApiVersion: 'v1',
    });
  });

  it('ListContainersResponse: the fields read, unknown ones skipped', () => {
    // Container {id "x", pod_sandbox_id "p", metadata {name "m"}, state RUNNING,
    // created_at 150 (not read)}
    const reply = bytes('0a10 0a0178 120170 1a03 0a016d 3001 389601');
    expect(decodeListContainersResponse(reply)).toEqual([
      { id: 'x', podSandboxId: 'p', name: 'm', state: 1 },
    ]);
  });

  it('ListPodSandboxResponse: metadata and the annotations map', () => {
    // PodSandbox {id "s", metadata {name "a", uid "u", namespace "n"}, state NOTREADY,
    // annotations {k: v}}
    const reply = bytes('0a18 0a0173 1209 0a0161 120175 1a016e 1801 3206 0a016b 120176');
    expect(decodeListPodSandboxResponse(reply)).toEqual([
      { id: 's', name: 'a', namespace: 'n', state: 1, annotations: { k: 'v' } },
    ]);
  });

  it('ContainerStatusResponse', () => {
    // status {id "x", state EXITED, exit_code 137, reason "Error"}
    const reply = bytes('0a0f 0a0178 1802 388901 5205 4572726f72');
    expect(decodeContainerStatusResponse(reply)).toEqual({
      id: 'x',
      state: 2,
      exitCode: 137,
      reason: 'Error',
      message: '',
    });
  });

  it('a truncated message throws instead of reading past its end', () => {
    expect(() => decodeListContainersResponse(bytes('0a10 0a0178'))).toThrow();
  });
});

describe('gRPC framing', () => {
  it('one message: flag 0, big-endian length, bytes', () => {
    expect(hex(frameMessage(bytes('0a0163')))).toBe('00000000030a0163');
    expect(hex(unframeMessage(bytes('00000000030a0163')))).toBe('0a0163');
    expect(hex(unframeMessage(bytes('0000000000')))).toBe('');
  });

  it('refuses compressed, short and trailing bytes', () => {
    expect(() => unframeMessage(bytes('01000000010a'))).toThrow('compressed');
    expect(() => unframeMessage(bytes('000000'))).toThrow('not one gRPC message');
    expect(() => unframeMessage(bytes('00000000010a0b'))).toThrow('for a message of 1');
  });

  it('grpc-message is percent-decoded as UTF-8', () => {
    expect(decodeGrpcMessage('kmodload: cannot load xfs%0Anext %E2%9C%93 100%25 %zz')).toBe(
      'kmodload: cannot load xfs\nnext \u2713 100% %zz',
    );
  });
});

describe('GrpcClient on a unix socket', () => {
  let dir: string;
  let socket: string;
  let server: http2.Http2Server;
  const seen: Array<{ path: string; body: string; contentType: string }> = [];

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmodload-cri-'));
    socket = path.join(dir, 'cri.sock');
    server = http2.createServer();
    server.on('stream', (stream, headers) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const requestPath = String(headers[':path']);
        seen.push({
          path: requestPath,
          body: hex(Buffer.concat(chunks)),
          contentType: String(headers['content-type']),
        });
        if (requestPath.endsWith('/Version')) {
          stream.respond(
            { ':status': 200, 'content-type': 'application/grpc' },
            {
              waitForTrailers: true,
            },
          );
          stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
          stream.end(frameMessage(bytes('12026364')));
        } else if (requestPath.endsWith('/CreateContainer')) {
          // Trailers-only: the status in the one HEADERS frame, as servers send errors.
          stream.respond(
            {
              ':status': 200,
              'content-type': 'application/grpc',
              'grpc-status': '2',
              'grpc-message': 'failed to get NRI adjustment: kmodload: xfs is denied by p.conf:3',
            },
            { endStream: true },
          );
        } else if (requestPath.endsWith('/StartContainer')) {
          stream.respond(
            { ':status': 200, 'content-type': 'application/grpc' },
            {
              waitForTrailers: true,
            },
          );
          stream.on('wantTrailers', () =>
            stream.sendTrailers({
              'grpc-status': '5',
              'grpc-message': 'no such container %E2%9C%93',
            }),
          );
          stream.end();
        }
        // Anything else: never answered.
      });
    });
    await new Promise<void>((resolve) => server.listen(socket, resolve));
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a unary call: POST /SERVICE/METHOD, application/grpc, one framed message each way', async () => {
    const client = new GrpcClient(socket, 5000);
    try {
      const reply = await client.call('runtime.v1.RuntimeService', 'Version', bytes('0a027631'));
      expect(decodeVersionResponse(reply).runtimeName).toBe('cd');
    } finally {
      client.close();
    }
    expect(seen.at(-1)).toEqual({
      path: '/runtime.v1.RuntimeService/Version',
      body: '00000000040a027631',
      contentType: 'application/grpc',
    });
  });

  it("a trailers-only error surfaces the server's message", async () => {
    const client = new GrpcClient(socket, 5000);
    try {
      const failure = await client.call('s', 'CreateContainer', new Uint8Array()).catch((e) => e);
      expect(failure).toBeInstanceOf(GrpcError);
      expect((failure as GrpcError).code).toBe(2);
      expect((failure as Error).message).toBe(
        'CreateContainer: UNKNOWN: failed to get NRI adjustment: kmodload: xfs is denied by p.conf:3',
      );
    } finally {
      client.close();
    }
  });

  it('an error in the trailers, percent-encoded', async () => {
    const client = new GrpcClient(socket, 5000);
    try {
      await expect(client.call('s', 'StartContainer', new Uint8Array())).rejects.toThrow(
        'StartContainer: NOT_FOUND: no such container \u2713',
      );
    } finally {
      client.close();
    }
  });

  it('no answer: the call ends at its deadline', async () => {
    const client = new GrpcClient(socket, 300);
    try {
      await expect(client.call('s', 'Hang', new Uint8Array())).rejects.toThrow(
        'Hang: DEADLINE_EXCEEDED: no reply within 0.3 s',
      );
    } finally {
      client.close();
    }
  });

  it('no server: the connection error is the message', async () => {
    const client = new GrpcClient(path.join(dir, 'absent.sock'), 5000);
    try {
      await expect(client.call('s', 'Version', new Uint8Array())).rejects.toThrow(/ENOENT/);
    } finally {
      client.close();
    }
  });
});
