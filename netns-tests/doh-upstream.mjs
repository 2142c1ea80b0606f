// A DNS-over-HTTPS upstream for the netns tests (RFC 8484, HTTP/2 over TLS): answers every A
// question POSTed to /dns-query with ADDRESS, prints "listening", then a line per question.
//   node doh-upstream.mjs HOST PORT CERT KEY ADDRESS
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import dnsPacket from 'dns-packet';

const [host, port, cert, key, address] = process.argv.slice(2);
const server = http2.createSecureServer({ cert: readFileSync(cert), key: readFileSync(key) }, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.method !== 'POST' || req.url !== '/dns-query' || req.headers['content-type'] !== 'application/dns-message') {
      res.writeHead(415).end();
      return;
    }
    const q = dnsPacket.decode(Buffer.concat(chunks));
    const name = q.questions[0].name;
    console.log(`asked ${name} ${q.questions[0].type} id=${q.id}`);
    const answers = q.questions[0].type === 'A' ? [{ name, type: 'A', ttl: 60, data: address }] : [];
    const r = dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.RECURSION_AVAILABLE | dnsPacket.RECURSION_DESIRED, questions: q.questions, answers });
    res.writeHead(200, { 'content-type': 'application/dns-message' }).end(r);
  });
});
server.on('tlsClientError', (err) => console.log(`tls error ${err.message}`));
server.listen(Number(port), host, () => console.log('listening'));
