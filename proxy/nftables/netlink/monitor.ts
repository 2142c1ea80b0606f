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
import { familyName, type NftFamily } from './messages.js';

export type Touched = 'untouched' | 'touched' | 'unknown';

export class NftMonitor {
  /** Families of our table named by the open (not yet closed by NEWGEN) transaction of others. */
  private open = new Set<NftFamily>();
  /** Families of our table someone else changed since `take`. */
  private touched = new Set<NftFamily>();
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
      for (const f of this.open) this.touched.add(f);
      this.open.clear();
      this.seenGen = readU32(nfAttrs(m).attrs.get(NFTA_GEN.ID));
      return;
    }
    if (m.type >> 8 !== nftType(0) >> 8) return;
    if (m.pid !== 0 && m.pid === this.ours()) return;
    const { family, attrs } = nfAttrs(m);
    const f = familyName(family);
    // Attribute 1 is the table's name in every kind of message (table, chain, rule, set, element).
    if (f && readStr(attrs.get(1)) === this.table) this.open.add(f);
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
    if (this.lost) return 'unknown';
    if (this.seenGen !== gen) return 'unknown';
    const t = this.touched.delete(family);
    return t ? 'touched' : 'untouched';
  }

  /** Forget a loss once every family was read back. */
  resetLoss(): void {
    this.lost = false;
  }

  close(): void {
    this.socket.close();
  }
}
