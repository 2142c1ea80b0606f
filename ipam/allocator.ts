// The allocation decision: which addresses an attachment gets or keeps. It only reads, through a
// LedgerView (files in the store, a Map in tests); the store then claims what it decided.
// Addresses are handed out round-robin from the last one reserved in each range set (as
// host-local does), so a freed address is not reused while others are free: a restarted pod's
// old conntrack entries and neighbours' ARP caches have time to expire.
import { cniError, ErrorCode } from './errors.js';
import { formatIP, ipString, parseIP, type IP } from '../common/ip-bigint.js';
import { capacity, rangeFor, rangeSetText, type Range, type RangeSet } from './range.js';

export interface Attachment {
  containerID: string;
  ifname: string;
}

export interface Owner extends Attachment {
  /** When the address was handed out (ISO 8601). */
  time: string;
}

/**
 * What the decision reads. In the store every answer is a file or two (the address's own file,
 * the attachment's index file), so a decision costs the same at 10 allocations as at 10,000.
 */
export interface LedgerView {
  /** Addresses `who` holds, in the order they were handed out. */
  heldBy(who: Attachment): string[];
  /** Who holds `address`; undefined when free or when its holder is unreadable (see isFree). */
  ownerOf(address: string): Owner | undefined;
  isFree(address: string): boolean;
  lastReserved(setIndex: number): string | undefined;
}

export interface Allocated {
  set: RangeSet;
  range: Range;
  ip: IP;
}

/**
 * The ledger in memory: address text → holder, and where each set's search resumes. The store
 * keeps the same thing in files; this one is for tests of the decision.
 */
export class MemoryLedger implements LedgerView {
  readonly allocations = new Map<string, Owner>();
  readonly last = new Map<number, string>();

  heldBy(who: Attachment): string[] {
    const out: string[] = [];
    for (const [addr, owner] of this.allocations) if (sameAttachment(owner, who)) out.push(addr);
    return out;
  }
  ownerOf(address: string): Owner | undefined {
    return this.allocations.get(address);
  }
  isFree(address: string): boolean {
    return !this.allocations.has(address);
  }
  lastReserved(setIndex: number): string | undefined {
    return this.last.get(setIndex);
  }
}

export function sameAttachment(a: Attachment, b: Attachment): boolean {
  return a.containerID === b.containerID && a.ifname === b.ifname;
}

export function attachmentText(a: Attachment): string {
  return `container ${a.containerID} ifname ${a.ifname}`;
}

/** The candidates of a set in round-robin order: after the last one reserved, a whole lap. */
export function* candidates(set: RangeSet, lastReserved: string | undefined): Generator<{ range: Range; value: bigint }> {
  const ranges = set.ranges;
  let k = 0;
  let value = ranges[0].start;
  let advance = false;
  const last = parseIP(lastReserved ?? '');
  const lastRange = last ? rangeFor(set, last) : undefined;
  if (last && lastRange) {
    k = ranges.indexOf(lastRange);
    value = last.value;
    advance = true;
  }
  const lap = capacity(set) + BigInt(ranges.length);
  for (let step = 0n; step < lap; step++) {
    if (advance) {
      if (value >= ranges[k].end) {
        k = (k + 1) % ranges.length;
        value = ranges[k].start;
      } else value++;
    }
    advance = true;
    if (value === ranges[k].gateway) continue;
    yield { range: ranges[k], value };
  }
}

// Each candidate costs one look (a stat in the store), and the walk stops at the first free one:
// with round-robin the address after the last one handed out is nearly always free, so the cost
// does not depend on how many are held. Only a full set walks a whole lap.
function findFree(view: LedgerView, set: RangeSet): { range: Range; value: bigint } | undefined {
  for (const c of candidates(set, view.lastReserved(set.index))) {
    if (view.isFree(formatIP(set.family, c.value))) return c;
  }
  return undefined;
}

export interface Decided extends Allocated {
  /** True when the address must be claimed now; false when `who` holds it already. */
  fresh: boolean;
}

/**
 * Decides one address per range set for `who` (reading only): the ones it holds already — a
 * repeated ADD, a runtime retrying after a timeout, gets the same addresses back instead of a
 * second set — a requested one, or the next free one round-robin. The caller claims the fresh ones.
 */
export function decide(view: LedgerView, sets: readonly RangeSet[], who: Attachment, requested: readonly IP[]): Decided[] {
  const held = view
    .heldBy(who)
    .map((a) => parseIP(a))
    .filter((ip): ip is IP => ip !== null);
  const wanted = new Map<number, IP>();
  for (const ip of requested) {
    const set = sets.find((s) => rangeFor(s, ip));
    if (!set) {
      throw cniError(
        ErrorCode.requestedAddressUnavailable,
        `requested IP ${ipString(ip)} is not in any range set (${sets.map((s) => `[${s.index}] ${rangeSetText(s)}`).join('; ')})`,
      );
    }
    if (wanted.has(set.index)) {
      throw cniError(ErrorCode.requestedAddressUnavailable, `requested IPs ${ipString(wanted.get(set.index)!)} and ${ipString(ip)} are both in range set ${set.index}; one address per range set`);
    }
    wanted.set(set.index, ip);
  }
  const out: Decided[] = [];
  for (const set of sets) {
    const mine = held.find((ip) => rangeFor(set, ip));
    const want = wanted.get(set.index);
    if (mine) {
      if (want && want.value !== mine.value) {
        throw cniError(
          ErrorCode.attachmentConflict,
          `${attachmentText(who)} already holds ${ipString(mine)} in range set ${set.index}; requested ${ipString(want)} (DEL it first)`,
        );
      }
      out.push({ set, range: rangeFor(set, mine)!, ip: mine, fresh: false });
      continue;
    }
    if (want) {
      const range = rangeFor(set, want)!;
      const text = ipString(want);
      if (want.value === range.gateway) throw cniError(ErrorCode.requestedAddressUnavailable, `requested IP ${text} is the gateway of ${range.field}`);
      if (!view.isFree(text)) {
        const owner = view.ownerOf(text);
        // A claim naming us that no index of ours lists was left by our own killed ADD: take it.
        if (!owner || !sameAttachment(owner, who)) {
          throw cniError(ErrorCode.requestedAddressUnavailable, `requested IP ${text} is already allocated to ${owner ? attachmentText(owner) : 'a holder whose file is empty (left by a killed call; GC frees it)'}`);
        }
        out.push({ set, range, ip: want, fresh: false });
      } else out.push({ set, range, ip: want, fresh: true });
      continue;
    }
    const free = findFree(view, set);
    if (!free) {
      throw cniError(
        ErrorCode.rangeExhausted,
        `no free IPv${set.family} address in range set ${set.index} (${rangeSetText(set)}): all ${capacity(set)} addresses are allocated`,
      );
    }
    out.push({ set, range: free.range, ip: { family: set.family, value: free.value }, fresh: true });
  }
  return out;
}

/** decide() and apply it to a MemoryLedger (the store applies it to files). */
export function allocate(ledger: MemoryLedger, sets: readonly RangeSet[], who: Attachment, requested: readonly IP[], now: string): Allocated[] {
  const out = decide(ledger, sets, who, requested);
  for (const d of out) {
    const text = ipString(d.ip);
    if (!d.fresh) continue;
    ledger.allocations.set(text, { containerID: who.containerID, ifname: who.ifname, time: now });
    ledger.last.set(d.set.index, text);
  }
  return out;
}

/** Frees what `who` holds in a MemoryLedger; returns the freed addresses. */
export function release(ledger: MemoryLedger, who: Attachment): string[] {
  const freed = ledger.heldBy(who);
  for (const a of freed) ledger.allocations.delete(a);
  return freed;
}

/** Frees every address whose attachment is not in `valid` (CNI GC), in a MemoryLedger. */
export function releaseAllExcept(ledger: MemoryLedger, valid: readonly Attachment[]): { address: string; owner: Owner }[] {
  const keep = new Set(valid.map(attachmentKey));
  const freed: { address: string; owner: Owner }[] = [];
  for (const [address, owner] of ledger.allocations) {
    if (!keep.has(attachmentKey(owner))) freed.push({ address, owner });
  }
  for (const f of freed) ledger.allocations.delete(f.address);
  return freed;
}

export function attachmentKey(a: Attachment): string {
  return `${a.containerID}\u0000${a.ifname}`;
}
