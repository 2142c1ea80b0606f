// Renders the core's service plans as `nft -f` input for one table per family (`ip
// kube-dataplane`, `ip6 kube-dataplane`). Pure: no I/O, no policy — the core decided which
// endpoints serve what (proxy/core/topology.ts); this only writes it down.
//
// Layout (DESIGN.md measured the number of chains as the cost driver, so chains are per service
// port, not per endpoint, except for session affinity which needs one per endpoint):
//   nat-prerouting / nat-output → services: one verdict-map lookup on daddr . l4proto . dport
//     (@service-ips: cluster, external and load-balancer IPs), then node ports on local (or the
//     chosen) addresses (@service-nodeports: l4proto . dport).
//   svc-* (Cluster policy) / svl-* (Local policy): masquerade off-cluster clients of the cluster
//     IP, then one `dnat … numgen random mod n map {…}` (or per-endpoint ep-* chains with an
//     affinity set when ClientIP affinity is on).
//   ext-*: masquerade (Cluster) or the pod/node short-cuts (Local), then the policy chain.
//   fw-*: loadBalancerSourceRanges; anything else falls through un-NATed and is dropped by the
//     filter map below.
//   masquerading (postrouting): hairpin (a DNATed packet whose source is its destination, from
//     @hairpin) and what was marked 0x4000.
//   filter-input / -forward / -output: new flows still addressed to a service address after
//     DNAT (no endpoints, no local endpoints, firewall) meet @service-filter / @nodeport-filter:
//     `goto reject-service` (TCP reset, else ICMP port unreachable) or `drop`.
import type { IPFamily, ObjectKey } from '../../cluster/types.js';
import type { FamilyConfig } from '../core/family-config.js';
import { targetKey, type ServicePlan, type ServicePortPlan, type Target } from '../core/model.js';
import { firewallAdmitsNode, policyTargets, portDecisions, type PortChains } from '../core/port-decisions.js';
import { chainHash } from '../iptables/render.js';
import { MapUndo } from './map-undo.js';

export const TABLE_NAME = 'kube-dataplane';
export const MASQ_MARK = '0x4000';

export type MapName = 'service-ips' | 'service-nodeports' | 'service-filter' | 'nodeport-filter';
export const MAPS: readonly MapName[] = ['service-ips', 'service-nodeports', 'service-filter', 'nodeport-filter'];

export type { FamilyConfig, PortChains };

/** One element of one of the shared verdict maps. */
export interface MapElement {
  readonly map: MapName;
  /** The key as nft writes it (`10.96.0.10 . tcp . 80`). */
  readonly key: string;
  /** The verdict (`goto svc-…`, `drop`). */
  readonly value: string;
}

/** What one service owns in one family's table. */
export interface ServiceNft {
  readonly key: ObjectKey;
  /** Chain name → rule bodies (what follows `add rule <table> <chain> `), in order. */
  readonly chains: ReadonlyMap<string, readonly string[]>;
  /** Affinity set name → its declaration (`{ type …; flags dynamic,timeout; timeout Ns; }`). */
  readonly sets: ReadonlyMap<string, string>;
  readonly elements: readonly MapElement[];
  /** Endpoint addresses, for the hairpin set (shared between services, so counted). */
  readonly endpointIPs: readonly string[];
}

interface Words {
  /** nft family of the table. */
  readonly table: string;
  /** Payload keyword for addresses (`ip saddr`). */
  readonly addr: string;
  readonly type: string;
}

export function words(family: IPFamily): Words {
  return family === 'IPv4' ? { table: `ip ${TABLE_NAME}`, addr: 'ip', type: 'ipv4_addr' } : { table: `ip6 ${TABLE_NAME}`, addr: 'ip6', type: 'ipv6_addr' };
}

/** A readable tail for chain names: `ns/name/port/proto` with anything nft would not take as an
 *  identifier character replaced. The hash in front keeps names unique. */
function readable(p: Pick<ServicePortPlan, 'name' | 'protocol'>): string {
  return `${p.name.replace(':', '/')}/${p.protocol.toLowerCase()}`.replace(/[^a-zA-Z0-9/_.-]/g, '_');
}

export function portChains(p: Pick<ServicePortPlan, 'name' | 'protocol'>): PortChains {
  const h = chainHash(`${p.name}/${p.protocol}`);
  const tail = readable(p);
  return { svc: `svc-${h}-${tail}`, svl: `svl-${h}-${tail}`, ext: `ext-${h}-${tail}`, fw: `fw-${h}-${tail}` };
}

/** The endpoint chain and affinity set of one endpoint of an affinity service; the timeout is part
 *  of the name so a changed timeout makes a new set instead of redefining a referenced one. */
export function affinityNames(p: Pick<ServicePortPlan, 'name' | 'protocol' | 'affinitySeconds'>, t: Target): { chain: string; set: string } {
  const h = chainHash(`${p.name}/${p.protocol}/${targetKey(t)}/${p.affinitySeconds}`);
  return { chain: `ep-${h}`, set: `aff-${h}` };
}

function dnatTarget(t: Target): string {
  return targetKey(t); // `ip:port` / `[ip6]:port`, as nft's dnat takes it
}

function renderPort(p: ServicePortPlan, cfg: FamilyConfig, out: { chains: Map<string, string[]>; sets: Map<string, string>; elements: MapElement[] }): void {
  const w = words(cfg.family);
  const proto = p.protocol.toLowerCase();
  const c = portChains(p);
  const d = portDecisions(p);
  const { hasEndpoints, usesCluster, usesLocal, hasInternal, hasExternal } = d;
  const { internal: internalChain, external: externalPolicyChain, loadBalancer: lbChain } = policyTargets(d, c);
  const blocked = d.blocked === 'reject' ? 'goto reject-service' : 'drop';

  const add = (chain: string, rule: string) => {
    let rules = out.chains.get(chain);
    if (!rules) out.chains.set(chain, (rules = []));
    rules.push(rule);
  };
  const element = (map: MapName, key: string, value: string) => out.elements.push({ map, key, value });
  const ipKey = (ip: string) => `${ip} . ${proto} . ${p.port}`;

  if (p.clusterIP) {
    if (hasInternal) {
      element('service-ips', ipKey(p.clusterIP), `goto ${internalChain}`);
      // Off-cluster clients reaching a cluster IP (a route to the service range via this node)
      // may be answered by a pod on another node: masquerade so replies come back through here.
      if (cfg.masqueradeAll) add(internalChain, `${w.addr} daddr ${p.clusterIP} jump mark-for-masquerade`);
      else if (cfg.clusterCIDRs.length) add(internalChain, `${w.addr} daddr ${p.clusterIP} ${w.addr} saddr != @cluster-cidrs jump mark-for-masquerade`);
    } else element('service-filter', ipKey(p.clusterIP), blocked);
  }

  for (const ip of p.externalIPs) {
    if (hasEndpoints) element('service-ips', ipKey(ip), `goto ${c.ext}`);
    if (!hasExternal) element('service-filter', ipKey(ip), blocked);
  }

  for (const ip of p.loadBalancerIPs) {
    if (hasEndpoints) element('service-ips', ipKey(ip), `goto ${lbChain}`);
    // Sources the fw chain did not let through stay addressed to the LB IP: dropped here.
    if (d.usesFirewall) element('service-filter', ipKey(ip), 'drop');
    else if (!hasExternal) element('service-filter', ipKey(ip), blocked);
  }

  if (p.nodePort > 0) {
    if (hasEndpoints) element('service-nodeports', `${proto} . ${p.nodePort}`, `goto ${c.ext}`);
    if (!hasExternal) element('nodeport-filter', `${proto} . ${p.nodePort}`, blocked);
  }

  if (d.usesExternalChain) {
    if (!out.chains.has(c.ext)) out.chains.set(c.ext, []);
    if (d.masqueradeExternal) add(c.ext, 'jump mark-for-masquerade');
    else if (d.externalShortcuts) {
      if (cfg.clusterCIDRs.length) add(c.ext, `${w.addr} saddr @cluster-cidrs goto ${c.svc}`);
      add(c.ext, 'fib saddr type local jump mark-for-masquerade');
      add(c.ext, `fib saddr type local goto ${c.svc}`);
    }
    if (hasExternal) add(c.ext, `goto ${externalPolicyChain}`);
  }

  if (d.usesFirewall) {
    out.chains.set(c.fw, []);
    for (const cidr of p.sourceRanges) add(c.fw, `${w.addr} saddr ${cidr} goto ${c.ext}`);
    if (firewallAdmitsNode(p, cfg.nodeIPs)) for (const ip of p.loadBalancerIPs) add(c.fw, `${w.addr} saddr ${ip} goto ${c.ext}`);
  }

  const writePolicy = (chain: string, targets: readonly Target[]) => {
    if (!out.chains.has(chain)) out.chains.set(chain, []);
    if (p.affinitySeconds > 0) {
      const names = targets.map((t) => affinityNames(p, t));
      names.forEach((n) => add(chain, `${w.addr} saddr @${n.set} goto ${n.chain}`));
      add(chain, `numgen random mod ${targets.length} vmap { ${names.map((n, i) => `${i} : goto ${n.chain}`).join(', ')} }`);
      targets.forEach((t, i) => {
        const n = names[i];
        if (out.sets.has(n.set)) return;
        out.sets.set(n.set, `{ type ${w.type} ; flags dynamic,timeout ; timeout ${p.affinitySeconds}s ; }`);
        out.chains.set(n.chain, [`update @${n.set} { ${w.addr} saddr }`, `meta l4proto ${proto} dnat to ${dnatTarget(t)}`]);
      });
    } else if (targets.length === 1) {
      add(chain, `meta l4proto ${proto} dnat to ${dnatTarget(targets[0])}`);
    } else {
      const slots = targets.map((t, i) => `${i} : ${t.ip} . ${t.port}`).join(', ');
      add(chain, `meta l4proto ${proto} dnat ${w.addr} addr . port to numgen random mod ${targets.length} map { ${slots} }`);
    }
  };
  if (usesCluster) writePolicy(c.svc, p.clusterEndpoints);
  if (usesLocal) writePolicy(c.svl, p.localEndpoints);
}

/** Everything one service owns in one family, or undefined when it has nothing there. */
export function renderService(plan: ServicePlan, cfg: FamilyConfig): ServiceNft | undefined {
  const ports = plan.ports.filter((p) => p.family === cfg.family);
  if (ports.length === 0) return undefined;
  const out = { chains: new Map<string, string[]>(), sets: new Map<string, string>(), elements: [] as MapElement[] };
  for (const p of ports) renderPort(p, cfg, out);
  // One element per key: a manifest listing an external IP twice must not make nft refuse the
  // transaction. The first wins.
  const seen = new Set<string>();
  const elements = out.elements.filter((e) => {
    const k = `${e.map} ${e.key}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  const ips = new Set<string>();
  for (const p of ports) for (const t of [...p.clusterEndpoints, ...p.localEndpoints]) ips.add(t.ip);
  return { key: plan.key, chains: out.chains, sets: out.sets, elements, endpointIPs: [...ips] };
}

/** The chains every table has, with their hooks. */
const BASE_CHAINS: readonly { name: string; hook?: string }[] = [
  { name: 'mark-for-masquerade' },
  { name: 'reject-service' },
  { name: 'services' },
  { name: 'masquerading', hook: 'type nat hook postrouting priority srcnat ; policy accept ;' },
  { name: 'nat-prerouting', hook: 'type nat hook prerouting priority dstnat ; policy accept ;' },
  { name: 'nat-output', hook: 'type nat hook output priority -100 ; policy accept ;' },
  { name: 'filter-input', hook: 'type filter hook input priority filter ; policy accept ;' },
  { name: 'filter-forward', hook: 'type filter hook forward priority filter ; policy accept ;' },
  { name: 'filter-output', hook: 'type filter hook output priority filter ; policy accept ;' },
];

/** Declarations and rules of the table's fixed part. */
function baseLines(cfg: FamilyConfig, fresh: boolean): string[] {
  const w = words(cfg.family);
  const t = w.table;
  const lines: string[] = [];
  const decl = (what: 'set' | 'map', name: string, spec: string) => {
    lines.push(`add ${what} ${t} ${name} ${spec}`);
    if (!fresh) lines.push(`flush ${what} ${t} ${name}`);
  };
  decl('set', 'cluster-cidrs', `{ type ${w.type} ; flags interval ; }`);
  if (cfg.clusterCIDRs.length) lines.push(`add element ${t} cluster-cidrs { ${cfg.clusterCIDRs.join(', ')} }`);
  decl('set', 'hairpin', `{ type ${w.type} . ${w.type} ; }`);
  decl('map', 'service-ips', `{ type ${w.type} . inet_proto . inet_service : verdict ; }`);
  decl('map', 'service-nodeports', '{ type inet_proto . inet_service : verdict ; }');
  decl('map', 'service-filter', `{ type ${w.type} . inet_proto . inet_service : verdict ; }`);
  decl('map', 'nodeport-filter', '{ type inet_proto . inet_service : verdict ; }');
  for (const c of BASE_CHAINS) lines.push(c.hook ? `add chain ${t} ${c.name} { ${c.hook} }` : `add chain ${t} ${c.name}`);
  const rule = (chain: string, body: string) => lines.push(`add rule ${t} ${chain} ${body}`);
  rule('mark-for-masquerade', `meta mark set meta mark | ${MASQ_MARK}`);
  rule('reject-service', 'meta l4proto tcp reject with tcp reset');
  rule('reject-service', 'reject');
  // Hairpin: a pod reaching itself through a service must see a source other than its own.
  rule('masquerading', `ct status dnat ${w.addr} saddr . ${w.addr} daddr @hairpin masquerade fully-random`);
  rule('masquerading', `meta mark & ${MASQ_MARK} == 0 return`);
  // Clear the mark so a packet re-entering the stack is not masqueraded twice.
  rule('masquerading', `meta mark set meta mark ^ ${MASQ_MARK}`);
  rule('masquerading', 'masquerade fully-random');
  rule('services', `${w.addr} daddr . meta l4proto . th dport vmap @service-ips`);
  if (cfg.nodePortAddresses === 'all') {
    // Loopback is left out: DNAT from 127.0.0.1 to a pod needs route_localnet, which we do not set.
    rule('services', `fib daddr type local ${w.addr} daddr != ${cfg.family === 'IPv4' ? '127.0.0.0/8' : '::1'} meta l4proto . th dport vmap @service-nodeports`);
  } else if (cfg.nodePortAddresses.length) {
    rule('services', `${w.addr} daddr { ${cfg.nodePortAddresses.join(', ')} } meta l4proto . th dport vmap @service-nodeports`);
  }
  rule('nat-prerouting', 'jump services');
  rule('nat-output', 'jump services');
  rule('filter-forward', 'ct state invalid drop');
  for (const chain of ['filter-input', 'filter-forward', 'filter-output']) {
    rule(chain, `ct state new ${w.addr} daddr . meta l4proto . th dport vmap @service-filter`);
  }
  rule('filter-input', 'ct state new fib daddr type local meta l4proto . th dport vmap @nodeport-filter');
  return lines;
}

/** Number of rules in the fixed part (for the rule counts). */
export function baseRuleCount(cfg: FamilyConfig): number {
  return baseLines(cfg, true).filter((l) => l.startsWith('add rule ')).length;
}

/** What the table holds of the services, as the backend remembers it between syncs. */
export interface TableState {
  readonly chains: ReadonlySet<string>;
  readonly sets: ReadonlySet<string>;
}

function elementLines(t: string, map: string, items: readonly string[]): string[] {
  // Batches keep each command short; one giant `{ … }` line is slower for nft to parse.
  const out: string[] = [];
  for (let i = 0; i < items.length; i += 500) out.push(`add element ${t} ${map} { ${items.slice(i, i + 500).join(', ')} }`);
  return out;
}

export interface FullRender {
  readonly lines: string[];
  /** The elements that went in (first of a key wins), per service. */
  readonly owners: Map<string, ObjectKey>;
  readonly chains: Set<string>;
  readonly sets: Set<string>;
}

/**
 * The whole table in one transaction. `previous` is what the last successful sync left (the
 * backend's memory); without it the table is deleted and made again, which also recovers from
 * any state we cannot trust. With it, the table is flushed (rules go, maps and sets stay, so
 * affinity entries survive) and rewritten, and what is no longer wanted is deleted.
 */
export function renderFull(services: Iterable<ServiceNft>, cfg: FamilyConfig, previous?: TableState): FullRender {
  const t = words(cfg.family).table;
  const fresh = !previous;
  const lines: string[] = [`add table ${t}`];
  if (fresh) lines.push(`delete table ${t}`, `add table ${t}`);
  else lines.push(`flush table ${t}`);
  lines.push(...baseLines(cfg, fresh));
  const chains = new Set<string>();
  const sets = new Set<string>();
  const owners = new Map<string, ObjectKey>();
  const byMap = new Map<MapName, string[]>(MAPS.map((m) => [m, []]));
  const hairpin = new Set<string>();
  const rules: string[] = [];
  for (const s of services) {
    for (const [name, spec] of s.sets) {
      if (sets.has(name)) continue;
      sets.add(name);
      lines.push(`add set ${t} ${name} ${spec}`);
    }
    for (const [chain, body] of s.chains) {
      if (!chains.has(chain)) lines.push(`add chain ${t} ${chain}`);
      chains.add(chain);
      for (const r of body) rules.push(`add rule ${t} ${chain} ${r}`);
    }
    for (const e of s.elements) {
      const k = `${e.map} ${e.key}`;
      if (owners.has(k)) continue;
      owners.set(k, s.key);
      byMap.get(e.map)!.push(`${e.key} : ${e.value}`);
    }
    for (const ip of s.endpointIPs) hairpin.add(ip);
  }
  for (const r of rules) lines.push(r);
  for (const [map, items] of byMap) lines.push(...elementLines(t, map, items));
  lines.push(...elementLines(t, 'hairpin', [...hairpin].map((ip) => `${ip} . ${ip}`)));
  if (previous) {
    // Already empty after `flush table`, and no map element points at them any more.
    for (const c of previous.chains) if (!chains.has(c)) lines.push(`delete chain ${t} ${c}`);
    for (const s of previous.sets) if (!sets.has(s)) lines.push(`delete set ${t} ${s}`);
  }
  return { lines, owners, chains, sets };
}

export interface ServiceChange {
  readonly key: ObjectKey;
  readonly before?: ServiceNft;
  readonly after?: ServiceNft;
}

/** Who holds a map key now (another service may have claimed the same external IP and port). */
export type Owners = Map<string, ObjectKey>;

function sameRules(a: readonly string[] | undefined, b: readonly string[]): boolean {
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * One transaction changing only the given services: their map elements, their chains whose rules
 * differ, their affinity sets, and the hairpin entries whose count drops to zero or rises from
 * it. `owners` and `hairpin` (endpoint IP → number of services using it) are updated as if the
 * transaction succeeded; every change is recorded in `undo`, for the caller to roll back if nft
 * refuses it. Undefined when nothing differs.
 */
export function renderPartial(changes: Iterable<ServiceChange>, family: IPFamily, owners: Owners, hairpin: Map<string, number>, undo = new MapUndo()): string[] | undefined {
  const t = words(family).table;
  const addSets: string[] = [];
  const declareChains: string[] = [];
  const delElements: string[] = [];
  const rules: string[] = [];
  const flushGone: string[] = [];
  const delChains: string[] = [];
  const delSets: string[] = [];
  const addElements: string[] = [];
  const hairpinDel: string[] = [];
  const hairpinAdd: string[] = [];
  for (const { key, before, after } of changes) {
    const oldChains = before?.chains ?? new Map<string, readonly string[]>();
    const newChains = after?.chains ?? new Map<string, readonly string[]>();
    const oldSets = before?.sets ?? new Map<string, string>();
    const newSets = after?.sets ?? new Map<string, string>();
    for (const [name, spec] of newSets) if (!oldSets.has(name)) addSets.push(`add set ${t} ${name} ${spec}`);
    for (const name of oldSets.keys()) if (!newSets.has(name)) delSets.push(`delete set ${t} ${name}`);
    for (const [chain, body] of newChains) {
      const old = oldChains.get(chain);
      if (sameRules(old, body)) continue;
      declareChains.push(`add chain ${t} ${chain}`);
      if (old) declareChains.push(`flush chain ${t} ${chain}`);
      for (const r of body) rules.push(`add rule ${t} ${chain} ${r}`);
    }
    for (const chain of oldChains.keys()) {
      if (newChains.has(chain)) continue;
      flushGone.push(`flush chain ${t} ${chain}`);
      delChains.push(`delete chain ${t} ${chain}`);
    }
    const id = (e: MapElement) => `${e.map} ${e.key}`;
    const newEls = new Map((after?.elements ?? []).map((e) => [id(e), e]));
    for (const e of before?.elements ?? []) {
      const k = id(e);
      if (owners.get(k) !== key) continue; // another service's claim: not ours to remove
      const n = newEls.get(k);
      if (n && n.value === e.value) continue;
      delElements.push(`delete element ${t} ${e.map} { ${e.key} }`);
      undo.delete(owners, k);
    }
    for (const e of after?.elements ?? []) {
      const k = id(e);
      if (owners.has(k)) continue; // unchanged, or held by another service until it lets go
      addElements.push(`add element ${t} ${e.map} { ${e.key} : ${e.value} }`);
      undo.set(owners, k, key);
    }
    const oldIPs = new Set(before?.endpointIPs ?? []);
    const newIPs = new Set(after?.endpointIPs ?? []);
    for (const ip of oldIPs) {
      if (newIPs.has(ip)) continue;
      const n = (hairpin.get(ip) ?? 1) - 1;
      if (n > 0) undo.set(hairpin, ip, n);
      else {
        undo.delete(hairpin, ip);
        hairpinDel.push(`delete element ${t} hairpin { ${ip} . ${ip} }`);
      }
    }
    for (const ip of newIPs) {
      if (oldIPs.has(ip)) continue;
      const n = hairpin.get(ip) ?? 0;
      undo.set(hairpin, ip, n + 1);
      if (n === 0) hairpinAdd.push(`add element ${t} hairpin { ${ip} . ${ip} }`);
    }
  }
  // Order inside the one transaction: what rules will reference exists first; elements that
  // point at chains go before the chains; flushed chains before deleted ones (a gone svc chain
  // may jump to a gone ep chain); sets after the rules using them.
  const lines = [...addSets, ...declareChains, ...delElements, ...hairpinDel, ...rules, ...flushGone, ...delChains, ...delSets, ...addElements, ...hairpinAdd];
  return lines.length ? lines : undefined;
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
  for (const s of services) for (const ip of s.endpointIPs) m.set(ip, (m.get(ip) ?? 0) + 1);
  return m;
}
