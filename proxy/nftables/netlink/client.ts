// An nf_tables client over one NETLINK_NETFILTER socket: atomic transactions and dumps, without
// `nft` (which downloads the whole ruleset first on every call). The only file that imports the
// `netlink` package (unmaintained since 2023): its raw socket is all we use, so replacing it
// means replacing this file's socket calls only.
import netlink from 'netlink';
import type { MessageInfo, RawNetlinkSocket } from 'netlink';
import {
  BATCH_OVERHEAD,
  decodeChain,
  decodeGen,
  decodeRule,
  decodeSet,
  decodeSetElems,
  describeOp,
  encodeBatch,
  encodeDump,
  encodeGetGen,
  encodeGetTable,
  encodedSize as opEncodedSize,
  splitOps,
  type ChainInfo,
  type DumpedSetElement,
  type NftFamily,
  type Op,
  type RuleInfo,
  type SetInfo,
} from './messages.js';
import { NFT_MSG, NLMSG_DONE, NLMSG_ERROR, nftType, NLMSG_NOOP, NLM_F_DUMP_INTR, decodeDoneErrno, decodeError, errnoName, parseMessages, type NlMessage } from './wire.js';

const NETLINK_NETFILTER = 12;
const DEFAULT_BUFFER = 4 << 20; // net.core.{w,r}mem_max on these machines; the kernel doubles it
const DEFAULT_TIMEOUT_MS = 10_000;
// Each datagram is read into a buffer this large instead of being peeked at first: the kernel
// sizes a dump's datagrams by the largest read buffer it has seen (up to 32 KiB), so with 1-byte
// peeks it stays at one page and a 100k-element dump, restarting its walk of the set for every
// datagram, took 13 s instead of 1. The largest datagram the kernel sends us is the error ACK
// of our largest message (an element list of up to 64 KiB) echoed whole.
const RECV_MESSAGE_BYTES = 128 << 10;
const DUMP_RETRIES = 5;
// netlink_sendmsg refuses a datagram longer than sk_sndbuf - 32 with EMSGSIZE.
const SNDBUF_SLACK = 32;

export class NftNetlinkError extends Error {
  override readonly name = 'NftNetlinkError';
  constructor(
    message: string,
    /** Positive errno from the kernel (or of the failed send); undefined for timeouts. */
    readonly errno: number | undefined,
    /** Index in `ops` of the op the kernel refused (commit only; undefined: the whole batch). */
    readonly opIndex?: number,
    /** The kernel's extended-ACK text, when it sent one. */
    readonly kernelMessage?: string,
  ) {
    super(message);
  }

  get code(): string | undefined {
    return this.errno === undefined ? undefined : errnoName(this.errno);
  }
}

/** What this client uses of the `netlink` package's raw socket (a test can pass a fake). */
export type NetlinkSocketLike = Pick<RawNetlinkSocket, 'on' | 'ref' | 'unref' | 'send' | 'getSendBufferSize' | 'close'>;

interface Pending {
  /** Called for each message answering this request; returns true when the request is done. */
  onMessage(msg: NlMessage): boolean;
  fail(err: Error): void;
  timer: NodeJS.Timeout;
  seqs: number[];
  timeoutMs: number;
  label: string;
}

export interface NftNetlinkOptions {
  sendBufferBytes?: number;
  recvBufferBytes?: number;
  /** Time without any answer after which a request fails (default 10 s). */
  timeoutMs?: number;
}

export class NftNetlink {
  private readonly pending = new Map<number, Pending>();
  private seq: number;
  private closed = false;
  private readonly timeoutMs: number;

  private constructor(
    private readonly socket: NetlinkSocketLike,
    opts: NftNetlinkOptions,
  ) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    // Sequence numbers only need to be unique among our own requests on this socket.
    this.seq = (Date.now() & 0x3fffffff) + 1;
    socket.on('message', (buf: Buffer, rinfo: MessageInfo) => this.receive(buf, rinfo));
    socket.on('truncatedMessage', () => this.failAll(new NftNetlinkError('netlink: a reply was truncated; outcome of pending requests unknown', undefined)));
    socket.on('error', (err: Error & { errno?: number }) => {
      // ENOBUFS: the kernel dropped replies (receive buffer full); anything pending is unknowable.
      const errno = typeof err.errno === 'number' ? Math.abs(err.errno) : undefined;
      this.failAll(new NftNetlinkError(`netlink socket: ${err.message}; outcome of pending requests unknown`, errno));
    });
    socket.unref();
  }

  static open(opts: NftNetlinkOptions = {}): NftNetlink {
    const socket = new netlink.RawNetlinkSocket(NETLINK_NETFILTER, {
      messagePeeking: false,
      msgBufferSize: RECV_MESSAGE_BYTES,
      sendBufferSize: opts.sendBufferBytes ?? DEFAULT_BUFFER,
      recvBufferSize: opts.recvBufferBytes ?? DEFAULT_BUFFER,
    });
    return new NftNetlink(socket, opts);
  }

  /** A client on a socket made elsewhere (tests: a fake kernel). */
  static withSocket(socket: NetlinkSocketLike, opts: NftNetlinkOptions = {}): NftNetlink {
    return new NftNetlink(socket, opts);
  }

  /** The largest batch `commit` can send: the socket's send buffer (as the kernel sized it,
   *  twice what was asked for, capped by net.core.wmem_max) less the kernel's slack. */
  get maxTransactionBytes(): number {
    return this.socket.getSendBufferSize() - SNDBUF_SLACK;
  }

  /** Bytes `op` adds to a batch (BATCH_BEGIN/END not counted: see `batchBytes`). */
  encodedSize(op: Op): number {
    return opEncodedSize(op);
  }

  /** Bytes of a whole batch of `ops`, as `commit` would send it. */
  batchBytes(ops: readonly Op[]): number {
    return ops.reduce((n, op) => n + opEncodedSize(op), BATCH_OVERHEAD);
  }

  /** `ops` cut into batches that each fit `maxTransactionBytes` (see messages.ts splitOps: only
   *  for changes that are correct at every cut). */
  split(ops: readonly Op[]): Op[][] {
    return splitOps(ops, this.maxTransactionBytes);
  }

  /**
   * Sends `ops` as one transaction and waits for the kernel's answer: an error for each message
   * it refused, then the ACK of the last one. On any error the kernel applies none of it, and
   * this rejects with an NftNetlinkError naming the first refused op.
   */
  commit(ops: readonly Op[]): Promise<void> {
    if (ops.length === 0) return Promise.resolve();
    let batch: ReturnType<typeof encodeBatch>;
    try {
      batch = encodeBatch(ops, this.nextSeqs(0));
    } catch (err) {
      return Promise.reject(err);
    }
    const { buffer, seqs, beginSeq, endSeq } = batch;
    this.seq = endSeq + 1;
    const max = this.maxTransactionBytes;
    if (buffer.length > max) {
      return Promise.reject(
        new NftNetlinkError(
          `nf_tables transaction of ${ops.length} ops is ${buffer.length} bytes, more than the ${max} the socket can send; split it (NftNetlink.split) or open with a larger sendBufferBytes`,
          undefined,
        ),
      );
    }
    const opOf = (seq: number): number => {
      let lo = 0;
      let hi = seqs.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (seqs[mid]! <= seq) lo = mid;
        else hi = mid - 1;
      }
      return lo;
    };
    const allSeqs: number[] = [];
    for (let s = beginSeq; s <= endSeq; s++) allSeqs.push(s);
    // The last op message is the only one that asks for an ACK (encodeBatch); errors of the
    // others come before it.
    const last = endSeq - 1;
    let firstError: NftNetlinkError | undefined;
    const label = ops.length === 1 ? describeOp(ops[0]!) : `${describeOp(ops[0]!)} and ${ops.length - 1} more`;
    return this.start(label, allSeqs, buffer, (msg, done, fail) => {
      if (msg.type !== NLMSG_ERROR) return; // nothing else answers a batch message
      const e = decodeError(msg);
      if (e.request.seq === beginSeq || e.request.seq === endSeq) {
        // Addressed to the batch itself: the commit failed as a whole (or the batch was refused).
        return fail(new NftNetlinkError(`nf_tables transaction (${label}) failed: ${errnoName(e.errno)}${e.extMessage ? ` (${e.extMessage})` : ''}`, e.errno, undefined, e.extMessage));
      }
      if (e.request.seq <= beginSeq || e.request.seq > last) return;
      if (e.errno !== 0) {
        const i = opOf(e.request.seq);
        // The kernel reports every failing message; the first op in order is the one to name.
        if (!firstError || i < (firstError.opIndex ?? Infinity)) {
          firstError = new NftNetlinkError(
            `${describeOp(ops[i]!)}: ${errnoName(e.errno)}${e.extMessage ? ` (${e.extMessage})` : ''} (op ${i + 1} of ${ops.length}; nothing applied)`,
            e.errno,
            i,
            e.extMessage,
          );
        }
      }
      if (e.request.seq === last) (firstError ? fail(firstError) : done(undefined));
    });
  }

  /** The ruleset generation: changes with every committed transaction, by anyone. */
  async getGeneration(): Promise<number> {
    const msgs = await this.request('get generation', encodeGetGen);
    const gen = msgs.find((m) => m.type === nftType(NFT_MSG.NEWGEN));
    if (!gen) throw new NftNetlinkError('get generation: no NEWGEN in the reply', undefined);
    return decodeGen(gen);
  }

  async tableExists(family: NftFamily, table: string): Promise<boolean> {
    try {
      await this.request(`get table ${family} ${table}`, (seq) => encodeGetTable(family, table, seq));
      return true;
    } catch (err) {
      if (err instanceof NftNetlinkError && err.code === 'ENOENT') return false;
      throw err;
    }
  }

  /** The chains of one table (base chains carry their hook). */
  listChains(family: NftFamily, table: string): Promise<ChainInfo[]> {
    // The kernel's chain dump filters by family only.
    return this.dump(`list chains ${family} ${table}`, { kind: 'chains', family, table }, (m, out: ChainInfo[]) => {
      const c = decodeChain(m);
      if (c.table === table) out.push(c);
    });
  }

  listSets(family: NftFamily, table: string): Promise<SetInfo[]> {
    return this.dump(`list sets ${family} ${table}`, { kind: 'sets', family, table }, (m, out: SetInfo[]) => {
      const s = decodeSet(m);
      if (s.table === table) out.push(s);
    });
  }

  /** Every rule of one table, in chain order, with its handle and raw expressions. */
  listRules(family: NftFamily, table: string): Promise<RuleInfo[]> {
    return this.dump(`list rules ${family} ${table}`, { kind: 'rules', family, table }, (m, out: RuleInfo[]) => {
      const r = decodeRule(m);
      if (r.table === table) out.push(r);
    });
  }

  /**
   * The elements of one set. A hash set's dump restarts its walk for every datagram, skipping
   * what it already sent; while the kernel resizes the table (right after a large insert) the
   * walk order changes and the dump repeats some elements and misses as many (seen here: 1,592
   * of 100k), without NLM_F_DUMP_INTR. A repeated key is that sign: the dump is read again.
   */
  listSetElements(family: NftFamily, table: string, set: string): Promise<DumpedSetElement[]> {
    return this.dump(
      `list set ${family} ${table} ${set}`,
      { kind: 'elements', family, table, set },
      (m, out: DumpedSetElement[]) => {
        for (const e of decodeSetElems(m).elements) out.push(e);
      },
      (out) => {
        const seen = new Set<string>();
        for (const e of out) seen.add(`${Buffer.from(e.key.buffer, e.key.byteOffset, e.key.length).toString('latin1')}/${e.flags ?? 0}`);
        return seen.size === out.length;
      },
    );
  }

  /** Fails whatever is pending and closes the socket. */
  close(): void {
    if (this.closed) return;
    this.failAll(new NftNetlinkError('netlink socket closed', undefined));
    this.closed = true;
    this.socket.close();
  }

  // -------------------------------------------------------------------------------------------

  private nextSeqs(n: number): number {
    if (this.seq + n + 1 >= 0xffffffff) this.seq = 1;
    const s = this.seq;
    this.seq += n;
    return s;
  }

  /** A non-dump request: its replies, up to the ACK. */
  private request(label: string, encode: (seq: number) => Buffer): Promise<NlMessage[]> {
    const seq = this.nextSeqs(1);
    const replies: NlMessage[] = [];
    return this.start(label, [seq], encode(seq), (msg, done, fail) => {
      if (msg.type === NLMSG_ERROR) {
        const e = decodeError(msg);
        if (e.errno === 0) done(replies);
        else fail(new NftNetlinkError(`${label}: ${errnoName(e.errno)}${e.extMessage ? ` (${e.extMessage})` : ''}`, e.errno, undefined, e.extMessage));
      } else {
        replies.push(msg);
      }
    });
  }

  /** A dump, decoded message by message; restarted when the kernel says it was interrupted by a
   *  concurrent change (NLM_F_DUMP_INTR: the parts may not be from one generation) or when
   *  `consistent` says the result cannot be right. */
  private async dump<T>(label: string, what: Parameters<typeof encodeDump>[0], each: (m: NlMessage, out: T[]) => void, consistent?: (out: T[]) => boolean): Promise<T[]> {
    for (let attempt = 0; ; attempt++) {
      const seq = this.nextSeqs(1);
      const out: T[] = [];
      let interrupted = false;
      await this.start(label, [seq], encodeDump(what, seq), (msg, done, fail) => {
        if (msg.flags & NLM_F_DUMP_INTR) interrupted = true;
        if (msg.type === NLMSG_DONE) {
          const errno = decodeDoneErrno(msg);
          if (errno) fail(new NftNetlinkError(`${label}: ${errnoName(errno)}`, errno));
          else done(undefined);
        } else if (msg.type === NLMSG_ERROR) {
          const e = decodeError(msg);
          fail(new NftNetlinkError(`${label}: ${errnoName(e.errno)}${e.extMessage ? ` (${e.extMessage})` : ''}`, e.errno, undefined, e.extMessage));
        } else if (msg.type !== NLMSG_NOOP) {
          try {
            each(msg, out);
          } catch (err) {
            fail(new NftNetlinkError(`${label}: undecodable reply: ${(err as Error).message}`, undefined));
          }
        }
      });
      if (!interrupted && (!consistent || consistent(out))) return out;
      if (attempt + 1 >= DUMP_RETRIES) throw new NftNetlinkError(`${label}: ${interrupted ? 'interrupted by concurrent changes' : 'inconsistent (repeated elements)'} ${DUMP_RETRIES} times in a row`, undefined);
      if (!interrupted) await new Promise((r) => setTimeout(r, 50 * (attempt + 1))); // let a resize finish
    }
  }

  /** Registers `seqs`, sends `buffer`, and settles when `handle` says so, on a send error, or
   *  after `timeoutMs` without an answer. */
  private start<R>(label: string, seqs: number[], buffer: Buffer, handle: (msg: NlMessage, done: (r: R) => void, fail: (e: Error) => void) => void): Promise<R> {
    if (this.closed) return Promise.reject(new NftNetlinkError(`${label}: netlink socket closed`, undefined));
    return new Promise<R>((resolve, reject) => {
      let settled = false;
      const finish = () => {
        settled = true;
        clearTimeout(p.timer);
        for (const s of seqs) if (this.pending.get(s) === p) this.pending.delete(s);
        if (this.pending.size === 0 && !this.closed) this.socket.unref();
      };
      const done = (r: R) => {
        if (settled) return;
        finish();
        resolve(r);
      };
      const fail = (e: Error) => {
        if (settled) return;
        finish();
        reject(e);
      };
      const onTimeout = () => fail(new NftNetlinkError(`${label}: no answer from the kernel in ${this.timeoutMs} ms (outcome unknown)`, undefined));
      const p: Pending = {
        label,
        seqs,
        timeoutMs: this.timeoutMs,
        timer: setTimeout(onTimeout, this.timeoutMs),
        onMessage: (msg) => {
          p.timer.refresh();
          handle(msg, done, fail);
          return settled;
        },
        fail,
      };
      for (const s of seqs) this.pending.set(s, p);
      this.socket.ref();
      this.socket.send(buffer, { port: 0 }, (err) => {
        if (!err) return;
        const errno = typeof err.errno === 'number' ? Math.abs(err.errno) : undefined;
        fail(new NftNetlinkError(`${label}: sending ${buffer.length} bytes failed: ${err.code ?? err.message}`, errno));
      });
    });
  }

  private receive(buf: Buffer, rinfo: MessageInfo): void {
    if (rinfo.port !== 0) return; // only the kernel answers us
    let msgs: NlMessage[];
    try {
      msgs = parseMessages(buf);
    } catch (err) {
      this.failAll(new NftNetlinkError(`netlink: ${(err as Error).message}`, undefined));
      return;
    }
    for (const msg of msgs) {
      // Replies, ACKs, errors and a dump's parts all carry the seq of the request they answer.
      this.pending.get(msg.seq)?.onMessage(msg);
    }
  }

  private failAll(err: Error): void {
    for (const p of new Set(this.pending.values())) p.fail(err);
  }
}
