// Who else changed our tables. The ruleset generation moves with every transaction anyone
// commits in the network namespace — iptables-nft under kubelet and CNI plugins, firewalld, other
// agents — so "the generation moved" alone would make every reconcile read our whole table back
// (at 100k services, minutes of dump: the kernel restarts its walk of a hash set for each reply
// datagram). Subscribed to the namespace's nf_tables notifications, the monitor sees every
// committed message with the port of the socket that sent it and the table it names, each
// transaction closed by NEWGEN: only a transaction by someone else that named our table marks it.
// When notifications were lost (the receive buffer overflowed) nothing can be ruled out.
import type { NetlinkEventSocket } from './client.js';
import { NFT_MSG, nfAttrs, nftType, parseMessages, readStr, readU32, type NlMessage, NFTA_GEN } from './wire.js';
import { decodeSetElems, familyName, type DumpedSetElement, type NftFamily } from './messages.js';

/** An element of our table as others left it: its last notification (undefined: deleted). */
export type ElementState = DumpedSetElement | undefined;

/** What others did to one family's table: nothing; only elements (set → element id → what the
 *  last notification left); or more (rules, chains, sets, the table) or unknowable. */
export type Touched = { kind: 'untouched' } | { kind: 'elements'; sets: Map<string, Map<string, { key: Uint8Array; keyEnd?: Uint8Array; now: ElementState }>> } | { kind: 'touched' } | { kind: 'unknown' };

/** Beyond this many elements touched, a read-back is the cheaper repair. */
const MAX_TRACKED_ELEMENTS = 10_000;

/** An element's identity (key and key end) as a string. */
export function elementId(e: { key: Uint8Array; keyEnd?: Uint8Array }): string {
  const hex = (b?: Uint8Array) => (b ? Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex') : '');
  return `${hex(e.key)}-${hex(e.keyEnd)}`;
}

interface FamilyTouch {
  structural: boolean;
  count: number;
  sets: Map<string, Map<string, { key: Uint8Array; keyEnd?: Uint8Array; now: ElementState }>>;
}

export class NftMonitor {
  /** What others changed in our table since `take`, per family (notifications arrive after the
   *  transaction committed, so they count at once; NEWGEN only marks how far we have read). */
  private touched = new Map<NftFamily, FamilyTouch>();
  private lost = false;
  /** The generation of the last NEWGEN seen. */
  private seenGen?: number;

  constructor(private readonly socket: NetlinkEventSocket, private readonly table: string, private readonly ours: () => number | undefined) {
    socket.on('message', (buf: Buffer) => {
      let msgs: NlMessage[];
      try {
        msgs = parseMessages(buf);
      } catch {
        this.lost = true;
        return;
      }
      for (const m of msgs) this.onMessage(m);
    });
    // ENOBUFS: notifications were dropped.
    socket.on('error', () => {
      this.lost = true;
    });
  }

  private onMessage(m: NlMessage): void {
    if (m.type === nftType(NFT_MSG.NEWGEN)) {
      this.seenGen = readU32(nfAttrs(m).attrs.get(NFTA_GEN.ID));
      return;
    }
    if (m.type >> 8 !== nftType(0) >> 8) return;
    if (m.pid !== 0 && m.pid === this.ours()) return;
    const { family, attrs } = nfAttrs(m);
    const f = familyName(family);
    // Attribute 1 is the table's name in every kind of message (table, chain, rule, set, element).
    if (!f || readStr(attrs.get(1)) !== this.table) return;
    let t = this.touched.get(f);
    if (!t) this.touched.set(f, (t = { structural: false, count: 0, sets: new Map() }));
    const type = m.type & 0xff;
    if (t.structural || (type !== NFT_MSG.NEWSETELEM && type !== NFT_MSG.DELSETELEM)) {
      t.structural = true;
      return;
    }
    let reply;
    try {
      reply = decodeSetElems(m);
    } catch {
      t.structural = true;
      return;
    }
    let set = t.sets.get(reply.set);
    if (!set) t.sets.set(reply.set, (set = new Map()));
    for (const e of reply.elements) {
      set.set(elementId(e), { key: e.key, ...(e.keyEnd ? { keyEnd: e.keyEnd } : {}), now: type === NFT_MSG.NEWSETELEM ? e : undefined });
      if (++t.count > MAX_TRACKED_ELEMENTS) t.structural = true;
    }
  }

  /**
   * Whether someone else changed `family`'s table since the last call for it, given the
   * generation `gen` the kernel reports now. Notifications are read on the event loop, so a
   * moment is allowed for those of transactions up to `gen` to arrive; if they do not, the
   * answer is 'unknown'.
   */
  async take(family: NftFamily, gen: number, waitMs = 200): Promise<Touched> {
    const deadline = Date.now() + waitMs;
    while (this.seenGen !== gen && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    if (this.lost || this.seenGen !== gen) return { kind: 'unknown' };
    const t = this.touched.get(family);
    this.touched.delete(family);
    if (!t) return { kind: 'untouched' };
    return t.structural ? { kind: 'touched' } : { kind: 'elements', sets: t.sets };
  }

  /** Forget a loss once every family was read back. */
  resetLoss(): void {
    this.lost = false;
  }

  close(): void {
    this.socket.close();
  }
}
