#!/usr/bin/env node
// The client of the proxy tests. One line of output per attempt:
//   tcp HOST PORT COUNT [TIMEOUT_MS]   → "<backend> <source seen>" or "ERR <code>"
//   udp HOST PORT COUNT [TIMEOUT_MS]   → the same, each from a new source port
//   udp-stream HOST PORT INTERVAL_MS   → one datagram per interval from ONE source port, forever
//   tcp-stream HOST PORT INTERVAL_MS   → one line per interval over ONE connection, forever;
//                                         "ERR <why>" and exit when the connection breaks
import dgram from 'node:dgram';
import net from 'node:net';

const [mode, host, portText, countText, timeoutText] = process.argv.slice(2);
const port = Number(portText);
const timeoutMs = Number(timeoutText ?? 2000);
const family = net.isIPv6(host) ? 'udp6' : 'udp4';

function tcpOnce() {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    let data = '';
    const timer = setTimeout(() => (sock.destroy(), resolve('ERR ETIMEDOUT')), timeoutMs);
    sock.on('data', (d) => (data += d));
    sock.on('end', () => (clearTimeout(timer), resolve(data.trim() || 'ERR EMPTY')));
    sock.on('error', (e) => (clearTimeout(timer), resolve(`ERR ${e.code}`)));
  });
}

function udpOnce() {
  return new Promise((resolve) => {
    const sock = dgram.createSocket(family);
    const timer = setTimeout(() => (sock.close(), resolve('ERR ETIMEDOUT')), timeoutMs);
    sock.on('message', (m) => (clearTimeout(timer), sock.close(), resolve(String(m).trim())));
    sock.on('error', (e) => (clearTimeout(timer), sock.close(), resolve(`ERR ${e.code}`)));
    sock.send('hello', port, host);
  });
}

if (mode === 'tcp-stream') {
  const sock = net.connect({ host, port });
  let n = 0;
  sock.setEncoding('utf8');
  sock.on('data', (d) => process.stdout.write(d));
  sock.on('error', (e) => (process.stdout.write(`ERR ${e.code}\n`), process.exit(1)));
  sock.on('end', () => (process.stdout.write('ERR closed\n'), process.exit(1)));
  sock.on('connect', () => setInterval(() => sock.write(`${n++}\n`), Number(countText)));
} else if (mode === 'udp-stream') {
  const sock = dgram.createSocket(family);
  sock.on('message', (m) => process.stdout.write(`${String(m).trim()}\n`));
  sock.on('error', (e) => process.stdout.write(`ERR ${e.code}\n`));
  setInterval(() => sock.send('tick', port, host), Number(countText));
} else {
  const once = mode === 'tcp' ? tcpOnce : udpOnce;
  for (let i = 0; i < Number(countText); i++) process.stdout.write(`${await once()}\n`);
}
