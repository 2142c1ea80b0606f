import type { Answer, Packet } from 'dns-packet';
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseUpstream } from './forwarder.js';

describe('upstreams', () => {
  it('parses HOST[:PORT] for both families and names what is wrong', () => {
    expect(parseUpstream('192.0.2.53')).toEqual({ host: '192.0.2.53', port: 53 });
    expect(parseUpstream('192.0.2.53:5353')).toEqual({ host: '192.0.2.53', port: 5353 });
    expect(parseUpstream('fd00::53')).toEqual({ host: 'fd00::53', port: 53 });
    expect(parseUpstream('[fd00::53]:5353')).toEqual({ host: 'fd00::53', port: 5353 });
    expect(() => parseUpstream('dns.example')).toThrow(/--upstream "dns.example": "dns.example" is not an IP address/);
    expect(() => parseUpstream('192.0.2.1:0')).toThrow(/bad port/);
  });
});

describe('the query sent upstream', () => {
  it('is a clean query: header, the question as spelled, our OPT with the client DO bit', async () => {
    const { upstreamQuery } = await import('./handler.js');
    const { parseQuery } = await import('./wire.js');
    const dnsPacket = (await import('dns-packet')).default;
    const client = dnsPacket.encode({
      type: 'query', id: 77, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED,
      questions: [{ name: 'WWW.example.test', type: 'AAAA' }],
      answers: [{ name: 'junk.test', type: 'A', ttl: 1, data: '192.0.2.9' }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096, flags: dnsPacket.DNSSEC_OK } as Answer],
    } as Packet);
    const out = dnsPacket.decode(upstreamQuery(client, parseQuery(client)));
    expect(out.questions).toEqual([{ name: 'WWW.example.test', type: 'AAAA', class: 'IN' }]);
    expect(out.answers).toEqual([]);
    expect(out.flags! & (dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED)).toBe(dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED);
    const opt = out.additionals![0] as unknown as { type: string; udpPayloadSize: number; flags: number };
    expect([opt.type, opt.udpPayloadSize, opt.flags & dnsPacket.DNSSEC_OK]).toEqual(['OPT', 1232, dnsPacket.DNSSEC_OK]);
  });
});

describe('which reply counts', () => {
  it('only ours: a response, our ID, one question equal byte for byte', async () => {
    const { isReplyTo } = await import('./forwarder.js');
    const dnsPacket = (await import('dns-packet')).default;
    const question = { name: 'Www.Example.test', type: 'A', class: 'IN' } as const;
    const query = dnsPacket.encode({ type: 'query', id: 7, questions: [question] } as Packet);
    const q = query.subarray(12);
    const reply = (p: Partial<Packet>) => dnsPacket.encode({ type: 'response', id: 7, questions: [question], ...p } as Packet);
    expect(isReplyTo(reply({}), 7, q)).toBe(true);
    expect(isReplyTo(reply({ id: 8 }), 7, q)).toBe(false);
    expect(isReplyTo(query, 7, q)).toBe(false); // not a response
    expect(isReplyTo(reply({ questions: [{ ...question, name: 'www.example.test' }] }), 7, q)).toBe(false);
    expect(isReplyTo(reply({ questions: [{ ...question, type: 'AAAA' }] }), 7, q)).toBe(false);
    expect(isReplyTo(reply({ questions: [{ ...question, class: 'CH' }] }), 7, q)).toBe(false);
    expect(isReplyTo(reply({ questions: [], flags: 3 }), 7, q)).toBe(false); // NXDOMAIN, no question
    expect(isReplyTo(reply({ questions: [question, question] }), 7, q)).toBe(false);
    expect(isReplyTo(Buffer.alloc(5), 7, q)).toBe(false);
  });
});

// The forwarder's clock (1 s a try, 2 s a question, a down upstream probed every 0.5 s) on
// vitest's fake clock. The upstream is a real UDP socket on loopback that answers only when
// told; only setTimeout and Date are faked, so socket I/O runs as it does in production.
describe('the forwarder\'s timing', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A loopback upstream: records what it is asked; answers while `answering`. */
  async function upstream() {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
    const asked: string[] = [];
    const waiters: (() => void)[] = [];
    const u = { sock, asked, answering: false, rcode: 0, port: sock.address().port, nextQuery: () => new Promise<void>((resolve) => waiters.push(resolve)) };
    sock.on('message', (m, r) => {
      const q = dnsPacket.decode(m);
      asked.push(q.questions![0].name);
      if (u.answering) sock.send(dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.RECURSION_AVAILABLE | u.rcode, questions: q.questions } as Packet), r.port, r.address);
      waiters.splice(0).forEach((w) => w());
    });
    return u;
  }

  const query = (name: string) => dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'A' }] } as Packet);

  it('gives up on a silent upstream after two 1 s tries (the 2 s deadline), marks it down, and probes it every 0.5 s until it answers', async () => {
    const { Forwarder } = await import('./forwarder.js');
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const up = await upstream();
    const events: string[] = [];
    const fwd = new Forwarder([{ host: '127.0.0.1', port: up.port }], {
      onHealthcheckFailure: () => events.push('probe failed'),
      log: { info: (m: string) => events.push(m), warn: (m: string) => events.push(m) } as never,
    });
    try {
      let result: Buffer | undefined | 'pending' = 'pending';
      const asked = up.nextQuery();
      void fwd.exchange(query('a.example.test')).then((r) => (result = r));
      await asked;
      await vi.advanceTimersByTimeAsync(999);
      expect([result, up.asked]).toEqual(['pending', ['a.example.test']]);
      const retried = up.nextQuery();
      await vi.advanceTimersByTimeAsync(1);
      await retried; // the second try, to the same (only) upstream
      await vi.advanceTimersByTimeAsync(999);
      expect(result).toBe('pending');
      await vi.advanceTimersByTimeAsync(1);
      expect(result).toBeUndefined();
      expect(events).toEqual(['upstream marked down after failures']);

      // Down: the first probe goes 0.5 s later, and again 0.5 s after it fails (1 s for its try).
      const probed = up.nextQuery();
      await vi.advanceTimersByTimeAsync(500);
      await probed;
      expect(up.asked.at(-1)).toBe('.');
      await vi.advanceTimersByTimeAsync(1000);
      expect(events).toContain('probe failed');
      up.answering = true;
      const probedAgain = up.nextQuery();
      await vi.advanceTimersByTimeAsync(500);
      await probedAgain;
      // Its answer is real I/O: let it arrive.
      await vi.waitFor(() => expect(events).toContain('upstream answers again'), { interval: 1, timeout: 1000 });
      expect(up.asked).toEqual(['a.example.test', 'a.example.test', '.', '.']);
    } finally {
      fwd.close();
      up.sock.close();
    }
  });

  it('failover: a SERVFAIL is asked again of the next upstream, the last reply stands; without it the first reply does', async () => {
    const { Forwarder } = await import('./forwarder.js');
    const ups = [await upstream(), await upstream()];
    for (const u of ups) u.answering = true;
    ups[0].rcode = 2;
    const to = ups.map((u) => ({ host: '127.0.0.1', port: u.port }));
    const over = new Forwarder(to, { policy: 'sequential', failover: new Set([2, 5]) });
    const plain = new Forwarder(to, { policy: 'sequential' });
    const rcode = (r: Buffer | undefined) => (r ? r.readUInt16BE(2) & 0xf : 'none');
    try {
      expect(rcode(await over.exchange(query('a.example.test')))).toBe(0);
      expect(ups.map((u) => u.asked)).toEqual([['a.example.test'], ['a.example.test']]);
      ups[1].rcode = 5;
      expect(rcode(await over.exchange(query('b.example.test')))).toBe(5); // both failed over: the last
      expect(rcode(await plain.exchange(query('c.example.test')))).toBe(2);
      expect(ups.map((u) => u.asked.length)).toEqual([3, 2]); // c went to the first alone
      // max_connect_attempts 1: no failover past the first upstream.
      const once = new Forwarder(to, { policy: 'sequential', failover: new Set([2, 5]), maxAttempts: 1 });
      expect(rcode(await once.exchange(query('d.example.test')))).toBe(2);
      once.close();
      expect(ups.map((u) => u.asked.length)).toEqual([4, 2]);
    } finally {
      over.close();
      plain.close();
      for (const u of ups) u.sock.close();
    }
  });

  it('failfast_all_unhealthy_upstreams: with the only upstream down, no answer at once and nothing asked', async () => {
    const { Forwarder } = await import('./forwarder.js');
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const up = await upstream();
    const fwd = new Forwarder([{ host: '127.0.0.1', port: up.port }], { failfastAllDown: true, healthCheckMs: 60_000 });
    try {
      const first = fwd.exchange(query('a.example.test'));
      await vi.advanceTimersByTimeAsync(2_000);
      expect(await first).toBeUndefined(); // two silent tries: marked down
      const asked = up.asked.length;
      expect(await fwd.exchange(query('b.example.test'))).toBeUndefined();
      expect(up.asked.length).toBe(asked);
    } finally {
      fwd.close();
      up.sock.close();
    }
  });
});

/** A throwaway self-signed certificate for `name` (openssl), and its key. */
function selfSigned(name: string): { cert: Buffer; key: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'kdp-cert-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', `/CN=${name}`,
      '-addext', `subjectAltName=DNS:${name}`, '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    return { cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A stream upstream's connection handler (TCP or TLS, RFC 7766 framing): records each question
 *  in `heard` and answers it with one A record of `address`. */
function framedResponder(heard: string[], address: string) {
  return (c: import('node:net').Socket) => {
    let buf = Buffer.alloc(0);
    c.on('error', () => undefined);
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
      const q = dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      heard.push(q.questions![0].name);
      const r = dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.RECURSION_AVAILABLE, questions: q.questions, answers: [{ name: q.questions![0].name, type: 'A', ttl: 9, data: address }] } as Packet);
      const len = Buffer.alloc(2);
      len.writeUInt16BE(r.length);
      c.end(Buffer.concat([len, r]));
    });
  };
}

describe('force_tcp', () => {
  it('asks over TCP only: the upstream\'s UDP socket on the same port hears nothing', async () => {
    const net = await import('node:net');
    const { Forwarder } = await import('./forwarder.js');
    const udpHeard: string[] = [];
    const tcpHeard: string[] = [];
    const server = net.createServer(framedResponder(tcpHeard, '192.0.2.7'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(port, '127.0.0.1', resolve));
    udp.on('message', (m) => udpHeard.push(dnsPacket.decode(m).questions![0].name));
    const fwd = new Forwarder([{ host: '127.0.0.1', port }], { forceTcp: true });
    try {
      const reply = await fwd.exchange(dnsPacket.encode({ type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: 'tcp.example.test', type: 'A' }] } as Packet));
      const p = dnsPacket.decode(reply!);
      expect([p.id, (p.answers![0] as { data: string }).data]).toEqual([4242, '192.0.2.7']);
      expect([tcpHeard, udpHeard]).toEqual([['tcp.example.test'], []]);
    } finally {
      fwd.close();
      udp.close();
      server.close();
    }
  });
});

describe('DNS over TLS (tls://)', () => {
  it('asks over TLS when the certificate verifies for the server name, and gets nothing when it does not', async () => {
    const tls = await import('node:tls');
    const { Forwarder } = await import('./forwarder.js');
    const heard: string[] = [];
    const { cert, key } = selfSigned('dot.test');
    const server = tls.createServer({ cert, key }, framedResponder(heard, '192.0.2.8'));
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const ask = (f: InstanceType<typeof Forwarder>, name: string) => f.exchange(dnsPacket.encode({ type: 'query', id: 77, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'A' }] } as Packet));
    const good = new Forwarder([{ host: '127.0.0.1', port, tls: { servername: 'dot.test' } }], { tls: { ca: cert }, deadlineMs: 1500, attemptMs: 700 });
    const wrongName = new Forwarder([{ host: '127.0.0.1', port, tls: {} }], { tls: { ca: cert, servername: 'other.test' }, deadlineMs: 1500, attemptMs: 700 });
    const untrusted = new Forwarder([{ host: '127.0.0.1', port, tls: { servername: 'dot.test' } }], { deadlineMs: 1500, attemptMs: 700 });
    try {
      const r = await ask(good, 'dot.example.test');
      expect((dnsPacket.decode(r!).answers![0] as { data: string }).data).toBe('192.0.2.8');
      expect(await ask(wrongName, 'wrong-name.example.test')).toBeUndefined();
      expect(await ask(untrusted, 'untrusted.example.test')).toBeUndefined();
      expect(heard).toEqual(['dot.example.test']);
    } finally {
      for (const f of [good, wrongName, untrusted]) f.close();
      server.close();
    }
  });
});

describe('DNS over HTTPS (https://)', () => {
  it('POSTs the query with ID 0 over HTTP/2 to the path (or GETs it, doh_method GET), answers with the client\'s ID; a certificate for another name or a non-DNS reply is no answer', async () => {
    const http2 = await import('node:http2');
    const { Forwarder } = await import('./forwarder.js');
    const heard: string[] = [];
    const { cert, key } = selfSigned('doh.test');
    const server = http2.createSecureServer({ cert, key }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const url = new URL(req.url, 'https://doh.test');
        const param = url.searchParams.get('dns');
        const q = dnsPacket.decode(param !== null ? Buffer.from(param, 'base64url') : Buffer.concat(chunks));
        heard.push(`${req.method} ${url.pathname} ${req.headers['content-type'] ?? '-'} id=${q.id} ${q.questions![0].name}`);
        if (url.pathname !== '/dns-query') return void res.writeHead(404).end('not here');
        const r = dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.RECURSION_AVAILABLE, questions: q.questions, answers: [{ name: q.questions![0].name, type: 'A', ttl: 9, data: '192.0.2.9' }] } as Packet);
        res.writeHead(200, { 'content-type': 'application/dns-message' }).end(r);
      });
    });
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const ask = (f: InstanceType<typeof Forwarder>, name: string) => f.exchange(dnsPacket.encode({ type: 'query', id: 77, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'A' }] } as Packet));
    const opts = { tls: { ca: cert }, deadlineMs: 1500, attemptMs: 700 };
    const good = new Forwarder([{ host: '127.0.0.1', port, tls: { servername: 'doh.test' }, doh: { path: '/dns-query' } }], opts);
    const wrongName = new Forwarder([{ host: '127.0.0.1', port, tls: { servername: 'other.test' }, doh: { path: '/dns-query' } }], opts);
    const wrongPath = new Forwarder([{ host: '127.0.0.1', port, tls: { servername: 'doh.test' }, doh: { path: '/elsewhere' } }], opts);
    const byGet = new Forwarder([{ host: '127.0.0.1', port, tls: { servername: 'doh.test' }, doh: { path: '/dns-query' } }], { ...opts, dohMethod: 'GET' });
    try {
      const r = await ask(good, 'doh.example.test');
      expect([r!.readUInt16BE(0), (dnsPacket.decode(r!).answers![0] as { data: string }).data]).toEqual([77, '192.0.2.9']);
      expect(await ask(wrongName, 'wrong-name.example.test')).toBeUndefined();
      expect(await ask(wrongPath, 'wrong-path.example.test')).toBeUndefined();
      expect(heard.slice(0, 2)).toEqual(['POST /dns-query application/dns-message id=0 doh.example.test', 'POST /elsewhere application/dns-message id=0 wrong-path.example.test']);
      const viaGet = await ask(byGet, 'get.example.test');
      expect([viaGet!.readUInt16BE(0), heard.at(-1)]).toEqual([77, 'GET /dns-query - id=0 get.example.test']);
    } finally {
      for (const f of [good, wrongName, wrongPath, byGet]) f.close();
      server.close();
    }
  });
});
