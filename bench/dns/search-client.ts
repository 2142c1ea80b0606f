// A pod's resolver, for the autopath rows of bench/dns: resolves external names the way glibc
// does with `search <ns>.svc.<zone> svc.<zone> <zone>` and `ndots:5` — each search domain in
// turn while the answer is NXDOMAIN, then the bare name — and counts whole resolutions, which is
// what a pod sees. `CONCURRENCY` resolutions run at once from one UDP socket bound to the pod's
// address.
//
// The client must not be what limits the figure (the pod's own resolver is glibc, not Node): with
// autopath one resolution is one query, and this client on node:dgram ran out of CPU near 160k
// queries/s, below the server. So it runs on the server's own batched socket (dns/udp/): each
// answer read is turned, in the same batch, into that walk's next question (or the next walk's
// first), which the socket sends back to the server as its "reply"; queries are encoded once per
// name and patched with their ID; one sweep a second restarts a walk whose answer was lost.
//
//   node search-client.js SERVER PORT BIND_ADDRESS SECONDS CONCURRENCY SEARCH,DOMAINS NAME…
// Prints one JSON line: {resolutions, queries, failures, seconds}.
import { openBatchSocket } from '../../dns/udp/batch-socket.js';
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

/** Every name's walk, encoded once (ID 0): the search domains in order, then the bare name. */
const walks = names.map((name) => [...search.map((d) => query(`${name}.${d}`)), query(name)]);

/** One walk in flight: which name, which step of its search path, its ID, when it was asked. */
interface Walk {
  name: number;
  step: number;
  id: number;
  at: number;
}

const TIMEOUT_MS = 2000;
const byId = new Array<Walk | undefined>(65536);
let nextId = 1;
let nextName = 0;
let queries = 0;
let resolutions = 0;
let failures = 0;
let running = true;

/** The walk's current question, under a fresh ID. */
function ask(w: Walk): Buffer {
  if (byId[w.id] === w) byId[w.id] = undefined;
  w.id = nextId;
  nextId = (nextId % 65535) + 1;
  // IDs wrap within a second at this rate: a walk still waiting under the same ID failed.
  const stale = byId[w.id];
  if (stale) {
    failures++;
    restartLater.add(stale);
  }
  byId[w.id] = w;
  w.at = Date.now();
  queries++;
  const out = Buffer.from(walks[w.name][w.step]);
  out.writeUInt16BE(w.id, 0);
  return out;
}

function nextWalk(w: Walk): Buffer | undefined {
  if (!running) {
    if (byId[w.id] === w) byId[w.id] = undefined;
    return undefined;
  }
  w.name = nextName++ % walks.length;
  w.step = 0;
  return ask(w);
}

const restartLater = new Set<Walk>();

const sock = await openBatchSocket({ host: bind, port: 0, reusePort: false, bufferBytes: 4 << 20, onError: () => {} }, (m) => {
  if (m.length < 12) return undefined;
  const w = byId[m.readUInt16BE(0)];
  if (!w || restartLater.has(w)) return undefined;
  const rcode = m.readUInt16BE(2) & 0xf;
  const last = w.step === walks[w.name].length - 1;
  // Anything but NXDOMAIN ends the walk (a CNAME answer too); the bare name's answer is final.
  if (rcode === 3 && !last) {
    w.step++;
    return ask(w);
  }
  if (running) {
    if (rcode === 0) resolutions++;
    else failures++;
  }
  return nextWalk(w);
});

const sweep = setInterval(() => {
  const old = Date.now() - TIMEOUT_MS;
  for (const w of byId) if (w && w.at < old && !restartLater.has(w)) {
    failures++;
    restartLater.add(w);
  }
  for (const w of restartLater) {
    restartLater.delete(w);
    const q = nextWalk(w);
    if (q) sock.sendTo(q, port, server);
  }
}, 1000);

const start = Date.now();
for (let i = 0; i < concurrency; i++) sock.sendTo(nextWalk({ name: 0, step: 0, id: 0, at: 0 })!, port, server);
await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
running = false;
const elapsed = (Date.now() - start) / 1000;
console.log(JSON.stringify({ resolutions, queries, failures, seconds: elapsed }));
clearInterval(sweep);
await sock.close();
