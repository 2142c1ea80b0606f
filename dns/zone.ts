// The cluster zone of the Kubernetes DNS specification (schema 1.1.0), kept as an index of
// names built from the catalog one service at a time: a change to one service replaces only the
// names that service owns, so 10k services cost nothing when one of them changes.
//
// The index is small on purpose (10k services make some 30k names): it holds one entry per
// service, its name → the catalog's records of it (immutable, shared with the catalog). The
// names below a service (a port's SRV name, an endpoint's name) are found by their spelling:
// one or two labels more. Records are derived only when a reply is first encoded; the encoded
// reply is what is kept, per name, so a query whose name and type were answered before costs
// two map lookups, a copy and a few patched bytes. Reverse names are not indexed at all: the
// catalog already indexes addresses (`ownersOfIP`).
//
// Each kind of name has its module: service-records.ts (services, endpoints, SRV), reverse-names.ts
// (PTR), pod-names.ts, apex-records.ts (SOA, NS, ns.dns, dns-version); zone-answers.ts keeps the
// replies. This file indexes the services and decides which of them answers a question.
import type { CatalogView, ObjectKey, Service, ServiceEndpoints } from '../cluster/types.js';
import { reverseName } from './names.js';
import { addressRec, buildTemplate, type OwnedRec, type Rec, type Template } from './records.js';
import { QCLASS_ANY, QCLASS_IN, QTYPE, RCODE, type Query } from './wire.js';
import { flat } from '../common/strings.js';
import { inZone, REVERSE_ZONES } from './config.js';
import { PodNames } from './pod-names.js';
import { ptrTargets } from './reverse-names.js';
import { ServiceRecords, srvName, type NamingOptions } from './service-records.js';
import { ApexRecords } from './apex-records.js';
import { Answers, keepAnswer, type ZoneAnswer } from './zone-answers.js';

export type { ZoneAnswer } from './zone-answers.js';

export type PodsMode = 'insecure' | 'verified' | 'disabled';

export interface ZoneOptions {
  /** The cluster domain, lower case, no trailing dot (`cluster.local`). */
  readonly domain: string;
  readonly ttl: number;
  readonly pods: PodsMode;
  /** This server's own addresses, for `ns.dns.<zone>` (read when that name is answered). */
  readonly ownAddresses?: () => readonly string[];
  /** The reverse zones whose PTRs it answers (default: `in-addr.arpa`, `ip6.arpa`). */
  readonly reverseZones?: readonly string[];
  /** Zones whose names it does not have are forwarded instead of NXDOMAIN ('' is every zone;
   *  default: the reverse zones, CoreDNS's usual `fallthrough in-addr.arpa ip6.arpa`). */
  readonly fallthrough?: readonly string[];
  /** `endpoint_pod_names`, `noendpoints`, `ignore empty_service`. */
  readonly naming?: NamingOptions;
  /** `namespaces`: only these namespaces' services are in the zone (default: every one). */
  readonly namespaces?: readonly string[];
}

const FORWARD: ZoneAnswer = Object.freeze({ kind: 'forward' });
const REFUSED: ZoneAnswer = Object.freeze({ kind: 'refused' });

/** One service as it was indexed: the catalog's records (kept to recompute, on removal, exactly
 *  the names they produced, whose answers go with them) and its name. */
class Indexed {
  constructor(
    readonly svc: Service,
    readonly eps: ServiceEndpoints | undefined,
    /** `<svc>.<ns>.svc.<zone>`, a flat string (it is also the index's key). */
    readonly base: string,
  ) {}
}

const NEGATIVE_CACHE_MAX = 10_000;
const PTR_CACHE_MAX = 10_000;
/** How long an `ns.dns.<zone>` answer is kept: it also follows the interfaces' addresses. */
const NS_CACHE_MS = 1000;

export class ClusterZone {
  /** `<svc>.<ns>.svc.<zone>` → the service, also when the name answers NXDOMAIN (a headless
   *  service with nothing published), so that removal finds it by key. */
  private readonly services = new Map<string, Indexed>();
  /** `<ns>.svc.<zone>` → how many services the namespace has (it exists while any). */
  private readonly namespaces = new Map<string, number>();
  /** Answers of names in the index and of the fixed names, by name then type. */
  private readonly answers = new Map<string, Answers>();
  /** Answers for reverse names we own, built from the catalog's address index. */
  private readonly ptrAnswers = new Map<string, Answers>();
  /** NXDOMAIN and NODATA replies for names that own no records, by name then type; any catalog
   *  change clears it. */
  private readonly negative = new Map<string, Answers>();
  private nsAnswers = new Answers();
  /** The apex NS (and ANY) answers, which carry the NS name's addresses as glue. */
  private apexNsAnswers = new Answers();
  private nsAnswersAt = 0;
  private readonly suffix: string;
  private readonly svcSuffix: string;
  private readonly ents: ReadonlySet<string>;
  private readonly reverseZones: readonly string[];
  private readonly fallthrough: readonly string[];
  private readonly records: ServiceRecords;
  private readonly pods: PodNames;
  private readonly exposed?: ReadonlySet<string>;
  private readonly apex: ApexRecords;
  private unsubscribe?: () => void;

  constructor(private readonly opts: ZoneOptions, private readonly catalog: CatalogView) {
    const d = opts.domain;
    this.suffix = `.${d}`;
    this.svcSuffix = `.svc.${d}`;
    this.ents = new Set([`svc.${d}`, `dns.${d}`]);
    this.reverseZones = opts.reverseZones ?? REVERSE_ZONES;
    this.fallthrough = opts.fallthrough ?? REVERSE_ZONES;
    this.records = new ServiceRecords(opts.naming);
    this.apex = new ApexRecords(d, opts.ttl, catalog, (key) => this.services.get(this.baseOfKey(key)), this.records, opts.ownAddresses);
    this.pods = new PodNames(d, opts.pods, opts.ttl, catalog, () => this.apex.soa());
    if (opts.namespaces) this.exposed = new Set(opts.namespaces);
  }

  get synced(): boolean {
    return this.catalog.synced;
  }

  /** Indexes what the catalog holds now and follows its changes. */
  attach(onChange?: (services: number) => void): void {
    this.update([...this.catalog.services()].map((s) => s.key));
    this.unsubscribe = this.catalog.onChange((change) => {
      if (change.services.size > 0 || change.pods.size > 0 || change.namespaces.size > 0) this.update(change.services);
      onChange?.(change.services.size);
    });
  }

  detach(): void {
    this.unsubscribe?.();
  }

  /** Re-indexes the named services from the catalog; work proportional to them. */
  update(keys: Iterable<ObjectKey>): void {
    for (const key of keys) {
      const old = this.services.get(this.baseOfKey(key));
      const found = this.catalog.service(key);
      const svc = found && (!this.exposed || this.exposed.has(found.namespace)) ? found : undefined;
      const eps = svc ? this.catalog.endpoints(key) : undefined;
      if (old) this.remove(old);
      const now = svc ? new Indexed(svc, eps, old?.base ?? this.baseOf(svc)) : undefined;
      if (now) this.add(now);
      if (this.ptrAnswers.size > 0) {
        if (old) this.forgetPtrs(old);
        if (now) this.forgetPtrs(now);
      }
    }
    this.negative.clear();
    this.nsAnswers = new Answers();
    this.apexNsAnswers = new Answers();
    this.answers.delete(this.opts.domain); // the apex SOA carries the serial
    this.apex.changed();
  }

  get size(): { services: number; namespaces: number } {
    return { services: this.services.size, namespaces: this.namespaces.size };
  }

  /** Decides what to answer; `query` and `q` are the client's message and its question. */
  lookup(query: Buffer, q: Query): ZoneAnswer {
    // Only names in the zone (once synced) are ever in `answers`.
    if (q.qclass === QCLASS_IN || q.qclass === QCLASS_ANY) {
      const hit = this.answers.get(q.name)?.get(q.qtype) ?? this.negative.get(q.name)?.get(q.qtype);
      if (hit !== undefined) return hit;
    }
    return this.decide(query, q);
  }

  /**
   * What the reply `tpl` just given to `q` depends on, for a copy kept elsewhere (the worker
   * threads' answer table): the key of the one service whose records it came from, '' when any
   * catalog change may alter it (negative answers, reverse names, the apex), undefined when it
   * must not be kept (it follows the clock or the interfaces, or is not kept here either).
   */
  answerDependency(q: Query, tpl: Template): ObjectKey | '' | undefined {
    const name = q.name;
    const own = this.answers.get(name)?.get(q.qtype);
    if (own?.kind === 'reply' && own.tpl === tpl) {
      const dot = name.indexOf('.');
      const dot2 = dot < 0 ? -1 : name.indexOf('.', dot + 1);
      const s = this.services.get(name) ?? (dot < 0 ? undefined : this.services.get(name.slice(dot + 1))) ?? (dot2 < 0 ? undefined : this.services.get(name.slice(dot2 + 1)));
      return s ? s.svc.key : '';
    }
    for (const kept of [this.negative.get(name)?.get(q.qtype), this.ptrAnswers.get(name)?.get(q.qtype)]) {
      if (kept?.kind === 'reply' && kept.tpl === tpl) return '';
    }
    return undefined;
  }

  /** Whether the zone's decision to forward `name` could change with the catalog (a name in
   *  the cluster or a reverse zone, forwarded by `fallthrough`). */
  forwardFollowsCatalog(name: string): boolean {
    return this.isClusterName(name) || this.reverseZones.some((z) => inZone(name, z));
  }

  /** Records of a name in the zone (for chasing a CNAME whose target is in the cluster). */
  addresses(name: string, qtype: number): OwnedRec[] {
    return (this.recordsOf(name) ?? []).filter((r) => r.type === qtype).map((rec) => ({ owner: name, ttl: this.opts.ttl, rec }));
  }

  isClusterName(name: string): boolean {
    return name === this.opts.domain || name.endsWith(this.suffix);
  }

  /** The services' names and the namespaces with services, sorted (for tests). */
  contents(): { services: string[]; namespaces: Array<[string, number]> } {
    return { services: [...this.services.keys()].sort(), namespaces: [...this.namespaces].sort((a, b) => (a[0] < b[0] ? -1 : 1)) };
  }

  private decide(query: Buffer, q: Query): ZoneAnswer {
    const name = q.name;
    if (!this.isClusterName(name)) {
      const reverse = this.reverseZones.find((z) => inZone(name, z));
      return reverse === undefined ? FORWARD : this.ptrAnswer(query, q, reverse);
    }
    if (q.qclass !== QCLASS_IN && q.qclass !== QCLASS_ANY) return REFUSED;
    // Before the catalog has synced nothing can be denied: SERVFAIL, with the zone's SOA as
    // CoreDNS sends it, so a resolver learns whose zone failed. Never cached: it lasts until then.
    if (!this.catalog.synced) {
      const soa = [this.apex.soa()];
      return { kind: 'reply', tpl: buildTemplate(query, q, { rcode: RCODE.SERVFAIL, authoritative: true, answer: [], authority: soa }) };
    }

    // The NS name's addresses, and the apex NS answer that carries them as glue, follow this
    // server's addresses: cached briefly, not with the other names.
    if (this.apex.followsInterfaces(name, q.qtype)) return this.nsAnswer(query, q);
    const records = this.recordsOf(name);
    if (records) {
      let byType = this.answers.get(name);
      if (!byType) this.answers.set(name, (byType = new Answers()));
      const answer = this.nameAnswer(query, q, records);
      byType.set(q.qtype, answer);
      return answer;
    }

    const pod = this.pods.answer(query, q);
    if (pod) return { kind: 'reply', tpl: pod }; // pod answers follow the pods; never cached here
    const exists = this.exists(name);
    const answer = !exists && this.fallsThrough(name) ? FORWARD : this.negativeAnswer(query, q, exists);
    return keepAnswer(this.negative, NEGATIVE_CACHE_MAX, q, answer);
  }

  private fallsThrough(name: string): boolean {
    return this.fallthrough.some((z) => inZone(name, z));
  }

  /** Whether a name without records exists: an empty non-terminal. */
  private exists(name: string): boolean {
    if (this.ents.has(name) || this.namespaces.has(name)) return true;
    // `<ns>.svc.<zone>` of a namespace that exists but has no service (CoreDNS: NODATA).
    if (name.endsWith(this.svcSuffix)) {
      const ns = name.slice(0, -this.svcSuffix.length);
      if (!ns.includes('.') && this.catalog.namespace(ns) && (!this.exposed || this.exposed.has(ns))) return true;
    }
    // `_tcp.<svc>…`: exists when one of the service's names is below it.
    const dot = name.indexOf('.');
    const parent = dot < 0 ? undefined : this.services.get(name.slice(dot + 1));
    if (parent && parent.base === name.slice(dot + 1)) {
      const below = `.${name}`;
      if (this.namesOf(parent).some((n) => n.endsWith(below))) return true;
    }
    return this.pods.exists(name);
  }


  private negativeAnswer(query: Buffer, q: Query, exists: boolean, zone = this.opts.domain): ZoneAnswer {
    return {
      kind: 'reply',
      tpl: buildTemplate(query, q, { rcode: exists ? RCODE.NOERROR : RCODE.NXDOMAIN, authoritative: true, answer: [], authority: [this.apex.soa(zone)] }),
    };
  }

  /** The answer for a name from its records. */
  private nameAnswer(query: Buffer, q: Query, records: readonly Rec[]): ZoneAnswer {
    const owner = q.name;
    const ttl = this.opts.ttl;
    const first = records[0];
    if (first?.type === QTYPE.CNAME && q.qtype !== QTYPE.CNAME) {
      return { kind: 'external', cname: { owner, ttl, rec: first }, target: first.target };
    }
    const answer = records.filter((r) => q.qtype === QTYPE.ANY || r.type === q.qtype).map((rec): OwnedRec => ({ owner, ttl, rec }));
    if (answer.length === 0) return this.negativeAnswer(query, q, true);
    // SRV targets (names of the same service) and the zone's NS name: their addresses go in the
    // additional section, as CoreDNS sends them.
    const additional: OwnedRec[] = [];
    for (const r of answer) {
      if (r.rec.type !== QTYPE.SRV && r.rec.type !== QTYPE.NS) continue;
      const target = r.rec.target;
      for (const rec of this.recordsOf(target) ?? []) if (rec.type === QTYPE.A || rec.type === QTYPE.AAAA) additional.push({ owner: target, ttl, rec });
    }
    return { kind: 'reply', tpl: buildTemplate(query, q, { rcode: RCODE.NOERROR, authoritative: true, answer, additional }) };
  }

  /** The records a name owns, derived from its service; undefined when the name does not exist. */
  private recordsOf(name: string): readonly Rec[] | undefined {
    const fixed = this.apex.recordsOf(name);
    if (fixed) return fixed;
    const own = this.services.get(name);
    if (own) return this.records.ofService(own.svc, own.eps, own.base);
    // `<endpoint>.<svc>…`, or `_<port>._<proto>.<svc>…`. Endpoint names are the specification's
    // for headless services; CoreDNS answers them for a ClusterIP service's endpoints too, and so
    // do we.
    const dot = name.indexOf('.');
    if (dot <= 0) return undefined;
    const label = name.slice(0, dot);
    if (label[0] !== '_') {
      const s = this.services.get(name.slice(dot + 1));
      if (!s || s.svc.type === 'ExternalName') return undefined;
      const recs = this.records.labelled(s.svc, s.eps, label).map((e) => addressRec(e.ip));
      return recs.length > 0 ? recs : undefined;
    }
    const dot2 = name.indexOf('.', dot + 1);
    if (dot2 < 0 || name[dot + 1] !== '_') return undefined;
    const s = this.services.get(name.slice(dot2 + 1));
    if (!s || s.svc.type === 'ExternalName') return undefined;
    const recs = this.records.ofPort(s.svc, s.eps, s.base, label.slice(1), name.slice(dot + 2, dot2));
    return recs.length > 0 ? recs : undefined;
  }

  /** The names a service's records give (its own, SRV and endpoint names); the same records
   *  always give the same names. */
  private namesOf(s: Indexed): string[] {
    const { svc, eps, base } = s;
    const out = [base];
    if (svc.type === 'ExternalName') return out;
    const endpoints = this.records.published(svc, eps);
    for (const e of endpoints) out.push(flat(`${this.records.label(e)}.${base}`));
    if (!svc.headless) {
      for (const p of svc.ports) if (p.name) out.push(srvName(p.name, p.protocol, base));
      return out;
    }
    if (endpoints.length === 0) return out; // the service does not exist in DNS
    for (const p of eps?.ports ?? []) if (p.name && p.endpoints.some((e) => e.ready || svc.publishNotReadyAddresses)) out.push(srvName(p.name, p.protocol, base));
    return out;
  }

  private add(s: Indexed): void {
    this.services.set(s.base, s);
    const ns = this.namespaceOf(s);
    this.namespaces.set(ns, (this.namespaces.get(ns) ?? 0) + 1);
  }

  private remove(s: Indexed): void {
    this.services.delete(s.base);
    for (const n of this.namesOf(s)) this.answers.delete(n);
    const ns = this.namespaceOf(s);
    const left = (this.namespaces.get(ns) ?? 1) - 1;
    if (left <= 0) this.namespaces.delete(ns);
    else this.namespaces.set(ns, left);
  }

  /** Reverse names of a service's addresses leave the PTR cache when the service changes. */
  private forgetPtrs(s: Indexed): void {
    for (const ip of s.svc.clusterIPs) this.ptrAnswers.delete(reverseName(ip));
    for (const e of s.eps?.endpoints ?? []) this.ptrAnswers.delete(reverseName(e.ip));
  }

  private namespaceOf(s: Indexed): string {
    // The base is `<svc>.<ns>.svc.<zone>`; the namespace's name is the rest after the first label.
    return s.base.slice(s.base.indexOf('.') + 1);
  }

  private baseOf(svc: Service): string {
    return flat(`${svc.name}.${svc.namespace}${this.svcSuffix}`).toLowerCase();
  }

  private baseOfKey(key: ObjectKey): string {
    const slash = key.indexOf('/');
    return flat(`${key.slice(slash + 1)}.${key.slice(0, slash)}${this.svcSuffix}`).toLowerCase();
  }

  /**
   * A reverse name in one of its reverse zones: PTR to the names its address points back to
   * (reverse-names.ts); one that is none of ours goes to the upstreams with fallthrough (CoreDNS's
   * usual `fallthrough in-addr.arpa ip6.arpa`), else NXDOMAIN.
   */
  private ptrAnswer(query: Buffer, q: Query, reverseZone: string): ZoneAnswer {
    const name = q.name;
    const cached = this.ptrAnswers.get(name)?.get(q.qtype);
    if (cached) return q.qclass === QCLASS_IN || q.qclass === QCLASS_ANY ? cached : REFUSED;
    const targets = ptrTargets(name, this.catalog, (key) => this.services.get(this.baseOfKey(key)), this.records);
    if (!targets && this.fallsThrough(name)) return FORWARD;
    if (q.qclass !== QCLASS_IN && q.qclass !== QCLASS_ANY) return REFUSED;
    if (!targets) return keepAnswer(this.negative, NEGATIVE_CACHE_MAX, q, this.negativeAnswer(query, q, false, reverseZone));
    let answer: ZoneAnswer;
    if (q.qtype === QTYPE.PTR || q.qtype === QTYPE.ANY) {
      const recs = targets.map((target): OwnedRec => ({ owner: name, ttl: this.opts.ttl, rec: { type: QTYPE.PTR, target } }));
      answer = { kind: 'reply', tpl: buildTemplate(query, q, { rcode: RCODE.NOERROR, authoritative: true, answer: recs }) };
    } else {
      answer = this.negativeAnswer(query, q, true, reverseZone);
    }
    return keepAnswer(this.ptrAnswers, PTR_CACHE_MAX, q, answer);
  }

  /** `ns.dns.<zone>` and the apex NS, whose addresses follow the interfaces (apex-records.ts):
   *  kept a second, apart from the other names. */
  private nsAnswer(query: Buffer, q: Query): ZoneAnswer {
    const now = Date.now();
    if (now - this.nsAnswersAt > NS_CACHE_MS) {
      this.nsAnswers = new Answers();
      this.apexNsAnswers = new Answers();
      this.nsAnswersAt = now;
    }
    const apex = q.name === this.opts.domain;
    const cache = apex ? this.apexNsAnswers : this.nsAnswers;
    let answer = cache.get(q.qtype);
    if (!answer) cache.set(q.qtype, (answer = this.nameAnswer(query, q, this.recordsOf(q.name) ?? [])));
    return answer;
  }
}
