// Renders the core's service plans into the nftables mode's table (layout.ts): per service, the
// map elements of its paths and the shared per-count chains they need; a ClientIP-affinity
// service port keeps chains of its own (see `renderAffinityPort`). Pure: no I/O, no policy — the
// core decided which endpoints serve what (proxy/core/topology.ts); this only writes it down.
//
// What a service owns is recorded per *path*: one destination key (`address . protocol . port`,
// or `protocol . port` for a node port) with every element derived from it (its verdict, its
// endpoint slots, its short-cuts, its filter verdict). Two services claiming the same path (one
// external IP and port in two manifests) cannot mix their elements: the first keeps the path.
import { createHash } from 'node:crypto';
import type { IPFamily, ObjectKey } from '../../cluster/types.js';
import type { FamilyConfig } from '../core/family-config.js';
import { targetKey, type ServicePlan, type ServicePortPlan, type Target } from '../core/model.js';
import { firewallAdmitsNode, policyTargets, portDecisions, type PortChains } from '../core/port-decisions.js';
import {
  BASE_CHAINS, CONFIG_SETS, HAIRPIN_SET, MAPS, MAP_NAMES, affinitySetDeclaration, baseRules, localSource, configElements, countChain, countChainRules, hookText,
  isEndpointMap, isRemadeOnRefill, parseCountChain, words, type MapName, type MapSchema, type PathKind,
} from './layout.js';
import { MapUndo } from './map-undo.js';
import {
  addrInPrefix, addrIs, dnatTo, fam, fibLocal, goTo, inSet, jump, l4protoIs, numgenVmap, rule, updateSaddr, type Rule,
} from './rules.js';

export { MASQ_MARK, TABLE_NAME, words } from './layout.js';
export type { FamilyConfig, PortChains };

/** One element of one of the maps services own, in nft's spelling. */
export interface MapElement {
  readonly map: MapName;
  /** The key as nft writes it (`10.96.0.10 . tcp . 80 . 0`). */
  readonly key: string;
  /** The value (`goto cluster-3`, `10.244.0.5 . 8080`); undefined in a set. */
  readonly value?: string;
  /** The destination this element serves: ownership is per path. */
  readonly path: string;
}

/** What one service owns in one family's table. */
export interface ServiceNft {
  readonly key: ObjectKey;
  readonly elements: readonly MapElement[];
  /** Shared per-count chains its paths go to (they must exist before its elements). */
  readonly countChains: ReadonlySet<string>;
  /** Chains of its own (ClientIP affinity only): name → rules, in order. */
  readonly chains: ReadonlyMap<string, readonly Rule[]>;
  /** Affinity set name → its timeout in seconds (`{ type …; flags dynamic,timeout; timeout Ns; }`). */
  readonly sets: ReadonlyMap<string, number>;
  /** This node's endpoint addresses, for the hairpin set (shared between services, so counted). */
  readonly endpointIPs: readonly string[];
}

/** A 16-character base32 digest: chain names that are stable across restarts. */
function nameHash(text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 16).replace(/[-_]/g, 'z');
}

/** A readable tail for chain names: `ns/name/port/proto`, anything nft would not take as an
 *  identifier character replaced. The hash in front keeps names unique. */
function readable(p: Pick<ServicePortPlan, 'name' | 'protocol'>): string {
  return `${p.name.replace(':', '/')}/${p.protocol.toLowerCase()}`.replace(/[^a-zA-Z0-9/_.-]/g, '_');
}

/** The chains of an affinity service port. */
export function portChains(p: Pick<ServicePortPlan, 'name' | 'protocol'>): PortChains {
  const h = nameHash(`${p.name}/${p.protocol}`);
  const tail = readable(p);
  return { svc: `svc-${h}-${tail}`, svl: `svl-${h}-${tail}`, ext: `ext-${h}-${tail}`, fw: `fw-${h}-${tail}` };
}

/** The endpoint chain and affinity set of one endpoint of an affinity service; the timeout is part
 *  of the name so a changed timeout makes a new set instead of redefining a referenced one. */
export function affinityNames(p: Pick<ServicePortPlan, 'name' | 'protocol' | 'affinitySeconds'>, t: Target): { chain: string; set: string } {
  const h = nameHash(`${p.name}/${p.protocol}/${targetKey(t)}/${p.affinitySeconds}`);
  return { chain: `ep-${h}`, set: `aff-${h}` };
}

interface Out {
  elements: MapElement[];
  countChains: Set<string>;
  chains: Map<string, Rule[]>;
  sets: Map<string, number>;
}

/** A service port without affinity: elements only. */
function renderMapPort(p: ServicePortPlan, cfg: FamilyConfig, out: Out): void {
  const proto = p.protocol.toLowerCase();
  const d = portDecisions(p);
  const blocked = d.blocked === 'reject' ? 'goto reject-service' : 'drop';
  const addrKey = (ip: string) => `${ip} . ${proto} . ${p.port}`;
  const portKey = `${proto} . ${p.nodePort}`;
  const el = (map: MapName, path: string, key: string, value?: string) => out.elements.push({ map, key, value, path });
  const via = (kind: PathKind, n: number) => {
    const name = countChain(kind, n);
    out.countChains.add(name);
    return `goto ${name}`;
  };
  const slots = (map: MapName, path: string, base: string, targets: readonly Target[]) => {
    targets.forEach((t, i) => el(map, path, `${base} . ${i}`, `${t.ip} . ${t.port}`));
  };
  const local = d.externalPolicy === 'local';
  const external = local ? p.localEndpoints : p.clusterEndpoints;

  /** The verdict of an external path (external IP, LB IP, node port), with its elements; undefined
   *  when it has nowhere to go (the filter map blocks it). */
  const externalPath = (byPort: boolean, path: string, base: string): string | undefined => {
    if (!d.usesExternalChain) return undefined;
    const endpointsMap: MapName = byPort ? 'nodeport-endpoints' : 'endpoints';
    if (!local) {
      if (!d.hasExternal) return undefined;
      slots(endpointsMap, path, base, external);
      return via(byPort ? 'nodeport' : 'external', external.length);
    }
    if (d.externalShortcuts) {
      el(byPort ? 'nodeport-shortcuts' : 'shortcut-ips', path, base, via(byPort ? 'nodeport-shortcut' : 'shortcut', p.clusterEndpoints.length));
      slots(byPort ? 'nodeport-shortcut-endpoints' : 'shortcut-endpoints', path, base, p.clusterEndpoints);
    }
    const n = d.hasExternal ? external.length : 0;
    slots(endpointsMap, path, base, d.hasExternal ? external : []);
    return via(byPort ? 'nodeport-local' : 'external-local', n);
  };

  if (p.clusterIP) {
    const path = `a ${addrKey(p.clusterIP)}`;
    el('cluster-ips', `c ${p.clusterIP}`, p.clusterIP);
    if (d.hasInternal) {
      const targets = d.internalPolicy === 'local' ? p.localEndpoints : p.clusterEndpoints;
      el('service-ips', path, addrKey(p.clusterIP), via('cluster', targets.length));
      slots('endpoints', path, addrKey(p.clusterIP), targets);
    } else el('service-filter', path, addrKey(p.clusterIP), blocked);
  }

  for (const ip of p.externalIPs) {
    const path = `a ${addrKey(ip)}`;
    const verdict = externalPath(false, path, addrKey(ip));
    if (verdict) el('service-ips', path, addrKey(ip), verdict);
    if (!d.hasExternal) el('service-filter', path, addrKey(ip), blocked);
  }

  for (const ip of p.loadBalancerIPs) {
    const path = `a ${addrKey(ip)}`;
    const verdict = externalPath(false, path, addrKey(ip));
    if (d.usesFirewall) {
      el('service-ips', path, addrKey(ip), 'goto firewall');
      if (verdict) el('firewall-ips', path, addrKey(ip), verdict);
      for (const cidr of p.sourceRanges) el('firewall-allow', path, `${addrKey(ip)} . ${cidr}`);
      // A VIP-style load balancer loops back with the LB IP as the source.
      if (firewallAdmitsNode(p, cfg.nodeIPs)) el('firewall-allow', path, `${addrKey(ip)} . ${ip}`);
      // Sources the firewall did not admit stay addressed to the LB IP: dropped here.
      el('service-filter', path, addrKey(ip), 'drop');
    } else {
      if (verdict) el('service-ips', path, addrKey(ip), verdict);
      if (!d.hasExternal) el('service-filter', path, addrKey(ip), blocked);
    }
  }

  if (p.nodePort > 0) {
    const path = `p ${portKey}`;
    const verdict = externalPath(true, path, portKey);
    if (verdict) el('service-nodeports', path, portKey, verdict);
    if (!d.hasExternal) el('nodeport-filter', path, portKey, blocked);
  }
}

/**
 * A service port with ClientIP affinity keeps per-endpoint chains, as kube-proxy's nftables mode
 * does: each endpoint chain records the client in its own timeout set (`update @aff-… { saddr }`)
 * and the policy chain sends a client found in one of them back there. A map form would have to
 * record the endpoint chosen by `numgen` after DNAT, in another hook, keyed by the original
 * destination, and find and delete the records of a removed endpoint by dumping the whole
 * affinity map; the per-endpoint sets go with their endpoint. Affinity services are few, so the
 * chain count still does not grow with the cluster.
 */
function renderAffinityPort(p: ServicePortPlan, cfg: FamilyConfig, out: Out): void {
  const f = fam(cfg.family);
  const proto = p.protocol.toLowerCase() as 'tcp' | 'udp' | 'sctp';
  const c = portChains(p);
  const d = portDecisions(p);
  const { hasEndpoints, usesCluster, usesLocal, hasInternal, hasExternal } = d;
  const { internal: internalChain, external: externalPolicyChain, loadBalancer: lbChain } = policyTargets(d, c);
  const blocked = d.blocked === 'reject' ? 'goto reject-service' : 'drop';
  const add = (chain: string, r: Rule) => {
    let rules = out.chains.get(chain);
    if (!rules) out.chains.set(chain, (rules = []));
    rules.push(r);
  };
  const masq = jump('mark-for-masquerade');
  const local = localSource(cfg);
  const notLocal = localSource(cfg, true);
  const addrKey = (ip: string) => `${ip} . ${proto} . ${p.port}`;
  const el = (map: MapName, path: string, key: string, value?: string) => out.elements.push({ map, key, value, path });

  if (p.clusterIP) {
    const path = `a ${addrKey(p.clusterIP)}`;
    el('cluster-ips', `c ${p.clusterIP}`, p.clusterIP);
    if (hasInternal) {
      el('service-ips', path, addrKey(p.clusterIP), `goto ${internalChain}`);
      if (cfg.masqueradeAll) add(internalChain, rule(addrIs(f, 'daddr', p.clusterIP), masq));
      else if (notLocal) add(internalChain, rule(addrIs(f, 'daddr', p.clusterIP), notLocal, masq));
    } else el('service-filter', path, addrKey(p.clusterIP), blocked);
  }
  for (const ip of p.externalIPs) {
    const path = `a ${addrKey(ip)}`;
    if (hasEndpoints) el('service-ips', path, addrKey(ip), `goto ${c.ext}`);
    if (!hasExternal) el('service-filter', path, addrKey(ip), blocked);
  }
  for (const ip of p.loadBalancerIPs) {
    const path = `a ${addrKey(ip)}`;
    if (hasEndpoints) el('service-ips', path, addrKey(ip), `goto ${lbChain}`);
    if (d.usesFirewall) el('service-filter', path, addrKey(ip), 'drop');
    else if (!hasExternal) el('service-filter', path, addrKey(ip), blocked);
  }
  if (p.nodePort > 0) {
    const path = `p ${proto} . ${p.nodePort}`;
    if (hasEndpoints) el('service-nodeports', path, `${proto} . ${p.nodePort}`, `goto ${c.ext}`);
    if (!hasExternal) el('nodeport-filter', path, `${proto} . ${p.nodePort}`, blocked);
  }
  if (d.usesExternalChain) {
    if (!out.chains.has(c.ext)) out.chains.set(c.ext, []);
    if (d.masqueradeExternal) add(c.ext, rule(masq));
    else if (d.externalShortcuts) {
      if (local) add(c.ext, rule(local, goTo(c.svc)));
      add(c.ext, rule(fibLocal('saddr'), masq));
      add(c.ext, rule(fibLocal('saddr'), goTo(c.svc)));
    }
    if (hasExternal) add(c.ext, rule(goTo(externalPolicyChain)));
  }
  if (d.usesFirewall) {
    out.chains.set(c.fw, []);
    for (const cidr of p.sourceRanges) add(c.fw, rule(addrInPrefix(f, 'saddr', cidr), goTo(c.ext)));
    if (firewallAdmitsNode(p, cfg.nodeIPs)) for (const ip of p.loadBalancerIPs) add(c.fw, rule(addrIs(f, 'saddr', ip), goTo(c.ext)));
  }
  const writePolicy = (chain: string, targets: readonly Target[]) => {
    if (!out.chains.has(chain)) out.chains.set(chain, []);
    const names = targets.map((t) => affinityNames(p, t));
    names.forEach((n) => add(chain, rule(inSet(f, ['saddr'], n.set), goTo(n.chain))));
    add(chain, rule(numgenVmap(names.map((n) => ({ code: 'goto', chain: n.chain })))));
    targets.forEach((t, i) => {
      const n = names[i];
      if (out.sets.has(n.set)) return;
      out.sets.set(n.set, p.affinitySeconds);
      out.chains.set(n.chain, [rule(updateSaddr(f, n.set)), rule(l4protoIs(proto), dnatTo(f, t.ip, t.port))]);
    });
  };
  if (usesCluster) writePolicy(c.svc, p.clusterEndpoints);
  if (usesLocal) writePolicy(c.svl, p.localEndpoints);
}

/** Everything one service owns in one family, or undefined when it has nothing there. */
export function renderService(plan: ServicePlan, cfg: FamilyConfig): ServiceNft | undefined {
  const ports = plan.ports.filter((p) => p.family === cfg.family);
  if (ports.length === 0) return undefined;
  const out: Out = { elements: [], countChains: new Set(), chains: new Map(), sets: new Map() };
  for (const p of ports) (p.affinitySeconds > 0 ? renderAffinityPort : renderMapPort)(p, cfg, out);
  // One element per key: a manifest listing an external IP twice must not make nft refuse the
  // transaction. The first wins.
  const seen = new Set<string>();
  const elements = out.elements.filter((e) => {
    const k = elementId(e);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  // Hairpin (a pod reaching itself through its service) can only happen on the endpoint's own
  // node, so only this node's endpoints (and those naming no node) need a hairpin entry: ~100
  // pods instead of every endpoint of the cluster.
  const ips = new Set<string>();
  for (const p of ports) for (const t of [...p.clusterEndpoints, ...p.localEndpoints]) if (t.local || t.nodeUnknown) ips.add(t.ip);
  return { key: plan.key, elements, countChains: out.countChains, chains: out.chains, sets: out.sets, endpointIPs: [...ips] };
}

export function elementId(e: Pick<MapElement, 'map' | 'key'>): string {
  return `${e.map} ${e.key}`;
}

/** Declarations and rules of the table's fixed part, as nft lines. */
function baseLines(cfg: FamilyConfig, fresh: boolean): string[] {
  const w = words(cfg.family);
  const t = w.table;
  const lines: string[] = [];
  const decl = (schema: MapSchema) => {
    const what = schema.value ? 'map' : 'set';
    const declaration = `add ${what} ${t} ${schema.name} ${schema.declare(w)}`;
    lines.push(declaration);
    if (fresh) return;
    // Endpoint maps (nft cannot evaluate rules against them) and concatenated interval sets (the
    // kernel's cost) are made anew, see layout.ts; the rest keep their identity and are refilled.
    if (isEndpointMap(schema) || isRemadeOnRefill(schema)) lines.push(`delete ${what} ${t} ${schema.name}`, declaration);
    else lines.push(`flush ${what} ${t} ${schema.name}`);
  };
  for (const schema of CONFIG_SETS) decl(schema);
  for (const [schema, items] of configElements(cfg)) if (items.length) lines.push(`add element ${t} ${schema.name} { ${items.join(', ')} }`);
  decl(HAIRPIN_SET);
  for (const m of MAP_NAMES) decl(MAPS[m]);
  for (const c of BASE_CHAINS) lines.push(c.hook ? `add chain ${t} ${c.name} { ${hookText(c.hook)} }` : `add chain ${t} ${c.name}`);
  for (const [chain, r] of baseRules(cfg)) lines.push(`add rule ${t} ${chain} ${r.text}`);
  return lines;
}

/** Number of rules in the fixed part (for the rule counts). */
export function baseRuleCount(cfg: FamilyConfig): number {
  return baseRules(cfg).length;
}

/** The nft lines making a per-count chain with its rules. */
export function countChainLines(t: string, name: string, cfg: FamilyConfig): string[] {
  const c = parseCountChain(name);
  if (!c) throw new Error(`not a per-count chain: ${name}`);
  return [`add chain ${t} ${name}`, ...countChainRules(c.kind, c.n, cfg).map((r) => `add rule ${t} ${name} ${r.text}`)];
}

/** What the table holds of the services, as the backend remembers it between syncs. */
export interface TableState {
  /** Chains of affinity services. */
  readonly chains: ReadonlySet<string>;
  readonly sets: ReadonlySet<string>;
  readonly countChains: ReadonlySet<string>;
}

function elementLines(t: string, map: string, items: readonly string[]): string[] {
  // Batches keep each command short; one giant `{ … }` line is slower for nft to parse.
  const out: string[] = [];
  for (let i = 0; i < items.length; i += 1000) out.push(`add element ${t} ${map} { ${items.slice(i, i + 1000).join(', ')} }`);
  return out;
}

export function elementText(e: Pick<MapElement, 'key' | 'value'>): string {
  return e.value === undefined ? e.key : `${e.key} : ${e.value}`;
}

/** Who holds a path now (another service may have claimed the same external IP and port). */
export type Owners = Map<string, ObjectKey>;

/** Everything a full sync writes into one family's table, before it is spelled for nft
 *  (`fullLines`) or netlink (netlink-writer.ts `loadFresh`). */
export interface TableContent {
  readonly cfg: FamilyConfig;
  /** Path → the service whose elements went in (first claimant wins). */
  readonly owners: Owners;
  /** Number of service elements that went in. */
  readonly elements: number;
  /** Elements per map, in nft's spelling (`key` or `key : value`); `hairpin` included. */
  readonly byMap: ReadonlyMap<string, readonly string[]>;
  /** Affinity chains and their rules. */
  readonly chains: ReadonlyMap<string, readonly Rule[]>;
  /** Affinity sets and their timeouts (seconds). */
  readonly sets: ReadonlyMap<string, number>;
  /** Shared per-count chains, in the order the services needed them. */
  readonly countChains: ReadonlySet<string>;
}

export interface FullRender extends TableContent {
  readonly lines: string[];
}

/** What the services put in the table: first claimant of a path wins, chains and sets once. */
export function collectTable(services: Iterable<ServiceNft>, cfg: FamilyConfig): TableContent {
  const chains = new Map<string, Rule[]>();
  const sets = new Map<string, number>();
  const countChains = new Set<string>();
  const owners: Owners = new Map();
  const byMap = new Map<string, string[]>(MAP_NAMES.map((m) => [m, []]));
  const hairpin = new Set<string>();
  let elements = 0;
  for (const s of services) {
    for (const [name, seconds] of s.sets) if (!sets.has(name)) sets.set(name, seconds);
    for (const name of s.countChains) countChains.add(name);
    for (const [chain, body] of s.chains) {
      let rules = chains.get(chain);
      if (!rules) chains.set(chain, (rules = []));
      rules.push(...body);
    }
    const claimed = new Set<string>();
    for (const e of s.elements) {
      const holder = owners.get(e.path);
      if (holder !== undefined && holder !== s.key) continue;
      if (holder === undefined) claimed.add(e.path);
      byMap.get(e.map)!.push(elementText(e));
      elements++;
    }
    for (const path of claimed) owners.set(path, s.key);
    for (const ip of s.endpointIPs) hairpin.add(ip);
  }
  byMap.set(HAIRPIN_SET.name, [...hairpin].map((ip) => `${ip} . ${ip}`));
  return { cfg, owners, elements, byMap, chains, sets, countChains };
}

/**
 * The whole table as one `nft -f` transaction. `previous` is what the last successful sync left
 * (the backend's memory); without it the table is deleted and made again, which also recovers
 * from any state we cannot trust. With it, the table is flushed (rules go, maps and sets stay,
 * so affinity entries survive), the service maps are flushed and refilled, every chain is
 * rewritten, and chains and sets no longer wanted are deleted.
 */
export function fullLines(c: TableContent, previous?: TableState): string[] {
  const cfg = c.cfg;
  const w = words(cfg.family);
  const t = w.table;
  const fresh = !previous;
  const lines: string[] = [`add table ${t}`];
  if (fresh) lines.push(`delete table ${t}`, `add table ${t}`);
  else lines.push(`flush table ${t}`);
  lines.push(...baseLines(cfg, fresh));
  for (const [name, seconds] of c.sets) lines.push(`add set ${t} ${name} ${affinitySetDeclaration(w, seconds)}`);
  for (const name of c.countChains) lines.push(...countChainLines(t, name, cfg));
  for (const chain of c.chains.keys()) lines.push(`add chain ${t} ${chain}`);
  for (const [chain, body] of c.chains) for (const r of body) lines.push(`add rule ${t} ${chain} ${r.text}`);
  for (const [map, items] of c.byMap) lines.push(...elementLines(t, map, items));
  if (previous) {
    // Already empty after `flush table`, and no map element points at them any more.
    for (const ch of previous.chains) if (!c.chains.has(ch)) lines.push(`delete chain ${t} ${ch}`);
    for (const ch of previous.countChains) if (!c.countChains.has(ch)) lines.push(`delete chain ${t} ${ch}`);
    for (const st of previous.sets) if (!c.sets.has(st)) lines.push(`delete set ${t} ${st}`);
  }
  return lines;
}

export function renderFull(services: Iterable<ServiceNft>, cfg: FamilyConfig, previous?: TableState): FullRender {
  const content = collectTable(services, cfg);
  return { ...content, lines: fullLines(content, previous) };
}

export interface ServiceChange {
  readonly key: ObjectKey;
  readonly before?: ServiceNft;
  readonly after?: ServiceNft;
}

/** One partial sync of one family, before it is spelled for nft or netlink. Order of application:
 *  new count chains, affinity sets, affinity chains (rules), element deletions, element additions,
 *  chains and sets no longer used (flushed, then deleted). */
export interface PartialChange {
  readonly newCountChains: string[];
  /** Affinity sets to make: name, timeout in seconds. */
  readonly addSets: [string, number][];
  /** Affinity chains whose rules are (re)written: name → rules; `existed` says flush first. */
  readonly writeChains: { name: string; rules: readonly Rule[]; existed: boolean }[];
  readonly delElements: MapElement[];
  readonly addElements: MapElement[];
  readonly hairpinDel: string[];
  readonly hairpinAdd: string[];
  readonly goneChains: string[];
  readonly goneSets: string[];
}

function sameRules(a: readonly Rule[] | undefined, b: readonly Rule[]): boolean {
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i].text !== b[i].text) return false;
  return true;
}

/**
 * The change that makes the table go from the services' `before` to their `after`: only their
 * elements that differ, count chains not yet in the table (`countChains`: those it has; the
 * caller adds the new ones once applied), their affinity chains whose rules differ, and hairpin
 * entries whose count drops to zero or rises from it. `owners` and `hairpin` are updated as if it
 * is applied; every change is recorded in `undo`, for the
 * caller to roll back if the kernel refuses it. Undefined when nothing differs.
 */
export function diffServices(changes: Iterable<ServiceChange>, owners: Owners, hairpin: Map<string, number>, countChains: ReadonlySet<string>, undo = new MapUndo()): PartialChange | undefined {
  const c: PartialChange = { newCountChains: [], addSets: [], writeChains: [], delElements: [], addElements: [], hairpinDel: [], hairpinAdd: [], goneChains: [], goneSets: [] };
  for (const { key, before, after } of changes) {
    const oldChains = before?.chains ?? new Map<string, readonly Rule[]>();
    const newChains = after?.chains ?? new Map<string, readonly Rule[]>();
    const oldSets = before?.sets ?? new Map<string, number>();
    const newSets = after?.sets ?? new Map<string, number>();
    for (const [name, spec] of newSets) if (!oldSets.has(name)) c.addSets.push([name, spec]);
    for (const name of oldSets.keys()) if (!newSets.has(name)) c.goneSets.push(name);
    for (const [name, rules] of newChains) {
      const old = oldChains.get(name);
      if (!sameRules(old, rules)) c.writeChains.push({ name, rules, existed: !!old });
    }
    for (const name of oldChains.keys()) if (!newChains.has(name)) c.goneChains.push(name);
    for (const name of after?.countChains ?? []) {
      if (countChains.has(name) || c.newCountChains.includes(name)) continue;
      c.newCountChains.push(name);
    }

    // Paths this service may write: its own, or nobody's.
    const mine = (path: string) => {
      const h = owners.get(path);
      return h === undefined || h === key;
    };
    const oldEls = new Map<string, MapElement>();
    for (const e of before?.elements ?? []) if (owners.get(e.path) === key) oldEls.set(elementId(e), e);
    const newEls = new Map<string, MapElement>();
    for (const e of after?.elements ?? []) if (mine(e.path)) newEls.set(elementId(e), e);
    for (const [id, e] of oldEls) {
      const n = newEls.get(id);
      if (n && n.value === e.value) continue;
      c.delElements.push(e);
    }
    for (const [id, e] of newEls) {
      const o = oldEls.get(id);
      if (o && o.value === e.value) continue;
      c.addElements.push(e);
    }
    const newPaths = new Set<string>();
    for (const e of newEls.values()) newPaths.add(e.path);
    for (const e of oldEls.values()) if (!newPaths.has(e.path)) undo.delete(owners, e.path);
    for (const path of newPaths) if (owners.get(path) !== key) undo.set(owners, path, key);

    const oldIPs = new Set(before?.endpointIPs ?? []);
    const newIPs = new Set(after?.endpointIPs ?? []);
    for (const ip of oldIPs) {
      if (newIPs.has(ip)) continue;
      const n = (hairpin.get(ip) ?? 1) - 1;
      if (n > 0) undo.set(hairpin, ip, n);
      else {
        undo.delete(hairpin, ip);
        c.hairpinDel.push(ip);
      }
    }
    for (const ip of newIPs) {
      if (oldIPs.has(ip)) continue;
      const n = hairpin.get(ip) ?? 0;
      undo.set(hairpin, ip, n + 1);
      if (n === 0) c.hairpinAdd.push(ip);
    }
  }
  const empty = Object.values(c).every((v) => (v as unknown[]).length === 0);
  return empty ? undefined : c;
}

/** A partial change as one `nft -f` transaction. A new per-count chain cannot be written by nft
 *  (layout.ts): that is the netlink writer's, and without one the caller makes a full sync. */
export function partialLines(c: PartialChange, cfg: FamilyConfig): string[] {
  const w = words(cfg.family);
  const t = w.table;
  const lines: string[] = [];
  for (const name of c.newCountChains) lines.push(...countChainLines(t, name, cfg));
  for (const [name, seconds] of c.addSets) lines.push(`add set ${t} ${name} ${affinitySetDeclaration(w, seconds)}`);
  for (const { name, existed } of c.writeChains) lines.push(`add chain ${t} ${name}`, ...(existed ? [`flush chain ${t} ${name}`] : []));
  for (const { name, rules } of c.writeChains) for (const r of rules) lines.push(`add rule ${t} ${name} ${r.text}`);
  for (const e of c.delElements) lines.push(`delete element ${t} ${e.map} { ${e.key} }`);
  for (const ip of c.hairpinDel) lines.push(`delete element ${t} hairpin { ${ip} . ${ip} }`);
  for (const e of c.addElements) lines.push(`add element ${t} ${e.map} { ${elementText(e)} }`);
  for (const ip of c.hairpinAdd) lines.push(`add element ${t} hairpin { ${ip} . ${ip} }`);
  // A gone svc chain may jump to a gone ep chain: flush all before deleting any.
  for (const name of c.goneChains) lines.push(`flush chain ${t} ${name}`);
  for (const name of c.goneChains) lines.push(`delete chain ${t} ${name}`);
  for (const name of c.goneSets) lines.push(`delete set ${t} ${name}`);
  return lines;
}

/** Rules and map elements one service contributes (for the counts returned by a sync). */
export function countService(s: ServiceNft): { rules: number; elements: number } {
  let rules = 0;
  for (const body of s.chains.values()) rules += body.length;
  return { rules, elements: s.elements.length };
}

/** Hairpin counts of a set of rendered services. */
export function hairpinCounts(services: Iterable<ServiceNft>): Map<string, number> {
  const m = new Map<string, number>();
  for (const s of services) countHairpin(m, s);
  return m;
}

/** Adds one rendered service's endpoints to hairpin counts. */
export function countHairpin(counts: Map<string, number>, s: ServiceNft): void {
  for (const ip of s.endpointIPs) counts.set(ip, (counts.get(ip) ?? 0) + 1);
}

export type { IPFamily };
