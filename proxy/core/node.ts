// This node's facts for the rules: its addresses (Node object and local interfaces) and where
// node ports are accepted (--nodeport-addresses).
import type { IPFamily, Node, ServiceCIDR } from '../../cluster/types.js';
import { cidrContains, familyOf, parseCIDR, parseIP } from '../../common/ip.js';
import type { NodeFacts } from './backend.js';
import { runTool } from '../../common/process.js';

/** Addresses on this network namespace's interfaces (`ip -j addr`), loopback excluded, and the
 *  interface `exceptInterface` left out (the userspace mode's VIPs are local but not the node's:
 *  counted as node addresses, the next sync would treat them as such). */
export async function localAddresses(exceptInterface?: string): Promise<string[]> {
  const r = await runTool('ip', ['-j', 'addr', 'show'], undefined, 10_000);
  if (r.code !== 0) throw new Error(`ip -j addr show exited ${r.code}: ${r.stderr.trim()}`);
  const links = JSON.parse(r.stdout) as { ifname?: string; addr_info?: { local?: string; scope?: string }[] }[];
  const out: string[] = [];
  for (const l of links) {
    if (exceptInterface !== undefined && l.ifname === exceptInterface) continue;
    for (const a of l.addr_info ?? []) {
      const ip = parseIP(a.local);
      if (ip && a.scope !== 'host' && a.scope !== 'link') out.push(ip.ip);
    }
  }
  return out;
}

/** Validates --nodeport-addresses: CIDRs, or the word `primary` (the Node object's IPs). */
export function checkNodePortAddresses(list: readonly string[]): string | undefined {
  for (const s of list) if (s !== 'primary' && !parseCIDR(s)) return `--nodeport-addresses: ${JSON.stringify(s)} is neither a CIDR nor "primary"`;
  return undefined;
}

export function nodeFacts(node: Node | undefined, local: readonly string[], nodePortAddresses: readonly string[], serviceCIDRs: Iterable<ServiceCIDR> = []): NodeFacts {
  const fromNode = (node?.addresses ?? [])
    .filter((a) => a.type === 'InternalIP' || a.type === 'ExternalIP')
    .map((a) => parseIP(a.address)?.ip)
    .filter((ip): ip is string => !!ip);
  const all = [...new Set([...fromNode, ...local])];
  const by = (f: IPFamily, ips: readonly string[]) => ips.filter((ip) => familyOf(ip) === f).sort();
  const ports = (f: IPFamily): 'all' | string[] => {
    if (nodePortAddresses.length === 0) return 'all';
    const chosen = new Set<string>();
    for (const spec of nodePortAddresses) {
      if (spec === 'primary') for (const ip of by(f, fromNode)) chosen.add(ip);
      else for (const ip of by(f, local)) if (cidrContains(parseCIDR(spec)!.cidr, ip)) chosen.add(ip);
    }
    return [...chosen].sort();
  };
  return {
    nodeIPs: { IPv4: by('IPv4', all), IPv6: by('IPv6', all) },
    nodePortAddresses: { IPv4: ports('IPv4'), IPv6: ports('IPv6') },
    podCIDRs: {
      IPv4: (node?.podCIDRs ?? []).filter((c) => !c.includes(':')),
      IPv6: (node?.podCIDRs ?? []).filter((c) => c.includes(':')),
    },
    serviceCIDRs: [...new Set([...serviceCIDRs].flatMap((s) => s.cidrs))].sort(),
  };
}
