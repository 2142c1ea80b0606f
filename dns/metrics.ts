// The DNS server's metrics under CoreDNS's names and labels, so dashboards built for CoreDNS
// work unchanged. They live on a registry of their own, served on --metrics-listen, apart from
// the proxy's metrics when both run in one agent process.
// The per-query metrics are plain cells (query-metrics.ts); the rest are prom-client's.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CacheEvents, CacheKind } from './cache.js';
import { DURATION_BUCKETS, QueryMetrics, type Listener, type QuerySnapshot } from './query-metrics.js';

export { PLUGIN, PLUGINS, rcodeName, typeName, type Listener } from './query-metrics.js';

export class DnsMetrics {
  readonly registry = new Registry();
  /** The per-query cells of this thread. */
  readonly query: QueryMetrics;
  readonly cacheEntries: Gauge<string>;
  readonly proxyDuration: Histogram<string>;
  readonly healthcheckFailures: Counter<string>;
  readonly healthcheckBroken: Counter<string>;
  /** `max_concurrent`'s refusals. */
  readonly maxConcurrentRejects: Counter<string>;
  readonly panics: Counter<string>;
  /** CoreDNS's acl plugin's counter of refused (blocked) requests. */
  readonly aclBlocked: Counter<string>;
  /** Its `filter` action's counter (answered NOERROR, empty). */
  readonly aclFiltered: Counter<string>;
  /** Its `drop` action's counter (no answer at all). */
  readonly aclDropped: Counter<string>;
  /** Questions a Corefile `acl` let through to its block. */
  readonly aclAllowed: Counter<string>;
  readonly programming: Histogram<string>;
  /** Read when /metrics is scraped: the cache's current entries by kind. */
  cacheSize: () => Readonly<Record<CacheKind, number>> = () => ({ success: 0, denial: 0 });
  /** The `server` label of the cache metrics. */
  cacheServer = 'dns://:53';

  /** `clusterZone`: the zone label of cluster answers, with its trailing dot. */
  constructor(clusterZone = 'cluster.local.', withProcessMetrics = true) {
    const registers = [this.registry];
    if (withProcessMetrics) collectDefaultMetrics({ register: this.registry });
    this.query = new QueryMetrics(clusterZone);
    for (const m of this.query.all) this.registry.registerMetric(m as unknown as Counter);
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
    this.proxyDuration = new Histogram({ name: 'coredns_proxy_request_duration_seconds', help: 'Histogram of the time each request took.', labelNames: ['proxy_name', 'to', 'rcode'], buckets: DURATION_BUCKETS, registers });
    this.healthcheckFailures = new Counter({ name: 'coredns_proxy_healthcheck_failures_total', help: 'Count of failed health checks per upstream.', labelNames: ['proxy_name', 'to'], registers });
    this.healthcheckBroken = new Counter({ name: 'coredns_forward_healthcheck_broken_total', help: 'Count of times all upstreams were unhealthy.', registers });
    this.maxConcurrentRejects = new Counter({ name: 'coredns_forward_max_concurrent_rejects_total', help: 'Counter of the number of queries rejected because the concurrent queries were at maximum.', registers });
    this.aclBlocked = new Counter({ name: 'coredns_acl_blocked_requests_total', help: 'Counter of DNS requests being blocked.', labelNames: ['server', 'zone', 'view'], registers });
    this.aclFiltered = new Counter({ name: 'coredns_acl_filtered_requests_total', help: 'Counter of DNS requests being filtered.', labelNames: ['server', 'zone', 'view'], registers });
    this.aclDropped = new Counter({ name: 'coredns_acl_dropped_requests_total', help: 'Counter of DNS requests being dropped.', labelNames: ['server', 'zone', 'view'], registers });
    this.aclAllowed = new Counter({ name: 'coredns_acl_allowed_requests_total', help: 'Counter of DNS requests being allowed.', labelNames: ['server', 'view'], registers });
    this.panics = new Counter({ name: 'coredns_panics_total', help: 'A metrics that counts the number of panics.', registers });
    this.programming = new Histogram({ name: 'coredns_kubernetes_dns_programming_duration_seconds', help: 'Histogram of the time (in seconds) it took to program a dns instance.', labelNames: ['service_kind'], buckets: [0.001, 0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300], registers });
    new Gauge({ name: 'coredns_build_info', help: 'A metric with a constant \'1\' value labeled by version, revision, and goversion from which CoreDNS was built.', labelNames: ['version', 'revision', 'goversion'], registers }).set({ version: 'kube-dataplane', revision: '', goversion: process.version }, 1);
  }

  /**
   * Counts one reply on listener `l`. `plugin` indexes PLUGINS; sizes are in bytes, `seconds`
   * the time from receipt to reply.
   */
  observe(l: Listener, zoneIsCluster: boolean, plugin: number, qtype: number, rcode: number, requestSize: number, responseSize: number, seconds: number): void {
    this.query.observe(l, zoneIsCluster, plugin, qtype, rcode, requestSize, responseSize, seconds);
  }

  /** The cache's event sink, its label children looked up once. */
  cacheEvents(server: string): CacheEvents {
    return this.query.cacheEvents(server);
  }

  /** The worker threads' per-query counts, summed with this thread's when scraped next. */
  setForeign(snaps: readonly QuerySnapshot[]): void {
    this.query.setForeign(snaps);
  }
}
