// The client's bookkeeping against a fake kernel: which answers settle a commit or a dump, how
// errors are attributed, timeouts, refs. The real kernel is in netns-tests/nft-netlink.test.ts.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { NftNetlink, NftNetlinkError, type NetlinkSocketLike } from './client.js';
import { encodeBatch, type Op } from './messages.js';
import { ipv4 } from './values.js';
import { NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP_INTR, NLM_F_MULTI, parseMessages, type NlMessage } from './wire.js';

type Kernel = (msgs: NlMessage[], reply: (...datagrams: Buffer[]) => void) => void;

class FakeSocket extends EventEmitter {
  refs = 0;
  sent: Buffer[] = [];
  sendError: (Error & { errno: number; code: string }) | undefined;
  constructor(
    private readonly kernel: Kernel,
    readonly sndbuf = 1 << 20,
  ) {
    super();
  }
  ref() {
    this.refs = 1;
  }
  unref() {
    this.refs = 0;
  }
  getSendBufferSize() {
    return this.sndbuf;
  }
  close() {}
  send(buf: Uint8Array, _opts: unknown, cb?: (err?: any) => void) {
    this.sent.push(Buffer.from(buf));
    setImmediate(() => {
      cb?.(this.sendError);
      if (!this.sendError) this.kernel(parseMessages(Buffer.from(buf)), (...ds) => ds.forEach((d) => this.emit('message', d, { port: 0, groups: 0 })));
    });
  }
}

function header(len: number, type: number, flags: number, seq: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt32LE(len, 0);
  b.writeUInt16LE(type, 4);
  b.writeUInt16LE(flags, 6);
  b.writeUInt32LE(seq, 8);
  return b;
}
function ack(req: NlMessage, errno = 0): Buffer {
  const e = Buffer.alloc(4);
  e.writeInt32LE(-errno);
  return Buffer.concat([header(36, NLMSG_ERROR, 0, req.seq), e, header(16 + req.payload.length, req.type, req.flags, req.seq)]);
}
function done(seq: number): Buffer {
  return Buffer.concat([header(20, NLMSG_DONE, NLM_F_MULTI, seq), Buffer.alloc(4)]);
}
/** A NEWSETELEM dump part with these keys. */
function part(seq: number, keys: string[], flags = NLM_F_MULTI): Buffer {
  const op: Op = { op: 'newsetelem', family: 'ip', table: 't', set: 's', elements: keys.map((k) => ({ key: ipv4(k) })) };
  const m = Buffer.from(parseMessages(encodeBatch([op], 1).buffer)[1]!.payload);
  return Buffer.concat([header(16 + m.length, 0x0a0c, flags, seq), m]);
}
const chain = (c: string): Op => ({ op: 'newchain', family: 'ip', table: 't', chain: c });
const client = (kernel: Kernel, opts: { sndbuf?: number; timeoutMs?: number } = {}) => {
  const sock = new FakeSocket(kernel, opts.sndbuf);
  return { sock, nl: NftNetlink.withSocket(sock as unknown as NetlinkSocketLike, { timeoutMs: opts.timeoutMs ?? 2000 }) };
};
const ops = (msgs: NlMessage[]) => msgs.slice(1, -1);
/** What the kernel answers a batch whose op messages get these errnos (0: applied): an error for
 *  each refused one and an ACK for each that asked for one, in message order. */
const answers = (msgs: NlMessage[], errno: (i: number) => number = () => 0) =>
  ops(msgs).flatMap((x, i) => (errno(i) !== 0 || x.flags & NLM_F_ACK ? [ack(x, errno(i))] : []));

describe('commit', () => {
  it('resolves when the last op message, the only one that asks, is acknowledged; refs the socket only meanwhile', async () => {
    let replies = 0;
    const { sock, nl } = client((m, reply) => {
      const a = answers(m);
      replies += a.length;
      reply(...a);
    });
    expect(sock.refs).toBe(0);
    const p = nl.commit([chain('a'), chain('b')]);
    expect(sock.refs).toBe(1);
    await p;
    expect(sock.refs).toBe(0);
    expect(replies).toBe(1);
  });

  it('names the first refused op; waits for the other answers; the errno is on the error', async () => {
    const { nl } = client((m, reply) => reply(...answers(m, (i) => (i === 1 ? 2 : i === 2 ? 16 : 0))));
    const err = (await nl.commit([chain('a'), chain('b'), chain('c')]).catch((e) => e)) as NftNetlinkError;
    expect(err).toBeInstanceOf(NftNetlinkError);
    expect(err.message).toBe('add chain ip t b: ENOENT (op 2 of 3; nothing applied)');
    expect([err.errno, err.code, err.opIndex]).toEqual([2, 'ENOENT', 1]);
  });

  it('an error addressed to BATCH_BEGIN (a failed commit, sent before the op ACKs) fails the whole transaction', async () => {
    const { nl } = client((m, reply) => reply(ack(m[0]!, 105), ...answers(m)));
    const err = (await nl.commit([chain('a')]).catch((e) => e)) as NftNetlinkError;
    expect(err.message).toMatch(/^nf_tables transaction \(add chain ip t a\) failed: ENOBUFS/);
    expect(err.opIndex).toBeUndefined();
  });

  it('times out instead of hanging, and refuses a batch the socket cannot send', async () => {
    const silent = client(() => {}, { timeoutMs: 50 });
    await expect(silent.nl.commit([chain('a')])).rejects.toThrow('add chain ip t a: no answer from the kernel in 50 ms (outcome unknown)');
    expect(silent.sock.refs).toBe(0);
    const small = client(() => {}, { sndbuf: 100 });
    await expect(small.nl.commit([chain('a'), chain('b'), chain('c')])).rejects.toThrow(/is 148 bytes, more than the 68 the socket can send/);
    expect(small.sock.sent).toHaveLength(0);
  });

  it('a failed send rejects with its errno; a socket error fails what is pending', async () => {
    const a = client(() => {});
    a.sock.sendError = Object.assign(new Error('sendmsg failed'), { errno: 90, code: 'EMSGSIZE' });
    const err = (await a.nl.commit([chain('a')]).catch((e) => e)) as NftNetlinkError;
    expect(err.message).toMatch(/add chain ip t a: sending \d+ bytes failed: EMSGSIZE/);
    expect(err.errno).toBe(90);
    const b = client(() => {});
    const p = b.nl.commit([chain('a')]);
    b.sock.emit('error', Object.assign(new Error('recvmsg: No buffer space available'), { errno: 105 }));
    await expect(p).rejects.toThrow(/outcome of pending requests unknown/);
  });
});

describe('dumps', () => {
  it('collects parts up to DONE; restarts when a part says NLM_F_DUMP_INTR or keys repeat', async () => {
    let calls = 0;
    const { nl } = client((m, reply) => {
      const seq = m[0]!.seq;
      calls++;
      if (calls === 1) reply(part(seq, ['10.0.0.1'], NLM_F_MULTI | NLM_F_DUMP_INTR), done(seq));
      else if (calls === 2) reply(part(seq, ['10.0.0.1', '10.0.0.2']), part(seq, ['10.0.0.2']), done(seq));
      else reply(part(seq, ['10.0.0.1', '10.0.0.2']), part(seq, ['10.0.0.3']), done(seq));
    });
    const els = await nl.listSetElements('ip', 't', 's');
    expect(els.map((e) => [...e.key].join('.'))).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    expect(calls).toBe(3);
  });

  it('an error ends a dump; tableExists turns ENOENT into false', async () => {
    const { nl } = client((m, reply) => reply(ack(m[0]!, 2)));
    await expect(nl.listChains('ip', 't')).rejects.toThrow('list chains ip t: ENOENT');
    expect(await nl.tableExists('ip', 't')).toBe(false);
  });
});
