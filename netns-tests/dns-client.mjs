// Asks a DNS server the same questions from many UDP sockets at once (each its own source
// port, so SO_REUSEPORT spreads them over the server's threads) and prints one JSON line per
// reply: the socket, the question, the rcode, the answers' data and TTLs.
//   node dns-client.mjs [--summary] SERVER PORT BIND SOCKETS NAME/TYPE...
// --summary: one line a person reads (how many of each answer) instead of the JSON.
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

const args = process.argv.slice(2);
const summary = args[0] === '--summary';
const [server, port, bind, sockets, ...questions] = summary ? args.slice(1) : args;
const socks = Array.from({ length: Number(sockets) }, () => dgram.createSocket(server.includes(':') ? 'udp6' : 'udp4'));
const out = [];
let pending = 0;
await Promise.all(socks.map((s) => new Promise((resolve) => s.bind(0, bind, resolve))));
const done = new Promise((resolve) => {
  const timer = setTimeout(resolve, 3000);
  socks.forEach((s, i) => {
    s.on('message', (m) => {
      const p = dnsPacket.decode(m);
      const q = p.questions?.[0];
      out.push({ socket: i, name: q?.name, type: q?.type, rcode: p.rcode, answers: (p.answers ?? []).map((a) => (typeof a.data === "object" && !Buffer.isBuffer(a.data) ? JSON.stringify(a.data) : String(a.data))), ttls: (p.answers ?? []).map((a) => a.ttl) });
      if (--pending === 0) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
});
let id = 1;
for (const [i, s] of socks.entries()) {
  for (const q of questions) {
    const [name, type] = q.split('/');
    pending++;
    s.send(dnsPacket.encode({ type: 'query', id: (id++ * 7 + i) & 0xffff, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: type ?? 'A', class: 'IN' }] }), Number(port), server);
  }
}
await done;
for (const s of socks) s.close();
if (!summary) console.log(JSON.stringify({ sent: id - 1, replies: out }));
else {
  const counts = new Map();
  for (const r of out) {
    const k = `${r.name} ${r.type} ${r.rcode} ${r.answers.join(',')}`;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  console.log(`sent ${id - 1} from ${socks.length} sockets, ${out.length} answered:`);
  for (const [k, n] of counts) console.log(`  ${k} ×${n}`);
}
