// How the nftables backend reaches the kernel without the `nft` tool, whose every call first
// downloads the whole ruleset: a fresh table loaded in one transaction, a table we trust refilled
// in one, a partial change applied as one, and a reconcile that reads the table back and
// repairs it (netlink-writer.ts).
import type { IPFamily } from '../../cluster/types.js';
import type { FamilyConfig } from '../core/family-config.js';
import type { PartialChange, TableContent, TableState } from './render.js';

export interface ReconcileResult {
  /** What was put back, by kind (`elements`, `rules`, …). */
  readonly repaired: Record<string, number>;
  /** Set when the damage cannot be repaired piecemeal (the table, a set or a base chain gone):
   *  the reason; the backend then rewrites the family's table. */
  readonly needsFull?: string;
  /** The table was read back (someone else committed to it, or notifications were lost). */
  readonly readBack?: boolean;
}

export interface TableWriter {
  /** Makes the family's table anew with `content`; false (nothing done) when it cannot do so
   *  atomically over a table that is there, which `nft -f` then does. */
  loadFresh(content: TableContent): Promise<boolean>;
  /** Refills the family's table, which holds what `previous` says (our last sync), with
   *  `content` in one transaction, keeping the affinity sets' entries; false (nothing done) when
   *  that does not fit one transaction, which `nft -f` then does. */
  refill(content: TableContent, previous: TableState): Promise<boolean>;
  /** Applies the change, affinity chains and sets included; throws (applying nothing) when the
   *  kernel refuses any part. Resolves false, having done nothing, when a change with affinity
   *  chains does not fit one transaction (cut in several, a chain would be flushed in one and
   *  refilled in the next): `nft -f` then makes it one. */
  applyPartial(family: IPFamily, cfg: FamilyConfig, change: PartialChange): Promise<boolean>;
  /** Called before every `nft -f` write: notes whether someone else committed since our last write. */
  beforeWrite(): Promise<void>;
  /** Called after every successful `nft -f` write of a family: learn what the kernel holds now. */
  loaded(family: IPFamily): Promise<void>;
  /**
   * Compares the kernel's table with `expected()` (per map, elements in nft's spelling; called
   * only when something may differ, it re-renders every service) and with the chains and rules
   * learned at the last load, and repairs what differs.
   */
  reconcile(family: IPFamily, cfg: FamilyConfig, expected: () => ReadonlyMap<string, ReadonlySet<string>>, state: TableState): Promise<ReconcileResult>;
  close(): void;
}
