// Mutated DNS packets from a fixed seed: bit flips, truncations, random bytes, wrong counts,
// compression loops, oversized names and labels, flipped header bits. Interleaved with valid
// questions whose replies are counted, so a caller sees whether the server kept answering.
//
//   node dist/bench/dns/fuzz.js --target 127.0.0.1:5353 --seed 1 --count 100000 --name web.prod.svc.cluster.local
// prints one JSON line: {sent, valid, validAnswered, garbageReplies, rcodes}.
import dgram from 'node:dgram';
import { pathToFileURL } from 'node:url';

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function encodeQuery(id: number, name: string, qtype: number, opts: { edns?: number; flags?: number } = {}): Buffer {
  const labels = name.split('.').filter(Boolean);
  const parts: Buffer[] = [];
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(opts.flags ?? 0x0100, 2);
  h.writeUInt16BE(1, 4);
  h.writeUInt16BE(opts.edns ? 1 : 0, 10);
  parts.push(h);
  for (const l of labels) parts.push(Buffer.from([l.length]), Buffer.from(l, 'latin1'));
  parts.push(Buffer.from([0, qtype >> 8, qtype & 255, 0, 1]));
  if (opts.edns) parts.push(Buffer.from([0, 0, 41, opts.edns >> 8, opts.edns & 255, 0, 0, 0, 0, 0, 0]));
  return Buffer.concat(parts);
}

const BASE_NAMES = ['web.prod.svc.cluster.local', 'db.prod.svc.cluster.local', '_http._tcp.web.prod.svc.cluster.local', 'big.prod.svc.cluster.local', '10.0.96.10.in-addr.arpa', 'x.example.test', 'cluster.local'];
const TYPES = [1, 28, 33, 12, 16, 255, 252, 6, 5, 2];

/** One mutated packet. */
export function mutate(rand: () => number): Buffer {
  const int = (n: number) => Math.floor(rand() * n);
  const base = encodeQuery(int(65536), BASE_NAMES[int(BASE_NAMES.length)], TYPES[int(TYPES.length)], rand() < 0.5 ? { edns: int(5000) } : {});
  switch (int(9)) {
    case 0: { // bit flips
      const b = Buffer.from(base);
      for (let i = 0, n = 1 + int(8); i < n; i++) b[int(b.length)] ^= 1 << int(8);
      return b;
    }
    case 1: // truncation
      return base.subarray(0, int(base.length));
    case 2: { // random bytes
      const b = Buffer.alloc(int(600));
      for (let i = 0; i < b.length; i++) b[i] = int(256);
      return b;
    }
    case 3: { // wrong counts
      const b = Buffer.from(base);
      b.writeUInt16BE(int(65536), 4 + 2 * int(4));
      return b;
    }
    case 4: { // compression loops and pointers anywhere
      const b = Buffer.from(base);
      const at = 12 + int(Math.max(1, b.length - 14));
      b[at] = 0xc0 | int(64);
      b[at + 1] = rand() < 0.5 ? at & 0xff : int(256);
      return b;
    }
    case 5: { // a label longer than 63, or a name longer than 255
      const long = rand() < 0.5 ? 'a'.repeat(64 + int(200)) : Array.from({ length: 10 + int(60) }, () => 'abcdefgh').join('.');
      const h = Buffer.from(base.subarray(0, 12));
      const name = Buffer.from(long.split('.').flatMap((l) => [String.fromCharCode(Math.min(l.length, 255)), l]).join(''), 'latin1');
      return Buffer.concat([h, name, Buffer.from([0, 0, 1, 0, 1])]);
    }
    case 6: { // header bits: QR, opcode, Z, rcode
      const b = Buffer.from(base);
      b.writeUInt16BE(int(65536), 2);
      return b;
    }
    case 7: { // garbage appended, or an OPT record cut short
      const tail = Buffer.alloc(int(64));
      for (let i = 0; i < tail.length; i++) tail[i] = int(256);
      const b = Buffer.concat([base, tail]);
      if (rand() < 0.5) b.writeUInt16BE(1 + int(4), 10);
      return b;
    }
    default: { // a valid query with random type and class
      const b = Buffer.from(base);
      b.writeUInt32BE(int(2 ** 32), b.length - (base.length > 30 && base[base.length - 11] === 0 ? 15 : 4));
      return b;
    }
  }
}

export interface FuzzReport {
  sent: number;
  valid: number;
  validAnswered: number;
  garbageReplies: number;
  rcodes: Record<string, number>;
}

export async function fuzz(target: { host: string; port: number }, seed: number, count: number, validName: string): Promise<FuzzReport> {
  const rand = prng(seed);
  // Room for every reply of a batch even while this process waits for a CPU: with the default
  // buffer (~208 KB, a couple of KB per datagram on loopback) a loaded machine dropped a few of
  // a batch of 100 replies at this socket, and the test blamed the server (4 of 4000 lost; the
  // server's own sockets dropped nothing).
  const sock = dgram.createSocket({ type: target.host.includes(':') ? 'udp6' : 'udp4', recvBufferSize: 4 << 20 });
  const report: FuzzReport = { sent: 0, valid: 0, validAnswered: 0, garbageReplies: 0, rcodes: {} };
  const waiting = new Set<number>();
  let wake: (() => void) | undefined;
  sock.on('message', (msg) => {
    if (msg.length < 4) return;
    const id = msg.readUInt16BE(0);
    if (msg.length >= 12 && waiting.delete(id) && (msg.readUInt16BE(6) > 0 || (msg.readUInt16BE(2) & 0x200) !== 0)) {
      report.validAnswered++;
      if (waiting.size === 0) wake?.();
      return;
    }
    report.garbageReplies++;
    const rc = String(msg.readUInt16BE(2) & 0xf);
    report.rcodes[rc] = (report.rcodes[rc] ?? 0) + 1;
  });
  await new Promise<void>((r) => sock.bind(0, r));
  const BATCH = 50;
  let nextValidId = 0;
  while (report.sent < count) {
    for (let i = 0; i < BATCH && report.sent < count; i++) {
      let pkt = mutate(rand);
      // Valid questions use IDs of their own range so their replies are told apart.
      if (i % 25 === 0) {
        const id = 0xf000 | (nextValidId++ & 0xfff);
        pkt = encodeQuery(id, validName, 1);
        waiting.add(id);
        report.valid++;
      } else if (pkt.length >= 2 && (pkt.readUInt16BE(0) & 0xf000) === 0xf000) pkt.writeUInt16BE(pkt.readUInt16BE(0) & 0x0fff, 0);
      sock.send(pkt, target.port, target.host);
      report.sent++;
    }
    // Wait for this batch's valid answers (or give up on them after a while).
    if (waiting.size > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 1000);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      wake = undefined;
      waiting.clear();
    }
  }
  await new Promise((r) => setTimeout(r, 200));
  sock.close();
  return report;
}

function arg(name: string, def?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (def === undefined) throw new Error(`--${name} is required`);
  return def;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(arg('target'));
  if (!m) throw new Error('--target HOST:PORT');
  fuzz({ host: m[1], port: Number(m[2]) }, Number(arg('seed', '1')), Number(arg('count', '100000')), arg('name', 'web.prod.svc.cluster.local')).then((r) =>
    process.stdout.write(JSON.stringify(r) + '\n'),
  );
}
