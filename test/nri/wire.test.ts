// The NRI wire format, byte for byte: multiplexer frames, ttrpc messages and the protobuf
// messages, against byte arrays written out by hand from the specifications (containerd/nri
// pkg/net/multiplex, containerd/ttrpc PROTOCOL.md and request.proto, NRI 0.6.1 api.proto).

import { describe, expect, it } from 'vitest';
import { NriError } from '../../src/nri/error';
import {
  decodeConfigureRequest,
  decodeContainerRequest,
  decodeStateChangeEvent,
  decodeSynchronizeRequest,
  encodeConfigureResponse,
  encodeRegisterPluginRequest,
  encodeSynchronizeResponse,
  eventMask,
} from '../../src/nri/messages';
import { Demultiplexer, MAX_RECEIVED_PAYLOAD, encodeFrames } from '../../src/nri/multiplex';
import { NRI_EVENTS } from '../../src/nri/plugin';
import type { TtrpcMessage } from '../../src/nri/ttrpc';
import {
  MessageReader,
  TtrpcClient,
  TtrpcServer,
  TtrpcStatusError,
  decodeRequest,
  decodeResponse,
  encodeMessage,
  encodeRequest,
  encodeResponse,
  statusOf,
} from '../../src/nri/ttrpc';

/** Bytes from hex pairs, spaces ignored. */
function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

function ascii(text: string): string {
  return Buffer.from(text, 'latin1').toString('hex');
}

/** What `fn` throws, expected to be an NriError with one line. */
function nriError(fn: () => unknown): NriError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(NriError);
    expect((error as Error).message).not.toMatch(/\n/);
    return error as NriError;
  }
  throw new Error('expected an NriError');
}

// RegisterPluginRequest {plugin_name: "kmodload", plugin_idx: "10"}: 14 bytes.
const REGISTER_PAYLOAD = `0a 08 ${ascii('kmodload')} 12 02 ${ascii('10')}`;
// ttrpc Request {service, method, payload}: 2 + 28 + 2 + 14 + 2 + 14 = 62 = 0x3e bytes.
const REGISTER_REQUEST =
  `0a 1c ${ascii('nri.pkg.api.v1alpha1.Runtime')} 12 0e ${ascii('RegisterPlugin')} ` +
  `1a 0e ${REGISTER_PAYLOAD}`;
// ttrpc header: length 0x3e, stream 1, type request, no flags.
const REGISTER_MESSAGE = `00 00 00 3e  00 00 00 01  01  00 ${REGISTER_REQUEST}`;
// Multiplexer frame on connection 2 (Runtime service): 72 = 0x48 payload bytes.
export const REGISTER_FRAME = `00 00 00 02  00 00 00 48 ${REGISTER_MESSAGE}`;

describe('multiplexer frames', () => {
  it('are the connection id and payload length, big-endian, then the payload', () => {
    expect(encodeFrames(2, Buffer.from('abc'))).toEqual(hex('00000002 00000003 616263'));
    expect(encodeFrames(1, Buffer.from([0xff]))).toEqual(hex('00000001 00000001 ff'));
  });

  it('carry at most 4096 payload bytes each', () => {
    const data = Buffer.alloc(5000, 0x55);
    const frames = encodeFrames(1, data);
    expect(frames.length).toBe(5016);
    expect(frames.subarray(0, 8)).toEqual(hex('00000001 00001000'));
    expect(frames.subarray(8, 4104)).toEqual(Buffer.alloc(4096, 0x55));
    expect(frames.subarray(4104, 4112)).toEqual(hex('00000001 00000388'));
    expect(frames.subarray(4112)).toEqual(Buffer.alloc(904, 0x55));
    expect(encodeFrames(2, Buffer.alloc(4096)).subarray(0, 8)).toEqual(hex('00000002 00001000'));
    expect(encodeFrames(2, Buffer.alloc(4096)).length).toBe(4104);
  });

  it('are split back per connection, whatever the byte boundaries', () => {
    const stream = hex(
      '00000001 00000003 0a0b0c' + // conn 1
        '00000002 00000000' + // conn 2, empty
        '00000002 00000002 1415' + // conn 2
        '00000001 00000001 0d', // conn 1
    );
    const expected = { 1: '0a0b0c0d', 2: '1415' };
    const collect = (chunks: Buffer[]) => {
      const got: Record<number, string> = { 1: '', 2: '' };
      const demux = new Demultiplexer((id, bytes) => (got[id] += bytes.toString('hex')));
      for (const chunk of chunks) demux.push(chunk);
      expect(demux.atFrameBoundary).toBe(true);
      return got;
    };
    for (let cut = 0; cut <= stream.length; cut++) {
      expect(collect([stream.subarray(0, cut), stream.subarray(cut)])).toEqual(expected);
    }
    expect(collect([...stream].map((byte) => Buffer.from([byte])))).toEqual(expected);
  });

  it('with a reserved, unknown or oversized header end the stream with one line', () => {
    const push = (bytes: string) => () => new Demultiplexer(() => undefined).push(hex(bytes));
    expect(nriError(push('00000000 00000001 00')).message).toBe(
      'malformed frame from the runtime: connection id 0 is reserved',
    );
    expect(nriError(push('00000003 00000000')).message).toBe(
      'malformed frame from the runtime: unknown connection id 3',
    );
    expect(nriError(push('ffffffff 00000000')).message).toBe(
      'malformed frame from the runtime: unknown connection id 4294967295',
    );
    const tooLong = (MAX_RECEIVED_PAYLOAD + 1).toString(16).padStart(8, '0');
    expect(nriError(push(`00000001 ${tooLong}`)).message).toBe(
      `malformed frame from the runtime: payload of ${MAX_RECEIVED_PAYLOAD + 1} bytes (at most 4194314)`,
    );
    expect(nriError(push('00000001 ffffffff')).message).toMatch(/payload of 4294967295 bytes/);
    // The largest allowed frame is taken without its payload being buffered.
    const max = MAX_RECEIVED_PAYLOAD.toString(16).padStart(8, '0');
    const demux = new Demultiplexer(() => undefined);
    demux.push(hex(`00000001 ${max} 00`));
    expect(demux.atFrameBoundary).toBe(false);
  });
});

describe('ttrpc messages', () => {
  it('have a 10-byte header: length, stream id, type, flags', () => {
    expect(encodeMessage(1, 1, hex('aabb'))).toEqual(hex('00000002 00000001 01 00 aabb'));
    expect(encodeMessage(0x01020305, 2, hex(''), 4)).toEqual(hex('00000000 01020305 02 04'));
  });

  it('RegisterPlugin goes out as the hand-computed bytes', () => {
    const request = encodeRequest({
      service: 'nri.pkg.api.v1alpha1.Runtime',
      method: 'RegisterPlugin',
      payload: encodeRegisterPluginRequest('kmodload', '10'),
    });
    expect(Buffer.from(request)).toEqual(hex(REGISTER_REQUEST));
    expect(encodeFrames(2, encodeMessage(1, 1, request))).toEqual(hex(REGISTER_FRAME));
  });

  it('responses carry a payload, or a google.rpc.Status {code, message}', () => {
    // ConfigureResponse {events = 2: 0x608 = varint 88 0c}.
    expect(Buffer.from(encodeConfigureResponse(0x608))).toEqual(hex('10 88 0c'));
    expect(Buffer.from(encodeResponse({ payload: encodeConfigureResponse(0x608) }))).toEqual(
      hex('12 03 10880c'),
    );
    expect(Buffer.from(encodeResponse({ payload: new Uint8Array() }))).toEqual(hex(''));
    const failed = encodeResponse({
      status: { code: 2, message: 'no' },
      payload: new Uint8Array(),
    });
    expect(Buffer.from(failed)).toEqual(hex('0a 06 08 02 12 02 6e6f'));
    expect(decodeResponse(hex('0a 06 08 02 12 02 6e6f'))).toEqual({
      status: { code: 2, message: 'no' },
      payload: new Uint8Array(),
    });
    expect(decodeResponse(hex('12 03 10880c 3a 01 00'))).toEqual({ payload: hex('10880c') });
  });

  it('requests decode with unknown fields skipped', () => {
    // timeout_nano = 4 (varint) and metadata = 5 (KeyValue) as Go's client sends them.
    const bytes = hex(
      `0a 03 ${ascii('svc')} 12 01 ${ascii('M')} 1a 02 0102 20 80 94 eb dc 03 2a 04 0a 00 12 00`,
    );
    expect(decodeRequest(bytes)).toEqual({ service: 'svc', method: 'M', payload: hex('0102') });
  });

  it('are reassembled from bytes cut anywhere, empty bodies included', () => {
    const stream = Buffer.concat([
      encodeMessage(1, 1, hex('010203')),
      encodeMessage(3, 2, hex('')),
      encodeMessage(5, 1, Buffer.alloc(300, 7)),
    ]);
    const collect = (chunks: Buffer[]) => {
      const got: TtrpcMessage[] = [];
      const reader = new MessageReader((message) => got.push(message));
      for (const chunk of chunks) reader.push(chunk);
      expect(reader.idle).toBe(true);
      return got.map((m) => [m.streamId, m.type, m.flags, m.body.toString('hex')]);
    };
    const expected = [
      [1, 1, 0, '010203'],
      [3, 2, 0, ''],
      [5, 1, 0, '07'.repeat(300)],
    ];
    for (let cut = 0; cut <= stream.length; cut++) {
      expect(collect([stream.subarray(0, cut), stream.subarray(cut)])).toEqual(expected);
    }
    expect(collect([...stream].map((byte) => Buffer.from([byte])))).toEqual(expected);
  });

  it('longer than 4 MiB end the stream with one line', () => {
    const reader = new MessageReader(() => undefined);
    expect(nriError(() => reader.push(hex('00400001 00000001 01 00'))).message).toBe(
      'malformed ttrpc message from the runtime: body of 4194305 bytes (at most 4194304)',
    );
    const fine = new MessageReader(() => undefined);
    fine.push(hex('00400000 00000001 01 00'));
    expect(fine.idle).toBe(false);
  });
});

describe('ttrpc server', () => {
  function serve(handle: ConstructorParameters<typeof TtrpcServer>[1]) {
    const sent: Buffer[] = [];
    const server = new TtrpcServer((message) => sent.push(message), handle);
    const request = (streamId: number, method: string, type = 1) =>
      server.receive({
        streamId,
        type,
        flags: 0,
        body: Buffer.from(encodeRequest({ service: 'S', method, payload: hex('') })),
      });
    return { sent, request, server };
  }

  it('answers on the request stream, errors as a status with the message unchanged', async () => {
    const { sent, request } = serve((r) =>
      r.method === 'Ok'
        ? Promise.resolve(hex('10 88 0c'))
        : Promise.reject(new Error('kmodload: module "ip_vs" refused: not allowed')),
    );
    request(1, 'Ok');
    request(3, 'Refused');
    await new Promise((resolve) => setImmediate(resolve));
    expect(sent[0]).toEqual(hex('00000005 00000001 02 00 12 03 10880c'));
    const message = 'kmodload: module "ip_vs" refused: not allowed';
    const status = `08 02 12 ${message.length.toString(16)} ${ascii(message)}`;
    const body = `0a ${(message.length + 4).toString(16)} ${status}`;
    const length = (message.length + 6).toString(16).padStart(8, '0');
    expect(sent[1]).toEqual(hex(`${length} 00000003 02 00 ${body}`));
  });

  it('ends the connection on a stream id that is even or not increasing, or a non-request', () => {
    const { request } = serve(() => Promise.resolve(hex('')));
    expect(nriError(() => request(2, 'M')).message).toBe(
      'ttrpc request on stream 2 from the runtime: stream id is not odd and increasing',
    );
    request(5, 'M');
    expect(nriError(() => request(5, 'M')).message).toMatch(/stream 5 .* not odd and increasing/);
    expect(nriError(() => request(3, 'M')).message).toMatch(/stream 3 .* not odd and increasing/);
    expect(nriError(() => request(7, 'M', 3)).message).toBe(
      'unexpected ttrpc message of type 3 on stream 7 from the runtime',
    );
  });

  it('ends the connection on a request that is not protobuf', () => {
    const { server } = serve(() => Promise.resolve(hex('')));
    const receive = (streamId: number, body: string) => () =>
      server.receive({ streamId, type: 1, flags: 0, body: hex(body) });
    expect(nriError(receive(1, '0a 05 6162')).message).toBe(
      'malformed ttrpc request from the runtime: premature EOF',
    );
    expect(nriError(receive(3, '08 01')).message).toBe(
      'malformed ttrpc request from the runtime: field 1 has wire type 0, expected 2',
    );
  });

  it('turns any rejection into a one-line status', () => {
    expect(statusOf(new Error('a\nb\x1b[31m'))).toEqual({ code: 2, message: 'a\\x0ab\\x1b[31m' });
    expect(statusOf('text')).toEqual({ code: 2, message: 'text' });
    expect(statusOf(undefined)).toEqual({ code: 2, message: 'request failed' });
    expect(statusOf(new TtrpcStatusError(12, 'method X'))).toEqual({
      code: 12,
      message: 'method X',
    });
    expect(statusOf(new Error('x'.repeat(100_000))).message.length).toBe(16 * 1024 + 3);
  });
});

describe('ttrpc client', () => {
  function connect() {
    const sent: Buffer[] = [];
    const client = new TtrpcClient((message) => sent.push(message));
    const answer = (streamId: number, body: string, type = 2) =>
      client.receive({ streamId, type, flags: 0, body: hex(body) });
    return { client, sent, answer };
  }

  it('calls on odd increasing stream ids and settles on the answer', async () => {
    const { client, sent, answer } = connect();
    const first = client.call('S', 'A', hex('01'), 10_000);
    const second = client.call('S', 'B', hex(''), 10_000);
    expect(sent.map((m) => m.readUInt32BE(4))).toEqual([1, 3]);
    expect(sent[1]).toEqual(hex(`00000006 00000003 01 00 0a 01 ${ascii('S')} 12 01 ${ascii('B')}`));
    answer(3, '0a 06 08 07 12 02 6e6f');
    answer(1, '12 01 ff');
    await expect(first).resolves.toEqual(hex('ff'));
    await expect(second).rejects.toMatchObject({
      name: 'TtrpcStatusError',
      code: 7,
      message: 'no',
    });
  });

  it('rejects pending calls when the connection drops, and later calls too', async () => {
    const { client } = connect();
    const pending = client.call('S', 'A', hex(''), 10_000);
    client.close(new NriError('connection to the runtime closed'));
    await expect(pending).rejects.toThrow('connection to the runtime closed');
    await expect(client.call('S', 'B', hex(''), 10_000)).rejects.toThrow(
      'connection to the runtime closed',
    );
  });

  it('gives up on a call after its timeout and drops the late answer', async () => {
    const { client, answer } = connect();
    await expect(client.call('S', 'RegisterPlugin', hex(''), 5)).rejects.toThrow(
      'RegisterPlugin: no answer from the runtime in 5 ms',
    );
    answer(1, '');
  });

  it('ends the connection on an answer to no call, or a message of the wrong type', () => {
    const { client, answer } = connect();
    void client.call('S', 'A', hex(''), 10_000).catch(() => undefined);
    expect(nriError(() => answer(3, '')).message).toBe(
      'ttrpc response on stream 3 from the runtime: no such call',
    );
    expect(nriError(() => answer(2, '')).message).toMatch(
      /stream 2 from the runtime: no such call/,
    );
    expect(nriError(() => answer(1, '', 1)).message).toBe(
      'unexpected ttrpc message of type 1 on stream 1 from the runtime',
    );
    expect(nriError(() => answer(1, 'ff')).message).toMatch(/^malformed ttrpc response/);
    client.close(new Error('done'));
  });
});

describe('NRI messages', () => {
  // Container: id "c1", pod_sandbox_id "p1", name "ctr", state 3, labels {k: val},
  // args ["sh"], env ["A=1"], pid 100; then fields the plugin does not read: rlimits (13),
  // a varint (50), a fixed32 (51), a fixed64 (52) and a group (53).
  const CONTAINER =
    `0a 02 ${ascii('c1')} 12 02 ${ascii('p1')} 1a 03 ${ascii('ctr')} 20 03 ` +
    `2a 08 0a 01 ${ascii('k')} 12 03 ${ascii('val')} 3a 02 ${ascii('sh')} ` +
    `42 03 ${ascii('A=1')} 60 64 6a 02 0a 00 90 03 01 9d 03 01020304 ` +
    `a1 03 0102030405060708 ab 03 08 01 ac 03`;
  // PodSandbox: id "p1", name "web", uid "u", namespace "team-a", labels {__proto__: x},
  // annotations {a: b, a: c}; runtime_handler (7) and pid (9) skipped.
  const POD =
    `0a 02 ${ascii('p1')} 12 03 ${ascii('web')} 1a 01 ${ascii('u')} 22 06 ${ascii('team-a')} ` +
    `2a 0e 0a 09 ${ascii('__proto__')} 12 01 ${ascii('x')} ` +
    `32 06 0a 01 ${ascii('a')} 12 01 ${ascii('b')} 32 06 0a 01 ${ascii('a')} 12 01 ${ascii('c')} ` +
    `3a 04 ${ascii('runc')} 48 07`;
  const podLength = hex(POD).length.toString(16).padStart(2, '0');
  const containerLength = hex(CONTAINER).length.toString(16).padStart(2, '0');

  const pod = {
    id: 'p1',
    name: 'web',
    uid: 'u',
    namespace: 'team-a',
    labels: { ['__proto__']: 'x' },
    annotations: { a: 'c' },
  };
  const container = {
    id: 'c1',
    podSandboxId: 'p1',
    name: 'ctr',
    state: 3,
    labels: { k: 'val' },
    annotations: {},
    args: ['sh'],
    env: ['A=1'],
    pid: 100,
  };

  it('CreateContainerRequest decodes its pod and container, unknown fields skipped', () => {
    const request = decodeContainerRequest(
      'CreateContainerRequest',
      hex(`0a ${podLength} ${POD} 12 ${containerLength} ${CONTAINER}`),
    );
    expect(request).toEqual({ pod, container });
    // A key named __proto__ is data, not the map's prototype.
    expect(Object.getPrototypeOf(request.pod?.labels)).toBe(null);
    expect(Object.keys(request.pod?.labels ?? {})).toEqual(['__proto__']);
  });

  it('StateChangeEvent has the event first, then pod and container', () => {
    const event = decodeStateChangeEvent(
      hex(`08 0b 12 ${podLength} ${POD} 1a ${containerLength} ${CONTAINER}`),
    );
    expect(event).toEqual({ event: 11, pod, container });
    expect(decodeStateChangeEvent(hex(`08 01 12 ${podLength} ${POD}`))).toEqual({ event: 1, pod });
  });

  it('SynchronizeRequest lists pods and containers, and `more` from NRI >= 0.7', () => {
    const bytes = hex(`0a ${podLength} ${POD} 12 ${containerLength} ${CONTAINER} 18 01`);
    expect(decodeSynchronizeRequest(bytes)).toEqual({
      pods: [pod],
      containers: [container],
      more: true,
    });
    expect(decodeSynchronizeRequest(hex(''))).toEqual({ pods: [], containers: [], more: false });
  });

  it('ConfigureRequest: config, runtime name and version (newer fields skipped)', () => {
    // registration_timeout = 4, request_timeout = 5, NRI_version = 6 (NRI >= 0.7).
    const bytes = hex(
      `0a 01 ${ascii('x')} 12 0a ${ascii('containerd')} 1a 06 ${ascii('1.7.24')} ` +
        `20 88 27 28 d0 0f 32 06 ${ascii('v0.9.0')}`,
    );
    expect(decodeConfigureRequest(bytes)).toEqual({
      config: 'x',
      runtimeName: 'containerd',
      runtimeVersion: '1.7.24',
    });
  });

  it('what the plugin sends', () => {
    expect(Buffer.from(encodeRegisterPluginRequest('kmodload', '10'))).toEqual(
      hex(REGISTER_PAYLOAD),
    );
    expect(Buffer.from(encodeSynchronizeResponse(false))).toEqual(hex(''));
    expect(Buffer.from(encodeSynchronizeResponse(true))).toEqual(hex('10 01'));
  });

  it('the event mask is CreateContainer, StopContainer, RemoveContainer: within NRI 0.6', () => {
    expect(NRI_EVENTS).toBe(0x608);
    expect(eventMask(4)).toBe(0x8);
    // NRI 0.6.1's ValidEvents: (1 << (LAST(12) - 1)) - 1.
    expect(NRI_EVENTS & ~0x7ff).toBe(0);
  });

  it('malformed bytes are one NriError line naming the message', () => {
    const create = (bytes: string) => () =>
      decodeContainerRequest('CreateContainerRequest', hex(bytes));
    const cases: [() => unknown, string][] = [
      [create('0a 05 0a 01'), 'premature EOF'],
      [create('08 01'), 'field 1 has wire type 0, expected 2'],
      [create('00 00'), 'illegal tag: field no 0 wire type 0'],
      [create('0f'), 'illegal tag: field no 1 wire type 7'],
      [create('12 02 20 ff'), 'premature EOF'],
      [create('12 03 2a 01 0a'), 'premature EOF'],
    ];
    for (const [decode, reason] of cases) {
      expect(nriError(decode).message).toBe(
        `malformed CreateContainerRequest from the runtime: ${reason}`,
      );
    }
    expect(nriError(() => decodeStateChangeEvent(hex('08 ffffffffffffffffffff 01'))).message).toBe(
      'malformed StateChangeEvent from the runtime: invalid varint',
    );
    // Unknown groups nested past the reader's limit (100) are refused, not recursed into.
    const deep = hex('23'.repeat(200) + '24'.repeat(200));
    expect(nriError(() => decodeStateChangeEvent(deep)).message).toBe(
      'malformed StateChangeEvent from the runtime: maximum recursion depth reached',
    );
  });
});
