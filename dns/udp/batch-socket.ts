// A DNS UDP socket read and written in batches through udp-batch.c: every datagram waiting (up to
// 64) comes in one recvmmsg and one call into JavaScript, and the batch's immediate answers leave
// in one sendmmsg. Per query this costs half of node:dgram's path (bench/dns, the two floor rows),
// which on this path is more than the DNS work itself.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { formatIPv6Groups } from '../../common/ip-bigint.js';
import type { Peer } from '../querylog.js';
import { ipBytes } from '../wire.js';
import type { UdpQueryHandler, UdpSocket, UdpSocketOptions } from './socket.js';

interface Binding {
  readonly BATCH: number;
  readonly META: number;
  open(v6: boolean, host: string, port: number, reusePort: boolean, bufferBytes: number, onBatch: (data: Buffer, count: number) => void): [Handle, ArrayBuffer, number];
  send(h: Handle, replies: Buffer[], records: Uint8Array, count: number): number;
  sendTo(h: Handle, reply: Buffer, address: Uint8Array, port: number, scope: number): boolean;
  close(h: Handle): void;
  ifName(index: number): string;
}
declare const handleBrand: unique symbol;
type Handle = { readonly [handleBrand]: true };

/** The binding beside this module (dist/dns/udp/, where `make build` compiles it) or, when
 *  running from the TypeScript sources (the unit tests), in dist/ of the same checkout. */
function load(): { binding?: Binding; why?: string } {
  const require = createRequire(import.meta.url);
  const here = fileURLToPath(new URL('.', import.meta.url));
  const candidates = ['./udp-batch.node', ...(here.includes('/dist/') ? [] : ['../../dist/dns/udp/udp-batch.node'])];
  let why = '';
  for (const c of candidates) {
    try {
      return { binding: require(c) as Binding };
    } catch (err) {
      why ||= (err as Error).message.split('\n')[0];
    }
  }
  return { why };
}

const loaded = load();

/** Why batched UDP is unavailable here (the binding is not built), or undefined. */
export const batchUnavailable: string | undefined = loaded.binding ? undefined : `udp-batch.node: ${loaded.why}`;

// Field offsets of a datagram's record in the binding's `meta` buffer (udp-batch.c).
const LEN = 0;
const FAMILY = 4;
const PORT = 6;
const ADDR = 8;
const SCOPE = 24;

/** IPv4 sender texts by address: clients are few and ask often, and the text is what a query
 *  log, an ACL and autopath's pod lookup need. Emptied when it grows past a bound. */
const v4Text = new Map<number, string>();
const V4_TEXT_MAX = 65536;
const ifNames = new Map<number, string>();

function senderText(b: Binding, meta: Uint8Array, view: DataView, at: number): string {
  if (view.getUint16(at + FAMILY, true) === 4) {
    const key = view.getUint32(at + ADDR, false);
    let s = v4Text.get(key);
    if (s === undefined) {
      if (v4Text.size >= V4_TEXT_MAX) v4Text.clear();
      s = `${meta[at + ADDR]}.${meta[at + ADDR + 1]}.${meta[at + ADDR + 2]}.${meta[at + ADDR + 3]}`;
      v4Text.set(key, s);
    }
    return s;
  }
  const groups: number[] = [];
  for (let g = 0; g < 8; g++) groups.push(view.getUint16(at + ADDR + 2 * g, false));
  const text = formatIPv6Groups(groups);
  const scope = view.getUint32(at + SCOPE, true);
  if (scope === 0) return text;
  let name = ifNames.get(scope);
  if (name === undefined) ifNames.set(scope, (name = b.ifName(scope) || String(scope)));
  return `${text}%${name}`;
}

export interface BatchSocket extends UdpSocket {
  /** Sends a datagram that answers nothing read (a client's first question); false if refused. */
  sendTo(msg: Buffer, port: number, address: string): boolean;
}

export async function openBatchSocket(opts: UdpSocketOptions, onQuery: UdpQueryHandler): Promise<BatchSocket> {
  const b = loaded.binding;
  if (!b) throw new Error(batchUnavailable);
  const replies: Buffer[] = new Array(b.BATCH);
  const records = new Uint8Array(b.BATCH);
  let meta: Uint8Array;
  let view: DataView;
  let handle: Handle;
  const onBatch = (data: Buffer, count: number) => {
    let offset = 0;
    let ready = 0;
    for (let i = 0; i < count; i++) {
      const at = i * b.META;
      const len = view.getUint32(at + LEN, true);
      if (len === 0) continue; // truncated: larger than any query
      const msg = data.subarray(offset, offset + len);
      offset += len;
      const from: Peer = { address: senderText(b, meta, view, at), port: view.getUint16(at + PORT, true) };
      const r = onQuery(msg, from);
      if (r === undefined) continue;
      if (Buffer.isBuffer(r)) {
        replies[ready] = r;
        records[ready++] = i;
        continue;
      }
      // Answered later (forwarded): the batch's records are gone by then, so the address goes along.
      const addressBytes = view.getUint16(at + FAMILY, true) === 6 ? 16 : 4;
      const address = meta.slice(at + ADDR, at + ADDR + addressBytes);
      const port = from.port;
      const scope = view.getUint32(at + SCOPE, true);
      void r.then((reply) => {
        if (reply && !closed) b.sendTo(handle, reply, address, port, scope);
      });
    }
    if (ready > 0) b.send(handle, replies, records, ready);
    replies.fill(undefined as unknown as Buffer, 0, ready); // the replies can go
  };
  let closed = false;
  const v6 = opts.host.includes(':');
  // The binding throws synchronously with the errno's name as `code` (EADDRINUSE, EADDRNOTAVAIL…),
  // as node:dgram's bind reports it.
  const [h, metaBuffer, port] = b.open(v6, opts.host, opts.port, opts.reusePort, opts.bufferBytes, onBatch);
  handle = h;
  meta = new Uint8Array(metaBuffer);
  view = new DataView(metaBuffer);
  return {
    port,
    sendTo: (msg, toPort, address) => !closed && b.sendTo(handle, msg, ipBytes(address), toPort, 0),
    close: async () => {
      if (closed) return;
      closed = true;
      b.close(handle);
    },
  };
}
