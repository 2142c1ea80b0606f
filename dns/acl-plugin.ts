// `acl` in a Corefile: CoreDNS's access-control plugin, rules by source network and question
// type, per zone. (The flags' `--allow-from` is acl.ts, applied by the listener to every
// question.) Each `acl` directive is a policy; a question in a policy's zones meets its rules in
// order and the first that matches decides: `allow` passes it to the block at once (the later
// policies are not asked, as in CoreDNS), `block` answers REFUSED, `filter` answers NOERROR with
// nothing in it, `drop` answers nothing. A question no rule matches goes on to the next policy,
// and past the last one to the block.
import { parseCIDR, parseIP, prefixContains, type Prefix } from '../common/ip-bigint.js';
import { inZone } from './config.js';
import { BlockPlugin, type BlockHandler, type HandlerResult, type Transport } from './handler.js';
import type { DnsMetrics } from './metrics.js';
import { PLUGIN } from './query-metrics.js';
import type { Peer } from './querylog.js';
import { RCODE, emptyReply, type Query } from './wire.js';

export type AclAction = 'allow' | 'block' | 'filter' | 'drop';

export interface AclRule {
  readonly action: AclAction;
  /** Question types it matches; absent: every type (`type *`, or no `type`). */
  readonly types?: readonly number[];
  /** Source networks it matches (an address is its own /32 or /128); absent: every source. */
  readonly nets?: readonly string[];
}

export interface AclPolicy {
  /** The names it applies to ('' is every name): the directive's zones, else the block's. */
  readonly zones: readonly string[];
  readonly rules: readonly AclRule[];
}

interface CompiledRule {
  readonly action: AclAction;
  readonly types?: ReadonlySet<number>;
  readonly nets?: readonly Prefix[];
}

/** A rule's network: CIDR or a single address. Throws for anything else. */
export function aclNetwork(s: string): Prefix {
  const c = parseCIDR(s);
  if (c) return c.prefix;
  const ip = parseIP(s);
  if (!ip) throw new Error(`${JSON.stringify(s)} is not a network or an address`);
  return { family: ip.family, network: ip.value, length: ip.family === 4 ? 32 : 128 };
}

export class AclHandler extends BlockPlugin {
  private readonly policies: ReadonlyArray<{ zones: readonly string[]; rules: readonly CompiledRule[] }>;

  constructor(policies: readonly AclPolicy[], inner: BlockHandler, private readonly metrics?: DnsMetrics) {
    super(inner);
    this.policies = policies.map((p) => ({
      zones: p.zones,
      rules: p.rules.map((r) => ({
        action: r.action,
        ...(r.types ? { types: new Set(r.types) } : {}),
        ...(r.nets ? { nets: r.nets.map(aclNetwork) } : {}),
      })),
    }));
  }

  handleQuery(msg: Buffer, q: Query, t: Transport, from?: Peer): HandlerResult {
    const t0 = performance.now();
    const source = from ? sourceIP(from.address) : undefined;
    for (const p of this.policies) {
      const zone = p.zones.find((z) => inZone(q.name, z));
      if (zone === undefined) continue;
      const rule = p.rules.find((r) => (!r.types || r.types.has(q.qtype)) && (!r.nets || (source !== undefined && r.nets.some((n) => prefixContains(n, source)))));
      if (!rule) continue;
      if (rule.action === 'allow') break;
      const zoneLabel = zone === '' ? '.' : `${zone}.`;
      if (rule.action === 'drop') {
        this.metrics?.aclDropped.labels(t.server, zoneLabel, '').inc();
        return undefined;
      }
      const rcode = rule.action === 'block' ? RCODE.REFUSED : RCODE.NOERROR;
      (rule.action === 'block' ? this.metrics?.aclBlocked : this.metrics?.aclFiltered)?.labels(t.server, zoneLabel, '').inc();
      const reply = emptyReply(msg, q, rcode);
      this.metrics?.observe(t, false, PLUGIN.acl, q.qtype, rcode, msg.length, reply.length, (performance.now() - t0) / 1000);
      return reply;
    }
    this.metrics?.aclAllowed.labels(t.server, '').inc();
    return this.inner.handleQuery(msg, q, t, from);
  }
}

/** The sender as an address: without an IPv6 scope, an IPv4-mapped one as IPv4. */
function sourceIP(address: string) {
  let a = address.replace(/%.*$/, '');
  if (a.toLowerCase().startsWith('::ffff:') && a.includes('.')) a = a.slice(7);
  return parseIP(a) ?? undefined;
}
