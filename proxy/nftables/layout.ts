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

export const TABLE_NAME = 'kube-dataplane';
export const MASQ_MARK = '0x4000';

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

/** Sets the backend fills itself (not owned by one service). */
export const HAIRPIN_SET: MapSchema = { name: 'hairpin', key: ['addr', 'addr'], declare: (w) => `{ type ${w.type} . ${w.type} ; }` };
export const CLUSTER_CIDRS_SET: MapSchema = { name: 'cluster-cidrs', key: ['cidr'], declare: (w) => `{ type ${w.type} ; flags interval ; }` };

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

/** The rules of one per-count chain. They depend on the family's config only, so a change of it
 *  (cluster CIDRs, --masquerade-all) is a full sync anyway. */
export function countChainRules(kind: PathKind, n: number, cfg: FamilyConfig): string[] {
  const w = words(cfg.family);
  const byAddr = `${w.addr} daddr . meta l4proto . th dport`;
  const byPort = 'meta l4proto . th dport';
  const pick = (key: string, map: string) => `dnat ${w.addr} addr . port to ${key} . numgen random mod ${n} map @${map}`;
  const shortcuts = (key: string, vmap: string) => [
    ...(cfg.clusterCIDRs.length ? [`${w.addr} saddr @cluster-cidrs ${key} vmap @${vmap}`] : []),
    'fib saddr type local jump mark-for-masquerade',
    `fib saddr type local ${key} vmap @${vmap}`,
  ];
  const rules: string[] = [];
  switch (kind) {
    case 'cluster':
      // Off-cluster clients reaching a cluster IP (a route to the service range via this node)
      // may be answered by a pod on another node: masquerade so replies come back through here.
      if (cfg.masqueradeAll) rules.push('jump mark-for-masquerade');
      else if (cfg.clusterCIDRs.length) rules.push(`${w.addr} saddr != @cluster-cidrs jump mark-for-masquerade`);
      rules.push(pick(byAddr, 'endpoints'));
      break;
    case 'external':
      rules.push('jump mark-for-masquerade', pick(byAddr, 'endpoints'));
      break;
    case 'external-local':
      rules.push(...shortcuts(byAddr, 'shortcut-ips'));
      if (n > 0) rules.push(pick(byAddr, 'endpoints'));
      break;
    case 'shortcut':
      rules.push(pick(byAddr, 'shortcut-endpoints'));
      break;
    case 'nodeport':
      rules.push('jump mark-for-masquerade', pick(byPort, 'nodeport-endpoints'));
      break;
    case 'nodeport-local':
      rules.push(...shortcuts(byPort, 'nodeport-shortcuts'));
      if (n > 0) rules.push(pick(byPort, 'nodeport-endpoints'));
      break;
    case 'nodeport-shortcut':
      rules.push(pick(byPort, 'nodeport-shortcut-endpoints'));
      break;
  }
  return rules;
}

/** The chains every table has, with their hooks. */
export const BASE_CHAINS: readonly { name: string; hook?: string }[] = [
  { name: 'mark-for-masquerade' },
  { name: 'reject-service' },
  { name: 'services' },
  { name: 'firewall' },
  { name: 'masquerading', hook: 'type nat hook postrouting priority srcnat ; policy accept ;' },
  { name: 'nat-prerouting', hook: 'type nat hook prerouting priority dstnat ; policy accept ;' },
  { name: 'nat-output', hook: 'type nat hook output priority -100 ; policy accept ;' },
  { name: 'filter-input', hook: 'type filter hook input priority filter ; policy accept ;' },
  { name: 'filter-forward', hook: 'type filter hook forward priority filter ; policy accept ;' },
  { name: 'filter-output', hook: 'type filter hook output priority filter ; policy accept ;' },
];

/** Rules of the fixed chains, in order, as `[chain, rule]`. */
export function baseRules(cfg: FamilyConfig): [string, string][] {
  const w = words(cfg.family);
  const out: [string, string][] = [];
  const rule = (chain: string, body: string) => out.push([chain, body]);
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
  // Admitted sources go on to the path; the rest falls through un-NATed and meets `drop` in
  // @service-filter.
  rule('firewall', `${w.addr} daddr . meta l4proto . th dport . ${w.addr} saddr @firewall-allow ${w.addr} daddr . meta l4proto . th dport vmap @firewall-ips`);
  rule('nat-prerouting', 'jump services');
  rule('nat-output', 'jump services');
  rule('filter-forward', 'ct state invalid drop');
  for (const chain of ['filter-input', 'filter-forward', 'filter-output']) {
    rule(chain, `ct state new ${w.addr} daddr . meta l4proto . th dport vmap @service-filter`);
  }
  rule('filter-input', 'ct state new fib daddr type local meta l4proto . th dport vmap @nodeport-filter');
  // After DNAT: still addressed to a cluster IP means a port the service does not have
  // (rejected), still inside the service CIDRs means no service has that address (dropped).
  for (const chain of ['filter-forward', 'filter-output']) {
    rule(chain, `ct state new ${w.addr} daddr @cluster-ips goto reject-service`);
    if (cfg.serviceCIDRs?.length) rule(chain, `ct state new ${w.addr} daddr { ${cfg.serviceCIDRs.join(', ')} } drop`);
  }
  return out;
}
