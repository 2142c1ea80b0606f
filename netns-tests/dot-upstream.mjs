// A DNS-over-TLS upstream for the netns tests: answers every A question with ADDRESS over TLS
// (RFC 7858 framing: a 2-byte length before each message), prints "listening", then a line per
// question it was asked.
//   node dot-upstream.mjs HOST PORT CERT KEY ADDRESS
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import dnsPacket from 'dns-packet';

const [host, port, cert, key, address] = process.argv.slice(2);
const server = tls.createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (c) => {
  let buf = Buffer.alloc(0);
  c.on('error', () => undefined);
  c.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const q = dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      buf = buf.subarray(2 + buf.readUInt16BE(0));
      const name = q.questions[0].name;
      console.log(`asked ${name} ${q.questions[0].type}`);
      const answers = q.questions[0].type === 'A' ? [{ name, type: 'A', ttl: 60, data: address }] : [];
      const r = dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.RECURSION_AVAILABLE | dnsPacket.RECURSION_DESIRED, questions: q.questions, answers });
      const len = Buffer.alloc(2);
      len.writeUInt16BE(r.length);
      c.write(Buffer.concat([len, r]));
    }
  });
});
server.on('tlsClientError', (err) => console.log(`tls error ${err.message}`));
server.listen(Number(port), host, () => console.log('listening'));
