// The shape of the nftables mode's table, one per family (`ip kube-dataplane`, `ip6
// kube-dataplane`): its maps and sets with their key and value fields, its fixed chains and rules,
// and the chains shared by every service whose path has the same endpoint count. Pure.
//
// Why this shape (DESIGN.md: the number of chains drives the cost of every `nft` call and of a
// full load): services, node ports and endpoints are map elements, never chains. A packet to a
// service address finds its path in one verdict map (`service-ips`: address . protocol . port);
// the verdict goes to a chain shared by every path with n endpoints, whose one rule picks
// `numgen random mod n` and looks the endpoint up in a data map keyed by the packet's own
// address . protocol . port . slot. So each of n endpoints gets exactly 1/n of new connections,
// and the chain count grows with the number of distinct endpoint counts, not with services.
// Node ports use maps keyed by protocol . port alone (the destination is any local address).
import type { IPFamily } from '../../cluster/types.js';
import type { FamilyConfig } from '../core/family-config.js';
import type { ChainHook } from './netlink/messages.js';
import {
  ctState, ctStatusDnat, dnatBySlot, drop, fam, fibLocal, goTo, iifname, inSet, jump, l4protoIs, markClear, markSetOr, markSetXor, masquerade,
  notLoopback, reject, rejectTcpReset, ret, rule, vmap, type KeyField, type Rule, type RulePart,
} from './rules.js';

export const TABLE_NAME = 'kube-dataplane';
export const MASQ_MARK = 0x4000;

/** One field of a map key or value, as nft writes it and netlink encodes it. */
export type FieldKind = 'addr' | 'proto' | 'port' | 'slot' | 'cidr';

export interface MapSchema {
  readonly name: string;
  readonly key: readonly FieldKind[];
  /** Undefined for a set; 'verdict' for a verdict map; else the data fields. */
  readonly value?: 'verdict' | readonly FieldKind[];
  /** The declaration after the name (`{ type … ; }`), given the family's words. */
  readonly declare: (w: Words) => string;
}

export interface Words {
  /** nft family of the table, with its name (`ip kube-dataplane`). */
  readonly table: string;
  /** Payload keyword for addresses (`ip`, `ip6`). */
  readonly addr: string;
  /** Address type (`ipv4_addr`). */
  readonly type: string;
}

export function words(family: IPFamily): Words {
  return family === 'IPv4' ? { table: `ip ${TABLE_NAME}`, addr: 'ip', type: 'ipv4_addr' } : { table: `ip6 ${TABLE_NAME}`, addr: 'ip6', type: 'ipv6_addr' };
}

const vmapByAddr = (w: Words) => `{ type ${w.type} . inet_proto . inet_service : verdict ; }`;
const vmapByPort = () => '{ type inet_proto . inet_service : verdict ; }';
// `typeof` because the slot is numgen's own integer type, which has no `type` name. nft 1.0.6
// cannot evaluate a rule against such a map once it is in the kernel ("conflicting protocols
// specified: ip vs. th", from the typeof it reads back), so a full transaction declares these
// maps anew (they are refilled anyway) and the shared chains of a new endpoint count are made
// through netlink (netlink-writer.ts), never by `nft`.
export function isEndpointMap(schema: MapSchema): boolean {
  return Array.isArray(schema.value);
}

/**
 * A set of concatenated intervals (`firewall-allow`): the kernel keeps it as a pipapo set, and
 * flushing and refilling n of its elements in one transaction costs it O(n²) (a refill of 5000
 * load balancers with 5 source ranges each: 18 s, against 0.4 s for the whole table made anew).
 * A full sync over the table remakes it instead (declared, deleted and declared again, once the
 * rules that name it are flushed: `nft -f` spells endpoint maps the same way, for its own
 * reason), and fills the new, empty set.
 */
export function isRemadeOnRefill(schema: MapSchema): boolean {
  return schema.key.length > 1 && schema.key.includes('cidr');
}
const endpointsByAddr = (w: Words) => `{ typeof ${w.addr} daddr . meta l4proto . th dport . numgen random mod 1 : ${w.addr} daddr . th dport ; }`;
const endpointsByPort = (w: Words) => `{ typeof meta l4proto . th dport . numgen random mod 1 : ${w.addr} daddr . th dport ; }`;

const A: readonly FieldKind[] = ['addr', 'proto', 'port'];
const P: readonly FieldKind[] = ['proto', 'port'];
const EP: readonly FieldKind[] = ['addr', 'port'];

/** Every map and set whose elements services own, in declaration order. */
export const MAPS = {
  /** Cluster, external and load-balancer IPs → the path's chain. */
  'service-ips': { name: 'service-ips', key: A, value: 'verdict', declare: vmapByAddr },
  /** Node ports → the path's chain. */
  'service-nodeports': { name: 'service-nodeports', key: P, value: 'verdict', declare: vmapByPort },
  /** address . protocol . port . slot → endpoint, for the paths of `service-ips`. */
  endpoints: { name: 'endpoints', key: [...A, 'slot'], value: EP, declare: endpointsByAddr },
  'nodeport-endpoints': { name: 'nodeport-endpoints', key: [...P, 'slot'], value: EP, declare: endpointsByPort },
  /** externalTrafficPolicy Local: pods and the node take the Cluster policy, through these. */
  'shortcut-ips': { name: 'shortcut-ips', key: A, value: 'verdict', declare: vmapByAddr },
  'shortcut-endpoints': { name: 'shortcut-endpoints', key: [...A, 'slot'], value: EP, declare: endpointsByAddr },
  'nodeport-shortcuts': { name: 'nodeport-shortcuts', key: P, value: 'verdict', declare: vmapByPort },
  'nodeport-shortcut-endpoints': { name: 'nodeport-shortcut-endpoints', key: [...P, 'slot'], value: EP, declare: endpointsByPort },
  /** loadBalancerSourceRanges: LB IP . protocol . port . allowed source range. */
  'firewall-allow': { name: 'firewall-allow', key: [...A, 'cidr'], declare: (w) => `{ type ${w.type} . inet_proto . inet_service . ${w.type} ; flags interval ; }` },
  /** Where an admitted LB packet goes. */
  'firewall-ips': { name: 'firewall-ips', key: A, value: 'verdict', declare: vmapByAddr },
  /** After DNAT, new flows still addressed to a service address: reject or drop. */
  'service-filter': { name: 'service-filter', key: A, value: 'verdict', declare: vmapByAddr },
  'nodeport-filter': { name: 'nodeport-filter', key: P, value: 'verdict', declare: vmapByPort },
  /** Every cluster IP: a port that is not one of its service's is rejected (kube-proxy's nftables mode). */
  'cluster-ips': { name: 'cluster-ips', key: ['addr'], declare: (w) => `{ type ${w.type} ; }` },
} as const satisfies Record<string, MapSchema>;

export type MapName = keyof typeof MAPS;
export const MAP_NAMES = Object.keys(MAPS) as MapName[];

/** An affinity set's declaration: the timeout is part of the set's name too (render.ts). */
export function affinitySetDeclaration(w: Words, seconds: number): string {
  return `{ type ${w.type} ; flags dynamic,timeout ; timeout ${seconds}s ; }`;
}

/** Sets the backend fills itself (not owned by one service). */
export const HAIRPIN_SET: MapSchema = { name: 'hairpin', key: ['addr', 'addr'], declare: (w) => `{ type ${w.type} . ${w.type} ; }` };
export const CLUSTER_CIDRS_SET: MapSchema = { name: 'cluster-cidrs', key: ['cidr'], declare: (w) => `{ type ${w.type} ; flags interval ; }` };
/** --service-cidr: an address in them that no service has is dropped. */
export const SERVICE_CIDRS_SET: MapSchema = { name: 'service-cidrs', key: ['cidr'], declare: (w) => `{ type ${w.type} ; flags interval ; }` };
/** --nodeport-addresses, when it names addresses. */
export const NODEPORT_IPS_SET: MapSchema = { name: 'nodeport-ips', key: ['addr'], declare: (w) => `{ type ${w.type} ; }` };
/** The sets the backend fills from the config, declared in this order after the hairpin set. */
export const CONFIG_SETS: readonly MapSchema[] = [CLUSTER_CIDRS_SET, SERVICE_CIDRS_SET, NODEPORT_IPS_SET];

/** The kinds of shared per-count chains: which endpoint map they pick from and what comes first. */
export type PathKind = 'cluster' | 'external' | 'external-local' | 'shortcut' | 'nodeport' | 'nodeport-local' | 'nodeport-shortcut';

export function countChain(kind: PathKind, n: number): string {
  return `${kind}-${n}`;
}

/** `cluster-3` → { kind: 'cluster', n: 3 }; undefined for other names. */
export function parseCountChain(name: string): { kind: PathKind; n: number } | undefined {
  const m = /^(cluster|external-local|external|shortcut|nodeport-local|nodeport-shortcut|nodeport)-(\d+)$/.exec(name);
  return m ? { kind: m[1] as PathKind, n: Number(m[2]) } : undefined;
}

/** The CIDRs whose sources count as cluster-local (--detect-local-mode ClusterCIDR or NodeCIDR):
 *  what the `cluster-cidrs` set holds. */
export function localCIDRs(cfg: FamilyConfig): string[] {
  const d = cfg.localDetector;
  if (!d) return cfg.clusterCIDRs.slice(0, 1);
  return (d.mode === 'ClusterCIDR' || d.mode === 'NodeCIDR') && d.cidr ? [d.cidr] : [];
}

/** The match of cluster-local sources (`invert`: of the others), as kube-proxy's
 *  LocalTrafficDetector: a CIDR (through `@cluster-cidrs`), the pods' bridge, or the prefix of
 *  their interfaces; undefined when nothing is known to be local (then no rule depends on it). */
export function localSource(cfg: FamilyConfig, invert = false): RulePart | undefined {
  const d = cfg.localDetector;
  if (d?.mode === 'BridgeInterface') return iifname(d.bridge, invert);
  if (d?.mode === 'InterfaceNamePrefix') return iifname(`${d.prefix}*`, invert);
  return localCIDRs(cfg).length ? inSet(fam(cfg.family), ['saddr'], CLUSTER_CIDRS_SET.name, { invert }) : undefined;
}

/** The rules of one per-count chain. They depend on the family's config only, so a change of it
 *  (cluster CIDRs, --masquerade-all) is a full sync anyway. */
export function countChainRules(kind: PathKind, n: number, cfg: FamilyConfig): Rule[] {
  const f = fam(cfg.family);
  const byAddr: KeyField[] = ['daddr', 'l4proto', 'dport'];
  const byPort: KeyField[] = ['l4proto', 'dport'];
  const masq = jump('mark-for-masquerade');
  const local = localSource(cfg);
  const notLocal = localSource(cfg, true);
  const shortcuts = (key: KeyField[], map: string) => [
    ...(local ? [rule(local, vmap(f, key, map))] : []),
    rule(fibLocal('saddr'), masq),
    rule(fibLocal('saddr'), vmap(f, key, map)),
  ];
  const rules: Rule[] = [];
  switch (kind) {
    case 'cluster':
      // Off-cluster clients reaching a cluster IP (a route to the service range via this node)
      // may be answered by a pod on another node: masquerade so replies come back through here.
      if (cfg.masqueradeAll) rules.push(rule(masq));
      else if (notLocal) rules.push(rule(notLocal, masq));
      rules.push(rule(dnatBySlot(f, byAddr, n, 'endpoints')));
      break;
    case 'external':
      rules.push(rule(masq), rule(dnatBySlot(f, byAddr, n, 'endpoints')));
      break;
    case 'external-local':
      rules.push(...shortcuts(byAddr, 'shortcut-ips'));
      if (n > 0) rules.push(rule(dnatBySlot(f, byAddr, n, 'endpoints')));
      break;
    case 'shortcut':
      rules.push(rule(dnatBySlot(f, byAddr, n, 'shortcut-endpoints')));
      break;
    case 'nodeport':
      rules.push(rule(masq), rule(dnatBySlot(f, byPort, n, 'nodeport-endpoints')));
      break;
    case 'nodeport-local':
      rules.push(...shortcuts(byPort, 'nodeport-shortcuts'));
      if (n > 0) rules.push(rule(dnatBySlot(f, byPort, n, 'nodeport-endpoints')));
      break;
    case 'nodeport-shortcut':
      rules.push(rule(dnatBySlot(f, byPort, n, 'nodeport-shortcut-endpoints')));
      break;
  }
  return rules;
}

/** The chains every table has, with their hooks (uapi hook numbers; priorities as numbers:
 *  srcnat 100, dstnat -100, filter 0). */
export const BASE_CHAINS: readonly { name: string; hook?: ChainHook }[] = [
  { name: 'mark-for-masquerade' },
  { name: 'reject-service' },
  { name: 'services' },
  { name: 'firewall' },
  { name: 'masquerading', hook: { type: 'nat', hooknum: 4, priority: 100, policy: 'accept' } },
  { name: 'nat-prerouting', hook: { type: 'nat', hooknum: 0, priority: -100, policy: 'accept' } },
  { name: 'nat-output', hook: { type: 'nat', hooknum: 3, priority: -100, policy: 'accept' } },
  { name: 'filter-input', hook: { type: 'filter', hooknum: 1, priority: 0, policy: 'accept' } },
  { name: 'filter-forward', hook: { type: 'filter', hooknum: 2, priority: 0, policy: 'accept' } },
  { name: 'filter-output', hook: { type: 'filter', hooknum: 3, priority: 0, policy: 'accept' } },
];

const HOOK_NAMES = ['prerouting', 'input', 'forward', 'output', 'postrouting'];

/** A base chain's hook as nft writes it in `add chain … { … }`. */
export function hookText(h: ChainHook): string {
  return `type ${h.type} hook ${HOOK_NAMES[h.hooknum]} priority ${h.priority} ; policy ${h.policy} ;`;
}

/** Rules of the fixed chains, in order, as `[chain, rule]`. */
export function baseRules(cfg: FamilyConfig): [string, Rule][] {
  const f = fam(cfg.family);
  const out: [string, Rule][] = [];
  const add = (chain: string, ...parts: RulePart[]) => out.push([chain, rule(...parts)]);
  const destination: KeyField[] = ['daddr', 'l4proto', 'dport'];
  const nodePort: KeyField[] = ['l4proto', 'dport'];
  add('mark-for-masquerade', markSetOr(MASQ_MARK));
  add('reject-service', l4protoIs('tcp'), rejectTcpReset());
  add('reject-service', reject(f));
  // Hairpin: a pod reaching itself through a service must see a source other than its own.
  add('masquerading', ctStatusDnat(), inSet(f, ['saddr', 'daddr'], HAIRPIN_SET.name), masquerade());
  add('masquerading', markClear(MASQ_MARK), ret());
  // Clear the mark so a packet re-entering the stack is not masqueraded twice.
  add('masquerading', markSetXor(MASQ_MARK));
  add('masquerading', masquerade());
  add('services', vmap(f, destination, 'service-ips'));
  if (cfg.nodePortAddresses === 'all') {
    // Loopback is left out: DNAT from 127.0.0.1 to a pod needs route_localnet, which we do not set.
    add('services', fibLocal('daddr'), notLoopback(f), vmap(f, nodePort, 'service-nodeports'));
  } else if (cfg.nodePortAddresses.length) {
    add('services', inSet(f, ['daddr'], NODEPORT_IPS_SET.name), vmap(f, nodePort, 'service-nodeports'));
  }
  // Admitted sources go on to the path; the rest falls through un-NATed and meets `drop` in
  // @service-filter.
  add('firewall', inSet(f, [...destination, 'saddr'], 'firewall-allow', { interval: true }), vmap(f, destination, 'firewall-ips'));
  add('nat-prerouting', jump('services'));
  add('nat-output', jump('services'));
  add('filter-forward', ctState('invalid'), drop());
  for (const chain of ['filter-input', 'filter-forward', 'filter-output']) add(chain, ctState('new'), vmap(f, destination, 'service-filter'));
  add('filter-input', ctState('new'), fibLocal('daddr'), vmap(f, nodePort, 'nodeport-filter'));
  // After DNAT: still addressed to a cluster IP means a port the service does not have
  // (rejected), still inside the service CIDRs means no service has that address (dropped).
  for (const chain of ['filter-forward', 'filter-output']) {
    add(chain, ctState('new'), inSet(f, ['daddr'], 'cluster-ips'), goTo('reject-service'));
    if (cfg.serviceCIDRs?.length) add(chain, ctState('new'), inSet(f, ['daddr'], SERVICE_CIDRS_SET.name), drop());
  }
  return out;
}

/** Elements of the sets the config fills (not services): name → nft spellings. */
export function configElements(cfg: FamilyConfig): [MapSchema, string[]][] {
  const out: [MapSchema, string[]][] = [[CLUSTER_CIDRS_SET, localCIDRs(cfg)], [SERVICE_CIDRS_SET, [...(cfg.serviceCIDRs ?? [])]]];
  out.push([NODEPORT_IPS_SET, cfg.nodePortAddresses === 'all' ? [] : [...cfg.nodePortAddresses]]);
  return out;
}
