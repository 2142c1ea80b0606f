// The cluster zone of the Kubernetes DNS specification (schema 1.1.0), kept as an index of
// names built from the catalog one service at a time: a change to one service replaces only the
// names that service owns, so 10k services cost nothing when one of them changes.
//
// Every name holds its records and, filled lazily, one encoded reply per question type; a query
// whose name and type were answered before costs a copy and a few patched bytes.
import type { CatalogView, ObjectKey, Service, ServiceEndpoints } from '../cluster/types.js';
import { dashedIP, ipFromDashed, reverseName } from './names.js';
import { addressRec, buildTemplate, type OwnedRec, type Rec, type Template } from './records.js';
import { QCLASS_ANY, QCLASS_IN, QTYPE, RCODE, type Query } from './wire.js';

export type PodsMode = 'insecure' | 'verified' | 'disabled';

export interface ZoneOptions {
  /** The cluster domain, lower case, no trailing dot (`cluster.local`). */
  readonly domain: string;
  readonly ttl: number;
  readonly pods: PodsMode;
}

export const SCHEMA_VERSION = '1.1.0';

/** What the server does with a question. */
export type ZoneAnswer =
  | { readonly kind: 'forward' }
  | { readonly kind: 'servfail' }
  | { readonly kind: 'refused' }
  | { readonly kind: 'reply'; readonly tpl: Template }
  /** An ExternalName: the CNAME reply, to be completed with the target's records. */
  | { readonly kind: 'external'; readonly cname: OwnedRec; readonly target: string };

/** A name and its records (owned by the name, TTL --ttl). Kept small: 10k services make
 *  some 50k of these. */
interface NameNode {
  readonly name: string;
  readonly records: readonly Rec[];
  /** Encoded replies by question type, made on first use; dropped with the node when its
   *  service changes. */
  templates?: Map<number, Template>;
}

/** What one service put into the index, so that removing it is exact. `ptrs` holds pairs
 *  (reverse name, target) flattened. */
interface Contribution {
  readonly names: readonly string[];
  readonly ents: readonly string[];
  readonly ptrs: readonly string[];
}

const NEGATIVE_CACHE_MAX = 10_000;

export class ClusterZone {
  private readonly names = new Map<string, NameNode>();
  private readonly ents = new Map<string, number>();
  /** Reverse name → its targets (nearly always one; an address in several headless services
   *  has several), sorted. */
  private readonly ptrs = new Map<string, readonly string[]>();
  private readonly ptrTemplates = new Map<string, Map<number, Template>>();
  private readonly byService = new Map<ObjectKey, Contribution>();
  /** NXDOMAIN and NODATA replies for names with no node; any catalog change clears it. */
  private readonly negative = new Map<string, Template>();
  private readonly suffix: string;
  private readonly podSuffix: string;
  private serial: number;
  private unsubscribe?: () => void;

  constructor(private readonly opts: ZoneOptions, private readonly catalog: CatalogView) {
    this.suffix = `.${opts.domain}`;
    this.podSuffix = `.pod.${opts.domain}`;
    this.serial = Math.floor(Date.now() / 1000) >>> 0;
    this.addStatic();
  }

  get synced(): boolean {
    return this.catalog.synced;
  }

  /** Indexes what the catalog holds now and follows its changes. */
  attach(onChange?: (services: number) => void): void {
    this.update([...this.catalog.services()].map((s) => s.key));
    this.unsubscribe = this.catalog.onChange((change) => {
      if (change.services.size > 0 || change.pods.size > 0) this.update(change.services);
      onChange?.(change.services.size);
    });
  }

  detach(): void {
    this.unsubscribe?.();
  }

  /** Re-indexes the named services from the catalog; work proportional to them. */
  update(keys: Iterable<ObjectKey>): void {
    for (const key of keys) {
      this.remove(key);
      const svc = this.catalog.service(key);
      if (svc) this.add(svc, this.catalog.endpoints(key));
    }
    this.negative.clear();
    this.serial = Math.max((this.serial + 1) >>> 0, Math.floor(Date.now() / 1000) >>> 0);
  }

  get size(): { names: number; ptrs: number; services: number } {
    return { names: this.names.size, ptrs: this.ptrs.size, services: this.byService.size };
  }

  /** Decides what to answer; `query` and `q` are the client's message and its question. */
  lookup(query: Buffer, q: Query): ZoneAnswer {
    const name = q.name;
    const inZone = name === this.opts.domain || name.endsWith(this.suffix);
    if (!inZone) {
      if (!name.endsWith('.in-addr.arpa') && !name.endsWith('.ip6.arpa')) return { kind: 'forward' };
      const targets = this.ptrs.get(name);
      // Reverse names of addresses we do not own fall through to the upstreams, as CoreDNS's
      // default `fallthrough in-addr.arpa ip6.arpa` does.
      if (!targets) return { kind: 'forward' };
      if (q.qclass !== QCLASS_IN && q.qclass !== QCLASS_ANY) return { kind: 'refused' };
      return { kind: 'reply', tpl: this.ptrReply(query, q, targets) };
    }
    if (q.qclass !== QCLASS_IN && q.qclass !== QCLASS_ANY) return { kind: 'refused' };
    if (!this.catalog.synced) return { kind: 'servfail' };

    const node = this.names.get(name);
    if (node) {
      const first = node.records[0];
      if (first?.type === QTYPE.CNAME && q.qtype !== QTYPE.CNAME) {
        return { kind: 'external', cname: { owner: node.name, ttl: this.opts.ttl, rec: first }, target: first.target };
      }
      let tpl = node.templates?.get(q.qtype);
      if (!tpl) (node.templates ??= new Map()).set(q.qtype, (tpl = this.nodeReply(query, q, node)));
      return { kind: 'reply', tpl };
    }

    const key = `${q.qtype}|${name}`;
    let tpl = this.negative.get(key);
    if (tpl) return { kind: 'reply', tpl };
    const pod = this.podAnswer(query, q);
    if (pod) return { kind: 'reply', tpl: pod }; // pod answers follow the pods; never cached here
    const exists = this.ents.has(name) || this.podNamespaceExists(name);
    tpl = buildTemplate(query, q, {
      rcode: exists ? RCODE.NOERROR : RCODE.NXDOMAIN,
      authoritative: true,
      answer: [],
      authority: [this.soa(this.opts.domain)],
    });
    if (this.negative.size >= NEGATIVE_CACHE_MAX) this.negative.clear();
    this.negative.set(key, tpl);
    return { kind: 'reply', tpl };
  }

  /** Records of a name in the zone (for chasing a CNAME whose target is in the cluster). */
  addresses(name: string, qtype: number): OwnedRec[] {
    return (this.names.get(name)?.records ?? []).filter((r) => r.type === qtype).map((rec) => ({ owner: name, ttl: this.opts.ttl, rec }));
  }

  isClusterName(name: string): boolean {
    return name === this.opts.domain || name.endsWith(this.suffix);
  }

  private soa(zone: string): OwnedRec {
    const d = this.opts.domain;
    return {
      owner: zone,
      ttl: this.opts.ttl,
      rec: { type: QTYPE.SOA, mname: `ns.dns.${d}`, rname: `hostmaster.${d}`, serial: this.serial, minimum: this.opts.ttl },
    };
  }

  private nodeReply(query: Buffer, q: Query, node: NameNode): Template {
    const ttl = this.opts.ttl;
    const answer = node.records.filter((r) => q.qtype === QTYPE.ANY || r.type === q.qtype).map((rec): OwnedRec => ({ owner: node.name, ttl, rec }));
    if (answer.length === 0) {
      return buildTemplate(query, q, { rcode: RCODE.NOERROR, authoritative: true, answer: [], authority: [this.soa(this.opts.domain)] });
    }
    // SRV targets are names of the same service: their addresses go in the additional section.
    const additional: OwnedRec[] = [];
    for (const r of answer) {
      if (r.rec.type !== QTYPE.SRV) continue;
      const target = r.rec.target;
      for (const rec of this.names.get(target)?.records ?? []) if (rec.type === QTYPE.A || rec.type === QTYPE.AAAA) additional.push({ owner: target, ttl, rec });
    }
    return buildTemplate(query, q, { rcode: RCODE.NOERROR, authoritative: true, answer, additional });
  }

  private ptrReply(query: Buffer, q: Query, targets: readonly string[]): Template {
    let byType = this.ptrTemplates.get(q.name);
    let tpl = byType?.get(q.qtype);
    if (tpl) return tpl;
    const zone = q.name.endsWith('.ip6.arpa') ? 'ip6.arpa' : 'in-addr.arpa';
    if (q.qtype === QTYPE.PTR || q.qtype === QTYPE.ANY) {
      const answer = targets.map((target): OwnedRec => ({ owner: q.name, ttl: this.opts.ttl, rec: { type: QTYPE.PTR, target } }));
      tpl = buildTemplate(query, q, { rcode: RCODE.NOERROR, authoritative: true, answer });
    } else {
      tpl = buildTemplate(query, q, { rcode: RCODE.NOERROR, authoritative: true, answer: [], authority: [this.soa(zone)] });
    }
    if (!byType) this.ptrTemplates.set(q.name, (byType = new Map()));
    byType.set(q.qtype, tpl);
    return tpl;
  }

  /** `a-b-c-d.<ns>.pod.<zone>` per `--pods`; undefined when the name is no pod's. */
  private podAnswer(query: Buffer, q: Query): Template | undefined {
    if (this.opts.pods === 'disabled' || !q.name.endsWith(this.podSuffix)) return undefined;
    const labels = q.name.slice(0, -this.podSuffix.length).split('.');
    if (labels.length !== 2) return undefined;
    const [label, ns] = labels;
    const addr = ipFromDashed(label);
    if (!addr) return undefined;
    if (this.opts.pods === 'verified' && !this.catalog.podsByIP(addr.ip).some((p) => p.namespace === ns)) return undefined;
    const rec = addressRec(addr.ip);
    const matches = q.qtype === rec.type || q.qtype === QTYPE.ANY;
    return buildTemplate(query, q, {
      rcode: RCODE.NOERROR,
      authoritative: true,
      answer: matches ? [{ owner: q.name, ttl: this.opts.ttl, rec }] : [],
      authority: matches ? [] : [this.soa(this.opts.domain)],
    });
  }

  /** `<ns>.pod.<zone>` and `pod.<zone>` exist (as empty non-terminals) unless pods are off. */
  private podNamespaceExists(name: string): boolean {
    if (this.opts.pods === 'disabled') return false;
    if (name === `pod.${this.opts.domain}`) return true;
    if (this.opts.pods === 'verified') return false; // a namespace with no pod: nothing below it
    return name.endsWith(this.podSuffix) && !name.slice(0, -this.podSuffix.length).includes('.');
  }

  private addStatic(): void {
    const d = this.opts.domain;
    this.names.set(d, node(d, [this.soa(d).rec, { type: QTYPE.NS, target: `ns.dns.${d}` }]));
    this.names.set(`dns-version.${d}`, node(`dns-version.${d}`, [{ type: QTYPE.TXT, text: SCHEMA_VERSION }]));
    for (const ent of [`svc.${d}`, `dns.${d}`, `ns.dns.${d}`]) this.ents.set(ent, 1);
  }

  private remove(key: ObjectKey): void {
    const c = this.byService.get(key);
    if (!c) return;
    this.byService.delete(key);
    for (const n of c.names) this.names.delete(n);
    for (const e of c.ents) {
      const left = (this.ents.get(e) ?? 1) - 1;
      if (left <= 0) this.ents.delete(e);
      else this.ents.set(e, left);
    }
    for (let i = 0; i < c.ptrs.length; i += 2) {
      const [rev, target] = [c.ptrs[i], c.ptrs[i + 1]];
      const left = (this.ptrs.get(rev) ?? []).filter((t) => t !== target);
      this.ptrTemplates.delete(rev);
      if (left.length === 0) this.ptrs.delete(rev);
      else this.ptrs.set(rev, left);
    }
  }

  private add(svc: Service, eps: ServiceEndpoints | undefined): void {
    const d = this.opts.domain;
    const base = `${svc.name}.${svc.namespace}.svc.${d}`.toLowerCase();
    const names: string[] = [];
    const ents = [`${svc.namespace}.svc.${d}`.toLowerCase()];
    const ptrs: string[] = [];
    const put = (n: NameNode) => {
      this.names.set(n.name, n);
      names.push(n.name);
    };

    if (svc.type === 'ExternalName') {
      if (svc.externalName) put(node(base, [{ type: QTYPE.CNAME, target: svc.externalName.toLowerCase() }]));
    } else if (!svc.headless) {
      // An SRV question for the service name itself gets every port (CoreDNS does this; the
      // specification only defines the per-port names).
      const weight = Math.max(1, Math.floor(100 / Math.max(1, svc.ports.length)));
      const allPorts = svc.ports.map((p): Rec => ({ type: QTYPE.SRV, priority: 0, weight, port: p.port, target: base }));
      put(node(base, [...svc.clusterIPs.map(addressRec), ...allPorts]));
      for (const ip of svc.clusterIPs) ptrs.push(reverseName(ip), base);
      for (const p of svc.ports) {
        if (!p.name) continue;
        const proto = `_${p.protocol.toLowerCase()}.${base}`;
        const srv = `_${p.name.toLowerCase()}.${proto}`;
        put(node(srv, [{ type: QTYPE.SRV, priority: 0, weight: 100, port: p.port, target: base }]));
        ents.push(proto);
      }
    } else {
      const published = (e: { ready: boolean }) => e.ready || svc.publishNotReadyAddresses;
      const endpoints = (eps?.endpoints ?? []).filter(published);
      // A headless service with nothing to publish does not exist in DNS (NXDOMAIN).
      if (endpoints.length > 0) {
        const label = (e: { ip: string; hostname?: string }) => (e.hostname ? e.hostname.toLowerCase() : dashedIP(e.ip));
        const allPorts: Rec[] = [];
        for (const p of eps?.ports ?? []) for (const e of p.endpoints) if (published(e)) allPorts.push({ type: QTYPE.SRV, priority: 0, weight: 0, port: p.port, target: `${label(e)}.${base}` });
        const weight = Math.max(1, Math.floor(100 / Math.max(1, allPorts.length)));
        put(node(base, [...endpoints.map((e) => addressRec(e.ip)), ...allPorts.map((r) => ({ ...r, weight }))]));
        const byHost = new Map<string, Rec[]>();
        for (const e of endpoints) {
          const host = `${label(e)}.${base}`;
          let list = byHost.get(host);
          if (!list) byHost.set(host, (list = []));
          list.push(addressRec(e.ip));
          ptrs.push(reverseName(e.ip), host);
        }
        for (const [host, recs] of byHost) put(node(host, recs));
        for (const p of eps?.ports ?? []) {
          if (!p.name) continue;
          const targets = p.endpoints.filter(published);
          if (targets.length === 0) continue;
          const proto = `_${p.protocol.toLowerCase()}.${base}`;
          const srv = `_${p.name.toLowerCase()}.${proto}`;
          const hosts = [...new Set(targets.map((e) => `${label(e)}.${base}`))];
          const weight = Math.max(1, Math.floor(100 / hosts.length));
          put(node(srv, hosts.map((h): Rec => ({ type: QTYPE.SRV, priority: 0, weight, port: p.port, target: h }))));
          ents.push(proto);
        }
      }
    }

    for (const e of ents) this.ents.set(e, (this.ents.get(e) ?? 0) + 1);
    for (let i = 0; i < ptrs.length; i += 2) {
      const [rev, target] = [ptrs[i], ptrs[i + 1]];
      const had = this.ptrs.get(rev);
      this.ptrs.set(rev, had ? (had.includes(target) ? had : [...had, target].sort()) : [target]);
      this.ptrTemplates.delete(rev);
    }
    this.byService.set(svc.key, { names, ents, ptrs });
  }
}

function node(name: string, records: Rec[]): NameNode {
  return { name, records };
}
