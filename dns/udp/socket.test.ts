// Both DNS UDP sockets against real datagrams on loopback: who gets which answer, immediate and
// late ones, batches larger than one recvmmsg, IPv6 senders, bind errors and SO_REUSEPORT.
import dgram from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import type { HandlerResult } from '../handler.js';
import type { Peer } from '../querylog.js';
import { batchUnavailable, openBatchSocket } from './batch-socket.js';
import { openDgramSocket } from './dgram-socket.js';
import type { UdpOpener, UdpQueryHandler, UdpSocket } from './socket.js';

const open: UdpSocket[] = [];
const clients: dgram.Socket[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  for (const c of clients.splice(0)) c.close();
});

async function server(opener: UdpOpener, host: string, onQuery: UdpQueryHandler, port = 0, reusePort = false): Promise<UdpSocket> {
  const s = await opener({ host, port, reusePort, bufferBytes: 1 << 20, onError: (err) => { throw err; } }, onQuery);
  open.push(s);
  return s;
}

async function client(host: string): Promise<dgram.Socket> {
  const c = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  clients.push(c);
  await new Promise<void>((resolve) => c.bind(0, host, resolve));
  return c;
}

/** A datagram whose first two bytes number it, as a DNS id does. */
function numbered(n: number, size = 12): Buffer {
  const b = Buffer.alloc(size);
  b.writeUInt16BE(n, 0);
  return b;
}

/** Collects `count` replies on `c`, by their number. */
function replies(c: dgram.Socket, count: number): Promise<Map<number, Buffer>> {
  const got = new Map<number, Buffer>();
  return new Promise((resolve) => {
    c.on('message', (m) => {
      got.set(m.readUInt16BE(0), m);
      if (got.size === count) resolve(got);
    });
  });
}

/** The answer: the query with the sender's port appended, so a reply proves where it went. */
function echoWithPeer(msg: Buffer, from: Peer): Buffer {
  const port = Buffer.alloc(2);
  port.writeUInt16BE(from.port);
  return Buffer.concat([msg, port, Buffer.from(from.address)]);
}

it('has the batch binding built (make build), so the default socket is the batched one', () => {
  expect(batchUnavailable).toBeUndefined();
});

describe.each([
  ['batched', openBatchSocket],
  ['node:dgram', openDgramSocket],
] as const)('%s socket', (_name, opener) => {
  it('answers each sender at its own address and port, and names them', async () => {
    const s = await server(opener, '127.0.0.1', echoWithPeer);
    const [a, b] = [await client('127.0.0.1'), await client('127.0.0.1')];
    const ra = replies(a, 1);
    const rb = replies(b, 1);
    a.send(numbered(1), s.port, '127.0.0.1');
    b.send(numbered(2), s.port, '127.0.0.1');
    const [ga, gb] = [await ra, await rb];
    for (const [c, got, n] of [[a, ga, 1], [b, gb, 2]] as const) {
      const r = got.get(n)!;
      expect(r.readUInt16BE(12)).toBe(c.address().port);
      expect(r.subarray(14).toString()).toBe('127.0.0.1');
    }
  });

  it('answers a burst of 300 queries from several senders, each to its asker, more than one batch holds', async () => {
    const seen: number[] = [];
    const s = await server(opener, '127.0.0.1', (msg) => {
      seen.push(msg.readUInt16BE(0));
      return Buffer.from(msg);
    });
    const senders = [await client('127.0.0.1'), await client('127.0.0.1'), await client('127.0.0.1')];
    const waits = senders.map((c) => replies(c, 100));
    for (let n = 0; n < 100; n++) for (const [i, c] of senders.entries()) c.send(numbered(i * 1000 + n), s.port, '127.0.0.1');
    const got = await Promise.all(waits);
    for (const [i, m] of got.entries()) expect([...m.keys()].sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, n) => i * 1000 + n));
    expect(seen).toHaveLength(300);
  });

  it('sends a late answer (a promise) to its asker after later batches were read and answered', async () => {
    const late: Array<() => void> = [];
    const s = await server(opener, '127.0.0.1', (msg): HandlerResult => {
      const n = msg.readUInt16BE(0);
      if (n >= 100) return Buffer.from(msg);
      return new Promise((resolve) => late.push(() => resolve(Buffer.from(msg))));
    });
    const [slow, fast] = [await client('127.0.0.1'), await client('127.0.0.1')];
    const slowGot = replies(slow, 3);
    const fastGot = replies(fast, 50);
    for (let n = 0; n < 3; n++) slow.send(numbered(n), s.port, '127.0.0.1');
    for (let n = 100; n < 150; n++) fast.send(numbered(n), s.port, '127.0.0.1');
    expect((await fastGot).size).toBe(50);
    expect(late).toHaveLength(3);
    for (const answer of late) answer();
    expect([...(await slowGot).keys()].sort()).toEqual([0, 1, 2]);
  });

  it('keeps a query the handler holds on to intact after its batch (a forwarded question does)', async () => {
    const held: Buffer[] = [];
    const s = await server(opener, '127.0.0.1', (msg) => {
      held.push(msg);
      return Buffer.from(msg);
    });
    const c = await client('127.0.0.1');
    const got = replies(c, 200);
    for (let n = 0; n < 200; n++) c.send(numbered(n, 40), s.port, '127.0.0.1');
    await got;
    expect(held.map((m) => m.readUInt16BE(0))).toEqual(Array.from({ length: 200 }, (_, n) => n));
    expect(held.every((m) => m.length === 40)).toBe(true);
  });

  it('answers an IPv6 sender and names it in RFC 5952 text', async () => {
    const s = await server(opener, '::1', echoWithPeer);
    const c = await client('::1');
    const got = replies(c, 1);
    c.send(numbered(7), s.port, '::1');
    expect((await got).get(7)!.subarray(14).toString()).toBe('::1');
  });

  it('refuses a port in use with EADDRINUSE, and shares one with SO_REUSEPORT', async () => {
    const s = await server(opener, '127.0.0.1', (m) => Buffer.from(m));
    await expect(server(opener, '127.0.0.1', (m) => Buffer.from(m), s.port)).rejects.toMatchObject({ code: 'EADDRINUSE' });
    const shared = await server(opener, '127.0.0.1', (m) => Buffer.from(m), 0, true);
    const twin = await server(opener, '127.0.0.1', (m) => Buffer.from(m), shared.port, true);
    expect(twin.port).toBe(shared.port);
  });

  it('refuses an address no interface has with EADDRNOTAVAIL', async () => {
    await expect(server(opener, '192.0.2.77', (m) => Buffer.from(m))).rejects.toMatchObject({ code: 'EADDRNOTAVAIL' });
  });

  it('stops answering once closed; a late answer after the close goes nowhere, without an error', async () => {
    let answerLate: (() => void) | undefined;
    let arrived!: () => void;
    const asked = new Promise<void>((resolve) => (arrived = resolve));
    const s = await server(opener, '127.0.0.1', (msg) => {
      arrived();
      return new Promise<Buffer>((resolve) => (answerLate = () => resolve(Buffer.from(msg))));
    });
    const c = await client('127.0.0.1');
    c.send(numbered(1), s.port, '127.0.0.1');
    await asked;
    await s.close();
    answerLate!();
    await new Promise((resolve) => setImmediate(resolve));
    // Nobody listens on the port any more: a second socket can take it.
    const again = await server(opener, '127.0.0.1', (m) => Buffer.from(m), s.port);
    expect(again.port).toBe(s.port);
  });
});

describe('batched socket', () => {
  it('drops a datagram larger than any query and answers the next one', async () => {
    const s = await server(openBatchSocket, '127.0.0.1', (m) => Buffer.from(m.subarray(0, 12)));
    const c = await client('127.0.0.1');
    const got = replies(c, 1);
    c.send(numbered(1, 5000), s.port, '127.0.0.1');
    c.send(numbered(2), s.port, '127.0.0.1');
    const m = await got;
    expect([...m.keys()]).toEqual([2]);
  });
});

describe('batched socket in a worker thread', () => {
  it('is closed when its thread ends, so SO_REUSEPORT stops sending it a share of the clients', async () => {
    // The binding as `make build` leaves it, in a thread that binds and then is terminated, as a
    // DNS worker that dies is. A socket left open there would swallow the clients hashed to it.
    const built = fileURLToPath(new URL('../../dist/dns/udp/batch-socket.js', import.meta.url));
    const worker = new Worker(`
      const { parentPort } = require('node:worker_threads');
      import(${JSON.stringify(built)})
        .then((m) => m.openBatchSocket({ host: '127.0.0.1', port: 0, reusePort: true, bufferBytes: 1 << 20, onError() {} }, () => undefined))
        .then((s) => parentPort.postMessage(s.port));`, { eval: true });
    const port = await new Promise<number>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    const answered = new Set<number>();
    await server(openBatchSocket, '127.0.0.1', (msg) => {
      answered.add(msg.readUInt16BE(0));
      return Buffer.from(msg);
    }, port, true);
    await worker.terminate();
    // Forty clients, forty source ports: the kernel's hash would give the dead socket about half.
    const waits: Promise<Map<number, Buffer>>[] = [];
    for (let n = 0; n < 40; n++) {
      const c = await client('127.0.0.1');
      waits.push(replies(c, 1));
      c.send(numbered(n), port, '127.0.0.1');
    }
    await Promise.all(waits);
    expect(answered.size).toBe(40);
  });
});
