// The iptables mode's reconcile: compares what `iptables-save` prints of our chains with what
// this backend last applied, and writes the `iptables-restore --noflush` input that repairs only
// what differs. Pure: no I/O (backend.ts runs the tools).
//
// What is remembered per chain, instead of its rule text (~120k chains at 10k services × 10
// endpoints): its rule count and two 52-bit digests (fit a double exactly; ~30 bytes a chain in
// typed arrays, plus the Map entry):
//   - `norm`, of the rules as rendered, each rule normalized (normalizeRule): iptables-save
//     prints rules canonically (base matches first, `-m tcp` after the other matches, MARK as
//     `--set-xmark`, REJECT with its default, probabilities as the kernel's 31-bit fraction),
//     so both sides are reduced to the same form before hashing. Computed when the chain is
//     rendered for a restore (full or partial sync), so a tick renders nothing.
//   - `raw`, of the lines exactly as the kernel printed them, learned at the first reconcile
//     after a write whose normalized digest matched. Later ticks hash the saved text only and
//     normalize nothing while it stays the same.
// A chain whose rule count differs is always repaired. Chains shared by all services
// (KUBE-SERVICES, KUBE-NODEPORTS, …) are compared as multisets (sums of per-rule digests): a
// partial sync inserts new service rules at the top of nat KUBE-SERVICES, so their order is
// not the rendering's; the node-port jump must stay last there, which is checked on its own.
import { createHash, type Hash } from 'node:crypto';
import type { ObjectKey } from '../../cluster/types.js';
import {
  CHAIN,
  JUMPS,
  SERVICE_CHAIN,
  STATIC_CHAINS,
  STATIC_RULES,
  familyRules,
  nodePortJumps,
  sameRules,
  type FamilyConfig,
  type ServiceChange,
  type ServiceRules,
  type Table,
} from './render.js';

// ---------------------------------------------------------------------------------------------
// Digests: two 32-bit multiply-xorshift lanes; the high lane keeps 20 bits so a digest is a
// 52-bit integer held exactly by a double (no BigInt, no object per digest).

const TWO32 = 2 ** 32;
const TWO52 = 2 ** 52;

function fmix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The digest of `text[start, end)`. */
export function digestRange(text: string, start: number, end: number): number {
  let a = 0x9747b28c;
  let b = 0x2545f491;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x5bd1e995);
    a ^= a >>> 15;
    b = Math.imul(b ^ c, 0x27d4eb2d);
    b ^= b >>> 13;
  }
  return fmix(a ^ (end - start)) + (fmix(b) & 0xfffff) * TWO32;
}

export function digest(text: string): number {
  return digestRange(text, 0, text.length);
}

/** Folds `d` into the ordered digest `h` (the order of rules in a chain matters). */
function fold(h: number, d: number): number {
  const lo = Math.imul((h >>> 0) ^ (d >>> 0), 0x5bd1e995) ^ 0x27d4eb2d;
  const hi = Math.imul((Math.floor(h / TWO32) ^ Math.floor(d / TWO32)) + 0x165667b1, 0xc2b2ae35);
  return fmix(lo) + (fmix(hi ^ lo) & 0xfffff) * TWO32;
}

/** Adds `d` to the multiset digest `h` (order-free), or removes it with sign -1. */
function sum(h: number, d: number, sign = 1): number {
  const r = (h + sign * d) % TWO52;
  return r < 0 ? r + TWO52 : r;
}

// ---------------------------------------------------------------------------------------------
// Normalization of one rule: the multiset of its options with their arguments, sorted, with the
// spellings iptables-save prints reduced to ours.

/** The spec of a rule (`-A CHAIN ` stripped), as a canonical string both sides agree on. */
export function normalizeRule(line: string): string {
  let s = line;
  if (s.startsWith('-A ') || s.startsWith('-I ')) {
    const sp = s.indexOf(' ', 3);
    s = sp < 0 ? '' : s.slice(sp + 1);
  }
  const groups: string[] = [];
  let cur = '';
  let neg = false;
  let i = 0;
  const n = s.length;
  while (i < n) {
    while (i < n && s.charCodeAt(i) === 32) i++;
    if (i >= n) break;
    let tok: string;
    let quoted = false;
    if (s.charCodeAt(i) === 34) {
      // "…" with \" and \\ escapes, as iptables-save writes comments.
      quoted = true;
      let out = '';
      i++;
      while (i < n && s.charCodeAt(i) !== 34) {
        if (s.charCodeAt(i) === 92 && i + 1 < n) i++;
        out += s[i++];
      }
      i++;
      tok = out;
    } else {
      const j = s.indexOf(' ', i);
      const e = j < 0 ? n : j;
      tok = s.slice(i, e);
      i = e;
    }
    if (!quoted && tok === '!') {
      neg = true;
      continue;
    }
    if (!quoted && tok.length > 1 && tok.charCodeAt(0) === 45 /* - */) {
      if (cur) groups.push(cur);
      cur = neg ? `! ${tok}` : tok;
    } else cur += neg ? ` ! ${tok}` : ` ${tok}`;
    neg = false;
  }
  if (cur) groups.push(cur);
  const out: string[] = [];
  for (const g of groups) {
    if (g.startsWith('--probability ')) {
      // The kernel keeps a 31-bit fraction and prints it with 11 decimals: compare that integer.
      out.push(`--probability ${Math.round(parseFloat(g.slice(14)) * 0x80000000)}`);
    } else if (g.startsWith('--or-mark ')) {
      const m = g.slice(10);
      out.push(`--set-xmark ${m}/${m}`);
    } else if (g.startsWith('--xor-mark ')) {
      out.push(`--set-xmark ${g.slice(11)}/0x0`);
    } else if (g === '--reject-with icmp-port-unreachable' || g === '--reject-with icmp6-port-unreachable') {
      // REJECT's default, which iptables-save prints and we do not write.
    } else out.push(g);
  }
  out.sort();
  return out.join('\n');
}

export function ruleDigest(line: string): number {
  return digest(normalizeRule(line));
}

// ---------------------------------------------------------------------------------------------
// What was last applied, per chain.

const UNKNOWN = -1;
const ORDERED = 1;
/** `raw` holds what the kernel printed when the normalized digest disagreed and we rewrote it. */
const SUSPECT = 2;

/** The shared chains: `table chain` → whether rule order is ours to keep (no service rules in it). */
const SHARED: readonly { table: Table; chain: string; ordered: boolean }[] = [
  ...STATIC_CHAINS.filter.map((chain) => ({ table: 'filter' as const, chain, ordered: chain === CHAIN.forward })),
  ...STATIC_CHAINS.nat.map((chain) => ({ table: 'nat' as const, chain, ordered: chain === CHAIN.postrouting || chain === CHAIN.markMasq })),
];
const STATIC_SET: Record<Table, ReadonlySet<string>> = { filter: new Set(STATIC_CHAINS.filter), nat: new Set(STATIC_CHAINS.nat) };

/** The book's key of a chain: service chains (nat only) by name, the shared ones with their table. */
export function chainKey(table: Table, chain: string): string {
  return table === 'nat' && !STATIC_SET.nat.has(chain) ? chain : `${table} ${chain}`;
}

export interface ChainView {
  readonly table: Table;
  readonly chain: string;
  /** The service whose rendering holds this chain; undefined for the shared chains. */
  readonly owner?: ObjectKey;
}

/** Per chain: owner, rule count, digests; in typed arrays so 120k chains cost a few MB. */
export class ChainBook {
  private readonly slots = new Map<string, number>();
  private readonly free: number[] = [];
  private cap = 0;
  private used = 0;
  count = new Uint32Array(0);
  norm = new Float64Array(0);
  raw = new Float64Array(0);
  flags = new Uint8Array(0);
  /** Reconcile generation in which the chain was declared / compared. */
  declared = new Uint32Array(0);
  checked = new Uint32Array(0);
  owner: (ObjectKey | undefined)[] = [];

  get size(): number {
    return this.slots.size;
  }

  slot(key: string): number {
    return this.slots.get(key) ?? -1;
  }

  entries(): IterableIterator<[string, number]> {
    return this.slots.entries();
  }

  /** Records a chain just written: its expected count and digest; the kernel's form is unknown. */
  set(key: string, owner: ObjectKey | undefined, count: number, norm: number, ordered: boolean): number {
    let s = this.slots.get(key);
    if (s === undefined) {
      s = this.free.pop() ?? this.grow();
      this.slots.set(key, s);
      this.declared[s] = 0;
      this.checked[s] = 0;
    }
    this.owner[s] = owner;
    this.count[s] = count;
    this.norm[s] = norm;
    this.raw[s] = UNKNOWN;
    this.flags[s] = ordered ? ORDERED : 0;
    return s;
  }

  delete(key: string): void {
    const s = this.slots.get(key);
    if (s === undefined) return;
    this.slots.delete(key);
    this.owner[s] = undefined;
    this.free.push(s);
  }

  private grow(): number {
    if (this.used === this.cap) {
      const cap = Math.max(64, this.cap * 2);
      const g = <T extends Uint32Array | Float64Array | Uint8Array>(a: T, make: new (n: number) => T): T => {
        const b = new make(cap);
        b.set(a);
        return b;
      };
      this.count = g(this.count, Uint32Array);
      this.norm = g(this.norm, Float64Array);
      this.raw = g(this.raw, Float64Array);
      this.flags = g(this.flags, Uint8Array);
      this.declared = g(this.declared, Uint32Array);
      this.checked = g(this.checked, Uint32Array);
      this.cap = cap;
    }
    return this.used++;
  }
}

/** The ordered normalized digest of a chain's rule lines. */
export function chainDigest(lines: readonly string[]): number {
  let h = 0;
  for (const l of lines) h = fold(h, ruleDigest(l));
  return h;
}

// ---------------------------------------------------------------------------------------------
// Comparing a save with the book.

export interface TableDiff {
  readonly table: Table;
  /** Chains of ours that are missing or differ: rewrite them. */
  readonly rewrite: ChainView[];
  /** Chains named like ours that nothing of ours wants: delete them. */
  readonly stray: string[];
  /** Jumps from the built-in chains that are missing: insert them. */
  readonly missingJumps: (typeof JUMPS)[number][];
  /** Extra copies of our jumps in the built-in chains, as `-D` specs. */
  readonly extraJumps: { chain: string; spec: string }[];
  /** Chains whose normalized form disagreed twice with the same kernel text after a rewrite:
   *  taken as the kernel's spelling of our rules (or someone rewriting it each time), not fought. */
  readonly accepted: string[];
}

export function emptyDiff(d: TableDiff): boolean {
  return !d.rewrite.length && !d.stray.length && !d.missingJumps.length && !d.extraJumps.length;
}

const JUMP_CHAINS: Record<Table, ReadonlySet<string>> = {
  filter: new Set(JUMPS.filter((j) => j.table === 'filter').map((j) => j.chain)),
  nat: new Set(JUMPS.filter((j) => j.table === 'nat').map((j) => j.chain)),
};

/**
 * Everything the kernel holds of ours, per family, as this backend last applied it; compares
 * saves with it and builds repairs.
 */
export class Reconciler {
  book = new ChainBook();
  /** How many node-port jumps end nat KUBE-SERVICES. */
  private natTail = 1;
  private gen = 0;
  /** Per table, a digest of the last save found to hold exactly what was applied (nothing
   *  written since): the same text again means nothing differs, without reading it rule by rule. */
  private clean: Partial<Record<Table, string>> = {};

  /** Called for every write of this family (full, partial, repair): the next save is read whole. */
  written(): void {
    this.clean = {};
  }

  /** After a full sync: everything is as rendered. */
  resetFull(services: Iterable<ServiceRules>, cfg: FamilyConfig): void {
    const book = new ChainBook();
    const shared = new Map<string, { count: number; norm: number }>();
    for (const { table, chain } of SHARED) shared.set(`${table} ${chain}`, { count: 0, norm: 0 });
    const addShared = (table: Table, chain: string, spec: string) => {
      const s = shared.get(`${table} ${chain}`);
      if (!s) throw new Error(`rule for ${table} ${chain}, which is not one of our shared chains`);
      s.count++;
      s.norm = sum(s.norm, ruleDigest(spec));
    };
    for (const t of ['filter', 'nat'] as const) for (const r of STATIC_RULES[t]) addShared(t, r.chain, r.spec);
    for (const r of familyRules(cfg)) addShared(r.table, r.chain, r.spec);
    const tail = nodePortJumps(cfg);
    for (const spec of tail) addShared('nat', CHAIN.services, spec);
    for (const s of services) {
      for (const r of s.dispatch) addShared(r.table, r.chain, r.spec);
      for (const [chain, lines] of s.chains) book.set(chain, s.key, lines.length, chainDigest(lines), true);
    }
    // Ordered shared chains hold only static rules: their digest is the ordered one.
    for (const { table, chain, ordered } of SHARED) {
      const s = shared.get(`${table} ${chain}`)!;
      const norm = ordered ? chainDigest(STATIC_RULES[table].filter((r) => r.chain === chain).map((r) => r.spec)) : s.norm;
      book.set(`${table} ${chain}`, undefined, s.count, norm, ordered);
    }
    this.book = book;
    this.natTail = tail.length;
    this.written();
  }

  /** After a partial sync: the changed services' chains and shared rules, as renderPartial wrote them. */
  applyPartial(changes: Iterable<ServiceChange & { key: ObjectKey }>): void {
    const book = this.book;
    for (const { key, before, after } of changes) {
      this.written();
      const oldChains = before?.chains;
      for (const [chain, lines] of after?.chains ?? []) {
        if (sameRules(oldChains?.get(chain), lines) && book.slot(chain) >= 0) continue;
        book.set(chain, key, lines.length, chainDigest(lines), true);
      }
      for (const chain of oldChains?.keys() ?? []) if (!after?.chains.has(chain)) book.delete(chain);
      const k = (r: { table: Table; chain: string; spec: string }) => `${r.table} ${r.chain} ${r.spec}`;
      const oldSet = new Set((before?.dispatch ?? []).map(k));
      const newSet = new Set((after?.dispatch ?? []).map(k));
      const adjust = (r: { table: Table; chain: string; spec: string }, sign: 1 | -1) => {
        const s = book.slot(`${r.table} ${r.chain}`);
        if (s < 0) throw new Error(`no shared chain ${r.table} ${r.chain}`);
        book.count[s] += sign;
        book.norm[s] = sum(book.norm[s], ruleDigest(r.spec), sign);
        // Rules of ours changed there: the kernel's spelling of the chain must be learned again.
        book.raw[s] = UNKNOWN;
        book.flags[s] &= ~SUSPECT;
      };
      for (const r of before?.dispatch ?? []) if (!newSet.has(k(r))) adjust(r, -1);
      for (const r of after?.dispatch ?? []) if (!oldSet.has(k(r))) adjust(r, 1);
    }
  }

  /** Starts a reconcile: the saves of every table of this family follow. */
  begin(): void {
    this.gen++;
  }

  /**
   * Compares one table's `iptables-save -t TABLE` output with the book. Learns the kernel's
   * spelling of chains that match. Cost: one pass over the text hashing each character; rules
   * are parsed and normalized only in chains whose saved text changed since it was learned.
   */
  diff(table: Table, text: string): TableDiff {
    const whole = tableDigest(text);
    if (whole === this.clean[table]) return { table, rewrite: [], stray: [], missingJumps: [], extraJumps: [], accepted: [] };
    const d = this.scan(table, text);
    if (emptyDiff(d)) this.clean[table] = whole;
    else delete this.clean[table];
    return d;
  }

  private scan(table: Table, text: string): TableDiff {
    const book = this.book;
    const gen = this.gen;
    const rewrite: ChainView[] = [];
    const stray: string[] = [];
    const accepted: string[] = [];
    const jumpLines = new Map<string, string[]>();

    // The chain whose rules are being read.
    let cur = '';
    let curSlot = -1;
    let count = 0;
    let raw = 0;
    let blockStart = 0;
    let blockEnd = 0;
    const finish = () => {
      if (curSlot < 0) return;
      const s = curSlot;
      curSlot = -1;
      if (book.checked[s] === gen) return; // its rules came in two blocks: already reported
      book.checked[s] = gen;
      const repair = (kernel: number, suspect: boolean) => {
        book.raw[s] = kernel;
        if (suspect) book.flags[s] |= SUSPECT;
        else book.flags[s] &= ~SUSPECT;
        rewrite.push({ table, chain: cur, owner: book.owner[s] });
      };
      // Rules added or deleted, or the node-port jump no longer last: always repaired.
      if (count !== book.count[s]) return repair(UNKNOWN, false);
      if (table === 'nat' && cur === CHAIN.services && !tailIsNodePorts(text, blockStart, blockEnd, this.natTail)) return repair(UNKNOWN, false);
      if (book.raw[s] === raw) {
        // As learned. A suspect text seen again unchanged after our rewrite is the kernel's
        // spelling of our rules (or someone rewriting it at once): accepted, not fought.
        if (book.flags[s] & SUSPECT) {
          book.flags[s] &= ~SUSPECT;
          accepted.push(cur);
        }
        return;
      }
      if (normDigest(text, blockStart, blockEnd, (book.flags[s] & ORDERED) !== 0) === book.norm[s]) {
        book.raw[s] = raw;
        book.flags[s] &= ~SUSPECT;
        return;
      }
      repair(raw, true);
    };

    // Rule blocks come in the order chains were declared: follow that list instead of a lookup.
    const declNames: string[] = [];
    const declSlots: number[] = [];
    let dp = 0;
    const declared = (nameStart: number): number => {
      for (let k = dp; k < declNames.length && k < dp + 64; k++) {
        const name = declNames[k];
        if (text.startsWith(name, nameStart) && text.charCodeAt(nameStart + name.length) === 32) {
          dp = k + 1;
          cur = name;
          return declSlots[k];
        }
      }
      return -2;
    };

    let pos = 0;
    const n = text.length;
    while (pos < n) {
      let nl = text.indexOf('\n', pos);
      if (nl < 0) nl = n;
      const c0 = text.charCodeAt(pos);
      if (c0 === 58 /* : */) {
        const sp = text.indexOf(' ', pos);
        const chain = text.slice(pos + 1, sp < 0 || sp > nl ? nl : sp);
        const s = chain.startsWith('KUBE-') ? book.slot(chainKey(table, chain)) : -1;
        if (s >= 0) {
          book.declared[s] = gen;
          declNames.push(chain);
          declSlots.push(s);
        } else if (SERVICE_CHAIN.test(chain)) stray.push(chain);
      } else if (c0 === 45 /* - */ && text.startsWith('-A ', pos)) {
        const nameStart = pos + 3;
        const sameChain = curSlot >= 0 && text.startsWith(cur, nameStart) && text.charCodeAt(nameStart + cur.length) === 32;
        if (!sameChain) {
          finish();
          let s = declared(nameStart);
          let chain = cur;
          if (s === -2) {
            const sp = text.indexOf(' ', nameStart);
            chain = text.slice(nameStart, sp < 0 || sp > nl ? nl : sp);
            s = chain.startsWith('KUBE-') ? book.slot(chainKey(table, chain)) : -1;
          }
          if (s >= 0) {
            cur = chain;
            curSlot = s;
            count = 0;
            raw = 0;
            blockStart = pos;
          } else if (JUMP_CHAINS[table].has(chain)) {
            // A rule in a built-in chain: one of our jumps when its target is ours (last, as saved).
            const j = text.lastIndexOf(' -j ', nl);
            if (j > pos) {
              const target = text.slice(j + 4, nl);
              if (JUMPS.some((x) => x.table === table && x.chain === chain && x.target === target)) {
                const key = `${chain} ${target}`;
                const list = jumpLines.get(key) ?? [];
                list.push(text.slice(nameStart + chain.length + 1, nl));
                jumpLines.set(key, list);
              }
            }
          }
        }
        if (curSlot >= 0) {
          count++;
          const d = digestRange(text, pos, nl);
          raw = (book.flags[curSlot] & ORDERED) !== 0 ? fold(raw, d) : sum(raw, d);
          blockEnd = nl;
        }
      } else if (curSlot >= 0 && c0 !== 45) {
        finish();
      }
      pos = nl + 1;
    }
    finish();

    // Chains of this table that were not declared (missing) or declared without rules.
    for (const [key, s] of book.entries()) {
      if (chainTable(key) !== table) continue;
      const chain = key.startsWith(`${table} `) ? key.slice(table.length + 1) : key;
      if (book.checked[s] === gen) continue;
      book.checked[s] = gen;
      // Missing, or declared without rules where we wrote some.
      if (book.declared[s] !== gen || book.count[s] !== 0) {
        book.raw[s] = UNKNOWN;
        book.flags[s] &= ~SUSPECT;
        rewrite.push({ table, chain, owner: book.owner[s] });
      }
    }

    const missingJumps: (typeof JUMPS)[number][] = [];
    const extraJumps: { chain: string; spec: string }[] = [];
    for (const j of JUMPS) {
      if (j.table !== table) continue;
      const lines = jumpLines.get(`${j.chain} ${j.target}`) ?? [];
      if (lines.length === 0) missingJumps.push(j);
      else if (lines.length > 1) {
        // Keep one (ours if one of them is), delete the other copies.
        const want = normalizeRule(j.spec);
        let keep = lines.findIndex((l) => normalizeRule(l) === want);
        if (keep < 0) keep = 0;
        lines.forEach((spec, i) => {
          if (i !== keep) extraJumps.push({ chain: j.chain, spec });
        });
      }
    }
    return { table, rewrite, stray, missingJumps, extraJumps, accepted };
  }
}

/** A digest of a save's chains and rules, without what changes by itself (the header's dates,
 *  the built-in chains' counters). */
function tableDigest(text: string): string {
  const rules = text.indexOf('\n-A ');
  const end = text.lastIndexOf('\nCOMMIT');
  const decl = rules < 0 ? text : text.slice(0, rules);
  const h = createHash('sha1');
  h.update(decl.replace(/^#.*$/gm, '').replace(/ \[\d+:\d+\]$/gm, ''));
  if (rules >= 0) updateInLines(h, text, rules, end < rules ? text.length : end);
  return h.digest('base64');
}

/** Hashes `text[start, end)` a megabyte at a time, cut at line ends: `update` encodes the string
 *  it is given into one native buffer, and the whole rule text at once was a 45 MB copy per
 *  table at 10k services (heaptrack: 130 MB at the peak). The digest is the same. */
export function updateInLines(h: Hash, text: string, start: number, end: number): void {
  for (let pos = start; pos < end;) {
    const nl = text.indexOf('\n', Math.min(end, pos + (1 << 20)));
    const next = nl < 0 || nl >= end ? end : nl + 1;
    h.update(text.slice(pos, next));
    pos = next;
  }
}

function chainTable(key: string): Table {
  if (key.startsWith('filter ')) return 'filter';
  return 'nat';
}

/** The normalized digest of the saved rule lines in `text[start, end)`. */
function normDigest(text: string, start: number, end: number, ordered: boolean): number {
  let h = 0;
  let pos = start;
  while (pos < end) {
    let nl = text.indexOf('\n', pos);
    if (nl < 0 || nl > end) nl = end;
    const d = ruleDigest(text.slice(pos, nl));
    h = ordered ? fold(h, d) : sum(h, d);
    pos = nl + 1;
  }
  return h;
}

/** Whether the last `k` rules of the block jump to KUBE-NODEPORTS. */
function tailIsNodePorts(text: string, start: number, end: number, k: number): boolean {
  let e = end;
  for (let i = 0; i < k; i++) {
    if (e <= start) return false;
    const s = text.lastIndexOf('\n', e - 1) + 1;
    if (!text.startsWith(` -j ${CHAIN.nodePorts}`, e - ` -j ${CHAIN.nodePorts}`.length) || s < start) return false;
    e = s - 1;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Building the repair.

export interface RepairSource {
  /** The current rendering of a service (the one its chains were last written from). */
  service(key: ObjectKey): ServiceRules | undefined;
  /** Every service's rendering, for a shared chain to be rewritten whole. */
  all(): Iterable<ServiceRules>;
  readonly cfg: FamilyConfig;
}

/** The restore input repairing `diffs` (one block per table that needs one); undefined if none. */
export function repairLines(diffs: readonly TableDiff[], src: RepairSource): string[] | undefined {
  const rendered = new Map<ObjectKey, ServiceRules | undefined>();
  let shared: Map<string, string[]> | undefined;
  const sharedRules = (table: Table, chain: string): string[] => {
    if (!shared) {
      shared = new Map();
      for (const t of ['filter', 'nat'] as const) for (const c of STATIC_CHAINS[t]) shared.set(`${t} ${c}`, []);
      for (const t of ['filter', 'nat'] as const) for (const r of STATIC_RULES[t]) shared.get(`${t} ${r.chain}`)!.push(r.spec);
      for (const r of familyRules(src.cfg)) shared.get(`${r.table} ${r.chain}`)!.push(r.spec);
      for (const s of src.all()) for (const r of s.dispatch) shared.get(`${r.table} ${r.chain}`)?.push(r.spec);
      shared.get(`nat ${CHAIN.services}`)!.push(...nodePortJumps(src.cfg));
    }
    return shared.get(`${table} ${chain}`)!.map((spec) => `-A ${chain} ${spec}`);
  };
  const lines: string[] = [];
  for (const d of diffs) {
    if (emptyDiff(d)) continue;
    lines.push(`*${d.table}`);
    for (const c of d.rewrite) lines.push(`:${c.chain} - [0:0]`);
    for (const c of d.stray) lines.push(`:${c} - [0:0]`);
    for (const j of d.extraJumps) lines.push(`-D ${j.chain} ${j.spec}`);
    for (let i = d.missingJumps.length - 1; i >= 0; i--) lines.push(`-I ${d.missingJumps[i].chain} 1 ${d.missingJumps[i].spec}`);
    for (const c of d.rewrite) {
      if (!c.owner) {
        lines.push(...sharedRules(d.table, c.chain));
        continue;
      }
      if (!rendered.has(c.owner)) rendered.set(c.owner, src.service(c.owner));
      const rules = rendered.get(c.owner)?.chains.get(c.chain);
      if (!rules) throw new Error(`reconcile: ${c.chain} is recorded for ${c.owner}, whose rendering has no such chain`);
      lines.push(...rules);
    }
    for (const c of d.stray) lines.push(`-X ${c}`);
    lines.push('COMMIT');
  }
  return lines.length ? lines : undefined;
}
