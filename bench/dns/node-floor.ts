// The "node floor" of the DNS benchmark: the least a Node UDP responder can do per query. Each
// datagram is sent back as it came with the QR bit set, no parsing, no lookup, no metrics, on a
// socket set up exactly as dns/server.ts sets up its own (4 MiB buffers, the literal-address
// lookup). Whatever CPU this costs per query, no server built on node:dgram can cost less, so
// dividing dnsmasq's cost by it bounds the ratio our server can reach.
//
//   node dist/bench/dns/node-floor.js PORT [HOST]
import dgram from 'node:dgram';

const port = Number(process.argv[2]);
const host = process.argv[3] ?? '127.0.0.1';
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`node-floor: PORT must be 1-65535, got ${JSON.stringify(process.argv[2])}`);
  process.exit(2);
}

function literalAddress(address: string, _family: unknown, cb: (err: Error | null, address: string, family: number) => void): void {
  cb(null, address, address.includes(':') ? 6 : 4);
}

const v6 = host.includes(':');
const udp = dgram.createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6, recvBufferSize: 4 << 20, sendBufferSize: 4 << 20, lookup: literalAddress });
udp.on('message', (msg, rinfo) => {
  if (msg.length < 12) return;
  msg[2] |= 0x80;
  udp.send(msg, rinfo.port, rinfo.address);
});
udp.on('error', (err) => {
  console.error(`node-floor: ${err.message}`);
  process.exit(1);
});
udp.bind(port, host, () => console.log(`node floor listening on ${host}:${port}`));
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => udp.close(() => process.exit(0)));
