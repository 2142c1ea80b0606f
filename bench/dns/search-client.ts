// A pod's resolver, for the autopath rows of bench/dns: resolves external names the way glibc
// does with `search <ns>.svc.<zone> svc.<zone> <zone>` and `ndots:5` — each search domain in
// turn while the answer is NXDOMAIN, then the bare name — and counts whole resolutions, which is
// what a pod sees. `CONCURRENCY` resolutions run at once from one UDP socket bound to the pod's
// address.
//
// The client must not be what limits the figure (the pod's own resolver is glibc, not Node): with
// autopath, one resolution is one query, and a client paying a timer, a fresh query and a
// deferred address lookup per query ran out of CPU near 135k queries/s, below the server. So the
// queries are built once per name and patched with their ID, the sends skip dns.lookup, and
// one sweep a second times out the unanswered.
//
//   node search-client.js SERVER PORT BIND_ADDRESS SECONDS CONCURRENCY SEARCH,DOMAINS NAME…
// Prints one JSON line: {resolutions, queries, failures, seconds}.
import dgram from 'node:dgram';
import { MessageWriter, QCLASS_IN, QTYPE, FLAG_RD } from '../../dns/wire.js';

const [server, portArg, bind, secondsArg, concurrencyArg, searchArg, ...names] = process.argv.slice(2);
const port = Number(portArg);
const seconds = Number(secondsArg);
const concurrency = Number(concurrencyArg);
const search = searchArg.split(',').filter(Boolean);

function query(name: string): Buffer {
  const w = new MessageWriter(300);
  for (const v of [0, FLAG_RD, 1, 0, 0, 0]) w.u16(v);
  w.name(name);
  w.u16(QTYPE.A);
  w.u16(QCLASS_IN);
  return Buffer.from(w.done());
}

/** Every name the walks ask, encoded once (ID 0). */
const encoded = new Map<string, Buffer>();
function queryFor(name: string, id: number): Buffer {
  let q = encoded.get(name);
  if (!q) encoded.set(name, (q = query(name)));
  const out = Buffer.from(q);
  out.writeUInt16BE(id, 0);
  return out;
}

const TIMEOUT_MS = 2000;
const sock = dgram.createSocket({ type: 'udp4', lookup: (address, _opts, cb) => cb(null, address, 4) });
const waiting = new Map<number, { readonly done: (rcode: number | undefined) => void; readonly at: number }>();
let nextId = 1;
let queries = 0;
sock.on('message', (m) => {
  const id = m.readUInt16BE(0);
  const w = waiting.get(id);
  if (!w) return;
  waiting.delete(id);
  w.done(m.readUInt16BE(2) & 0xf);
});
const sweep = setInterval(() => {
  const old = Date.now() - TIMEOUT_MS;
  for (const [id, w] of waiting) if (w.at < old) {
    waiting.delete(id);
    w.done(undefined);
  }
}, 1000);

function ask(name: string): Promise<number | undefined> {
  const id = nextId;
  nextId = (nextId % 65535) + 1;
  queries++;
  // IDs wrap within a second at this rate: a question still unanswered under the same ID failed.
  waiting.get(id)?.done(undefined);
  return new Promise((resolve) => {
    waiting.set(id, { done: resolve, at: Date.now() });
    sock.send(queryFor(name, id), port, server);
  });
}

/** One name resolved as the stub does: search domains first (fewer than 5 dots), then bare. */
async function resolve(name: string): Promise<boolean> {
  for (const d of search) {
    const rcode = await ask(`${name}.${d}`);
    if (rcode === undefined) return false;
    if (rcode !== 3) return rcode === 0; // anything but NXDOMAIN ends the walk (CNAME answers too)
  }
  return (await ask(name)) === 0;
}

async function main(): Promise<void> {
  await new Promise<void>((r) => sock.bind(0, bind, () => r()));
  const end = Date.now() + seconds * 1000;
  let resolutions = 0;
  let failures = 0;
  let i = 0;
  const worker = async () => {
    while (Date.now() < end) {
      if (await resolve(names[i++ % names.length])) resolutions++;
      else failures++;
    }
  };
  const start = Date.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  console.log(JSON.stringify({ resolutions, queries, failures, seconds: (Date.now() - start) / 1000 }));
  clearInterval(sweep);
  sock.close();
}

void main();
