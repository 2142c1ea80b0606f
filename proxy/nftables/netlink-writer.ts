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
import { BASE_CHAINS, CLUSTER_CIDRS_SET, HAIRPIN_SET, MAPS, MAP_NAMES, TABLE_NAME, countChainRules, parseCountChain, type FieldKind, type MapName, type MapSchema } from './layout.js';
import { NftNetlink } from './netlink/client.js';
import { encodeExpressions, reg32, type Expr } from './netlink/expressions.js';
import type { NftFamily, Op, SetElement, Verdict } from './netlink/messages.js';
import { concat, ipv4, ipv6, l4proto, port, u32host } from './netlink/values.js';
import type { MapElement, PartialChange, TableState } from './render.js';
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

function field(family: IPFamily, kind: FieldKind, text: string): Uint8Array {
  switch (kind) {
    case 'addr':
      return addrBytes(family, text);
    case 'proto':
      return l4proto(text as 'tcp');
    case 'port':
      return port(Number(text));
    case 'slot':
      return u32host(Number(text));
    case 'cidr':
      return range(family, text)[0];
  }
}

function parseVerdict(text: string): Verdict {
  const [code, chain] = text.split(' ');
  if ((code === 'goto' || code === 'jump') && chain) return { code, chain };
  if (code === 'drop' || code === 'accept' || code === 'return' || code === 'continue') return { code };
  throw new Error(`not a verdict: ${JSON.stringify(text)}`);
}

/** One element of a map or set as netlink takes it, from its nft spelling. */
export function encodeElement(family: IPFamily, schema: MapSchema, key: string, value?: string, keyOnly = false): SetElement {
  const parts = key.split(' . ');
  if (parts.length !== schema.key.length) throw new Error(`${schema.name}: key ${JSON.stringify(key)} has ${parts.length} fields, the map ${schema.key.length}`);
  const fields = schema.key.map((k, i) => field(family, k, parts[i]));
  const e: SetElement = { key: fields.length === 1 ? fields[0] : concat(...fields) };
  const c = schema.key.indexOf('cidr');
  if (c >= 0) {
    const end = [...fields];
    end[c] = range(family, parts[c])[1];
    e.keyEnd = end.length === 1 ? end[0] : concat(...end);
  }
  if (keyOnly || schema.value === undefined) return e;
  if (value === undefined) throw new Error(`${schema.name}: element ${JSON.stringify(key)} has no value`);
  if (schema.value === 'verdict') e.verdict = parseVerdict(value);
  else {
    const vs = value.split(' . ');
    e.data = concat(...schema.value.map((k, i) => field(family, k, vs[i])));
  }
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

// ------------------------------------------------------------------ per-count chains as expressions

/** The expressions of `countChainRules(kind, n, cfg)`, rule by rule (layout.ts spells the same
 *  rules for nft; the netns test lists chains made both ways and compares them). */
export function countChainExpressions(name: string, cfg: FamilyConfig): Buffer[] {
  const c = parseCountChain(name);
  if (!c) throw new Error(`not a per-count chain: ${name}`);
  const v6 = cfg.family === 'IPv6';
  const addrLen = v6 ? 16 : 4;
  const fam: NftFamily = v6 ? 'ip6' : 'ip';
  const saddr: Expr = { kind: 'payload', base: 'network', offset: v6 ? 8 : 12, len: addrLen, dreg: 1 };
  const jumpMasq: Expr = { kind: 'immediate', verdict: { code: 'jump', chain: 'mark-for-masquerade' } };
  const local: Expr[] = [{ kind: 'fib', flags: ['saddr'], result: 'addrtype', dreg: 1 }, { kind: 'cmp', op: 'eq', sreg: 1, data: u32host(2) /* RTN_LOCAL */ }];
  /** `[ip daddr .] meta l4proto . th dport`, one 4-byte register per field from the first. */
  const key = (byAddr: boolean): Expr[] => {
    const out: Expr[] = [];
    let r = 0;
    if (byAddr) {
      out.push({ kind: 'payload', base: 'network', offset: v6 ? 24 : 16, len: addrLen, dreg: reg32(0) });
      r = addrLen / 4;
    }
    out.push({ kind: 'meta', key: 'l4proto', dreg: reg32(r) }, { kind: 'payload', base: 'transport', offset: 2, len: 2, dreg: reg32(r + 1) });
    return out;
  };
  const keyRegs = (byAddr: boolean) => (byAddr ? addrLen / 4 : 0) + 2;
  const pick = (byAddr: boolean, map: string): Expr[] => [
    ...key(byAddr),
    { kind: 'numgen', type: 'random', modulus: c.n, dreg: reg32(keyRegs(byAddr)) },
    { kind: 'lookup', set: map, sreg: 1, dreg: 1 },
    // The data `addr . port` lands in register 1: the address first, the port after it.
    { kind: 'nat', type: 'dnat', family: fam, regAddrMin: 1, regProtoMin: reg32(addrLen / 4) },
  ];
  const vmap = (byAddr: boolean, map: string): Expr[] => [...key(byAddr), { kind: 'lookup', set: map, sreg: 1, dreg: 0 }];
  const shortcuts = (byAddr: boolean, map: string): Expr[][] => [
    ...(cfg.clusterCIDRs.length ? [[saddr, { kind: 'lookup', set: 'cluster-cidrs', sreg: 1 } as Expr, ...vmap(byAddr, map)]] : []),
    [...local, jumpMasq],
    [...local, ...vmap(byAddr, map)],
  ];
  const rules: Expr[][] = [];
  switch (c.kind) {
    case 'cluster':
      if (cfg.masqueradeAll) rules.push([jumpMasq]);
      else if (cfg.clusterCIDRs.length) rules.push([saddr, { kind: 'lookup', set: 'cluster-cidrs', sreg: 1, invert: true }, jumpMasq]);
      rules.push(pick(true, 'endpoints'));
      break;
    case 'external':
      rules.push([jumpMasq], pick(true, 'endpoints'));
      break;
    case 'external-local':
      rules.push(...shortcuts(true, 'shortcut-ips'));
      if (c.n > 0) rules.push(pick(true, 'endpoints'));
      break;
    case 'shortcut':
      rules.push(pick(true, 'shortcut-endpoints'));
      break;
    case 'nodeport':
      rules.push([jumpMasq], pick(false, 'nodeport-endpoints'));
      break;
    case 'nodeport-local':
      rules.push(...shortcuts(false, 'nodeport-shortcuts'));
      if (c.n > 0) rules.push(pick(false, 'nodeport-endpoints'));
      break;
    case 'nodeport-shortcut':
      rules.push(pick(false, 'nodeport-shortcut-endpoints'));
      break;
  }
  if (rules.length !== countChainRules(c.kind, c.n, cfg).length) throw new Error(`internal: ${name} has ${rules.length} rules here and ${countChainRules(c.kind, c.n, cfg).length} in layout.ts`);
  return rules.map(encodeExpressions);
}

function countChainOps(family: IPFamily, cfg: FamilyConfig, names: readonly string[]): Op[] {
  const f = nftFamily(family);
  const ops: Op[] = [];
  for (const chain of names) {
    ops.push({ op: 'newchain', family: f, table: TABLE_NAME, chain });
    for (const expressions of countChainExpressions(chain, cfg)) ops.push({ op: 'newrule', family: f, table: TABLE_NAME, chain, expressions });
  }
  return ops;
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

  /** Notes a commit by someone else since our last one; call before writing (also with nft). */
  async beforeWrite(): Promise<void> {
    const g = await this.nl.getGeneration();
    if (this.gen !== undefined && g !== this.gen) for (const l of this.learned.values()) l.dirty = true;
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
    if (!(await this.nl.tableExists(f, TABLE_NAME))) return { repaired: {}, needsFull: 'the table is gone' };

    const sets = new Set((await this.nl.listSets(f, TABLE_NAME)).map((s) => s.name));
    for (const name of [...MAP_NAMES, HAIRPIN_SET.name, CLUSTER_CIDRS_SET.name, ...state.sets]) {
      if (!sets.has(name)) return { repaired: {}, needsFull: `set ${name} is gone` };
    }
    const chains = new Set((await this.nl.listChains(f, TABLE_NAME)).map((c) => c.name));
    const missingCount: string[] = [];
    for (const name of [...BASE_CHAINS.map((c) => c.name), ...state.chains]) if (!chains.has(name)) return { repaired: {}, needsFull: `chain ${name} is gone` };
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
    return { repaired };
  }

  close(): void {
    this.nl.close();
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
