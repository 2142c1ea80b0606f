// The allocation decision, with no I/O: which addresses an attachment gets, keeps or gives back.
// Addresses are handed out round-robin from the last one reserved in each range set (as
// host-local does), so a freed address is not reused while others are free: a restarted pod's
// old conntrack entries and neighbours' ARP caches have time to expire.
import { cniError, ErrorCode } from './errors.js';
import { formatIP, ipString, parseIP, type IP } from './ip.js';
import { capacity, rangeFor, rangeSetText, type Range, type RangeSet } from './range.js';

export interface Attachment {
  containerID: string;
  ifname: string;
}

export interface Owner extends Attachment {
  /** When the address was handed out (ISO 8601). */
  time: string;
}

export interface AllocationState {
  /** Canonical address text → the attachment holding it. */
  allocations: Map<string, Owner>;
  /** Range set index → the address last handed out from it (where the next search starts). */
  lastReserved: Map<number, string>;
}

export interface Allocated {
  set: RangeSet;
  range: Range;
  ip: IP;
}

export function emptyState(): AllocationState {
  return { allocations: new Map(), lastReserved: new Map() };
}

export function sameAttachment(a: Attachment, b: Attachment): boolean {
  return a.containerID === b.containerID && a.ifname === b.ifname;
}

export function attachmentText(a: Attachment): string {
  return `container ${a.containerID} ifname ${a.ifname}`;
}

/** Addresses held by one attachment, in the order they were handed out. */
export function heldBy(state: AllocationState, who: Attachment): string[] {
  const out: string[] = [];
  for (const [addr, owner] of state.allocations) if (sameAttachment(owner, who)) out.push(addr);
  return out;
}

function findFree(state: AllocationState, set: RangeSet): { range: Range; value: bigint } | undefined {
  const ranges = set.ranges;
  let k = 0;
  let value = ranges[0].start;
  let advance = false;
  const last = parseIP(state.lastReserved.get(set.index) ?? '');
  const lastRange = last ? rangeFor(set, last) : undefined;
  if (last && lastRange) {
    k = ranges.indexOf(lastRange);
    value = last.value;
    advance = true;
  }
  // Every step that does not find a free address passes a held address or a gateway, so when
  // one is free it turns up within (allocations + gateways + 1) steps; a whole lap means full.
  // The bound keeps the search short without parsing every held address.
  const size = capacity(set) + BigInt(ranges.length);
  const bound = BigInt(state.allocations.size + ranges.length + 1);
  const maxSteps = size < bound ? size : bound;
  for (let step = 0n; step < maxSteps; step++) {
    if (advance) {
      if (value >= ranges[k].end) {
        k = (k + 1) % ranges.length;
        value = ranges[k].start;
      } else value++;
    }
    advance = true;
    const r = ranges[k];
    if (value === r.gateway) continue;
    if (!state.allocations.has(formatIP(set.family, value))) return { range: r, value };
  }
  return undefined;
}

/**
 * Gives `who` one address from every range set, or returns the ones it already holds: a repeated
 * ADD (a runtime retrying after a timeout) gets the same addresses back instead of a second set.
 */
export function allocate(
  state: AllocationState,
  sets: readonly RangeSet[],
  who: Attachment,
  requested: readonly IP[],
  now: string,
): Allocated[] {
  const held = heldBy(state, who)
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
  const out: Allocated[] = [];
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
      out.push({ set, range: rangeFor(set, mine)!, ip: mine });
      continue;
    }
    if (want) {
      const range = rangeFor(set, want)!;
      const text = ipString(want);
      if (want.value === range.gateway) throw cniError(ErrorCode.requestedAddressUnavailable, `requested IP ${text} is the gateway of ${range.field}`);
      const owner = state.allocations.get(text);
      if (owner) throw cniError(ErrorCode.requestedAddressUnavailable, `requested IP ${text} is already allocated to ${attachmentText(owner)}`);
      const a = { set, range, ip: want };
      reserve(state, a, who, now);
      out.push(a);
      continue;
    }
    const free = findFree(state, set);
    if (!free) {
      throw cniError(
        ErrorCode.rangeExhausted,
        `no free IPv${set.family} address in range set ${set.index} (${rangeSetText(set)}): all ${capacity(set)} addresses are allocated`,
      );
    }
    const a = { set, range: free.range, ip: { family: set.family, value: free.value } };
    reserve(state, a, who, now);
    out.push(a);
  }
  return out;
}

function reserve(state: AllocationState, a: Allocated, who: Attachment, time: string): void {
  const text = ipString(a.ip);
  state.allocations.set(text, { containerID: who.containerID, ifname: who.ifname, time });
  state.lastReserved.set(a.set.index, text);
}

/** Frees what `who` holds; returns the freed addresses (none is not an error: DEL is idempotent). */
export function release(state: AllocationState, who: Attachment): string[] {
  const freed = heldBy(state, who);
  for (const a of freed) state.allocations.delete(a);
  return freed;
}

/** Frees every address whose attachment is not in `valid` (CNI GC). */
export function releaseAllExcept(state: AllocationState, valid: readonly Attachment[]): { address: string; owner: Owner }[] {
  const keep = new Set(valid.map((v) => `${v.containerID}\u0000${v.ifname}`));
  const freed: { address: string; owner: Owner }[] = [];
  for (const [address, owner] of state.allocations) {
    if (!keep.has(`${owner.containerID}\u0000${owner.ifname}`)) freed.push({ address, owner });
  }
  for (const f of freed) state.allocations.delete(f.address);
  return freed;
}
