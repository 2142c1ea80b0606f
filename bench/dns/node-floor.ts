// The "node floor" of the DNS benchmark: the least a Node UDP responder can do per query. Each
// datagram is sent back as it came with the QR bit set, no parsing, no lookup, no metrics, on a
// socket made exactly as dns/server.ts makes its own (dns/udp/: batched by default, 4 MiB
// buffers). Whatever CPU this costs per query, no server built on that socket can cost less, so
// dividing dnsmasq's cost by it bounds the ratio our server can reach. `--dgram` measures
// node:dgram's socket instead, the server's fallback where the batch binding is not built.
//
//   node dist/bench/dns/node-floor.js PORT [HOST] [--dgram]
import { openBatchSocket } from '../../dns/udp/batch-socket.js';
import { openDgramSocket } from '../../dns/udp/dgram-socket.js';

const args = process.argv.slice(2).filter((a) => a !== '--dgram');
const dgram = process.argv.includes('--dgram');
const port = Number(args[0]);
const host = args[1] ?? '127.0.0.1';
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`node-floor: PORT must be 1-65535, got ${JSON.stringify(args[0])}`);
  process.exit(2);
}

const fail = (err: Error) => {
  console.error(`node-floor: ${err.message}`);
  process.exit(1);
};
const open = dgram ? openDgramSocket : openBatchSocket;
const udp = await open({ host, port, reusePort: false, bufferBytes: 4 << 20, onError: fail }, (msg) => {
  if (msg.length < 12) return undefined;
  msg[2] |= 0x80;
  return msg;
}).catch(fail);
console.log(`node floor (${dgram ? 'node:dgram' : 'batched'}) listening on ${host}:${port}`);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => void udp.close().then(() => process.exit(0)));
