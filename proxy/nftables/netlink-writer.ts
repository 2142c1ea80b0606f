// The nftables mode's kernel writer over nfnetlink (netlink/): partial changes as one nf_tables
// batch of element and chain messages, and the periodic reconcile. No `nft` process runs for
// either, so their cost follows the change, not the table (every `nft` call first downloads the
// ruleset).
//
// Reconcile: the ruleset generation (NFT_MSG_GETGEN) moves with every transaction anyone commits
// in this network namespace. When it is where our own last commit left it, nothing can differ
// and a tick costs one round trip. Otherwise the table is read back: chains, rules (compared with
// the kernel's own dump of them taken after we wrote them, and replayed from it), and every
// service map and the hairpin set (compared as bytes with what the applied plans encode to).
import { readFileSync } from 'node:fs';
import type { IPFamily } from '../../cluster/types.js';
import type { Logger } from '../../common/log.js';
import type { FamilyConfig } from '../core/family-config.js';
import {
  BASE_CHAINS, CONFIG_SETS, HAIRPIN_SET, MAPS, MAP_NAMES, TABLE_NAME, baseRules, configElements, countChainRules, isRemadeOnRefill, parseCountChain,
  type FieldKind, type MapName, type MapSchema,
} from './layout.js';
import { NftNetlink } from './netlink/client.js';
import { encodeExpressions } from './netlink/expressions.js';
import { ElementListBuilder, type EncodedElementList, type NftFamily, type Op, type SetElement, type Verdict } from './netlink/messages.js';
import { ipv4, ipv6, l4proto, port, putIPv4, putU32host, u32host } from './netlink/values.js';
import { NFT_SET_ELEM_INTERVAL_END } from './netlink/wire.js';
import { affinitySetSpec, anonymousSlotMapSpec, setSpec } from './netlink-sets.js';
import type { MapElement, PartialChange, TableContent, TableState } from './render.js';
import { withSlotMapId, type Rule } from './rules.js';
import type { ReconcileResult, TableWriter } from './writer.js';

const nftFamily = (f: IPFamily): NftFamily => (f === 'IPv4' ? 'ip' : 'ip6');

// ------------------------------------------------------------------ elements: nft text → bytes

function addrBytes(family: IPFamily, s: string): Uint8Array {
  return family === 'IPv4' ? ipv4(s) : ipv6(s);
}

/** The first and last address of a CIDR (or of one address). */
function range(family: IPFamily, cidr: string): [Uint8Array, Uint8Array] {
  const [ip, len] = cidr.split('/');
  const start = addrBytes(family, ip);
  const bits = len === undefined ? start.length * 8 : Number(len);
  const first = Uint8Array.from(start);
  const last = Uint8Array.from(start);
  for (let i = 0; i < start.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    const mask = keep === 0 ? 0 : (0xff << (8 - keep)) & 0xff;
    first[i] &= mask;
    last[i] = (last[i] & mask) | (~mask & 0xff);
  }
  return [first, last];
}

function fieldWidth(family: IPFamily, kind: FieldKind): number {
  return kind === 'addr' || kind === 'cidr' ? (family === 'IPv4' ? 4 : 16) : kind === 'proto' ? 1 : kind === 'port' ? 2 : 4;
}

const PROTOCOL_NUMBERS: Record<string, number> = { tcp: 6, udp: 17, sctp: 132 };

/** Writes one field of a key or value in place (a full load encodes 100k+ elements: no
 *  per-field arrays). `end`: a cidr field's last address instead of its first. */
function putField(out: Uint8Array, off: number, family: IPFamily, kind: FieldKind, text: string, end = false): void {
  switch (kind) {
    case 'addr':
      if (family === 'IPv4' && putIPv4(out, off, text)) return;
      out.set(addrBytes(family, text), off);
      return;
    case 'proto': {
      const n = PROTOCOL_NUMBERS[text];
      out.set(n === undefined ? l4proto(text as 'tcp') : [n], off);
      return;
    }
    case 'port': {
      const n = Number(text);
      if (!Number.isInteger(n) || n < 0 || n > 0xffff) out.set(port(n), off); // throws, naming it
      out[off] = n >> 8;
      out[off + 1] = n & 0xff;
      return;
    }
    case 'slot':
      putU32host(out, off, Number(text));
      return;
    case 'cidr':
      out.set(range(family, text)[end ? 1 : 0], off);
      return;
  }
}

/** Bytes of a key or value of these fields: one field unpadded, a concatenation with every
 *  field in whole 4-byte registers. */
function fieldsLength(family: IPFamily, kinds: readonly FieldKind[]): number {
  if (kinds.length === 1) return fieldWidth(family, kinds[0]);
  let len = 0;
  for (const k of kinds) len += (fieldWidth(family, k) + 3) & ~3;
  return len;
}

/** Writes the fields of `text` (`a . b . c`) into `out` (fieldsLength long), as netlink takes them. */
function putFields(out: Uint8Array, family: IPFamily, kinds: readonly FieldKind[], text: string, what: string, end = false): Uint8Array {
  const parts = text.split(' . ');
  if (parts.length !== kinds.length) throw new Error(`${what} ${JSON.stringify(text)} has ${parts.length} fields, the map ${kinds.length}`);
  let off = 0;
  for (let i = 0; i < kinds.length; i++) {
    putField(out, off, family, kinds[i], parts[i], end);
    off += (fieldWidth(family, kinds[i]) + 3) & ~3;
  }
  return out;
}

function parseVerdict(text: string): Verdict {
  const [code, chain] = text.split(' ');
  if ((code === 'goto' || code === 'jump') && chain) return { code, chain };
  if (code === 'drop' || code === 'accept' || code === 'return' || code === 'continue') return { code };
  throw new Error(`not a verdict: ${JSON.stringify(text)}`);
}

/** An element of `schema` with its arrays sized and zeroed, for `fillElement`. */
function emptyElement(family: IPFamily, schema: MapSchema, keyOnly = false): SetElement {
  const keyLen = fieldsLength(family, schema.key);
  const e: SetElement = { key: new Uint8Array(keyLen) };
  if (schema.key.includes('cidr')) e.keyEnd = new Uint8Array(keyLen);
  if (!keyOnly && schema.value !== undefined && schema.value !== 'verdict') e.data = new Uint8Array(fieldsLength(family, schema.value));
  return e;
}

/** Writes `key` (and `value`, unless keyOnly) in nft's spelling into `e`, made by emptyElement. */
function fillElement(e: SetElement, family: IPFamily, schema: MapSchema, key: string, value: string | undefined, keyOnly: boolean, verdict: (text: string) => Verdict): SetElement {
  putFields(e.key, family, schema.key, key, `${schema.name}: key`);
  if (e.keyEnd) putFields(e.keyEnd, family, schema.key, key, `${schema.name}: key`, true);
  if (keyOnly || schema.value === undefined) return e;
  if (value === undefined) throw new Error(`${schema.name}: element ${JSON.stringify(key)} has no value`);
  if (schema.value === 'verdict') e.verdict = verdict(value);
  else putFields(e.data!, family, schema.value, value, `${schema.name}: value`);
  return e;
}

/** One element of a map or set as netlink takes it, from its nft spelling. */
export function encodeElement(family: IPFamily, schema: MapSchema, key: string, value?: string, keyOnly = false): SetElement {
  return fillElement(emptyElement(family, schema, keyOnly), family, schema, key, value, keyOnly, parseVerdict);
}

/** `encodeElement` into one reused element, for a bulk load that writes each element out at
 *  once (ElementListBuilder): nothing per element outlives it. */
class ElementScratch {
  private readonly e: SetElement;
  private readonly verdicts = new Map<string, Verdict>();

  constructor(private readonly family: IPFamily, private readonly schema: MapSchema) {
    this.e = emptyElement(family, schema);
  }

  /** Verdicts repeat (the chain of each endpoint count): parsed once each. */
  private readonly verdict = (text: string): Verdict => {
    let v = this.verdicts.get(text);
    if (!v) this.verdicts.set(text, (v = parseVerdict(text)));
    return v;
  };

  fill(text: string): SetElement {
    const [key, value] = splitElement(text);
    return fillElement(this.e, this.family, this.schema, key, value, false, this.verdict);
  }
}

const SCHEMAS = new Map<string, MapSchema>([...MAP_NAMES.map((m) => [m, MAPS[m]] as const), [HAIRPIN_SET.name, HAIRPIN_SET]]);

/** Additions go data first, so a verdict never points at slots not there yet (should a huge
 *  change be cut into several transactions); deletions go verdicts first. */
const DATA_FIRST: readonly string[] = ['cluster-ips', 'endpoints', 'nodeport-endpoints', 'shortcut-endpoints', 'nodeport-shortcut-endpoints', 'firewall-allow', 'hairpin', 'shortcut-ips', 'nodeport-shortcuts', 'firewall-ips', 'service-filter', 'nodeport-filter', 'service-ips', 'service-nodeports'];

function elementOps(family: IPFamily, op: 'newsetelem' | 'delsetelem', items: readonly { map: string; key: string; value?: string }[]): Op[] {
  const byMap = new Map<string, SetElement[]>();
  for (const it of items) {
    const schema = SCHEMAS.get(it.map);
    if (!schema) throw new Error(`unknown map ${it.map}`);
    let list = byMap.get(it.map);
    if (!list) byMap.set(it.map, (list = []));
    list.push(encodeElement(family, schema, it.key, it.value, op === 'delsetelem'));
  }
  const order = op === 'newsetelem' ? DATA_FIRST : [...DATA_FIRST].reverse();
  return [...byMap.entries()]
    .sort(([a], [b]) => order.indexOf(a) - order.indexOf(b))
    .map(([set, elements]) => ({ op, family: nftFamily(family), table: TABLE_NAME, set, elements }));
}

// ------------------------------------------------------------------ chains and whole tables as ops

function countChainOps(family: IPFamily, cfg: FamilyConfig, names: readonly string[]): Op[] {
  const f = nftFamily(family);
  const ops: Op[] = [];
  for (const chain of names) {
    const c = parseCountChain(chain);
    if (!c) throw new Error(`not a per-count chain: ${chain}`);
    ops.push({ op: 'newchain', family: f, table: TABLE_NAME, chain });
    for (const r of countChainRules(c.kind, c.n, cfg)) ops.push({ op: 'newrule', family: f, table: TABLE_NAME, chain, expressions: encodeExpressions(r.exprs) });
  }
  return ops;
}

/** The elements of a one-field interval set (`flags interval`, the kernel's rbtree), as nft sends
 *  them: each range as its first address and, flagged as an end, the address after its last; a
 *  range not starting at zero is preceded by an end at zero. Adjacent ranges stay apart, as nft
 *  keeps them; overlapping ones (which nft refuses) are merged. */
export function intervalElements(family: IPFamily, cidrs: readonly string[]): SetElement[] {
  const width = family === 'IPv4' ? 32 : 128;
  const big = (b: Uint8Array) => BigInt(`0x${Buffer.from(b).toString('hex') || '0'}`);
  const bytes = (n: bigint) => Uint8Array.from(Buffer.from(n.toString(16).padStart(width / 4, '0'), 'hex'));
  const ranges = cidrs.map((c) => range(family, c).map(big) as [bigint, bigint]).sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  const merged: [bigint, bigint][] = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last && r[0] <= last[1]) last[1] = r[1] > last[1] ? r[1] : last[1];
    else merged.push([r[0], r[1]]);
  }
  const out: SetElement[] = [];
  if (merged.length && merged[0][0] !== 0n) out.push({ key: bytes(0n), flags: NFT_SET_ELEM_INTERVAL_END });
  const top = (1n << BigInt(width)) - 1n;
  for (const [first, last] of merged) {
    out.push({ key: bytes(first) });
    if (last !== top) out.push({ key: bytes(last + 1n), flags: NFT_SET_ELEM_INTERVAL_END });
  }
  return out;
}

/** The ops that make one family's table anew (delete and make, as `nft -f` of `fullLines` with
 *  no previous state), in an order the kernel takes: sets, chains, rules, elements. The rules of
 *  the hooked chains come apart (`hooked`): until they are in, the table sees no packet. */
export function freshTableOps(content: TableContent, listBytes?: number): { skeleton: Op[]; elements: Iterable<Op>; hooked: Op[] } {
  const f = nftFamily(content.cfg.family);
  const { body, hooked } = tableBody(content, false);
  const skeleton: Op[] = [{ op: 'newtable', family: f, table: TABLE_NAME }, { op: 'deltable', family: f, table: TABLE_NAME }, { op: 'newtable', family: f, table: TABLE_NAME }, ...body];
  return { skeleton, elements: elementLists(content, listBytes), hooked };
}

/**
 * The ops that refill the table we trust with `content` in one transaction, as `nft -f` of
 * `fullLines(content, previous)` does: every rule of the table flushed and written again, every
 * map and set we fill flushed and refilled, the affinity sets kept (their entries are the
 * clients' stickiness), and the chains and sets `previous` had and `content` does not, deleted
 * last (nothing refers to them once the rules are flushed and the maps refilled). Declarations
 * are sent again, as nft sends them: the kernel takes an `add` of what exists as it is.
 */
export function refillOps(content: TableContent, previous: TableState, listBytes?: number): Iterable<Op> {
  const f = nftFamily(content.cfg.family);
  const t = TABLE_NAME;
  const { body, hooked } = tableBody(content, true);
  const gone: Op[] = [];
  for (const chain of previous.chains) if (!content.chains.has(chain)) gone.push({ op: 'delchain', family: f, table: t, chain });
  for (const chain of previous.countChains) if (!content.countChains.has(chain)) gone.push({ op: 'delchain', family: f, table: t, chain });
  for (const set of previous.sets) if (!content.sets.has(set)) gone.push({ op: 'delset', family: f, table: t, set });
  return chain([{ op: 'newtable', family: f, table: t }, { op: 'flushrules', family: f, table: t }], body, hooked, elementLists(content, listBytes), gone);
}

/** The table's sets (each map and set we fill flushed after its declaration when `refill`), its
 *  config elements, chains and rules; the hooked chains' rules apart. */
function tableBody(content: TableContent, refill: boolean): { body: Op[]; hooked: Op[] } {
  const { cfg } = content;
  const family = cfg.family;
  const f = nftFamily(family);
  const t = TABLE_NAME;
  const body: Op[] = [];
  const hooked: Op[] = [];
  // The kernel wants a transaction id on every new set, named or not.
  const ids = { next: 1 };
  for (const schema of [...CONFIG_SETS, HAIRPIN_SET, ...MAP_NAMES.map((m) => MAPS[m])]) {
    // A concatenated interval set is remade rather than flushed (isRemadeOnRefill): declared
    // first, as nft does, so the delete finds it even in a table someone emptied meanwhile.
    const remade = refill && isRemadeOnRefill(schema);
    if (remade) body.push({ op: 'newset', family: f, table: t, set: { ...setSpec(family, schema), id: ids.next++ } }, { op: 'delset', family: f, table: t, set: schema.name });
    body.push({ op: 'newset', family: f, table: t, set: { ...setSpec(family, schema), id: ids.next++ } });
    if (refill && !remade) body.push({ op: 'flushset', family: f, table: t, set: schema.name });
  }
  for (const [schema, items] of configElements(cfg)) {
    if (!items.length) continue;
    const els = schema.key[0] === 'cidr' ? intervalElements(family, items) : items.map((k) => encodeElement(family, schema, k));
    body.push({ op: 'newsetelem', family: f, table: t, set: schema.name, elements: els });
  }
  for (const [name, seconds] of content.sets) body.push({ op: 'newset', family: f, table: t, set: { ...affinitySetSpec(family, name, seconds), id: ids.next++ } });
  for (const c of BASE_CHAINS) body.push({ op: 'newchain', family: f, table: t, chain: c.name, ...(c.hook ? { hook: c.hook } : {}) });
  for (const chain of content.countChains) body.push({ op: 'newchain', family: f, table: t, chain });
  for (const chain of content.chains.keys()) body.push({ op: 'newchain', family: f, table: t, chain });
  const hookedChains = new Set(BASE_CHAINS.filter((c) => c.hook).map((c) => c.name));
  const addRule = (chain: string, r: Rule, into: Op[]) => into.push(...ruleOps(f, chain, r, ids));
  for (const [chain, r] of baseRules(cfg)) addRule(chain, r, hookedChains.has(chain) ? hooked : body);
  body.push(...countChainOps(family, cfg, [...content.countChains]).filter((op) => op.op === 'newrule'));
  for (const [chain, rules] of content.chains) for (const r of rules) addRule(chain, r, body);
  return { body, hooked };
}

/** The ops that append `r` to `chain`: its anonymous slot map (`numgen … vmap`) first, made with
 *  a transaction id from `ids`, then the rule that names it. */
function ruleOps(f: NftFamily, chain: string, r: Rule, ids: { next: number }): Op[] {
  const t = TABLE_NAME;
  const out: Op[] = [];
  let exprs = r.exprs;
  if (r.slotMap) {
    const id = ids.next++;
    out.push({ op: 'newset', family: f, table: t, set: anonymousSlotMapSpec(id, r.slotMap.length) });
    out.push({ op: 'newsetelem', family: f, table: t, set: '__map%d', setId: id, elements: r.slotMap.map((verdict, i) => ({ key: u32host(i), verdict })) });
    exprs = withSlotMapId(exprs, id);
  }
  out.push({ op: 'newrule', family: f, table: t, chain, expressions: encodeExpressions(exprs) });
  return out;
}

/** The services' elements of a full load, map by map (data first), each map's written straight
 *  into message-sized lists as they are needed: the batch being filled is all that exists in
 *  bytes at one time. */
function* elementLists(content: TableContent, listBytes?: number): Generator<Op> {
  const family = content.cfg.family;
  const byMap = [...content.byMap].filter(([, texts]) => texts.length).sort(([a], [b]) => DATA_FIRST.indexOf(a) - DATA_FIRST.indexOf(b));
  for (const [map, texts] of byMap) {
    const schema = SCHEMAS.get(map);
    if (!schema) throw new Error(`unknown map ${map}`);
    const scratch = new ElementScratch(family, schema);
    const builder = new ElementListBuilder(listBytes);
    const op = (list: EncodedElementList): Op => ({ op: 'newsetelem-list', family: nftFamily(family), table: TABLE_NAME, set: map, list });
    for (const text of texts) {
      const full = builder.add(scratch.fill(text));
      if (full) yield op(full);
    }
    const last = builder.finish();
    if (last) yield op(last);
  }
}

// ------------------------------------------------------------------ the writer

interface Learned {
  /** Chain → the kernel's dump of its rules' expressions, in order. */
  rules: Map<string, Buffer[]>;
  /** The table's sets (with the element counts of those we fill) and chains, right after our
   *  last write: a commit by someone else that leaves this and the rules alike did not touch
   *  our table. */
  shape: string;
  /** Someone else changed this family's table since we last wrote or read it back. */
  dirty: boolean;
}

/** Sets whose element count only we change (affinity sets fill from the packet path). */
const COUNTED_SETS = new Set<string>([...MAP_NAMES, HAIRPIN_SET.name, ...CONFIG_SETS.map((c) => c.name)]);

export class NetlinkTableWriter implements TableWriter {
  private readonly learned = new Map<IPFamily, Learned>();
  /** The ruleset generation after our own last commit, or as far as we have checked. It is one
   *  counter for the whole network namespace (both families, every table) and moves with every
   *  transaction anyone commits: iptables-nft under kubelet and CNI plugins does, every few
   *  seconds on a real node. */
  private gen?: number;
  /** The generation `beforeWrite` saw, for `afterWrite` to count the transactions since. */
  private genBefore?: number;
  /** Someone else committed during our last write. */
  private raced = false;
  /** Whether the operator was told that a table outgrew one transaction (said once). */
  private toldTooLarge = false;

  constructor(private readonly nl: NftNetlink, private readonly log: Logger) {}

  /** Opens the socket and checks that this kernel answers; undefined when it cannot be used. */
  static async open(log: Logger): Promise<NetlinkTableWriter | undefined> {
    try {
      const nl = NftNetlink.open();
      await nl.getGeneration();
      return new NetlinkTableWriter(nl, log);
    } catch (err) {
      log.warn('nfnetlink is not usable here; partial syncs go through nft and reconciles are skipped', { error: (err as Error).message });
      return undefined;
    }
  }

  /** What `Learned.shape` holds, read from the kernel now (two small dumps, no elements). */
  private async shape(family: IPFamily): Promise<string> {
    const f = nftFamily(family);
    if (!(await this.nl.tableExists(f, TABLE_NAME))) return 'no table';
    const sets = (await this.nl.listSets(f, TABLE_NAME)).map((x) => (COUNTED_SETS.has(x.name) ? `${x.name}=${x.count ?? '?'}` : x.name)).sort();
    const chains = (await this.nl.listChains(f, TABLE_NAME)).map((c) => c.name).sort();
    return `${sets.join(',')}|${chains.join(',')}`;
  }

  private async rulesUnchanged(family: IPFamily, l: Learned): Promise<boolean> {
    const now = await this.rulesByChain(family);
    if (now.size !== l.rules.size) return false;
    for (const [chain, want] of l.rules) {
      const have = now.get(chain);
      if (!have || have.length !== want.length || !have.every((b, i) => b.equals(want[i]))) return false;
    }
    return true;
  }

  /** Notes whether someone else changed our tables since our last look; call before writing
   *  (also with nft). When the generation moved, each family's sets, element counts, chains and
   *  rules are compared with what our last write left: a commit to another table costs those
   *  small dumps, not a read-back of our elements. (An element replaced by another with the
   *  same count goes unseen until the hourly full sync.) */
  async beforeWrite(): Promise<void> {
    const g = await this.nl.getGeneration();
    this.genBefore = g;
    if (this.gen === undefined || g === this.gen) return;
    for (const [family, l] of this.learned) {
      if (l.dirty) continue;
      const shape = await this.shape(family);
      if (shape !== l.shape || shape === 'no table' || !(await this.rulesUnchanged(family, l))) l.dirty = true;
    }
    this.gen = g;
  }

  /** After `k` transactions of ours: if the generation moved by more, someone else committed in
   *  between, to a table we cannot name, and what we would learn now may hold their change:
   *  every family is read back at the next reconcile. */
  private async afterWrite(k: number): Promise<void> {
    const g = await this.nl.getGeneration();
    this.raced = this.genBefore !== undefined && g !== ((this.genBefore + k) >>> 0);
    if (this.raced) for (const l of this.learned.values()) l.dirty = true;
    this.gen = g;
  }

  /** Learn what our last write left in `family`'s table (nothing else committed since). */
  private async learnShape(family: IPFamily): Promise<void> {
    const l = this.learned.get(family);
    if (l && !l.dirty) l.shape = await this.shape(family);
  }

  /** Commits `ops`, cut into several transactions only when one would not fit the socket. */
  private async commit(ops: Op[]): Promise<void> {
    if (ops.length === 0) return;
    await this.beforeWrite();
    const batches = this.nl.batchBytes(ops) <= this.nl.maxTransactionBytes ? [ops] : this.nl.split(ops);
    let done = 0;
    try {
      for (const b of batches) {
        await this.nl.commit(b);
        done++;
      }
    } finally {
      await this.afterWrite(done);
    }
    await this.learnShape(ops[0].family === 'ip' ? 'IPv4' : 'IPv6');
  }

  /**
   * Makes the family's table anew with `content`, when that can be one transaction, or when no
   * table is there yet (then in several: the table sees no packet until the last one, which
   * adds the hooked chains' rules). Resolves false, having done nothing, when the table exists
   * and the change does not fit one transaction: the caller uses `nft -f`, which can.
   */
  async loadFresh(content: TableContent): Promise<boolean> {
    const family = content.cfg.family;
    const max = this.nl.maxTransactionBytes;
    // An element list is one message, which must fit a batch with its headers and names.
    const { skeleton, elements, hooked } = freshTableOps(content, max - 512);
    const hookedBytes = this.nl.batchBytes(hooked) - this.nl.batchBytes([]);
    // Batches are filled as the elements are encoded and sent as each fills. The first one that
    // would not fit decides: a table that exists must change in one transaction (nft -f then),
    // a table made from nothing sees no packet until the last batch adds the hooked rules.
    let batch: Op[] = [];
    let bytes = this.nl.batchBytes([]);
    let staged = false;
    let done = 0;
    const send = async () => {
      if (!staged) {
        if (await this.nl.tableExists(nftFamily(family), TABLE_NAME)) return this.tooLarge('a full sync over the existing table (a restart)');
        staged = true;
        await this.beforeWrite();
      }
      for (const b of bytes > max ? this.nl.split(batch) : [batch]) {
        await this.nl.commit(b);
        done++;
      }
      batch = [];
      bytes = this.nl.batchBytes([]);
      return true;
    };
    try {
      for (const op of chain(skeleton, elements)) {
        const n = this.nl.encodedSize(op);
        if (batch.length && bytes + n > max && !(await send())) return false;
        batch.push(op);
        bytes += n;
      }
      if (!staged && bytes + hookedBytes <= max) {
        await this.beforeWrite();
        staged = true;
        await this.nl.commit([...batch, ...hooked]);
        done++;
      } else {
        if (batch.length && !(await send())) return false;
        await this.nl.commit(hooked);
        done++;
      }
    } finally {
      if (staged) await this.afterWrite(done);
    }
    await this.learn(family);
    return true;
  }

  /**
   * Refills the family's table, which we trust (`previous` is what our last sync left), with
   * `content` in one transaction (`refillOps`): the hourly full sync and a change of the node's
   * facts, with no `nft` parse of the table. Resolves false, having done nothing, when the
   * transaction would not fit the socket: `nft -f` then makes it one.
   */
  async refill(content: TableContent, previous: TableState): Promise<boolean> {
    const family = content.cfg.family;
    const max = this.nl.maxTransactionBytes;
    const ops: Op[] = [];
    let bytes = this.nl.batchBytes([]);
    // Stops encoding at the first op past the limit: a table that large is not encoded twice.
    for (const op of refillOps(content, previous, max - 512)) {
      bytes += this.nl.encodedSize(op);
      if (bytes > max) return this.tooLarge('a full sync over our table (hourly, or new node facts)');
      ops.push(op);
    }
    await this.beforeWrite();
    let done = 0;
    try {
      await this.nl.commit(ops);
      done = 1;
    } finally {
      await this.afterWrite(done);
    }
    await this.learn(family);
    return true;
  }

  /**
   * Says, once, that a table went to `nft -f` for its size, and what lifts the limit: the send
   * buffer is twice net.core.wmem_max, whose kernel default (212992) holds about 800 services
   * of 10 endpoints in one transaction (~500 bytes each); 4 MiB holds about 16k. Resolves false.
   */
  private tooLarge(what: string): false {
    if (this.toldTooLarge) return false;
    this.toldTooLarge = true;
    let wmemMax: number | undefined;
    try {
      wmemMax = Number(readFileSync('/proc/sys/net/core/wmem_max', 'utf8').trim());
    } catch {
      /* not readable here: the hint goes without the value */
    }
    this.log.info(`${what} does not fit one nfnetlink transaction; nft -f makes it (slower, and it blocks partial syncs meanwhile)`, {
      maxTransactionBytes: this.nl.maxTransactionBytes,
      ...(wmemMax ? { wmemMax } : {}),
      hint: 'the limit is twice net.core.wmem_max, about 500 bytes per service of 10 endpoints: sysctl -w net.core.wmem_max=4194304 holds ~16k services',
    });
    return false;
  }

  /** One transaction, in the order `partialLines` gives `nft`: new count chains, affinity sets,
   *  affinity chains (flushed when they existed) and their rules, elements out and in, then the
   *  gone chains flushed before any is deleted (one may jump to another), and the gone sets. */
  async applyPartial(family: IPFamily, cfg: FamilyConfig, change: PartialChange): Promise<boolean> {
    const f = nftFamily(family);
    const t = TABLE_NAME;
    const ops: Op[] = countChainOps(family, cfg, change.newCountChains);
    const ids = { next: 1 };
    for (const [name, seconds] of change.addSets) ops.push({ op: 'newset', family: f, table: t, set: { ...affinitySetSpec(family, name, seconds), id: ids.next++ } });
    for (const { name, existed } of change.writeChains) {
      ops.push({ op: 'newchain', family: f, table: t, chain: name });
      if (existed) ops.push({ op: 'flushchain', family: f, table: t, chain: name });
    }
    for (const { name, rules } of change.writeChains) for (const r of rules) ops.push(...ruleOps(f, name, r, ids));
    const hairpin = (ips: readonly string[]) => ips.map((ip) => ({ map: 'hairpin', key: `${ip} . ${ip}` }));
    ops.push(...elementOps(family, 'delsetelem', [...change.delElements, ...hairpin(change.hairpinDel)]));
    ops.push(...elementOps(family, 'newsetelem', [...change.addElements, ...hairpin(change.hairpinAdd)]));
    for (const chain of change.goneChains) ops.push({ op: 'flushchain', family: f, table: t, chain });
    for (const chain of change.goneChains) ops.push({ op: 'delchain', family: f, table: t, chain });
    for (const set of change.goneSets) ops.push({ op: 'delset', family: f, table: t, set });
    const chains = change.writeChains.length + change.goneChains.length + change.addSets.length + change.goneSets.length > 0;
    if (chains && this.nl.batchBytes(ops) > this.nl.maxTransactionBytes) return false;
    await this.commit(ops);
    const written = [...change.newCountChains, ...change.writeChains.map((c) => c.name)];
    if (written.length) await this.learnRules(family, written);
    const l = this.learned.get(family);
    for (const chain of change.goneChains) l?.rules.delete(chain);
    return true;
  }

  /** After a write by `nft -f` (the backend called `beforeWrite` first; one transaction): the
   *  family is as we wrote it. */
  async loaded(family: IPFamily): Promise<void> {
    await this.afterWrite(1);
    await this.learn(family);
  }

  /** Everything a later look compares with: the family's rules and shape as we left them. */
  private async learn(family: IPFamily): Promise<void> {
    this.learned.set(family, { rules: await this.rulesByChain(family), shape: await this.shape(family), dirty: this.raced });
  }

  /** The kernel's dump of our table's rules: chain → each rule's expressions, in order. */
  private async rulesByChain(family: IPFamily): Promise<Map<string, Buffer[]>> {
    const rules = new Map<string, Buffer[]>();
    for (const r of await this.nl.listRules(nftFamily(family), TABLE_NAME)) {
      let list = rules.get(r.chain);
      if (!list) rules.set(r.chain, (list = []));
      list.push(r.expressions);
    }
    return rules;
  }

  /** The kernel's own dump of chains we just wrote, to compare later reads with. */
  private async learnRules(family: IPFamily, chains: readonly string[]): Promise<void> {
    const l = this.learned.get(family);
    if (!l) return;
    const now = await this.rulesByChain(family);
    for (const c of chains) l.rules.set(c, now.get(c) ?? []);
  }

  async reconcile(family: IPFamily, cfg: FamilyConfig, expectedElements: () => ReadonlyMap<string, ReadonlySet<string>>, state: TableState): Promise<ReconcileResult> {
    const l = this.learned.get(family);
    if (!l) return { repaired: {}, needsFull: 'nothing learned since the last load' };
    await this.beforeWrite();
    if (!l.dirty) return { repaired: {} };
    const f = nftFamily(family);
    if (!(await this.nl.tableExists(f, TABLE_NAME))) return { repaired: {}, needsFull: 'the table is gone', readBack: true };

    const sets = new Set((await this.nl.listSets(f, TABLE_NAME)).map((s) => s.name));
    for (const name of [...MAP_NAMES, HAIRPIN_SET.name, ...CONFIG_SETS.map((c) => c.name), ...state.sets]) {
      if (!sets.has(name)) return { repaired: {}, needsFull: `set ${name} is gone`, readBack: true };
    }
    const chains = new Set((await this.nl.listChains(f, TABLE_NAME)).map((c) => c.name));
    const missingCount: string[] = [];
    for (const name of [...BASE_CHAINS.map((c) => c.name), ...state.chains]) if (!chains.has(name)) return { repaired: {}, needsFull: `chain ${name} is gone`, readBack: true };
    for (const name of state.countChains) if (!chains.has(name)) missingCount.push(name);

    // Rules: replay our own earlier dump into every chain whose rules differ from it.
    const now = await this.rulesByChain(family);
    const ops: Op[] = [];
    let rulesRepaired = 0;
    for (const [chain, want] of l.rules) {
      if (missingCount.includes(chain) || !chains.has(chain)) continue;
      const have = now.get(chain) ?? [];
      if (have.length === want.length && have.every((b, i) => b.equals(want[i]))) continue;
      ops.push({ op: 'flushchain', family: f, table: TABLE_NAME, chain });
      for (const expressions of want) ops.push({ op: 'newrule', family: f, table: TABLE_NAME, chain, expressions });
      rulesRepaired += want.length;
    }
    const chainOps = countChainOps(family, cfg, missingCount);

    // Elements: compared as bytes, so spelling (IPv6 forms, /32 ranges) cannot differ.
    const expected = expectedElements();
    const adds: { map: string; key: string; value?: string }[] = [];
    let elementsRepaired = 0;
    for (const name of [...MAP_NAMES, HAIRPIN_SET.name]) {
      const schema = SCHEMAS.get(name)!;
      const want = new Map<string, { key: string; value?: string }>();
      for (const text of expected.get(name) ?? []) {
        const [key, value] = splitElement(text);
        want.set(elementBytes(encodeElement(family, schema, key, value)), { key, value });
      }
      const extra: SetElement[] = [];
      for (const e of await this.nl.listSetElements(f, TABLE_NAME, name)) {
        const id = elementBytes(e);
        if (want.delete(id)) continue;
        extra.push({ key: e.key, ...(e.keyEnd ? { keyEnd: e.keyEnd } : {}) });
      }
      if (extra.length) ops.push({ op: 'delsetelem', family: f, table: TABLE_NAME, set: name, elements: extra });
      for (const w of want.values()) adds.push({ map: name, ...w });
      elementsRepaired += extra.length + want.size;
    }
    const all = [...chainOps, ...ops, ...elementOps(family, 'newsetelem', adds)];
    await this.commit(all);
    // This family is as we want it now (the others were compared at the start).
    await this.learn(family);
    const repaired: Record<string, number> = {};
    if (missingCount.length) repaired.chains = missingCount.length;
    if (rulesRepaired) repaired.rules = rulesRepaired;
    if (elementsRepaired) repaired.elements = elementsRepaired;
    if (all.length) this.log.info('reconcile repaired the nftables table', { family, ...repaired });
    return { repaired, readBack: true };
  }

  close(): void {
    this.nl.close();
  }
}

function* chain<T>(...lists: Iterable<T>[]): Generator<T> {
  for (const l of lists) yield* l;
}

function splitElement(text: string): [string, string | undefined] {
  const i = text.indexOf(' : ');
  return i < 0 ? [text, undefined] : [text.slice(0, i), text.slice(i + 3)];
}

/** An element's identity and value as one comparable string. */
function elementBytes(e: SetElement): string {
  const hex = (b?: Uint8Array) => (b ? Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex') : '');
  const v = e.verdict ? `${e.verdict.code}:${'chain' in e.verdict ? e.verdict.chain : ''}` : hex(e.data);
  return `${hex(e.key)}-${hex(e.keyEnd)}=${v}`;
}

export type { MapElement, MapName };
