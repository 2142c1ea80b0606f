// The DNS server's metrics under CoreDNS's names and labels, so dashboards built for CoreDNS
// work unchanged. They live on a registry of their own, served on --metrics-listen, apart from
// the proxy's metrics when both run in one agent process.
//
// The per-query path must stay cheap: prom-client hashes the label set on every update, which
// costs more than answering a question from a template, so the per-query metrics are plain
// cells the caller keeps, rendered in prom-client's shape when scraped.
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

/** The value of one label set, updated with plain arithmetic. */
interface Cell {
  value: number;
}
interface HistCell {
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

class FastCounter {
  readonly type = 'counter';
  private readonly cells = new Map<string, { labels: Record<string, string>; cell: Cell }>();
  constructor(readonly name: string, readonly help: string, private readonly labelNames: readonly string[]) {}

  cell(values: readonly string[]): Cell {
    const key = values.join('\u0000');
    let e = this.cells.get(key);
    if (!e) this.cells.set(key, (e = { labels: Object.fromEntries(this.labelNames.map((n, i) => [n, values[i]])), cell: { value: 0 } }));
    return e.cell;
  }

  get() {
    return { name: this.name, help: this.help, type: this.type, aggregator: 'sum', values: [...this.cells.values()].map((e) => ({ labels: e.labels, value: e.cell.value })) };
  }
}

class FastHistogram {
  readonly type = 'histogram';
  private readonly cells = new Map<string, { labels: Record<string, string>; cell: HistCell }>();
  constructor(readonly name: string, readonly help: string, private readonly labelNames: readonly string[], private readonly buckets: readonly number[]) {}

  cell(values: readonly string[]): HistCell {
    const key = values.join('\u0000');
    let e = this.cells.get(key);
    if (!e) {
      e = { labels: Object.fromEntries(this.labelNames.map((n, i) => [n, values[i]])), cell: { counts: new Float64Array(this.buckets.length), sum: 0, count: 0 } };
      this.cells.set(key, e);
    }
    return e.cell;
  }

  observe(c: HistCell, v: number): void {
    const b = this.buckets;
    for (let i = 0; i < b.length; i++) {
      if (v <= b[i]) {
        c.counts[i]++;
        break;
      }
    }
    c.sum += v;
    c.count++;
  }

  get() {
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    for (const { labels, cell } of this.cells.values()) {
      let acc = 0;
      this.buckets.forEach((le, i) => {
        acc += cell.counts[i];
        values.push({ labels: { le, ...labels }, value: acc, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf', ...labels }, value: cell.count, metricName: `${this.name}_bucket` });
      values.push({ labels, value: cell.sum, metricName: `${this.name}_sum` });
      values.push({ labels, value: cell.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: 'sum', values };
  }
}

/** The cells one kind of reply on one listener updates. */
interface Site {
  readonly requests: Cell;
  readonly responses: Cell;
  readonly duration: HistCell;
  readonly reqSize: HistCell;
  readonly respSize: HistCell;
}

/** A listener as the metrics label it: CoreDNS's `server`, `proto` and `family`. */
export interface Listener {
  readonly server: string;
  readonly proto: 'udp' | 'tcp';
  readonly family: '1' | '2';
}

/** The `plugin` label: which part answered (CoreDNS's plugin names). */
export const PLUGINS = ['', 'kubernetes', 'cache', 'forward', 'acl', 'hosts'] as const;
export const PLUGIN = { none: 0, kubernetes: 1, cache: 2, forward: 3, acl: 4, hosts: 5 } as const;

export class DnsMetrics {
  readonly registry = new Registry();
  private readonly requests = new FastCounter('coredns_dns_requests_total', 'Counter of DNS requests made per zone, protocol and family.', ['server', 'zone', 'view', 'proto', 'family', 'type']);
  private readonly responses = new FastCounter('coredns_dns_responses_total', 'Counter of response status codes.', ['server', 'zone', 'view', 'rcode', 'plugin']);
  private readonly duration = new FastHistogram('coredns_dns_request_duration_seconds', 'Histogram of the time (in seconds) each request took per zone.', ['server', 'zone', 'view', 'type'], DURATION_BUCKETS);
  private readonly reqSize = new FastHistogram('coredns_dns_request_size_bytes', 'Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.', ['server', 'zone', 'view', 'proto'], SIZE_BUCKETS);
  private readonly respSize = new FastHistogram('coredns_dns_response_size_bytes', 'Size of the returned response in bytes.', ['server', 'zone', 'view', 'proto'], SIZE_BUCKETS);
  private readonly cacheHits = new FastCounter('coredns_cache_hits_total', 'The count of cache hits.', ['server', 'type', 'zones', 'view']);
  private readonly cacheMisses = new FastCounter('coredns_cache_misses_total', 'The count of cache misses.', ['server', 'zones', 'view']);
  private readonly cacheEvictions = new FastCounter('coredns_cache_evictions_total', 'The count of cache evictions.', ['server', 'type', 'zones', 'view']);
  /** Sites by listener, then by (zone, plugin, rcode, qtype) packed in one number. */
  private readonly sites = new Map<Listener, Map<number, Site>>();
  readonly cacheEntries: Gauge<string>;
  readonly proxyDuration: Histogram<string>;
  readonly healthcheckFailures: Counter<string>;
  readonly healthcheckBroken: Counter<string>;
  readonly panics: Counter<string>;
  /** CoreDNS's acl plugin's counter of refused (blocked) requests. */
  readonly aclBlocked: Counter<string>;
  readonly programming: Histogram<string>;
  /** Read when /metrics is scraped: the cache's current entries by kind. */
  cacheSize: () => Readonly<Record<CacheKind, number>> = () => ({ success: 0, denial: 0 });
  /** The `server` label of the cache metrics. */
  cacheServer = 'dns://:53';

  /** `clusterZone`: the zone label of cluster answers, with its trailing dot. */
  constructor(private readonly clusterZone = 'cluster.local.', withProcessMetrics = true) {
    const registers = [this.registry];
    if (withProcessMetrics) collectDefaultMetrics({ register: this.registry });
    for (const m of [this.requests, this.responses, this.duration, this.reqSize, this.respSize, this.cacheHits, this.cacheMisses, this.cacheEvictions]) {
      this.registry.registerMetric(m as unknown as Counter);
    }
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
    this.aclBlocked = new Counter({ name: 'coredns_acl_blocked_requests_total', help: 'Counter of DNS requests being blocked.', labelNames: ['server', 'zone', 'view'], registers });
    this.panics = new Counter({ name: 'coredns_panics_total', help: 'A metrics that counts the number of panics.', registers });
    this.programming = new Histogram({ name: 'coredns_kubernetes_dns_programming_duration_seconds', help: 'Histogram of the time (in seconds) it took to program a dns instance.', labelNames: ['service_kind'], buckets: [0.001, 0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300], registers });
    new Gauge({ name: 'coredns_build_info', help: 'A metric with a constant \'1\' value labeled by version, revision, and goversion from which CoreDNS was built.', labelNames: ['version', 'revision', 'goversion'], registers }).set({ version: 'kube-dataplane', revision: '', goversion: process.version }, 1);
  }

  /**
   * Counts one reply on listener `l`. `plugin` indexes PLUGINS; sizes are in bytes, `seconds`
   * the time from receipt to reply.
   */
  observe(l: Listener, zoneIsCluster: boolean, plugin: number, qtype: number, rcode: number, requestSize: number, responseSize: number, seconds: number): void {
    let byKind = this.sites.get(l);
    if (!byKind) this.sites.set(l, (byKind = new Map()));
    const key = (((zoneIsCluster ? 1 : 0) * 8 + plugin) * 32 + (rcode & 31)) * 65536 + qtype;
    let site = byKind.get(key);
    if (!site) {
      const type = typeName(qtype);
      const zone = zoneIsCluster ? this.clusterZone : '.';
      site = {
        requests: this.requests.cell([l.server, zone, '', l.proto, l.family, type]),
        responses: this.responses.cell([l.server, zone, '', rcodeName(rcode), PLUGINS[plugin]]),
        duration: this.duration.cell([l.server, zone, '', type]),
        reqSize: this.reqSize.cell([l.server, zone, '', l.proto]),
        respSize: this.respSize.cell([l.server, zone, '', l.proto]),
      };
      byKind.set(key, site);
    }
    site.requests.value++;
    site.responses.value++;
    this.duration.observe(site.duration, seconds);
    this.reqSize.observe(site.reqSize, requestSize);
    this.respSize.observe(site.respSize, responseSize);
  }

  /** The cache's event sink, its label children looked up once. */
  cacheEvents(server: string): CacheEvents {
    const hits = { success: this.cacheHits.cell([server, 'success', '.', '']), denial: this.cacheHits.cell([server, 'denial', '.', '']) };
    const evictions = { success: this.cacheEvictions.cell([server, 'success', '.', '']), denial: this.cacheEvictions.cell([server, 'denial', '.', '']) };
    const misses = this.cacheMisses.cell([server, '.', '']);
    return {
      hit: (kind: CacheKind) => hits[kind].value++,
      miss: () => misses.value++,
      evict: (kind: CacheKind) => evictions[kind].value++,
    };
  }
}
