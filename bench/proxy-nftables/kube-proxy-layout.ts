// The anchor for the first full load: a ruleset shaped like kube-proxy's nftables mode
// (pkg/proxy/nftables, 1.31+) for the bench's population, written as kube-proxy's knftables
// transaction is (`add …` / `flush chain …` statements, one `nft -f` run), so that `nft -f` on
// it in a fresh namespace is what kube-proxy's first sync would pay the tool for the same
// services. Good in shape and chain count, not byte for byte:
//   - table `ip kube-proxy` (and `ip6 kube-proxy` with the fixed objects only, as our IPv6 table:
//     the population is IPv4), its base chains (filter-prerouting/-input/-forward/-output,
//     -output-post-dnat, nat-prerouting/-output/-postrouting) and helper chains (services,
//     masquerading, mark-for-masquerade, cluster-ips-check, firewall-check, reject-chain,
//     service-endpoints-check, nodeport-endpoints-check), the sets and maps they use;
//   - per service port: an element in `cluster-ips` and in the verdict map `service-ips`
//     (`vip . tcp . port : goto service-<hash>-ns/name/tcp/port`), and the chain
//     `service-<hash>-ns/name/tcp/port`: masquerade what comes from outside the cluster CIDR,
//     then `numgen random mod n vmap { 0 : goto endpoint-…, … }`;
//   - per endpoint: the chain `endpoint-<hash>-ns/name/tcp/port__ip/port` with
//     `ip saddr <ep> jump mark-for-masquerade` and `meta l4proto tcp dnat to <ip:port>`.
// The hash is kube-proxy's: the first 8 characters of base32(sha256(name)).
import { createHash } from 'node:crypto';
import { writeLinesInSlices } from '../proxy-common.js';

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** kube-proxy's hashAndTruncate prefix: base32 of sha256, first 8 characters. */
function hash8(s: string): string {
  const d = createHash('sha256').update(s).digest();
  // 8 base32 characters are 40 bits: the first 5 bytes.
  let bits = 0n;
  for (let i = 0; i < 5; i++) bits = (bits << 8n) | BigInt(d[i]);
  let out = '';
  for (let i = 7; i >= 0; i--) out += B32[Number((bits >> BigInt(i * 5)) & 31n)];
  return out;
}

export interface KubeProxyPopulation {
  /** Services, each one TCP port. */
  services: { namespace: string; name: string; port: number; portName: string; vip: string; targetPort: number; endpoints: string[] }[];
  clusterCIDR: string;
  serviceCIDR: string;
}

/** The fixed part of one family's table, as kube-proxy makes it. */
function fixedTable(fam: 'ip' | 'ip6', serviceCIDR: string | undefined): string[] {
  const t = `${fam} kube-proxy`;
  const addr = fam === 'ip' ? 'ipv4_addr' : 'ipv6_addr';
  const daddr = `${fam} daddr`;
  const L: string[] = [];
  L.push(`add table ${t} { comment "rules for kube-proxy" ; }`);
  const base: [string, string, string, number][] = [
    ['filter-prerouting', 'filter', 'prerouting', -110],
    ['filter-input', 'filter', 'input', -110],
    ['filter-forward', 'filter', 'forward', -110],
    ['filter-output', 'filter', 'output', -110],
    ['filter-output-post-dnat', 'filter', 'output', -90],
    ['nat-prerouting', 'nat', 'prerouting', -100],
    ['nat-output', 'nat', 'output', -100],
    ['nat-postrouting', 'nat', 'postrouting', 100],
  ];
  for (const [c, type, hook, prio] of base) L.push(`add chain ${t} ${c} { type ${type} hook ${hook} priority ${prio} ; }`);
  for (const c of ['services', 'masquerading', 'mark-for-masquerade', 'cluster-ips-check', 'firewall-check', 'reject-chain', 'service-endpoints-check', 'nodeport-endpoints-check']) {
    L.push(`add chain ${t} ${c}`);
  }
  L.push(`add set ${t} cluster-ips { type ${addr} ; comment "Active ClusterIPs" ; }`);
  L.push(`add set ${t} nodeport-ips { type ${addr} ; comment "IPs that accept NodePort traffic" ; }`);
  L.push(`add map ${t} no-endpoint-services { type ${addr} . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }`);
  L.push(`add map ${t} no-endpoint-nodeports { type inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }`);
  L.push(`add map ${t} firewall-ips { type ${addr} . inet_proto . inet_service : verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }`);
  L.push(`add map ${t} service-ips { type ${addr} . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }`);
  L.push(`add map ${t} service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }`);
  for (const c of ['filter-prerouting', 'filter-input', 'filter-forward', 'filter-output', 'filter-output-post-dnat', 'nat-prerouting', 'nat-output', 'nat-postrouting', 'services', 'masquerading', 'mark-for-masquerade', 'cluster-ips-check', 'firewall-check', 'reject-chain', 'service-endpoints-check', 'nodeport-endpoints-check']) {
    L.push(`flush chain ${t} ${c}`);
  }
  L.push(`add rule ${t} filter-prerouting ct state new jump firewall-check`);
  L.push(`add rule ${t} filter-input ct state new jump nodeport-endpoints-check`);
  L.push(`add rule ${t} filter-input ct state new jump service-endpoints-check`);
  L.push(`add rule ${t} filter-forward ct state new jump service-endpoints-check`);
  L.push(`add rule ${t} filter-forward ct state new jump cluster-ips-check`);
  L.push(`add rule ${t} filter-output ct state new jump service-endpoints-check`);
  L.push(`add rule ${t} filter-output ct state new jump firewall-check`);
  L.push(`add rule ${t} filter-output-post-dnat ct state new jump cluster-ips-check`);
  L.push(`add rule ${t} nat-prerouting jump services`);
  L.push(`add rule ${t} nat-output jump services`);
  L.push(`add rule ${t} nat-postrouting jump masquerading`);
  L.push(`add rule ${t} masquerading mark and 0x4000 == 0 return`);
  L.push(`add rule ${t} masquerading mark set mark xor 0x4000`);
  L.push(`add rule ${t} masquerading masquerade fully-random`);
  L.push(`add rule ${t} mark-for-masquerade mark set mark or 0x4000`);
  L.push(`add rule ${t} cluster-ips-check ${daddr} @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"`);
  if (serviceCIDR) L.push(`add rule ${t} cluster-ips-check ${daddr} { ${serviceCIDR} } drop comment "Drop traffic to unallocated ClusterIPs"`);
  L.push(`add rule ${t} firewall-check ${daddr} . meta l4proto . th dport vmap @firewall-ips`);
  L.push(`add rule ${t} reject-chain reject`);
  L.push(`add rule ${t} service-endpoints-check ${daddr} . meta l4proto . th dport vmap @no-endpoint-services`);
  L.push(`add rule ${t} nodeport-endpoints-check ${daddr} @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports`);
  L.push(`add rule ${t} services ${daddr} . meta l4proto . th dport vmap @service-ips`);
  L.push(`add rule ${t} services fib daddr type local ${fam === 'ip' ? 'ip daddr != 127.0.0.0/8 ' : ''}meta l4proto . th dport vmap @service-nodeports`);
  return L;
}

/** kube-proxy's nftables input for `pop`, both families: the lines of one `nft -f`. */
export function kubeProxyRuleset(pop: KubeProxyPopulation): string[] {
  const t = 'ip kube-proxy';
  const L = fixedTable('ip', pop.serviceCIDR);
  for (const s of pop.services) {
    const spn = `${s.namespace}/${s.name}/tcp/${s.portName}`;
    const svcChain = `service-${hash8(spn)}-${spn}`;
    const epChains = s.endpoints.map((ip) => {
      const id = `${spn}__${ip}/${s.targetPort}`;
      return { ip, chain: `endpoint-${hash8(id)}-${id}` };
    });
    // Chains before the rules that jump to them: nft resolves a goto when it adds the rule.
    for (const e of epChains) {
      L.push(`add chain ${t} ${e.chain}`);
      L.push(`flush chain ${t} ${e.chain}`);
      L.push(`add rule ${t} ${e.chain} ip saddr ${e.ip} jump mark-for-masquerade`);
      L.push(`add rule ${t} ${e.chain} meta l4proto tcp dnat to ${e.ip}:${s.targetPort}`);
    }
    L.push(`add chain ${t} ${svcChain}`);
    L.push(`flush chain ${t} ${svcChain}`);
    L.push(`add rule ${t} ${svcChain} ip daddr ${s.vip} tcp dport ${s.port} ip saddr != ${pop.clusterCIDR} jump mark-for-masquerade`);
    if (epChains.length) {
      L.push(`add rule ${t} ${svcChain} numgen random mod ${epChains.length} vmap { ${epChains.map((e, i) => `${i} : goto ${e.chain}`).join(' , ')} }`);
    }
    L.push(`add element ${t} cluster-ips { ${s.vip} }`);
    L.push(`add element ${t} service-ips { ${s.vip} . tcp . ${s.port} : goto ${svcChain} }`);
  }
  L.push(...fixedTable('ip6', undefined));
  return L;
}

/** Writes kube-proxy's input for `pop` to `file`; returns its line and chain counts. */
export function writeKubeProxyRuleset(file: string, pop: KubeProxyPopulation): { lines: number; chains: number } {
  const lines = kubeProxyRuleset(pop);
  writeLinesInSlices(file, lines);
  let chains = 0;
  for (const l of lines) if (l.startsWith('add chain ')) chains++;
  return { lines: lines.length, chains };
}
