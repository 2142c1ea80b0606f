#!/usr/bin/env node
// A pod's server for the proxy tests: answers every TCP connection and UDP datagram on --port
// (both families) with "<name> <client address>", so a test sees which backend it reached and
// the source address the backend saw. On --echo-port, a TCP connection stays open and every
// line is answered with "<name> <line>" (a long-lived flow).
import dgram from 'node:dgram';
import net from 'node:net';

const args = Object.fromEntries(process.argv.slice(2).join(' ').split('--').filter(Boolean).map((a) => a.trim().split(/\s+/)));
const name = args.name ?? 'backend';
const ports = String(args.port ?? '8080').split(',').map(Number);
const plain = (a) => (a ?? '').replace(/^::ffff:/, '');

for (const port of ports) {
  net.createServer((sock) => {
    sock.end(`${name} ${plain(sock.remoteAddress)}\n`);
    sock.on('error', () => {});
  }).listen({ port, host: '::', ipv6Only: false });
  const udp = dgram.createSocket({ type: 'udp6', ipv6Only: false });
  udp.on('message', (_msg, rinfo) => udp.send(`${name} ${plain(rinfo.address)}\n`, rinfo.port, rinfo.address));
  udp.bind(port, '::');
}
if (args['echo-port']) {
  net.createServer((sock) => {
    sock.setEncoding('utf8');
    let buf = '';
    sock.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        sock.write(`${name} ${buf.slice(0, i)}\n`);
        buf = buf.slice(i + 1);
      }
    });
    sock.on('error', () => {});
  }).listen({ port: Number(args['echo-port']), host: '::', ipv6Only: false });
}
process.stdout.write(`listening ${ports.join(',')}\n`);
