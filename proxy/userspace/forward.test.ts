// The TCP and UDP forwarding over loopback sockets (no namespaces needed): bytes, half-close,
// resets, failover, UDP sessions and their pruning.
import dgram from 'node:dgram';
import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { logger } from '../../common/log.js';
import type { Target } from '../core/model.js';
import { Balancer } from './balancer.js';
import { listenerKey, type ListenerSpec } from './listeners.js';
import type { Router } from './router.js';
import { TcpListener } from './tcp.js';
import { SessionBudget } from './sessions.js';
import { UdpListener } from './udp.js';

const log = logger('test');
const budget = (max = 1000) => { const b = new SessionBudget(max, () => {}); return () => b; };
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function spec(protocol: 'TCP' | 'UDP', sourceRanges?: readonly string[]): ListenerSpec {
  return { key: listenerKey(protocol, '127.0.0.1', 0), service: 't/s', portName: 't/s:p', route: 'r', protocol, family: 'IPv4', host: '127.0.0.1', port: 0, path: 'internal', vip: false, ...(sourceRanges ? { sourceRanges } : {}) };
}

function router(targets: Target[]): Router & { b: Balancer } {
  const b = new Balancer();
  b.update(targets, 0);
  return { b, pick: (_s, c, avoid) => b.pick(c, avoid), has: (_s, t) => b.has(t) };
}

const target = (port: number): Target => ({ ip: '127.0.0.1', port, local: true, ready: true });

/** A TCP server that sends its name, then echoes upper-cased, and ends when the peer ends. */
async function tcpBackend(name: string): Promise<number> {
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    s.write(`${name}:`);
    s.on('data', (d) => s.write(String(d).toUpperCase()));
    s.on('end', () => s.end('<eof>'));
    s.on('error', () => {});
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(() => srv.close());
  return (srv.address() as net.AddressInfo).port;
}

async function tcpListener(r: Router, sourceRanges?: readonly string[]): Promise<number> {
  const l = new TcpListener(spec('TCP', sourceRanges), r, new Set(), log);
  await l.listen();
  cleanups.push(() => l.close());
  return l.boundPort();
}

function exchange(port: number, send: string): Promise<string> {
  return new Promise((resolve) => {
    const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let got = '';
    c.on('data', (d) => (got += d));
    c.on('connect', () => c.end(send)); // half-close: the reply must still arrive
    c.on('end', () => resolve(got));
    c.on('error', (e) => resolve(`ERR ${(e as NodeJS.ErrnoException).code}`));
  });
}

describe('TCP forwarding', () => {
  it('carries bytes both ways and passes the half-close on; round-robin over endpoints', async () => {
    const port = await tcpListener(router([target(await tcpBackend('a')), target(await tcpBackend('b'))]));
    const replies = [await exchange(port, 'hi'), await exchange(port, 'yo'), await exchange(port, 'x')];
    expect(replies).toEqual(['a:HI<eof>', 'b:YO<eof>', 'a:X<eof>']);
  });

  it('no endpoint: the connection is reset at once', async () => {
    const port = await tcpListener(router([]));
    expect(await exchange(port, 'hi')).toBe('ERR ECONNRESET');
  });

  it('a source outside the listener\'s source ranges is reset without reaching an endpoint', async () => {
    let picked = 0;
    const r = router([target(await tcpBackend('a'))]);
    const counting: Router = { pick: (s, c, avoid) => (picked++, r.pick(s, c, avoid)), has: r.has };
    expect(await exchange(await tcpListener(counting, ['10.0.0.0/8']), 'hi')).toBe('ERR ECONNRESET');
    expect(picked).toBe(0);
    expect(await exchange(await tcpListener(counting, ['10.0.0.0/8', '127.0.0.0/8']), 'hi')).toBe('a:HI<eof>');
    expect(picked).toBe(1);
  });

  it('an endpoint refusing the connection is replaced by another; all refusing resets the client', async () => {
    // A port that was listening and is closed now: connections to it are refused.
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const dead = (closed.address() as net.AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const live = await tcpBackend('live');
    const port = await tcpListener(router([target(dead), target(live)]));
    expect([await exchange(port, 'a'), await exchange(port, 'b')]).toEqual(['live:A<eof>', 'live:B<eof>']);
    const port2 = await tcpListener(router([target(dead)]));
    expect(await exchange(port2, 'a')).toBe('ERR ECONNRESET');
  });

  it('an endpoint resetting its side resets the client', async () => {
    const srv = net.createServer((s) => s.resetAndDestroy());
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    cleanups.push(() => srv.close());
    const port = await tcpListener(router([target((srv.address() as net.AddressInfo).port)]));
    const got = await new Promise<string>((resolve) => {
      const c = net.connect(port, '127.0.0.1');
      c.on('error', (e) => resolve(`ERR ${(e as NodeJS.ErrnoException).code}`));
      c.on('close', () => resolve('closed'));
    });
    expect(got).toBe('ERR ECONNRESET');
  });
});

async function udpBackend(name: string): Promise<number> {
  const s = dgram.createSocket('udp4');
  s.on('message', (m, r) => s.send(`${name}:${m}`, r.port, r.address));
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  cleanups.push(() => s.close());
  return s.address().port;
}

/** One client socket (fixed source port) sending and awaiting replies. */
async function udpClient(): Promise<{ ask: (port: number, m: string) => Promise<string>; close: () => void }> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  cleanups.push(() => s.close());
  return {
    ask: (port, m) => new Promise((resolve) => {
      const t = setTimeout(() => (s.off('message', on), resolve('timeout')), 500);
      const on = (msg: Buffer, r: dgram.RemoteInfo) => {
        clearTimeout(t);
        s.off('message', on);
        resolve(r.port === port ? String(msg) : `from wrong port ${r.port}`);
      };
      s.on('message', on);
      s.send(m, port, '127.0.0.1');
    }),
    close: () => s.close(),
  };
}

describe('UDP forwarding', () => {
  it('one session per client address:port, replies from the listener port; new clients round-robin', async () => {
    const r = router([target(await udpBackend('a')), target(await udpBackend('b'))]);
    // The sessions' idle timers run on the test's clock; the sockets stay real.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const l = new UdpListener(spec('UDP'), r, log, budget(), 200);
      await l.listen();
      cleanups.push(() => l.close());
      const c1 = await udpClient();
      const c2 = await udpClient();
      const port = l.boundPort();
      expect([await c1.ask(port, '1'), await c1.ask(port, '2'), await c2.ask(port, '3'), await c1.ask(port, '4')]).toEqual(['a:1', 'a:2', 'b:3', 'a:4']);
      expect(l.sessionCount).toBe(2);
      vi.advanceTimersByTime(199);
      expect(l.sessionCount).toBe(2);
      vi.advanceTimersByTime(1); // the idle timeout
      expect(l.sessionCount).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a source outside the listener\'s source ranges is dropped: no session, no reply', async () => {
    const r = router([target(await udpBackend('a'))]);
    const denied = new UdpListener(spec('UDP', ['10.0.0.0/8']), r, log, budget());
    const allowed = new UdpListener(spec('UDP', ['127.0.0.1/32']), r, log, budget());
    for (const l of [denied, allowed]) {
      await l.listen();
      cleanups.push(() => l.close());
    }
    const c = await udpClient();
    expect(await c.ask(denied.boundPort(), 'x')).toBe('timeout');
    expect(denied.sessionCount).toBe(0);
    expect(await c.ask(allowed.boundPort(), 'y')).toBe('a:y');
  });

  it('no endpoint: datagrams are dropped; a removed endpoint\'s session is closed and the next datagram moves on', async () => {
    const a = target(await udpBackend('a'));
    const b = target(await udpBackend('b'));
    const r = router([]);
    const l = new UdpListener(spec('UDP'), r, log, budget());
    await l.listen();
    cleanups.push(() => l.close());
    const c = await udpClient();
    expect(await c.ask(l.boundPort(), 'x')).toBe('timeout');
    r.b.update([a, b], 0);
    expect(await c.ask(l.boundPort(), 'y')).toBe('a:y');
    r.b.update([b], 0);
    expect(await c.ask(l.boundPort(), 'z')).toBe('a:z'); // the session lives until the sync prunes it
    expect(l.prune()).toBe(1);
    expect(await c.ask(l.boundPort(), 'w')).toBe('b:w');
  });

  it('a service at its session budget drops new sessions, keeps serving the ones it has, and takes new ones once one ends', async () => {
    const r = router([target(await udpBackend('a'))]);
    let full = 0;
    const shared = new SessionBudget(2, () => full++);
    // Two listeners of one service share its budget.
    const l1 = new UdpListener(spec('UDP'), r, log, () => shared);
    const l2 = new UdpListener(spec('UDP'), r, log, () => shared);
    for (const l of [l1, l2]) {
      await l.listen();
      cleanups.push(() => l.close());
    }
    const [c1, c2, c3] = [await udpClient(), await udpClient(), await udpClient()];
    expect(await c1.ask(l1.boundPort(), '1')).toBe('a:1');
    expect(await c2.ask(l2.boundPort(), '2')).toBe('a:2');
    // The third client's datagram is dropped. c1's next datagram, sent after it on the same
    // listener socket, is answered, so the third one has been handled by then: no waiting.
    void c3.ask(l1.boundPort(), '3');
    expect(await c1.ask(l1.boundPort(), '4')).toBe('a:4');
    expect(l1.sessionCount + l2.sessionCount).toBe(2);
    expect(shared.count).toBe(2);
    expect(full).toBe(1);
    l2.close(); // its session ends and gives its share back
    expect(shared.count).toBe(1);
    expect(await c3.ask(l1.boundPort(), '5')).toBe('a:5');
    expect(shared.count).toBe(2);
  });
});
