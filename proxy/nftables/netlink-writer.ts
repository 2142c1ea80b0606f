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
import type { IPFamily } from '../../cluster/types.js';
import type { Logger } from '../../common/log.js';
import type { FamilyConfig } from '../core/family-config.js';
import {
  BASE_CHAINS, CONFIG_SETS, HAIRPIN_SET, MAPS, MAP_NAMES, TABLE_NAME, baseRules, configElements, countChainRules, parseCountChain,
  type FieldKind, type MapName, type MapSchema,
} from './layout.js';
import { NftNetlink } from './netlink/client.js';
import { NftMonitor } from './netlink/monitor.js';
import { encodeExpressions } from './netlink/expressions.js';
import type { NftFamily, Op, SetElement, Verdict } from './netlink/messages.js';
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

/** The fields of `text` (`a . b . c`) laid out as netlink takes them: one field unpadded, a
 *  concatenation with every field in whole 4-byte registers. */
function fields(family: IPFamily, kinds: readonly FieldKind[], text: string, what: string, end = false): Uint8Array {
  const parts = text.split(' . ');
  if (parts.length !== kinds.length) throw new Error(`${what} ${JSON.stringify(text)} has ${parts.length} fields, the map ${kinds.length}`);
  if (kinds.length === 1) {
    const out = new Uint8Array(fieldWidth(family, kinds[0]));
    putField(out, 0, family, kinds[0], parts[0], end);
    return out;
  }
  let len = 0;
  for (const k of kinds) len += (fieldWidth(family, k) + 3) & ~3;
  const out = new Uint8Array(len);
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

/** One element of a map or set as netlink takes it, from its nft spelling. */
export function encodeElement(family: IPFamily, schema: MapSchema, key: string, value?: string, keyOnly = false): SetElement {
  const e: SetElement = { key: fields(family, schema.key, key, `${schema.name}: key`) };
  if (schema.key.includes('cidr')) e.keyEnd = fields(family, schema.key, key, `${schema.name}: key`, true);
  if (keyOnly || schema.value === undefined) return e;
  if (value === undefined) throw new Error(`${schema.name}: element ${JSON.stringify(key)} has no value`);
  if (schema.value === 'verdict') e.verdict = parseVerdict(value);
  else e.data = fields(family, schema.value, value, `${schema.name}: value`);
  return e;
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
export function freshTableOps(content: TableContent): { skeleton: Op[]; elements: Op[]; hooked: Op[] } {
  const { cfg } = content;
  const family = cfg.family;
  const f = nftFamily(family);
  const t = TABLE_NAME;
  const skeleton: Op[] = [{ op: 'newtable', family: f, table: t }, { op: 'deltable', family: f, table: t }, { op: 'newtable', family: f, table: t }];
  const elements: Op[] = [];
  const hooked: Op[] = [];
  // The kernel wants a transaction id on every new set, named or not.
  let nextId = 1;
  for (const schema of [...CONFIG_SETS, HAIRPIN_SET, ...MAP_NAMES.map((m) => MAPS[m])]) skeleton.push({ op: 'newset', family: f, table: t, set: { ...setSpec(family, schema), id: nextId++ } });
  for (const [schema, items] of configElements(cfg)) {
    if (!items.length) continue;
    const els = schema.key[0] === 'cidr' ? intervalElements(family, items) : items.map((k) => encodeElement(family, schema, k));
    skeleton.push({ op: 'newsetelem', family: f, table: t, set: schema.name, elements: els });
  }
  for (const [name, seconds] of content.sets) skeleton.push({ op: 'newset', family: f, table: t, set: { ...affinitySetSpec(family, name, seconds), id: nextId++ } });
  for (const c of BASE_CHAINS) skeleton.push({ op: 'newchain', family: f, table: t, chain: c.name, ...(c.hook ? { hook: c.hook } : {}) });
  for (const chain of content.countChains) skeleton.push({ op: 'newchain', family: f, table: t, chain });
  for (const chain of content.chains.keys()) skeleton.push({ op: 'newchain', family: f, table: t, chain });
  const hookedChains = new Set(BASE_CHAINS.filter((c) => c.hook).map((c) => c.name));
  const addRule = (chain: string, r: Rule, into: Op[]) => {
    let exprs = r.exprs;
    if (r.slotMap) {
      const id = nextId++;
      into.push({ op: 'newset', family: f, table: t, set: anonymousSlotMapSpec(id, r.slotMap.length) });
      into.push({ op: 'newsetelem', family: f, table: t, set: '__map%d', setId: id, elements: r.slotMap.map((verdict, i) => ({ key: u32host(i), verdict })) });
      exprs = withSlotMapId(exprs, id);
    }
    into.push({ op: 'newrule', family: f, table: t, chain, expressions: encodeExpressions(exprs) });
  };
  for (const [chain, r] of baseRules(cfg)) addRule(chain, r, hookedChains.has(chain) ? hooked : skeleton);
  skeleton.push(...countChainOps(family, cfg, [...content.countChains]).filter((op) => op.op === 'newrule'));
  for (const [chain, rules] of content.chains) for (const r of rules) addRule(chain, r, skeleton);
  // Map by map, straight to bytes (no intermediate records: 100k+ of them at 10k services).
  const byMap = [...content.byMap].filter(([, texts]) => texts.length).sort(([a], [b]) => DATA_FIRST.indexOf(a) - DATA_FIRST.indexOf(b));
  for (const [map, texts] of byMap) {
    const schema = SCHEMAS.get(map);
    if (!schema) throw new Error(`unknown map ${map}`);
    const els = texts.map((text) => {
      const [key, value] = splitElement(text);
      return encodeElement(family, schema, key, value);
    });
    elements.push({ op: 'newsetelem', family: f, table: t, set: map, elements: els });
  }
  return { skeleton, elements, hooked };
}

// ------------------------------------------------------------------ the writer

interface Learned {
  /** Chain → the kernel's dump of its rules' expressions, in order. */
  rules: Map<string, Buffer[]>;
  /** Someone else committed since this family was last written or read back. */
  dirty: boolean;
}

export class NetlinkTableWriter implements TableWriter {
  private readonly learned = new Map<IPFamily, Learned>();
  /** The ruleset generation after our own last commit. It is one counter for the whole network
   *  namespace (both families, every table): a commit of ours moves it too, so before each one
   *  we check it is still where we left it, and if not, every family must be read back. */
  private gen?: number;

  /** `monitor`: notifications of the namespace's transactions, so that commits by others to
   *  other tables (iptables-nft, every few seconds on a real node) cost no read-back. Without
   *  one, any move of the generation reads every family back. */
  constructor(private readonly nl: NftNetlink, private readonly log: Logger, private readonly monitor?: NftMonitor) {}

  /** Opens the sockets and checks that this kernel answers; undefined when it cannot be used. */
  static async open(log: Logger): Promise<NetlinkTableWriter | undefined> {
    try {
      const nl = NftNetlink.open();
      await nl.getGeneration();
      return new NetlinkTableWriter(nl, log, NetlinkTableWriter.monitorFor(nl, log));
    } catch (err) {
      log.warn('nfnetlink is not usable here; partial syncs go through nft and reconciles are skipped', { error: (err as Error).message });
      return undefined;
    }
  }

  /** The monitor of our table for a client, or undefined (then reconciles read back whenever the generation moves). */
  static monitorFor(nl: NftNetlink, log: Logger): NftMonitor | undefined {
    try {
      return new NftMonitor(NftNetlink.openEvents(), TABLE_NAME, () => nl.portId);
    } catch (err) {
      log.warn('cannot subscribe to nf_tables notifications; every commit in the namespace makes the next reconcile read our tables back', { error: (err as Error).message });
      return undefined;
    }
  }

  /** Notes a commit by someone else to our tables since our last look; call before writing
   *  (also with nft). */
  async beforeWrite(): Promise<void> {
    const g = await this.nl.getGeneration();
    if (this.monitor) {
      // Every time, not only when the generation moved: someone may commit between our commit
      // and our reading of the generation after it.
      for (const [family, l] of this.learned) if ((await this.monitor.take(nftFamily(family), g)) !== 'untouched') l.dirty = true;
      this.monitor.resetLoss();
    } else if (this.gen !== undefined && g !== this.gen) for (const l of this.learned.values()) l.dirty = true;
  }

  private async afterWrite(): Promise<void> {
    this.gen = await this.nl.getGeneration();
  }

  /** Commits `ops`, cut into several transactions only when one would not fit the socket. */
  private async commit(ops: Op[]): Promise<void> {
    if (ops.length === 0) return;
    await this.beforeWrite();
    const batches = this.nl.batchBytes(ops) <= this.nl.maxTransactionBytes ? [ops] : this.nl.split(ops);
    try {
      for (const b of batches) await this.nl.commit(b);
    } finally {
      await this.afterWrite();
    }
  }

  /**
   * Makes the family's table anew with `content`, when that can be one transaction, or when no
   * table is there yet (then in several: the table sees no packet until the last one, which
   * adds the hooked chains' rules). Resolves false, having done nothing, when the table exists
   * and the change does not fit one transaction: the caller uses `nft -f`, which can.
   */
  async loadFresh(content: TableContent): Promise<boolean> {
    const family = content.cfg.family;
    const { skeleton, elements, hooked } = freshTableOps(content);
    const all = [...skeleton, ...elements, ...hooked];
    if (this.nl.batchBytes(all) > this.nl.maxTransactionBytes) {
      if (await this.nl.tableExists(nftFamily(family), TABLE_NAME)) return false;
      await this.beforeWrite();
      try {
        for (const b of this.nl.split([...skeleton, ...elements])) await this.nl.commit(b);
        await this.nl.commit(hooked);
      } finally {
        await this.afterWrite();
      }
    } else await this.commit(all);
    await this.loaded(family);
    return true;
  }

  async addCountChains(family: IPFamily, cfg: FamilyConfig, names: readonly string[]): Promise<void> {
    if (names.length === 0) return;
    await this.commit(countChainOps(family, cfg, names));
    await this.learnRules(family, names);
  }

  async applyPartial(family: IPFamily, cfg: FamilyConfig, change: PartialChange): Promise<void> {
    const ops: Op[] = countChainOps(family, cfg, change.newCountChains);
    const hairpin = (ips: readonly string[]) => ips.map((ip) => ({ map: 'hairpin', key: `${ip} . ${ip}` }));
    ops.push(...elementOps(family, 'delsetelem', [...change.delElements, ...hairpin(change.hairpinDel)]));
    ops.push(...elementOps(family, 'newsetelem', [...change.addElements, ...hairpin(change.hairpinAdd)]));
    await this.commit(ops);
    if (change.newCountChains.length) await this.learnRules(family, change.newCountChains);
  }

  /** After a write by `nft -f` (the backend called `beforeWrite` first): the family is as we
   *  wrote it. */
  async loaded(family: IPFamily): Promise<void> {
    await this.afterWrite();
    this.learned.set(family, { rules: await this.rulesByChain(family), dirty: false });
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
    if (missingCount.length || rulesRepaired) await this.loaded(family);
    // This family is as we want it now; the others were marked at the start if anything moved.
    l.dirty = false;
    await this.afterWrite();
    const repaired: Record<string, number> = {};
    if (missingCount.length) repaired.chains = missingCount.length;
    if (rulesRepaired) repaired.rules = rulesRepaired;
    if (elementsRepaired) repaired.elements = elementsRepaired;
    if (all.length) this.log.info('reconcile repaired the nftables table', { family, ...repaired });
    return { repaired, readBack: true };
  }

  close(): void {
    this.nl.close();
    this.monitor?.close();
  }
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
