// Carving per-node pod CIDRs out of cluster CIDRs, as the node IPAM controller's range allocator
// does: node i gets the i-th subnet of the chosen mask size, in each family.
import { bits, formatIP, parseCIDR, prefixString, type Family, type Prefix } from '../common/ip-bigint.js';

export interface MaskSizes {
  ipv4: number;
  ipv6: number;
}

/** The controller's defaults (--node-cidr-mask-size-ipv4/-ipv6). */
export const DEFAULT_MASK_SIZES: MaskSizes = { ipv4: 24, ipv6: 64 };

/** As the controller, refuse to split a cluster CIDR into more than 2^16 node CIDRs. */
export const MAX_SPLIT_BITS = 16;

export interface ClusterCIDR {
  prefix: Prefix;
  maskSize: number;
  /** How many node CIDRs it holds. */
  count: bigint;
}

/** Parses "10.244.0.0/16,fd00::/48" and checks the mask sizes against it. */
export function parseClusterCIDRs(list: string, masks: MaskSizes = DEFAULT_MASK_SIZES): ClusterCIDR[] {
  const items = list.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new Error('cluster CIDR: none given');
  if (items.length > 2) throw new Error(`cluster CIDR: at most one per family, got ${items.length}: ${list}`);
  const seen = new Set<Family>();
  return items.map((item) => {
    const p = parseCIDR(item);
    if (!p) throw new Error(`cluster CIDR ${JSON.stringify(item)} is not a CIDR`);
    const { prefix } = p;
    if (p.address.value !== prefix.network) throw new Error(`cluster CIDR ${item} has host bits set (network is ${prefixString(prefix)})`);
    if (seen.has(prefix.family)) throw new Error(`cluster CIDR: two IPv${prefix.family} CIDRs in ${list} (one per family)`);
    seen.add(prefix.family);
    const maskSize = prefix.family === 4 ? masks.ipv4 : masks.ipv6;
    const flag = `--node-cidr-mask-size-ipv${prefix.family}`;
    if (!Number.isInteger(maskSize) || maskSize < prefix.length || maskSize > bits(prefix.family)) {
      throw new Error(`${flag} ${maskSize}: must be between the cluster CIDR's /${prefix.length} and /${bits(prefix.family)}`);
    }
    if (maskSize - prefix.length > MAX_SPLIT_BITS) {
      throw new Error(`${flag} ${maskSize}: splits ${item} into 2^${maskSize - prefix.length} node CIDRs; at most 2^${MAX_SPLIT_BITS} (use a longer cluster prefix or a shorter mask)`);
    }
    return { prefix, maskSize, count: 1n << BigInt(maskSize - prefix.length) };
  });
}

export function nodeCIDR(c: ClusterCIDR, index: number | bigint): string {
  const i = BigInt(index);
  if (i < 0n || i >= c.count) {
    throw new Error(`node index ${index} is out of range: ${prefixString(c.prefix)} holds ${c.count} node CIDRs of /${c.maskSize} (indexes 0-${c.count - 1n})`);
  }
  const network = c.prefix.network + (i << BigInt(bits(c.prefix.family) - c.maskSize));
  return `${formatIP(c.prefix.family, network)}/${c.maskSize}`;
}

/** The pod CIDRs of node number `index`, one per family, in the order the cluster CIDRs were given. */
export function carveNodeCIDRs(clusterCIDRs: string, masks: MaskSizes, index: number | bigint): string[] {
  return parseClusterCIDRs(clusterCIDRs, masks).map((c) => nodeCIDR(c, index));
}
