// The zone's own names, which no service gives: the apex (its SOA and NS), the NS's name
// `ns.dns.<zone>` with this server's addresses, and `dns-version.<zone>` (the schema version
// TXT of the specification). The SOA's serial moves with every catalog change.
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { CatalogView, ObjectKey } from '../cluster/types.js';
import { parseIP } from '../common/ip.js';
import { addressRec, type OwnedRec, type Rec } from './records.js';
import type { IndexedService } from './reverse-names.js';
import type { ServiceRecords } from './service-records.js';
import { QTYPE } from './wire.js';

export const SCHEMA_VERSION = '1.1.0';

export class ApexRecords {
  /** `ns.dns.<zone>`, the zone's NS. */
  readonly nsName: string;
  private readonly versionName: string;
  private serial: number;

  constructor(
    private readonly domain: string,
    private readonly ttl: number,
    private readonly catalog: CatalogView,
    /** The zone's indexed service of a catalog key. */
    private readonly service: (key: ObjectKey) => IndexedService | undefined,
    private readonly records: ServiceRecords,
    /** This server's own addresses (read when `ns.dns.<zone>` is answered). */
    private readonly ownAddresses?: () => readonly string[],
  ) {
    this.nsName = `ns.dns.${domain}`;
    this.versionName = `dns-version.${domain}`;
    this.serial = Math.floor(Date.now() / 1000) >>> 0;
  }

  /** A catalog change: the serial moves on (and never back, whatever the clock does). */
  changed(): void {
    this.serial = Math.max((this.serial + 1) >>> 0, Math.floor(Date.now() / 1000) >>> 0);
  }

  /** Whether the answer to `name`/`qtype` carries this server's addresses (the NS name, and
   *  the apex NS with them as glue): they follow the interfaces, not the catalog. */
  followsInterfaces(name: string, qtype: number): boolean {
    return name === this.nsName || (name === this.domain && (qtype === QTYPE.NS || qtype === QTYPE.ANY));
  }

  /** The SOA of `zone` (the cluster zone, or a reverse zone it answers for). */
  soa(zone: string = this.domain): OwnedRec {
    return {
      owner: zone,
      ttl: this.ttl,
      rec: { type: QTYPE.SOA, mname: this.nsName, rname: `hostmaster.${this.domain}`, serial: this.serial, minimum: this.ttl },
    };
  }

  /** The records of one of these names; undefined for any other name. */
  recordsOf(name: string): readonly Rec[] | undefined {
    if (name === this.domain) return [this.soa().rec, { type: QTYPE.NS, target: this.nsName }];
    if (name === this.versionName) return [{ type: QTYPE.TXT, text: SCHEMA_VERSION }];
    if (name === this.nsName) return this.nsAddresses().map(addressRec);
    return undefined;
  }

  /**
   * `ns.dns.<zone>` answers as CoreDNS's does: the addresses of the services this server is an
   * endpoint of (the cluster IPs, or for a headless service its published endpoints), else
   * this server's own addresses.
   */
  private nsAddresses(): string[] {
    const own = [...new Set((this.ownAddresses?.() ?? []).map((ip) => parseIP(ip)?.ip).filter((ip): ip is string => ip !== undefined))];
    const out = new Set<string>();
    for (const ip of own) {
      for (const o of this.catalog.ownersOfIP(ip)) {
        if (o.kind !== 'endpoint') continue;
        const s = this.service(o.serviceKey);
        if (!s || s.svc.type === 'ExternalName') continue;
        if (s.svc.headless) for (const e of this.records.published(s.svc, s.eps)) out.add(e.ip);
        else for (const c of s.svc.clusterIPs) out.add(c);
      }
    }
    return out.size > 0 ? [...out].sort() : own.sort();
  }
}

/**
 * This server's addresses for `ns.dns.<zone>`: the interfaces' addresses (not loopback, not
 * IPv6 link-local, which we do not serve on) and the specific `--listen` hosts.
 */
export function serverAddresses(listenHosts: readonly string[]): () => string[] {
  const specific = listenHosts.filter((h) => isIP(h) !== 0 && h !== '0.0.0.0' && h !== '::');
  // Only the addresses it serves on: an interface's address counts only under a wildcard
  // listener of its family (`::` takes IPv4 too, as a dual-stack socket does).
  const any6 = listenHosts.includes('::');
  const any4 = any6 || listenHosts.includes('0.0.0.0');
  return () => {
    const out = [...specific];
    if (!any4) return out;
    for (const list of Object.values(networkInterfaces())) {
      for (const a of list ?? []) {
        if (a.internal || a.address.toLowerCase().startsWith('fe80:')) continue;
        if (a.family === 'IPv4' || any6) out.push(a.address);
      }
    }
    return out;
  };
}

