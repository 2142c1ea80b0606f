// Bad input never stops the DNS server: 100k mutated packets from a fixed seed, idle and
// half-open TCP connections, a slow-loris client, garbage frames; valid questions keep being
// answered all along. The server runs on loopback (no namespace is needed to send garbage to
// it); its upstream is a socket of this test that never answers, so nothing leaves the host.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import dnsPacket from 'dns-packet';
import { fixtureServices, serviceObjects, toYaml } from '../bench/dns/fixtures.js';
import { encodeQuery, fuzz } from '../bench/dns/fuzz.js';
import { decodeReply, rdata, type Reply } from '../bench/dns/reply.js';

const BIN = resolve('dist/cmd/kube-dataplane.js');
const NAME = 'web.prod.svc.cluster.local';

function frame(msg: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(msg.length);
  return Buffer.concat([len, msg]);
}

/** Reads length-prefixed replies from a socket until `n` arrived or it closed. */
function readFrames(sock: net.Socket, n: number, timeoutMs = 5000): Promise<Buffer[]> {
  return new Promise((resolve) => {
    const out: Buffer[] = [];
    let buf = Buffer.alloc(0);
    const done = () => {
      clearTimeout(t);
      resolve(out);
    };
    const t = setTimeout(done, timeoutMs);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        out.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (out.length >= n) done();
    });
    sock.on('close', done);
  });
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.on('error', reject);
  });
}

describe('DNS server under bad input', () => {
  let server: ChildProcess;
  let output = '';
  let port = 0;
  let dir: string;
  let blackhole: dgram.Socket;

  async function udpAsk(name = NAME): Promise<Reply | undefined> {
    const s = dgram.createSocket('udp4');
    try {
      return await new Promise((resolve) => {
        const t = setTimeout(() => resolve(undefined), 2000);
        s.on('message', (m) => {
          clearTimeout(t);
          resolve(decodeReply(m));
        });
        s.send(encodeQuery(77, name, 1), port, '127.0.0.1');
      });
    } finally {
      s.close();
    }
  }

  async function tcpAsk(name = NAME): Promise<Reply | undefined> {
    const s = await connect(port);
    const replies = readFrames(s, 1);
    s.write(frame(encodeQuery(78, name, 1)));
    const [r] = await replies;
    s.destroy();
    return r ? decodeReply(r) : undefined;
  }

  beforeAll(async () => {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: build first (npx tsc -p tsconfig.json)`);
    dir = mkdtempSync(join(tmpdir(), 'kdp-dns-fuzz-'));
    writeFileSync(join(dir, 'services.yaml'), toYaml(fixtureServices().flatMap(serviceObjects)));
    blackhole = dgram.createSocket('udp4');
    await new Promise<void>((r) => blackhole.bind(0, '127.0.0.1', r));
    server = spawn('node', [
      BIN, 'dns', '--manifests', dir, '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${blackhole.address().port}`,
      '--health-listen', '', '--ready-listen', '', '--metrics-listen', '',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    server.stdout!.on('data', (d) => (output += d));
    server.stderr!.on('data', (d) => (output += d));
    const t0 = Date.now();
    while (!/listen=dns:\/\/127\.0\.0\.1:(\d+)/.test(output)) {
      if (Date.now() - t0 > 10_000 || server.exitCode !== null) throw new Error(`the server did not start:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    port = Number(/listen=dns:\/\/127\.0\.0\.1:(\d+)/.exec(output)![1]);
  });

  afterAll(async () => {
    server?.kill('SIGKILL');
    blackhole?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('survives 100k mutated packets (seed 1) and answers every valid question meanwhile', async () => {
    const report = await fuzz({ host: '127.0.0.1', port }, 1, 100_000, NAME);
    expect(report.sent).toBe(100_000);
    expect(report.valid).toBeGreaterThan(3000);
    expect(report.validAnswered).toBe(report.valid);
    // Garbage with a readable header gets FORMERR and the like; the rest silence.
    expect(report.rcodes['1'] ?? 0).toBeGreaterThan(0);
    expect(server.exitCode).toBeNull();
    expect(rdata((await udpAsk())?.answers?.[0])).toBe('10.96.0.10');
    expect(output).not.toMatch(/query failed|panic|Uncaught/i);
  }, 170_000);

  it('answers pipelined questions on one TCP connection, and after the client half-closes', async () => {
    const s = await connect(port);
    const replies = readFrames(s, 3);
    s.end(Buffer.concat([frame(encodeQuery(1, NAME, 1)), frame(encodeQuery(2, 'db.prod.svc.cluster.local', 1)), frame(encodeQuery(3, 'nope.prod.svc.cluster.local', 1))]));
    const got = (await replies).map((r) => decodeReply(r));
    expect(got.map((m) => [m.id, m.rcode]).sort()).toEqual([[1, 'NOERROR'], [2, 'NOERROR'], [3, 'NXDOMAIN']]);
  });

  it('closes a connection that sends an empty frame, and answers garbage frames with FORMERR', async () => {
    const s = await connect(port);
    const replies = readFrames(s, 1);
    s.write(frame(Buffer.from([0, 1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 9, 9])));
    const [r] = await replies;
    expect(decodeReply(r).rcode).toBe('FORMERR');
    const closed = new Promise<boolean>((resolve) => s.on('close', () => resolve(true)));
    s.write(Buffer.from([0, 0]));
    expect(await closed).toBe(true);
  });

  it('cuts off idle and slow-loris connections and keeps answering others meanwhile', async () => {
    const idle = await Promise.all(Array.from({ length: 200 }, () => connect(port)));
    const idleClosed = idle.map((s) => new Promise<void>((resolve) => s.on('close', () => resolve())));
    // The loris sends a valid query one byte every 500 ms: never idle, never finished.
    const loris = await connect(port);
    const lorisClosed = new Promise<void>((resolve) => loris.on('close', () => resolve()));
    const bytes = frame(encodeQuery(9, NAME, 1));
    let i = 0;
    const drip = setInterval(() => {
      if (!loris.destroyed && i < bytes.length - 1) loris.write(bytes.subarray(i, ++i));
    }, 500);
    try {
      for (let k = 0; k < 3; k++) {
        expect(rdata((await udpAsk())?.answers?.[0])).toBe('10.96.0.10');
        expect(rdata((await tcpAsk())?.answers?.[0])).toBe('10.96.0.10');
        await new Promise((r) => setTimeout(r, 1000));
      }
      await Promise.race([Promise.all([lorisClosed, ...idleClosed]), new Promise((_, reject) => setTimeout(() => reject(new Error('connections not cut off')), 20_000))]);
    } finally {
      clearInterval(drip);
      loris.destroy();
      idle.forEach((s) => s.destroy());
    }
    expect(server.exitCode).toBeNull();
    expect(rdata((await tcpAsk())?.answers?.[0])).toBe('10.96.0.10');
  }, 60_000);
});
