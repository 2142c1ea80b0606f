// The DNS server's metrics under CoreDNS's names and labels, so dashboards built for CoreDNS
// work unchanged. They live on a registry of their own, served on --metrics-listen, apart from
// the proxy's metrics when both run in one agent process.
//
// The per-query path must stay cheap: label children are looked up once and kept.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CacheEvents, CacheKind } from './cache.js';

const DURATION_BUCKETS = [0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192];
const SIZE_BUCKETS = [0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16000, 32000, 48000, 64000];

const TYPE_NAMES: Record<number, string> = {
  1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV',
  35: 'NAPTR', 43: 'DS', 48: 'DNSKEY', 64: 'SVCB', 65: 'HTTPS', 251: 'IXFR', 252: 'AXFR', 255: 'ANY',
};
export function typeName(t: number): string {
  return TYPE_NAMES[t] ?? 'other';
}
const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'YXDOMAIN', 'YXRRSET', 'NXRRSET', 'NOTAUTH', 'NOTZONE'];
export function rcodeName(r: number): string {
  return RCODE_NAMES[r] ?? String(r);
}

export interface Observed {
  server: string;
  zone: string;
  proto: 'udp' | 'tcp';
  family: '1' | '2';
  qtype: number;
  rcode: number;
  plugin: string;
  requestSize: number;
  responseSize: number;
  seconds: number;
}

interface Children {
  requests: Counter.Internal;
  responses: Counter.Internal;
  duration: Histogram.Internal<string>;
  reqSize: Histogram.Internal<string>;
  respSize: Histogram.Internal<string>;
}

export class DnsMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<string>;
  private readonly responses: Counter<string>;
  private readonly duration: Histogram<string>;
  private readonly reqSize: Histogram<string>;
  private readonly respSize: Histogram<string>;
  private readonly children = new Map<string, Children>();
  readonly cacheEntries: Gauge<string>;
  readonly cacheHits: Counter<string>;
  readonly cacheMisses: Counter<string>;
  readonly cacheEvictions: Counter<string>;
  readonly proxyDuration: Histogram<string>;
  readonly healthcheckFailures: Counter<string>;
  readonly healthcheckBroken: Counter<string>;
  readonly panics: Counter<string>;
  readonly programming: Histogram<string>;

  /** Read when /metrics is scraped: the cache's current entries by kind. */
  cacheSize: () => Readonly<Record<CacheKind, number>> = () => ({ success: 0, denial: 0 });
  /** The `server` label of the cache metrics. */
  cacheServer = 'dns://:53';

  constructor(withProcessMetrics = true) {
    const registers = [this.registry];
    if (withProcessMetrics) collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({ name: 'coredns_dns_requests_total', help: 'Counter of DNS requests made per zone, protocol and family.', labelNames: ['server', 'zone', 'view', 'proto', 'family', 'type'], registers });
    this.responses = new Counter({ name: 'coredns_dns_responses_total', help: 'Counter of response status codes.', labelNames: ['server', 'zone', 'view', 'rcode', 'plugin'], registers });
    this.duration = new Histogram({ name: 'coredns_dns_request_duration_seconds', help: 'Histogram of the time (in seconds) each request took per zone.', labelNames: ['server', 'zone', 'view', 'type'], buckets: DURATION_BUCKETS, registers });
    this.reqSize = new Histogram({ name: 'coredns_dns_request_size_bytes', help: 'Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.', labelNames: ['server', 'zone', 'view', 'proto'], buckets: SIZE_BUCKETS, registers });
    this.respSize = new Histogram({ name: 'coredns_dns_response_size_bytes', help: 'Size of the returned response in bytes.', labelNames: ['server', 'zone', 'view', 'proto'], buckets: SIZE_BUCKETS, registers });
    const metrics = this;
    this.cacheEntries = new Gauge({
      name: 'coredns_cache_entries',
      help: 'The number of elements in the cache.',
      labelNames: ['server', 'type', 'zones', 'view'],
      registers,
      collect() {
        const size = metrics.cacheSize();
        this.set({ server: metrics.cacheServer, type: 'success', zones: '.', view: '' }, size.success);
        this.set({ server: metrics.cacheServer, type: 'denial', zones: '.', view: '' }, size.denial);
      },
    });
    this.cacheHits = new Counter({ name: 'coredns_cache_hits_total', help: 'The count of cache hits.', labelNames: ['server', 'type', 'zones', 'view'], registers });
    this.cacheMisses = new Counter({ name: 'coredns_cache_misses_total', help: 'The count of cache misses.', labelNames: ['server', 'zones', 'view'], registers });
    this.cacheEvictions = new Counter({ name: 'coredns_cache_evictions_total', help: 'The count of cache evictions.', labelNames: ['server', 'type', 'zones', 'view'], registers });
    this.proxyDuration = new Histogram({ name: 'coredns_proxy_request_duration_seconds', help: 'Histogram of the time each request took.', labelNames: ['proxy_name', 'to', 'rcode'], buckets: DURATION_BUCKETS, registers });
    this.healthcheckFailures = new Counter({ name: 'coredns_proxy_healthcheck_failures_total', help: 'Count of failed health checks per upstream.', labelNames: ['proxy_name', 'to'], registers });
    this.healthcheckBroken = new Counter({ name: 'coredns_forward_healthcheck_broken_total', help: 'Count of times all upstreams were unhealthy.', registers });
    this.panics = new Counter({ name: 'coredns_panics_total', help: 'A metrics that counts the number of panics.', registers });
    this.programming = new Histogram({ name: 'coredns_kubernetes_dns_programming_duration_seconds', help: 'Histogram of the time (in seconds) it took to program a dns instance.', labelNames: ['service_kind'], buckets: [0.001, 0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300], registers });
    new Gauge({ name: 'coredns_build_info', help: 'A metric with a constant \'1\' value labeled by version, revision, and goversion from which CoreDNS was built.', labelNames: ['version', 'revision', 'goversion'], registers }).set({ version: 'kube-dataplane', revision: '', goversion: process.version }, 1);
  }

  observe(o: Observed): void {
    const type = typeName(o.qtype);
    const rcode = rcodeName(o.rcode);
    const key = `${o.server}|${o.zone}|${o.proto}|${o.family}|${type}|${rcode}|${o.plugin}`;
    let c = this.children.get(key);
    if (!c) {
      c = {
        requests: this.requests.labels(o.server, o.zone, '', o.proto, o.family, type),
        responses: this.responses.labels(o.server, o.zone, '', rcode, o.plugin),
        duration: this.duration.labels(o.server, o.zone, '', type),
        reqSize: this.reqSize.labels(o.server, o.zone, '', o.proto),
        respSize: this.respSize.labels(o.server, o.zone, '', o.proto),
      };
      this.children.set(key, c);
    }
    c.requests.inc();
    c.responses.inc();
    c.duration.observe(o.seconds);
    c.reqSize.observe(o.requestSize);
    c.respSize.observe(o.responseSize);
  }

  /** The cache's event sink, its label children looked up once. */
  cacheEvents(server: string): CacheEvents {
    const hits = { success: this.cacheHits.labels(server, 'success', '.', ''), denial: this.cacheHits.labels(server, 'denial', '.', '') };
    const evictions = { success: this.cacheEvictions.labels(server, 'success', '.', ''), denial: this.cacheEvictions.labels(server, 'denial', '.', '') };
    const misses = this.cacheMisses.labels(server, '.', '');
    return {
      hit: (kind: CacheKind) => hits[kind].inc(),
      miss: () => misses.inc(),
      evict: (kind: CacheKind) => evictions[kind].inc(),
    };
  }
}
