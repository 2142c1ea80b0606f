// Who may ask: CoreDNS's `acl` plugin, reduced to what a node's DNS needs. A server under
// hostNetwork is reachable on every node address, and a recursive resolver anyone can reach is
// an open resolver (amplification, cache snooping). Sources outside the allowed networks get
// REFUSED for every question, cluster names included — acl's `block` action, whose rcode is
// REFUSED — rather than silence, so a misconfigured client learns why at once.
import { networkInterfaces } from 'node:os';
import { parseCIDR, parseIP, prefixContains, prefixString, type Prefix } from '../common/ip-bigint.js';

export interface AclOptions {
  /** --allow-from: when given, exactly these networks. */
  readonly allowFrom: readonly string[];
  /** --cluster-cidr: the pods' networks, part of the default. */
  readonly clusterCIDRs: readonly string[];
}

/** Sources remembered per address string; the set is cleared when the node's addresses change. */
const MEMO_LIMIT = 4096;

export class SourceAcl {
  private readonly fixed: readonly Prefix[];
  private local = new Set<string>();
  private memo = new Map<string, boolean>();

  /**
   * `withLocal`: the node's own addresses and loopback are allowed too (the default, so
   * hostNetwork pods, kubelet and the node's own resolver can ask). `localAddresses` is read
   * on `refresh()`.
   */
  constructor(prefixes: readonly Prefix[], private readonly withLocal: boolean, private readonly localAddresses: () => Iterable<string> = interfaceAddresses) {
    this.fixed = prefixes;
    this.refresh();
  }

  /** The allowed networks, for the start-up log. */
  describe(): string {
    return [...this.fixed.map(prefixString), ...(this.withLocal ? ['the node\'s addresses', 'loopback'] : [])].join(',');
  }

  get clusterless(): boolean {
    return this.withLocal && this.fixed.length === 0;
  }

  refresh(): void {
    if (!this.withLocal) return;
    const now = new Set<string>();
    for (const a of this.localAddresses()) now.add(a);
    if (now.size === this.local.size && [...now].every((a) => this.local.has(a))) return;
    this.local = now;
    this.memo = new Map();
  }

  /** `address` as Node reports a sender: IPv6 link-local ones carry a scope (`fe80::1%eth0`). */
  allows(address: string): boolean {
    const known = this.memo.get(address);
    if (known !== undefined) return known;
    const ok = this.decide(address);
    if (this.memo.size >= MEMO_LIMIT) this.memo.clear();
    this.memo.set(address, ok);
    return ok;
  }

  private decide(address: string): boolean {
    let a = address.replace(/%.*$/, '');
    if (a.toLowerCase().startsWith('::ffff:') && a.includes('.')) a = a.slice(7); // IPv4-mapped
    const ip = parseIP(a);
    if (!ip) return false;
    if (this.withLocal) {
      if (this.local.has(a)) return true;
      if (ip.family === 4 ? ip.value >> 24n === 127n : ip.value === 1n) return true;
    }
    return this.fixed.some((p) => prefixContains(p, ip));
  }
}

/** Parses --allow-from / --cluster-cidr networks; a bare address is a /32 or /128. */
export function parseNetworks(list: readonly string[], flag: string): Prefix[] {
  return list.map((s) => {
    const text = s.includes('/') ? s : `${s}/${s.includes(':') ? 128 : 32}`;
    const c = parseCIDR(text);
    if (!c) throw new Error(`${flag} ${JSON.stringify(s)} is not an IP network (CIDR, e.g. 10.244.0.0/16, or an address)`);
    return c.prefix;
  });
}

export function buildAcl(o: AclOptions, localAddresses?: () => Iterable<string>): SourceAcl {
  if (o.allowFrom.length > 0) return new SourceAcl(parseNetworks(o.allowFrom, '--allow-from'), false, localAddresses);
  return new SourceAcl(parseNetworks(o.clusterCIDRs, '--cluster-cidr'), true, localAddresses);
}

function* interfaceAddresses(): Iterable<string> {
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) yield a.address;
}
