// The per-query metrics (requests, responses, their durations and sizes, cache hits): plain
// cells updated in place, rendered in prom-client's shape when scraped. prom-client hashes the
// label set on every update, which costs more than answering a question from a template.
//
// This module does not load prom-client, so a DNS worker thread (dns/workers/) keeps its own
// cells at the cost of a few maps; the main thread adds the workers' snapshots to its own when
// /metrics is scraped, so every counter is the sum over the threads that answered.
import type { CacheEvents, CacheKind } from './cache.js';

export const DURATION_BUCKETS = [0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192];
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

/** One thread's cells of one metric, by the label values joined with NUL. */
export type CounterSnapshot = Array<[key: string, value: number]>;
export type HistogramSnapshot = Array<[key: string, counts: number[], sum: number, count: number]>;

/** What a thread has counted, as structured-clone data (posted from a worker). */
export interface QuerySnapshot {
  readonly counters: Record<string, CounterSnapshot>;
  readonly histograms: Record<string, HistogramSnapshot>;
}

/** A cell's labels from its key (the values joined with NUL). */
function labelsOf(names: readonly string[], key: string): Record<string, string> {
  const values = key.split('\u0000');
  return Object.fromEntries(names.map((n, i) => [n, values[i] ?? '']));
}

class FastCounter {
  readonly type = 'counter';
  private readonly cells = new Map<string, { labels: Record<string, string>; cell: Cell }>();
  /** Other threads' cells, added to ours when rendered. */
  foreign: readonly CounterSnapshot[] = [];
  constructor(readonly name: string, readonly help: string, private readonly labelNames: readonly string[]) {}

  cell(values: readonly string[]): Cell {
    const key = values.join('\u0000');
    let e = this.cells.get(key);
    if (!e) this.cells.set(key, (e = { labels: labelsOf(this.labelNames, key), cell: { value: 0 } }));
    return e.cell;
  }

  snapshot(): CounterSnapshot {
    return [...this.cells].map(([key, e]) => [key, e.cell.value]);
  }

  get() {
    const sum = new Map<string, { labels: Record<string, string>; value: number }>();
    for (const [key, e] of this.cells) sum.set(key, { labels: e.labels, value: e.cell.value });
    for (const snap of this.foreign) {
      for (const [key, value] of snap) {
        const s = sum.get(key);
        if (s) s.value += value;
        else sum.set(key, { labels: labelsOf(this.labelNames, key), value });
      }
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: 'sum', values: [...sum.values()] };
  }
}

class FastHistogram {
  readonly type = 'histogram';
  private readonly cells = new Map<string, { labels: Record<string, string>; cell: HistCell }>();
  foreign: readonly HistogramSnapshot[] = [];
  constructor(readonly name: string, readonly help: string, private readonly labelNames: readonly string[], private readonly buckets: readonly number[]) {}

  cell(values: readonly string[]): HistCell {
    const key = values.join('\u0000');
    let e = this.cells.get(key);
    if (!e) {
      e = { labels: labelsOf(this.labelNames, key), cell: { counts: new Float64Array(this.buckets.length), sum: 0, count: 0 } };
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

  snapshot(): HistogramSnapshot {
    return [...this.cells].map(([key, e]) => [key, [...e.cell.counts], e.cell.sum, e.cell.count]);
  }

  get() {
    const sum = new Map<string, { labels: Record<string, string>; counts: Float64Array; sum: number; count: number }>();
    for (const [key, e] of this.cells) sum.set(key, { labels: e.labels, counts: Float64Array.from(e.cell.counts), sum: e.cell.sum, count: e.cell.count });
    for (const snap of this.foreign) {
      for (const [key, counts, s, count] of snap) {
        let t = sum.get(key);
        if (!t) sum.set(key, (t = { labels: labelsOf(this.labelNames, key), counts: new Float64Array(this.buckets.length), sum: 0, count: 0 }));
        for (let i = 0; i < t.counts.length; i++) t.counts[i] += counts[i] ?? 0;
        t.sum += s;
        t.count += count;
      }
    }
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    for (const { labels, counts, sum: total, count } of sum.values()) {
      let acc = 0;
      this.buckets.forEach((le, i) => {
        acc += counts[i];
        values.push({ labels: { le, ...labels }, value: acc, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf', ...labels }, value: count, metricName: `${this.name}_bucket` });
      values.push({ labels, value: total, metricName: `${this.name}_sum` });
      values.push({ labels, value: count, metricName: `${this.name}_count` });
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

export class QueryMetrics {
  private readonly requests = new FastCounter('coredns_dns_requests_total', 'Counter of DNS requests made per zone, protocol and family.', ['server', 'zone', 'view', 'proto', 'family', 'type']);
  private readonly responses = new FastCounter('coredns_dns_responses_total', 'Counter of response status codes.', ['server', 'zone', 'view', 'rcode', 'plugin']);
  private readonly duration = new FastHistogram('coredns_dns_request_duration_seconds', 'Histogram of the time (in seconds) each request took per zone.', ['server', 'zone', 'view', 'type'], DURATION_BUCKETS);
  private readonly reqSize = new FastHistogram('coredns_dns_request_size_bytes', 'Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.', ['server', 'zone', 'view', 'proto'], SIZE_BUCKETS);
  private readonly respSize = new FastHistogram('coredns_dns_response_size_bytes', 'Size of the returned response in bytes.', ['server', 'zone', 'view', 'proto'], SIZE_BUCKETS);
  private readonly cacheHits = new FastCounter('coredns_cache_hits_total', 'The count of cache hits.', ['server', 'type', 'zones', 'view']);
  private readonly cacheMisses = new FastCounter('coredns_cache_misses_total', 'The count of cache misses.', ['server', 'zones', 'view']);
  private readonly cacheEvictions = new FastCounter('coredns_cache_evictions_total', 'The count of cache evictions.', ['server', 'type', 'zones', 'view']);
  /** Ours, not CoreDNS's: how a worker thread's UDP queries were answered (from the shared
   *  table, or handed to the main thread), which shows the kernel's spread over the threads. */
  private readonly workerQueries = new FastCounter('kube_dataplane_dns_worker_queries_total', 'UDP queries a DNS worker thread received, by how they were answered: from the shared table, or by the main thread.', ['worker', 'answered']);
  /** Sites by listener, then by (zone, plugin, rcode, qtype) packed in one number. */
  private readonly sites = new Map<Listener, Map<number, Site>>();
  private readonly counters = [this.requests, this.responses, this.cacheHits, this.cacheMisses, this.cacheEvictions, this.workerQueries];
  private readonly histograms = [this.duration, this.reqSize, this.respSize];

  /** `clusterZone`: the zone label of cluster answers, with its trailing dot. */
  constructor(private readonly clusterZone = 'cluster.local.') {}

  /** The metrics, for a prom-client registry. */
  get all(): ReadonlyArray<FastCounter | FastHistogram> {
    return [...this.counters, ...this.histograms];
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

  /** A worker thread's two counters: answered from the table, and handed to the main thread. */
  workerCells(worker: number): { table: Cell; main: Cell } {
    return { table: this.workerQueries.cell([String(worker), 'table']), main: this.workerQueries.cell([String(worker), 'main']) };
  }

  snapshot(): QuerySnapshot {
    return {
      counters: Object.fromEntries(this.counters.map((c) => [c.name, c.snapshot()])),
      histograms: Object.fromEntries(this.histograms.map((h) => [h.name, h.snapshot()])),
    };
  }

  /** Other threads' counts, rendered with ours from now on (replaces the previous ones). */
  setForeign(snaps: readonly QuerySnapshot[]): void {
    for (const c of this.counters) c.foreign = snaps.map((s) => s.counters[c.name] ?? []);
    for (const h of this.histograms) h.foreign = snaps.map((s) => s.histograms[h.name] ?? []);
  }
}
