// A pod's resolver, for the autopath rows of bench/dns: resolves external names the way glibc
// does with `search <ns>.svc.<zone> svc.<zone> <zone>` and `ndots:5` — each search domain in
// turn while the answer is NXDOMAIN, then the bare name — and counts whole resolutions, which is
// what a pod sees. `CONCURRENCY` resolutions run at once from one UDP socket bound to the pod's
// address.
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

function query(id: number, name: string): Buffer {
  const w = new MessageWriter(300);
  for (const v of [id, FLAG_RD, 1, 0, 0, 0]) w.u16(v);
  w.name(name);
  w.u16(QTYPE.A);
  w.u16(QCLASS_IN);
  return Buffer.from(w.done());
}

const sock = dgram.createSocket('udp4');
const waiting = new Map<number, (rcode: number | undefined) => void>();
let nextId = 1;
let queries = 0;
sock.on('message', (m) => {
  const done = waiting.get(m.readUInt16BE(0));
  if (!done) return;
  waiting.delete(m.readUInt16BE(0));
  done(m.readUInt16BE(2) & 0xf);
});

function ask(name: string): Promise<number | undefined> {
  const id = nextId;
  nextId = (nextId % 65535) + 1;
  queries++;
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      waiting.delete(id);
      resolve(undefined);
    }, 2000);
    waiting.set(id, (rcode) => {
      clearTimeout(timer);
      resolve(rcode);
    });
    sock.send(query(id, name), port, server);
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
  sock.close();
}

void main();
