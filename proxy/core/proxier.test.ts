import { afterEach, describe, expect, it, vi } from 'vitest';
import { Catalog } from '../../cluster/catalog.js';
import { configureLogging, logger } from '../../common/log.js';
import type { Backend, SyncRequest } from './backend.js';
import { ProxierHealth } from './healthcheck/proxier.js';
import { ProxyMetrics } from './metrics.js';
import { Proxier } from './proxier.js';

configureLogging({ write: () => {} });

const svc = (name: string, ip: string) => ({ metadata: { name, namespace: 'ns', resourceVersion: '1' }, spec: { clusterIP: ip, ports: [{ name: 'p', port: 80, targetPort: 8080 }] } });
const slice = (svcName: string, ips: string[]) => ({
  metadata: { name: `${svcName}-1`, namespace: 'ns', labels: { 'kubernetes.io/service-name': svcName } },
  addressType: 'IPv4', ports: [{ name: 'p', port: 8080, protocol: 'TCP' }], endpoints: ips.map((ip) => ({ addresses: [ip] })),
});

class FakeBackend implements Backend {
  readonly name = 'fake';
  readonly natFlows = true;
  calls: { full: boolean; changed: string[]; services: string[] }[] = [];
  reconciles: number[] = [];
  failNext = 0;
  /** Each sync takes this long (fake timers). */
  delayMs = 0;
  /** What the next reconcile reports as repaired. */
  repairNext: Record<string, number> = {};
  async prepare() {}
  close() {}
  async sync(req: SyncRequest) {
    this.calls.push({ full: req.full, changed: [...req.changed].sort(), services: [...req.plans.keys()].sort() });
    if (req.reconcile) this.reconciles.push(Date.now());
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('injected');
    }
    const repaired = req.reconcile ? this.repairNext : {};
    this.repairNext = {};
    return { rules: {}, written: {}, repaired };
  }
  async cleanup() {}
}

describe('Proxier', () => {
  let proxier: Proxier | undefined;
  afterEach(async () => {
    await proxier?.stop();
  });

  async function setup() {
    const catalog = new Catalog({ kinds: ['Service', 'EndpointSlice'] });
    catalog.batch(() => {
      catalog.apply('Service', svc('a', '10.96.0.1'));
      catalog.apply('Service', svc('b', '10.96.0.2'));
      catalog.apply('EndpointSlice', slice('a', ['10.244.0.1']));
      catalog.markSynced('Service');
      catalog.markSynced('EndpointSlice');
    });
    const backend = new FakeBackend();
    const health = new ProxierHealth(60_000);
    proxier = new Proxier(catalog, backend, {
      nodeName: 'n', minSyncPeriodMs: 0, syncPeriodMs: 3_600_000,
      nodeFacts: async () => ({ nodeIPs: { IPv4: [], IPv6: [] }, nodePortAddresses: { IPv4: 'all', IPv6: 'all' } }),
    }, logger('test'), undefined, health);
    const first = proxier.nextSync();
    proxier.start();
    await first;
    return { catalog, backend, proxier, health };
  }

  it('starts with a full sync of every service', async () => {
    const { backend } = await setup();
    expect(backend.calls).toEqual([{ full: true, changed: ['ns/a', 'ns/b'], services: ['ns/a', 'ns/b'] }]);
  });

  it('then syncs only the service that changed, and nothing for a change that changes no rule', async () => {
    const { catalog, backend, proxier } = await setup();
    let next = proxier.nextSync();
    catalog.apply('EndpointSlice', slice('a', ['10.244.0.1', '10.244.0.2']));
    await next;
    expect(backend.calls[1]).toEqual({ full: false, changed: ['ns/a'], services: ['ns/a', 'ns/b'] });
    // A Service change that no rule depends on: the plan is the same, nothing to rewrite.
    next = proxier.nextSync();
    const b = svc('b', '10.96.0.2');
    catalog.apply('Service', { ...b, spec: { ...b.spec, publishNotReadyAddresses: true } });
    await next;
    expect(backend.calls[2]).toEqual({ full: false, changed: [], services: ['ns/a', 'ns/b'] });
    next = proxier.nextSync();
    catalog.delete('Service', 'ns', 'b');
    await next;
    expect(backend.calls.at(-1)).toEqual({ full: false, changed: ['ns/b'], services: ['ns/a'] });
  });

  it('a failed sync is followed by a full one carrying the change, and health reports the backlog', async () => {
    const { catalog, backend, proxier, health } = await setup();
    backend.failNext = 1;
    let next = proxier.nextSync();
    catalog.apply('EndpointSlice', slice('b', ['10.244.0.9']));
    await next;
    expect(backend.calls[1]).toMatchObject({ full: false, changed: ['ns/b'] });
    expect(health.healthy()).toBe(true); // pending, but not for long yet
    next = proxier.nextSync();
    await next;
    expect(backend.calls[2]).toMatchObject({ full: true, services: ['ns/a', 'ns/b'] });
    expect(health.healthz().status).toBe(200);
  });
});

describe('Proxier sync policy', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  async function start(syncPeriodMs: number, fullSyncPeriodMs?: number) {
    vi.useFakeTimers({ now: 1_000_000 });
    const catalog = new Catalog({ kinds: ['Service', 'EndpointSlice'] });
    catalog.batch(() => {
      catalog.apply('Service', svc('a', '10.96.0.1'));
      catalog.apply('EndpointSlice', slice('a', ['10.244.0.1']));
      catalog.markSynced('Service');
      catalog.markSynced('EndpointSlice');
    });
    const backend = new FakeBackend();
    const metrics = new ProxyMetrics();
    let facts = 0;
    const p = new Proxier(catalog, backend, {
      nodeName: 'n', minSyncPeriodMs: 1_000, syncPeriodMs, fullSyncPeriodMs,
      nodeFacts: async () => {
        facts++;
        return { nodeIPs: { IPv4: [], IPv6: [] }, nodePortAddresses: { IPv4: 'all', IPv6: 'all' } };
      },
    }, logger('test'), metrics);
    p.start();
    await vi.advanceTimersByTimeAsync(0);
    return { catalog, backend, metrics, proxier: p, facts: () => facts };
  }

  it('the --sync-period tick reconciles instead of rewriting; a full sync comes only hourly', async () => {
    const { backend, proxier } = await start(30_000);
    expect(backend.calls).toEqual([{ full: true, changed: ['ns/a'], services: ['ns/a'] }]);
    // Ten minutes of quiet: one reconcile per tick, no full sync, nothing changed.
    await vi.advanceTimersByTimeAsync(600_000);
    expect(backend.calls.length).toBe(21);
    expect(backend.calls.slice(1).every((c) => !c.full && c.changed.length === 0)).toBe(true);
    expect(backend.reconciles.length).toBe(20);
    // The hour's full sync.
    await vi.advanceTimersByTimeAsync(3_000_000);
    const fulls = backend.calls.filter((c) => c.full);
    expect(fulls.length).toBe(2);
    await proxier.stop();
  });

  it('a reconcile every tick even when syncs take time (the period counts from a sync\'s start, as the runner\'s)', async () => {
    const { backend, proxier } = await start(2_000);
    backend.delayMs = 300;
    await vi.advanceTimersByTimeAsync(20_000);
    expect(backend.reconciles.length).toBeGreaterThanOrEqual(9);
    const stopped = proxier.stop();
    await vi.advanceTimersByTimeAsync(1_000); // the sync in progress ends
    await stopped;
  });

  it('a change between ticks is a partial sync at once, not a full one', async () => {
    const { catalog, backend, proxier } = await start(30_000);
    await vi.advanceTimersByTimeAsync(31_000);
    catalog.apply('EndpointSlice', slice('a', ['10.244.0.1', '10.244.0.2']));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(backend.calls.at(-1)).toEqual({ full: false, changed: ['ns/a'], services: ['ns/a'] });
    expect(backend.reconciles.length).toBe(1);
    await proxier.stop();
  });

  it('node facts are read at every tick, and a change of them makes a full sync', async () => {
    const { backend, proxier, facts } = await start(30_000);
    const before = facts();
    await vi.advanceTimersByTimeAsync(90_000);
    expect(facts() - before).toBe(3);
    expect(backend.calls.filter((c) => c.full).length).toBe(1);
    await proxier.stop();
  });

  it('repairs found by a reconcile are counted by kind', async () => {
    const { backend, metrics, proxier } = await start(30_000);
    backend.repairNext = { elements: 3, chains: 1 };
    await vi.advanceTimersByTimeAsync(30_000);
    const text = await metrics.registry.metrics();
    expect(text).toContain('kubedataplane_proxy_reconcile_repairs_total{kind="elements"} 3');
    expect(text).toContain('kubedataplane_proxy_reconcile_repairs_total{kind="chains"} 1');
    expect(text).toContain('kubedataplane_proxy_reconciles_total 1');
    await proxier.stop();
  });

  it('the full-sync period can be shortened (tests, benchmarks)', async () => {
    const { backend, proxier } = await start(30_000, 60_000);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(backend.calls.filter((c) => c.full).length).toBe(3);
    await proxier.stop();
  });
});

describe('Proxier metrics', () => {
  it('records network programming latency from the slice trigger time, once per change', async () => {
    const catalog = new Catalog({ kinds: ['Service', 'EndpointSlice'] });
    const trigger = new Date(Date.now() - 3000).toISOString();
    catalog.batch(() => {
      catalog.apply('Service', svc('a', '10.96.0.1'));
      const s = slice('a', ['10.244.0.1']);
      catalog.apply('EndpointSlice', { ...s, metadata: { ...s.metadata, annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': trigger } } });
      catalog.markSynced('Service');
      catalog.markSynced('EndpointSlice');
    });
    const metrics = new ProxyMetrics();
    const p = new Proxier(catalog, new FakeBackend(), {
      nodeName: 'n', minSyncPeriodMs: 0, syncPeriodMs: 3_600_000,
      nodeFacts: async () => ({ nodeIPs: { IPv4: [], IPv6: [] }, nodePortAddresses: { IPv4: 'all', IPv6: 'all' } }),
    }, logger('test'), metrics);
    const first = p.nextSync();
    p.start();
    await first;
    p.requestFull();
    await p.nextSync();
    const h = (await metrics.registry.getSingleMetric('kubeproxy_network_programming_duration_seconds')!.get()).values;
    const named = (suffix: string) => h.find((v) => (v as { metricName?: string }).metricName?.endsWith(suffix));
    expect(named('_count')?.value).toBe(1);
    const sum = named('_sum')!.value;
    expect(sum).toBeGreaterThanOrEqual(3);
    expect(sum).toBeLessThan(60);
    const text = await metrics.registry.metrics();
    expect(text).toContain('kubeproxy_sync_full_proxy_rules_duration_seconds_count 2');
    await p.stop();
  });
});

describe('ProxierHealth', () => {
  it('is unhealthy when a queued change waits longer than the timeout, healthy again after a sync', () => {
    let now = 1_000_000;
    const h = new ProxierHealth(60_000, () => now);
    expect(h.healthz().status).toBe(200);
    h.queued();
    now += 59_000;
    expect(h.healthy()).toBe(true);
    now += 2_000;
    expect(h.healthz().status).toBe(503);
    expect(JSON.parse(h.livez().body)).not.toHaveProperty('nodeEligible');
    h.updated();
    expect(h.healthz().status).toBe(200);
    expect(JSON.parse(h.healthz().body)).toMatchObject({ nodeEligible: true, lastUpdated: new Date(now).toISOString() });
  });
});
