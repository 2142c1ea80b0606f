// Renders the core's service plans as iptables rules in kube-proxy's layout, one IP family at a
// time, and writes them as `iptables-restore --noflush` input. Pure: no I/O, no policy — every
// decision about which endpoints serve what was made by the core (proxy/core/topology.ts).
//
// Layout (nat table unless noted):
//   PREROUTING, OUTPUT → KUBE-SERVICES: one rule per captured address (cluster IP → the internal
//     policy chain; external and load-balancer IPs → KUBE-EXT-* or KUBE-FW-*), last a jump to
//     KUBE-NODEPORTS for local destinations.
//   KUBE-SVC-* (Cluster policy) / KUBE-SVL-* (Local policy): masquerade rule for off-cluster
//     clients, affinity checks, then one rule per endpoint with `statistic --probability`.
//   KUBE-EXT-*: masquerade (Cluster) or the pod/node short-cuts (Local), then the policy chain.
//   KUBE-FW-*: loadBalancerSourceRanges; the rest falls through to filter KUBE-PROXY-FIREWALL.
//   KUBE-SEP-*: hairpin masquerade, DNAT (with `recent --set` for affinity).
//   POSTROUTING → KUBE-POSTROUTING: MASQUERADE what KUBE-MARK-MASQ marked.
//   filter: KUBE-SERVICES / KUBE-EXTERNAL-SERVICES REJECT (no endpoints) or DROP (no local
//     endpoints), KUBE-NODEPORTS accepts health-check ports, KUBE-FORWARD, KUBE-PROXY-FIREWALL.
import { createHash } from 'node:crypto';
import type { IPFamily } from '../../cluster/types.js';
import { familyOf } from '../../common/ip.js';
import { flat } from '../../common/strings.js';
import type { FamilyConfig } from '../core/family-config.js';
import { targetKey, type ServicePlan, type ServicePortPlan, type Target } from '../core/model.js';
import { detectorOf, ifLocal, ifNotLocal } from './local-detect.js';
import { firewallAdmitsNode, policyTargets, portDecisions, type PortChains } from '../core/port-decisions.js';

export type { FamilyConfig, PortChains };

export type Table = 'nat' | 'filter';

/** A rule in a chain shared by all services (KUBE-SERVICES, KUBE-NODEPORTS, …). */
export interface DispatchRule {
  readonly table: Table;
  readonly chain: string;
  /** Everything after `-A CHAIN `. */
  readonly spec: string;
}

/** The rules one service owns in one family: its own nat chains, and its rules in shared chains. */
export interface ServiceRules {
  readonly key: string;
  /** Chain name → its rules as restore lines (`-A CHAIN …`), in order. */
  readonly chains: ReadonlyMap<string, readonly string[]>;
  readonly dispatch: readonly DispatchRule[];
}

export const MASQ_MARK = '0x4000';
export const CHAIN = {
  services: 'KUBE-SERVICES',
  externalServices: 'KUBE-EXTERNAL-SERVICES',
  nodePorts: 'KUBE-NODEPORTS',
  postrouting: 'KUBE-POSTROUTING',
  markMasq: 'KUBE-MARK-MASQ',
  forward: 'KUBE-FORWARD',
  firewall: 'KUBE-PROXY-FIREWALL',
  localnet: 'KUBE-FIREWALL',
} as const;

/** The chains every sync relies on, per table. */
export const STATIC_CHAINS: Record<Table, readonly string[]> = {
  filter: [CHAIN.services, CHAIN.externalServices, CHAIN.nodePorts, CHAIN.forward, CHAIN.firewall, CHAIN.localnet],
  nat: [CHAIN.services, CHAIN.nodePorts, CHAIN.postrouting, CHAIN.markMasq],
};

/** Chains named after a service or endpoint: ours to create and delete. */
export const SERVICE_CHAIN = /^KUBE-(SVC|SVL|EXT|FW|SEP)-[A-Z2-7]{16}$/;

/** Jumps from the built-in chains into ours, in the order they are wanted at the top. */
export const JUMPS: readonly { table: Table; chain: string; spec: string; target: string }[] = [
  { table: 'filter', chain: 'INPUT', target: CHAIN.localnet, spec: '-m comment --comment "kubernetes localnet protection" -j KUBE-FIREWALL' },
  { table: 'filter', chain: 'INPUT', target: CHAIN.firewall, spec: '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL' },
  { table: 'filter', chain: 'INPUT', target: CHAIN.nodePorts, spec: '-m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS' },
  { table: 'filter', chain: 'INPUT', target: CHAIN.externalServices, spec: '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES' },
  { table: 'filter', chain: 'FORWARD', target: CHAIN.firewall, spec: '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL' },
  { table: 'filter', chain: 'FORWARD', target: CHAIN.forward, spec: '-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD' },
  { table: 'filter', chain: 'FORWARD', target: CHAIN.services, spec: '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES' },
  { table: 'filter', chain: 'FORWARD', target: CHAIN.externalServices, spec: '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES' },
  { table: 'filter', chain: 'OUTPUT', target: CHAIN.localnet, spec: '-m comment --comment "kubernetes localnet protection" -j KUBE-FIREWALL' },
  { table: 'filter', chain: 'OUTPUT', target: CHAIN.firewall, spec: '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL' },
  { table: 'filter', chain: 'OUTPUT', target: CHAIN.services, spec: '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES' },
  { table: 'nat', chain: 'PREROUTING', target: CHAIN.services, spec: '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES' },
  { table: 'nat', chain: 'OUTPUT', target: CHAIN.services, spec: '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES' },
  { table: 'nat', chain: 'POSTROUTING', target: CHAIN.postrouting, spec: '-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING' },
];

/** The rules of our static chains that no service owns, per table (nodePortJumps aside). */
export const STATIC_RULES: Record<Table, readonly DispatchRule[]> = {
  filter: [
    { table: 'filter', chain: CHAIN.forward, spec: '-m conntrack --ctstate INVALID -j DROP' },
    { table: 'filter', chain: CHAIN.forward, spec: `-m comment --comment "kubernetes forwarding rules" -m mark --mark ${MASQ_MARK}/${MASQ_MARK} -j ACCEPT` },
    { table: 'filter', chain: CHAIN.forward, spec: '-m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT' },
  ],
  nat: [
    { table: 'nat', chain: CHAIN.postrouting, spec: `-m mark ! --mark ${MASQ_MARK}/${MASQ_MARK} -j RETURN` },
    // Clear the mark so a packet re-entering the stack (hairpin, tunnels) is not masqueraded twice.
    { table: 'nat', chain: CHAIN.postrouting, spec: `-j MARK --xor-mark ${MASQ_MARK}` },
    { table: 'nat', chain: CHAIN.postrouting, spec: '-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully' },
    { table: 'nat', chain: CHAIN.markMasq, spec: `-j MARK --or-mark ${MASQ_MARK}` },
  ],
};

/**
 * Static rules that depend on the family's config. With localhost node ports, route_localnet
 * lets packets to 127.0.0.0/8 arrive from outside (CVE-2020-8558): kube-proxy then drops, in
 * KUBE-FIREWALL, every packet to loopback from a non-loopback source that is not part of a
 * connection or DNATed by us; so do we, with the same matches.
 */
export function familyRules(cfg: FamilyConfig): DispatchRule[] {
  if (!cfg.localhostNodePorts || cfg.family !== 'IPv4') return [];
  return [{ table: 'filter', chain: CHAIN.localnet, spec: '-m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP' }];
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** kube-proxy's portProtoHash: the first 16 characters of base32(sha256(text)), i.e. the first
 *  80 bits. The same function gives the same chain names kube-proxy writes, so a node moving
 *  from kube-proxy to us (or back) finds its chains where it expects them. */
export function chainHash(text: string): string {
  const d = createHash('sha256').update(text).digest();
  let out = '';
  // 16 characters of 5 bits are exactly the first 10 bytes; take them 5 bytes (8 characters) at a time.
  for (let i = 0; i < 10; i += 5) {
    let v = 0n;
    for (let j = 0; j < 5; j++) v = (v << 8n) | BigInt(d[i + j]);
    for (let k = 7; k >= 0; k--) out += BASE32[Number((v >> BigInt(k * 5)) & 31n)];
  }
  return out;
}

type PortKey = Pick<ServicePortPlan, 'name' | 'protocol'>;
interface PortNames {
  readonly chains: PortChains;
  /** targetKey → KUBE-SEP-* name. */
  readonly endpoints: Map<string, string>;
}

/**
 * Hashes are computed once per service port and kept while its plan lives: plans are immutable
 * and the backend keeps the applied one, so the re-render of a partial sync's "before" side, the
 * reconcile and a full sync all hit this instead of SHA-256 (a third of a full render's time
 * when it was recomputed every time).
 */
const names = new WeakMap<PortKey, PortNames>();

function namesOf(p: PortKey): PortNames {
  let n = names.get(p);
  if (!n) {
    // kube-proxy hashes servicePortName.String() + lower-case protocol.
    const h = chainHash(`${p.name}${p.protocol.toLowerCase()}`);
    n = { chains: { svc: `KUBE-SVC-${h}`, svl: `KUBE-SVL-${h}`, ext: `KUBE-EXT-${h}`, fw: `KUBE-FW-${h}` }, endpoints: new Map() };
    names.set(p, n);
  }
  return n;
}

export function portChains(p: PortKey): PortChains {
  return namesOf(p).chains;
}

/** kube-proxy's servicePortEndpointChainName: sha256 of port name, protocol and `ip:port`. */
export function endpointChainName(p: PortKey, t: Target): string {
  const n = namesOf(p);
  const ep = targetKey(t);
  let name = n.endpoints.get(ep);
  if (!name) n.endpoints.set(ep, (name = `KUBE-SEP-${chainHash(`${p.name}${p.protocol.toLowerCase()}${ep}`)}`));
  return name;
}

const comment = (text: string) => `-m comment --comment "${text}"`;

function hostCIDR(ip: string): string {
  return familyOf(ip) === 'IPv4' ? `${ip}/32` : `${ip}/128`;
}

function probability(n: number): string {
  return (1 / n).toFixed(10);
}

/** Renders one service port (one family). */
function renderPort(p: ServicePortPlan, cfg: FamilyConfig, chains: Map<string, string[]>, dispatch: DispatchRule[]): void {
  const proto = p.protocol.toLowerCase();
  const match = `-p ${proto} -m ${proto}`;
  const c = portChains(p);
  const d = portDecisions(p);
  const { hasEndpoints, usesCluster, usesLocal, hasInternal, hasExternal } = d;
  const { internal: internalChain, external: externalPolicyChain, loadBalancer: lbChain } = policyTargets(d, c);

  const internalFilter = d.blocked === 'reject' ? { target: 'REJECT', text: `${p.name} has no endpoints` } : { target: 'DROP', text: `${p.name} has no local endpoints` };
  const externalFilter = internalFilter;

  // Rules are kept flat (common/strings.ts): as template-literal trees, a full ruleset of 10k
  // services costs nearly three times its text.
  const nat = (chain: string, spec: string) => dispatch.push({ table: 'nat', chain, spec: flat(spec) });
  const filter = (chain: string, spec: string) => dispatch.push({ table: 'filter', chain, spec: flat(spec) });
  const add = (chain: string, spec: string) => {
    let rules = chains.get(chain);
    if (!rules) chains.set(chain, (rules = []));
    rules.push(flat(`-A ${chain} ${spec}`));
  };

  // Cluster IP.
  if (p.clusterIP) {
    const dst = `-d ${hostCIDR(p.clusterIP)} ${match} --dport ${p.port}`;
    if (hasInternal) {
      nat(CHAIN.services, `${comment(`${p.name} cluster IP`)} ${dst} -j ${internalChain}`);
      if (cfg.masqueradeAll) add(internalChain, `${comment(`${p.name} cluster IP`)} ${dst} -j ${CHAIN.markMasq}`);
      else {
        // Off-cluster clients reaching a cluster IP (a route to the service range via this node)
        // may be answered by a pod on another node: masquerade so replies come back through here.
        // One rule with the detector's negated match, as kube-proxy writes it: one `! -s` rule
        // per CIDR would OR together and masquerade every pod.
        const notLocal = ifNotLocal(detectorOf(cfg));
        if (notLocal) add(internalChain, `${comment(`${p.name} cluster IP`)} ${dst} ${notLocal} -j ${CHAIN.markMasq}`);
      }
    } else {
      filter(CHAIN.services, `${comment(internalFilter.text)} ${dst} -j ${internalFilter.target}`);
    }
  }

  // External IPs.
  for (const ip of p.externalIPs) {
    const dst = `-d ${hostCIDR(ip)} ${match} --dport ${p.port}`;
    if (hasEndpoints) nat(CHAIN.services, `${comment(`${p.name} external IP`)} ${dst} -j ${c.ext}`);
    if (!hasExternal) filter(CHAIN.externalServices, `${comment(externalFilter.text)} ${dst} -j ${externalFilter.target}`);
  }

  // Load-balancer IPs.
  for (const ip of p.loadBalancerIPs) {
    const dst = `-d ${hostCIDR(ip)} ${match} --dport ${p.port}`;
    if (hasEndpoints) nat(CHAIN.services, `${comment(`${p.name} loadbalancer IP`)} ${dst} -j ${lbChain}`);
    if (d.usesFirewall) filter(CHAIN.firewall, `${comment(`${p.name} traffic not accepted by ${c.fw}`)} ${dst} -j DROP`);
    if (!hasExternal) filter(CHAIN.externalServices, `${comment(externalFilter.text)} ${dst} -j ${externalFilter.target}`);
  }

  // Node port.
  if (p.nodePort > 0) {
    if (hasEndpoints) nat(CHAIN.nodePorts, `${comment(p.name)} ${match} --dport ${p.nodePort} -j ${c.ext}`);
    if (!hasExternal) filter(CHAIN.externalServices, `${comment(externalFilter.text)} -m addrtype --dst-type LOCAL ${match} --dport ${p.nodePort} -j ${externalFilter.target}`);
  }

  // The external chain: every external destination comes through here.
  if (d.usesExternalChain) {
    if (d.masqueradeExternal) {
      add(c.ext, `${comment(`masquerade traffic for ${p.name} external destinations`)} -j ${CHAIN.markMasq}`);
    } else if (d.externalShortcuts) {
      // The node's own traffic needs masquerade: its source would be the VIP or node IP.
      const local = ifLocal(detectorOf(cfg));
      if (local) add(c.ext, `${comment(`pod traffic for ${p.name} external destinations`)} ${local} -j ${c.svc}`);
      add(c.ext, `${comment(`masquerade LOCAL traffic for ${p.name} external destinations`)} -m addrtype --src-type LOCAL -j ${CHAIN.markMasq}`);
      add(c.ext, `${comment(`route LOCAL traffic for ${p.name} external destinations`)} -m addrtype --src-type LOCAL -j ${c.svc}`);
    }
    if (hasExternal) add(c.ext, `-j ${externalPolicyChain}`);
    else if (!chains.has(c.ext)) chains.set(c.ext, []);
  }

  // The firewall chain: allowed sources go on, the rest are dropped by KUBE-PROXY-FIREWALL.
  if (d.usesFirewall) {
    const text = comment(`${p.name} loadbalancer IP`);
    for (const cidr of p.sourceRanges) add(c.fw, `${text} -s ${cidr} -j ${c.ext}`);
    if (firewallAdmitsNode(p, cfg.nodeIPs)) for (const ip of p.loadBalancerIPs) add(c.fw, `${text} -s ${hostCIDR(ip)} -j ${c.ext}`);
    add(c.fw, comment(`other traffic to ${p.name} will be dropped by KUBE-PROXY-FIREWALL`));
  }

  // Policy chains and their endpoints.
  const sepWritten = new Set<string>();
  const endpointChain = (_p: ServicePortPlan, t: Target): string => endpointChainName(p, t);
  const writePolicy = (chain: string, targets: readonly Target[]) => {
    if (!chains.has(chain)) chains.set(chain, []);
    if (p.affinitySeconds > 0) {
      for (const t of targets) {
        const sep = endpointChain(p, t);
        add(chain, `${comment(`${p.name} -> ${targetKey(t)}`)} -m recent --name ${sep} --mask ${fullMask(p.family)} --rsource --rcheck --seconds ${p.affinitySeconds} --reap -j ${sep}`);
      }
    }
    targets.forEach((t, i) => {
      const sep = endpointChain(p, t);
      const stat = i < targets.length - 1 ? ` -m statistic --mode random --probability ${probability(targets.length - i)}` : '';
      add(chain, `${comment(`${p.name} -> ${targetKey(t)}`)}${stat} -j ${sep}`);
    });
    for (const t of targets) {
      const sep = endpointChain(p, t);
      if (sepWritten.has(sep)) continue;
      sepWritten.add(sep);
      // Hairpin: a pod reaching itself through the service must see a source other than its own.
      add(sep, `${comment(p.name)} -s ${hostCIDR(t.ip)} -j ${CHAIN.markMasq}`);
      const affinity = p.affinitySeconds > 0 ? ` -m recent --name ${sep} --mask ${fullMask(p.family)} --rsource --set` : '';
      add(sep, `${comment(p.name)}${affinity} ${match} -j DNAT --to-destination ${targetKey(t)}`);
    }
  };
  if (usesCluster) writePolicy(c.svc, p.clusterEndpoints);
  if (usesLocal) writePolicy(c.svl, p.localEndpoints);
}

function fullMask(family: IPFamily): string {
  return family === 'IPv4' ? '255.255.255.255' : 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
}

/** The rules of one service in one family, or undefined when it has nothing in this family. */
export function renderService(plan: ServicePlan, cfg: FamilyConfig): ServiceRules | undefined {
  const ports = plan.ports.filter((p) => p.family === cfg.family);
  if (ports.length === 0) return undefined;
  const chains = new Map<string, string[]>();
  const dispatch: DispatchRule[] = [];
  for (const p of ports) renderPort(p, cfg, chains, dispatch);
  if (plan.healthCheckNodePort > 0) {
    dispatch.push({
      table: 'filter',
      chain: CHAIN.nodePorts,
      spec: `${comment(`${plan.namespace}/${plan.name} health check node port`)} -p tcp -m tcp --dport ${plan.healthCheckNodePort} -j ACCEPT`,
    });
  }
  // One rule text once: a manifest listing an external IP twice must not produce a rule that a
  // later -D would remove only one copy of.
  const seen = new Set<string>();
  const unique = dispatch.filter((r) => {
    const k = `${r.table} ${r.chain} ${r.spec}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  return { key: plan.key, chains, dispatch: unique };
}

/** The last rule of nat KUBE-SERVICES: node ports on local (or the chosen) addresses. */
export function nodePortJumps(cfg: FamilyConfig): string[] {
  const text = comment('kubernetes service nodeports; NOTE: this must be the last rule in this chain');
  if (cfg.nodePortAddresses === 'all') {
    // As kube-proxy: IPv4 loopback is a node port when --iptables-localhost-nodeports set
    // route_localnet; IPv6 has no route_localnet, so ::1 never is.
    if (cfg.localhostNodePorts && cfg.family === 'IPv4') return [`${text} -m addrtype --dst-type LOCAL -j ${CHAIN.nodePorts}`];
    const lo = cfg.family === 'IPv4' ? '127.0.0.0/8' : '::1/128';
    return [`${text} -m addrtype --dst-type LOCAL ! -d ${lo} -j ${CHAIN.nodePorts}`];
  }
  return cfg.nodePortAddresses.map((ip) => `${text} -d ${hostCIDR(ip)} -j ${CHAIN.nodePorts}`);
}

/** What a full sync needs to know about the kernel's current tables. */
export interface ExistingRules {
  /** Chains that exist per table. */
  readonly chains: Record<Table, ReadonlySet<string>>;
  /** `table chain target` of every rule in a built-in chain that jumps to one of ours. */
  readonly jumps: ReadonlySet<string>;
}

export function countRules(services: Iterable<ServiceRules>): Record<Table, number> {
  const n = { nat: STATIC_RULES.nat.length, filter: STATIC_RULES.filter.length };
  for (const s of services) {
    for (const rules of s.chains.values()) n.nat += rules.length;
    for (const r of s.dispatch) n[r.table]++;
  }
  return n;
}

/** Builds the restore input of a full sync: every chain of ours declared (so flushed) and
 *  written, missing jumps inserted, chains that exist but are no longer wanted deleted. */
export function renderFull(services: Iterable<ServiceRules>, cfg: FamilyConfig, existing: ExistingRules): string {
  return renderFullLines(services, cfg, existing).join('\n') + '\n';
}

/** renderFull as lines, for streaming to the tool without one giant string. */
export function renderFullLines(services: Iterable<ServiceRules>, cfg: FamilyConfig, existing: ExistingRules): string[] {
  const list = [...services];
  const wanted: Record<Table, Set<string>> = { filter: new Set(STATIC_CHAINS.filter), nat: new Set(STATIC_CHAINS.nat) };
  for (const s of list) for (const chain of s.chains.keys()) wanted.nat.add(chain);
  // One flat array joined once: at 30k services this is a million lines.
  const lines: string[] = [];
  for (const t of ['filter', 'nat'] as const) {
    lines.push(`*${t}`);
    for (const ch of wanted[t]) lines.push(`:${ch} - [0:0]`);
    const stale = [...existing.chains[t]].filter((ch) => SERVICE_CHAIN.test(ch) && !wanted[t].has(ch));
    for (const ch of stale) lines.push(`:${ch} - [0:0]`);
    // Insert missing jumps last-first at position 1, so they end up in JUMPS order at the top.
    const missing = JUMPS.filter((j) => j.table === t && !existing.jumps.has(`${t} ${j.chain} ${j.target}`));
    for (let i = missing.length - 1; i >= 0; i--) lines.push(`-I ${missing[i].chain} 1 ${missing[i].spec}`);
    for (const r of STATIC_RULES[t]) lines.push(`-A ${r.chain} ${r.spec}`);
    for (const r of familyRules(cfg)) if (r.table === t) lines.push(`-A ${r.chain} ${r.spec}`);
    for (const s of list) for (const r of s.dispatch) if (r.table === t) lines.push(flat(`-A ${r.chain} ${r.spec}`));
    if (t === 'nat') {
      for (const r of nodePortJumps(cfg)) lines.push(`-A ${CHAIN.services} ${r}`);
      for (const s of list) for (const rules of s.chains.values()) for (const r of rules) lines.push(r);
    }
    for (const ch of stale) lines.push(`-X ${ch}`);
    lines.push('COMMIT');
  }
  return lines;
}

export interface ServiceChange {
  readonly before?: ServiceRules;
  readonly after?: ServiceRules;
}

export function sameRules(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Builds the restore input of a partial sync: only the chains that differ are rewritten, rules
 *  in shared chains are deleted and added one by one, chains that went away are deleted.
 *  Undefined when nothing differs. Work is proportional to the changed services. */
export function renderPartial(changes: Iterable<ServiceChange>): string | undefined {
  const declare: string[] = [];
  const natDeletes: string[] = [];
  const natRules: string[] = [];
  const natAdds: string[] = [];
  const removeChains: string[] = [];
  const filterLines: string[] = [];
  for (const { before, after } of changes) {
    const oldChains = before?.chains ?? new Map<string, readonly string[]>();
    const newChains = after?.chains ?? new Map<string, readonly string[]>();
    for (const [chain, rules] of newChains) {
      if (sameRules(oldChains.get(chain), rules)) continue;
      declare.push(`:${chain} - [0:0]`);
      for (const r of rules) natRules.push(r);
    }
    for (const chain of oldChains.keys()) {
      if (newChains.has(chain)) continue;
      declare.push(`:${chain} - [0:0]`);
      removeChains.push(`-X ${chain}`);
    }
    const key = (r: DispatchRule) => `${r.table} ${r.chain} ${r.spec}`;
    const oldSet = new Set((before?.dispatch ?? []).map(key));
    const newSet = new Set((after?.dispatch ?? []).map(key));
    for (const r of before?.dispatch ?? []) {
      if (newSet.has(key(r))) continue;
      (r.table === 'nat' ? natDeletes : filterLines).push(`-D ${r.chain} ${r.spec}`);
    }
    for (const r of after?.dispatch ?? []) {
      if (oldSet.has(key(r))) continue;
      // New rules go in front of nat KUBE-SERVICES, whose last rule must stay the node-port jump.
      const line = r.table === 'nat' && r.chain === CHAIN.services ? `-I ${r.chain} 1 ${r.spec}` : `-A ${r.chain} ${r.spec}`;
      (r.table === 'nat' ? natAdds : filterLines).push(line);
    }
  }
  // Filter first: a REJECT for a service that lost its endpoints is in place before its DNAT goes.
  const blocks: string[] = [];
  if (filterLines.length) blocks.push(['*filter', filterLines.join('\n'), 'COMMIT'].join('\n'));
  if (declare.length || natDeletes.length || natAdds.length) {
    blocks.push(['*nat', ...[declare, natDeletes, natRules, natAdds, removeChains].filter((b) => b.length).map((b) => b.join('\n')), 'COMMIT'].join('\n'));
  }
  return blocks.length ? blocks.join('\n') + '\n' : undefined;
}

/** Parses `iptables-save` output into what renderFull needs. */
export function parseSave(text: string): ExistingRules {
  const chains: Record<Table, Set<string>> = { filter: new Set(), nat: new Set() };
  const jumps = new Set<string>();
  let table: string | undefined;
  const ours = new Set(JUMPS.map((j) => j.target));
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1).trim();
    if (table !== 'nat' && table !== 'filter') continue;
    if (line.startsWith(':')) chains[table].add(line.slice(1).split(' ')[0]);
    else if (line.startsWith('-A ')) {
      const m = / -j (\S+)/.exec(line);
      const chain = line.split(' ')[1];
      if (m && ours.has(m[1]) && !chain.startsWith('KUBE-')) jumps.add(`${table} ${chain} ${m[1]}`);
    }
  }
  return { chains, jumps };
}
