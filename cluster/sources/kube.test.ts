// KubeSource through the real @kubernetes/client-node against the test API server on loopback:
// initial list, live changes, resume after dropped connections, relist after 410, convergence
// after the server was down 30 s, silent connections, malformed events.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { configureLogging } from '../../common/log.js';
import { registry } from '../../common/metrics.js';
import { TestApiServer } from '../../test-apiserver/server.js';
import { endpointSlice, node, service } from '../../test-apiserver/population.js';
import { resourceByKind } from '../../test-apiserver/resources.js';
import { Catalog } from '../catalog.js';
import type { Kind, ObjectSink } from '../sink.js';
import { KubeSource, type KubeSourceOptions } from './kube.js';

// A sink that records what the source told it, the way the catalog would hold it.
class RecordingSink implements ObjectSink {
  readonly state = new Map<Kind, Map<string, Record<string, unknown>>>();
  readonly replaces: Kind[] = [];
  readonly synced = new Set<Kind>();
  batches = 0;

  apply(kind: Kind, obj: unknown): void {
    const o = obj as { metadata: { namespace?: string; name: string } };
    this.table(kind).set(keyOf(o.metadata.namespace, o.metadata.name), obj as Record<string, unknown>);
  }
  delete(kind: Kind, namespace: string, name: string): void {
    this.table(kind).delete(keyOf(namespace, name));
  }
  replace(kind: Kind, objs: readonly unknown[]): void {
    this.replaces.push(kind);
    this.table(kind).clear();
    for (const o of objs) this.apply(kind, o);
  }
  markSynced(kind: Kind): void {
    this.synced.add(kind);
  }
  batch(fn: () => void): void {
    this.batches++;
    fn();
  }
  /** `key → resourceVersion` of one kind. */
  versions(kind: Kind): Record<string, string> {
    const out: Record<string, string> = {};
    for (const k of [...this.table(kind).keys()].sort()) {
      out[k] = (this.table(kind).get(k)!.metadata as { resourceVersion: string }).resourceVersion;
    }
    return out;
  }
  private table(kind: Kind): Map<string, Record<string, unknown>> {
    let t = this.state.get(kind);
    if (!t) this.state.set(kind, (t = new Map()));
    return t;
  }
}

function keyOf(namespace: string | undefined, name: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

const PLURAL: Record<Kind, string> = { Service: 'services', EndpointSlice: 'endpointslices', Node: 'nodes', Pod: 'pods', Namespace: 'namespaces', ServiceCIDR: 'servicecidrs' };

function serverVersions(server: TestApiServer, kind: Kind): Record<string, string> {
  const out: Record<string, string> = {};
  for (const o of server.store.list(resourceByKind(kind))) out[keyOf(o.namespace, o.name)] = String(o.rv);
  return out;
}

/** Polls for a condition of the real HTTP exchange. No deadline of its own: a condition that
 *  never holds fails by the test's timeout, and no assertion depends on how long it took. */
async function until(what: string, cond: () => boolean | Promise<boolean>): Promise<void> {
  void what;
  while (!(await cond())) await new Promise((r) => setTimeout(r, 20));
}

const KINDS: Kind[] = ['Service', 'EndpointSlice', 'Node'];

async function converged(server: TestApiServer, sink: RecordingSink): Promise<void> {
  const same = (): boolean => KINDS.every((k) => JSON.stringify(sink.versions(k)) === JSON.stringify(serverVersions(server, k)));
  await until('the sink to hold what the server holds', same);
}

async function metricValue(name: string, labels: Record<string, string>): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) return 0;
  const data = await m.get();
  return data.values
    .filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))
    .reduce((a, v) => a + v.value, 0);
}

describe('KubeSource with @kubernetes/client-node against the test API server', () => {
  let server: TestApiServer;
  let dir: string;
  let kubeconfig: string;
  let source: KubeSource | undefined;
  let sink: RecordingSink;

  beforeEach(async () => {
    configureLogging({ level: 'error' });
    server = await TestApiServer.start({ bookmarkIntervalMs: 200, token: 'sekret' });
    dir = mkdtempSync(join(tmpdir(), 'kube-source-'));
    kubeconfig = join(dir, 'kubeconfig');
    await server.writeKubeconfig(kubeconfig);
    server.create(service({ name: 'web', clusterIP: '10.96.0.10' }));
    server.create(service({ name: 'db', namespace: 'prod', clusterIP: '10.96.0.11' }));
    server.create(endpointSlice({ service: 'web', addresses: ['10.0.0.1', '10.0.0.2'] }));
    server.create(node('node-a', ['10.244.0.0/24'], '192.168.0.2'));
    sink = new RecordingSink();
  });

  afterEach(async () => {
    await source?.stop();
    source = undefined;
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function startSource(extra: Partial<KubeSourceOptions> = {}): Promise<KubeSource> {
    source = new KubeSource({ kubeconfig, kinds: KINDS, backoff: { initialMs: 50, maxMs: 500 }, ...extra });
    await source.start(sink);
    await source.synced;
    // Synced means listed; the watches open right after.
    await until('a watch per kind', () => server.watchCount === KINDS.length);
    return source;
  }

  it('lists every kind, marks it synced, then applies adds, updates and deletes', async () => {
    await startSource();
    expect([...sink.synced].sort()).toEqual([...KINDS].sort());
    expect(Object.keys(sink.versions('Service')).sort()).toEqual(['default/web', 'prod/db']);
    expect(Object.keys(sink.versions('Node'))).toEqual(['node-a']);
    await converged(server, sink);

    server.create(service({ name: 'cache', clusterIP: '10.96.0.12' }));
    server.update(endpointSlice({ service: 'web', addresses: ['10.0.0.1', '10.0.0.3'] }));
    server.delete('Service', 'prod', 'db');
    server.create(node('node-b', ['10.244.1.0/24'], '192.168.0.3'));
    await converged(server, sink);
    const slice = sink.state.get('EndpointSlice')!.get('default/web-abc') as { endpoints: { addresses: string[] }[] };
    expect(slice.endpoints.map((e) => e.addresses[0])).toEqual(['10.0.0.1', '10.0.0.3']);
    expect(sink.state.get('Service')!.has('prod/db')).toBe(false);

    // One list per kind, then watches from the list's resourceVersion with bookmarks on.
    for (const k of KINDS) expect(server.count('list', PLURAL[k])).toBe(1);
    const watches = server.requests.filter((r) => r.verb === 'watch');
    expect(watches.length).toBeGreaterThanOrEqual(KINDS.length);
    for (const w of watches) {
      expect(w.query.allowWatchBookmarks).toBe('true');
      expect(Number(w.query.timeoutSeconds)).toBeGreaterThan(0);
      expect(w.query.resourceVersion).toMatch(/^\d+$/);
    }
  });

  it('keeps the objects as the server sent them, unknown fields included', async () => {
    server.create({ ...service({ name: 'future', clusterIP: '10.96.0.20' }), spec: { ...(service({ name: 'x', clusterIP: '10.96.0.20' }).spec as object), someFutureField: { a: 1 } } });
    await startSource();
    const listed = sink.state.get('Service')!.get('default/future') as { spec: Record<string, unknown>; metadata: Record<string, unknown> };
    expect(listed.spec.someFutureField).toEqual({ a: 1 });
    expect(typeof listed.metadata.creationTimestamp).toBe('string');
  });

  it('reads a list in pages', async () => {
    for (let i = 0; i < 7; i++) server.create(service({ name: `s${i}`, clusterIP: `10.96.1.${i}` }));
    await startSource({ pageSize: 3 });
    await converged(server, sink);
    const pages = server.requests.filter((r) => r.verb === 'list' && r.resource === 'services');
    expect(pages.length).toBe(3); // 9 services, 3 per page
    expect(pages.every((p) => p.query.limit === '3')).toBe(true);
    expect(pages.filter((p) => p.query.continue).length).toBe(2);
  });

  it('resumes from the last resourceVersion after dropped watch connections: no relist, nothing lost', async () => {
    await startSource();
    for (let round = 0; round < 3; round++) {
      await until('a watch per kind', () => server.watchCount === KINDS.length);
      server.dropConnections();
      // Changes made while the client is reconnecting.
      server.create(service({ name: `new-${round}`, clusterIP: `10.96.2.${round}` }));
      server.update(endpointSlice({ service: 'web', addresses: [`10.0.1.${round}`] }));
      await converged(server, sink);
    }
    for (const k of KINDS) expect(server.count('list', PLURAL[k])).toBe(1);
    expect(sink.replaces.length).toBe(KINDS.length);
    expect(server.count('watch', 'services')).toBeGreaterThanOrEqual(4);
    expect(await metricValue('kubedataplane_watch_restarts_total', { kind: 'Service', reason: 'error' })).toBeGreaterThanOrEqual(3);
  });

  it('relists after 410 Gone with no lost and no phantom objects', async () => {
    server.create(service({ name: 'doomed', clusterIP: '10.96.0.30' }));
    await startSource();
    await converged(server, sink);
    const expiredBefore = await metricValue('kubedataplane_watch_restarts_total', { kind: 'Service', reason: 'expired' });

    await server.setDown(true);
    server.delete('Service', 'default', 'doomed'); // would be a phantom if the relist kept it
    server.create(service({ name: 'born', clusterIP: '10.96.0.31' })); // would be lost
    server.update(service({ name: 'web', clusterIP: '10.96.0.10', port: 8443 }));
    server.delete('EndpointSlice', 'default', 'web-abc');
    server.compact(); // the client's resourceVersion is now too old
    await server.setDown(false);

    await converged(server, sink);
    expect(sink.state.get('Service')!.has('default/doomed')).toBe(false);
    expect(sink.state.get('Service')!.has('default/born')).toBe(true);
    expect(sink.state.get('EndpointSlice')!.size).toBe(0);
    expect(server.count('list', 'services')).toBe(2);
    expect(await metricValue('kubedataplane_watch_restarts_total', { kind: 'Service', reason: 'expired' })).toBeGreaterThan(expiredBefore);

    // After the relist the watch carries on from the new list's resourceVersion.
    server.create(service({ name: 'after', clusterIP: '10.96.0.32' }));
    await converged(server, sink);
    expect(server.count('list', 'services')).toBe(2);
  });

  // What 30 s down meant to the client: every reconnect fails for long enough that the backoff
  // reaches its cap, many times over. Counted in failed reconnects (the restarts metric), not in
  // seconds, with a small cap so the test does not wait for it.
  it('converges after the API server was down through many failed reconnects at the backoff cap', async () => {
    await startSource({ backoff: { initialMs: 10, maxMs: 40 } });
    const failed = () => metricValue('kubedataplane_watch_restarts_total', { kind: 'Service', reason: 'error' });
    const before = await failed();
    await server.setDown(true);
    server.create(service({ name: 'while-down', clusterIP: '10.96.0.40' }));
    server.delete('Service', 'prod', 'db');
    server.update(endpointSlice({ service: 'web', addresses: ['10.0.9.9'] }));
    server.delete('Node', undefined, 'node-a');
    await until('a dozen failed reconnects', async () => (await failed()) - before >= 12);
    const failedWatches = server.count('watch');
    await server.setDown(false);
    await converged(server, sink);
    expect(sink.state.get('Service')!.has('default/while-down')).toBe(true);
    expect(sink.state.get('Node')!.size).toBe(0);
    // The history was still there: resumed by watching, not by listing again.
    for (const k of KINDS) expect(server.count('list', PLURAL[k])).toBe(1);
    expect(server.count('watch')).toBeGreaterThan(failedWatches);
  });

  it('restarts a watch that went silent', async () => {
    await startSource({ resyncInactivityMs: 1_000 });
    server.freezeWatches();
    server.create(service({ name: 'behind-a-dead-connection', clusterIP: '10.96.0.50' }));
    await converged(server, sink);
    expect(server.count('list', 'services')).toBe(1);
    expect(await metricValue('kubedataplane_watch_restarts_total', { kind: 'Service', reason: 'inactive' })).toBeGreaterThanOrEqual(1);
  });

  it('keeps a quiet watch open: a minute without a byte (kube-apiserver bookmarks about once a minute) is no failure', async () => {
    // Timeouts on a fake clock that also moves with real time, so the HTTP exchange goes on.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'], shouldAdvanceTime: true });
    try {
      await startSource();
      const watches = server.count('watch', 'services');
      const restarts = await metricValue('kubedataplane_watch_restarts_total', { kind: 'Service' });
      server.freezeWatches();
      await vi.advanceTimersByTimeAsync(60_000);
      expect(await metricValue('kubedataplane_watch_restarts_total', { kind: 'Service' })).toBe(restarts);
      expect(server.count('watch', 'services')).toBe(watches);
    } finally {
      vi.useRealTimers();
    }
  });

  it('lists and watches ServiceCIDRs (networking.k8s.io/v1); on a cluster that does not serve them, none, synced', async () => {
    const sc = (name: string, cidrs: string[]) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'ServiceCIDR', metadata: { name }, spec: { cidrs } });
    server.create(sc('kubernetes', ['10.96.0.0/16', 'fd00:96::/112']));
    const catalog = new Catalog({ kinds: [...KINDS, 'ServiceCIDR'] });
    source = new KubeSource({ kubeconfig, kinds: [...KINDS, 'ServiceCIDR'] });
    await source.start(catalog);
    await source.synced;
    expect([...catalog.serviceCIDRs()].map((s) => s.cidrs)).toEqual([['10.96.0.0/16', 'fd00:96::/112']]);
    await until('a watch of servicecidrs', () => server.count('watch', 'servicecidrs') === 1);
    server.create(sc('extra', ['10.100.0.0/24']));
    await until('the new ServiceCIDR', () => [...catalog.serviceCIDRs()].length === 2);
    await source.stop();

    const older = await TestApiServer.start({ token: 'sekret', unserved: ['servicecidrs'] });
    try {
      await older.writeKubeconfig(kubeconfig);
      const oldCatalog = new Catalog({ kinds: [...KINDS, 'ServiceCIDR'] });
      source = new KubeSource({ kubeconfig, kinds: [...KINDS, 'ServiceCIDR'] });
      await source.start(oldCatalog);
      await source.synced;
      expect([oldCatalog.synced, [...oldCatalog.serviceCIDRs()]]).toEqual([true, []]);
      expect([older.count('list', 'servicecidrs'), older.count('watch', 'servicecidrs')]).toEqual([0, 0]); // 404s: no such resource
      expect(older.requests.filter((r) => r.path.endsWith('/servicecidrs')).map((r) => r.status)).toEqual([404]);
      await source.stop();
      source = undefined;
    } finally {
      await older.stop();
    }
  });

  it('resumes after the server ends watches (timeoutSeconds) and keeps the stream', async () => {
    await startSource({ watchTimeoutSeconds: [1, 1] });
    // Two server-side timeouts have ended the first watch and its successor.
    await until('the third watch of services', () => server.count('watch', 'services') >= 3);
    server.create(service({ name: 'late', clusterIP: '10.96.0.60' }));
    await converged(server, sink);
    expect(server.count('watch', 'services')).toBeGreaterThanOrEqual(3);
    expect(server.count('list', 'services')).toBe(1);
  });

  it('survives malformed events and non-410 ERROR events', async () => {
    await startSource();
    server.injectWatchLine('Service', '{"type":"ADDED"}');
    server.injectWatchLine('Service', '{"type":"MODIFIED","object":{"kind":"Service"}}');
    server.injectWatchLine('Service', 'this is not JSON');
    server.injectWatchLine('Service', '{"type":"DELETED","object":{"kind":"Service","metadata":{"resourceVersion":"1"}}}');
    server.injectWatchLine('Service', '{"type":"ERROR","object":{"kind":"Status","status":"Failure","code":500,"reason":"InternalError","message":"etcd hiccup"}}');
    server.create(service({ name: 'after-garbage', clusterIP: '10.96.0.70' }));
    await converged(server, sink);
    expect(server.count('list', 'services')).toBe(1);
  });

  it('rejects a missing kubeconfig with the file named', async () => {
    const s = new KubeSource({ kubeconfig: join(dir, 'nope'), kinds: KINDS });
    await expect(s.start(sink)).rejects.toThrow(/kubeconfig .*nope/);
  });

  it('stops cleanly while the server is down and retrying', async () => {
    await startSource();
    const failed = () => metricValue('kubedataplane_watch_restarts_total', { kind: 'Service', reason: 'error' });
    const before = await failed();
    await server.setDown(true);
    await until('a failed reconnect, so the source is retrying', async () => (await failed()) > before);
    await source!.stop();
    source = undefined;
    const watches = server.count('watch');
    await server.setDown(false);
    await new Promise((r) => setTimeout(r, 700));
    expect(server.count('watch')).toBe(watches);
  });
});

describe('KubeSource feeding the real Catalog', () => {
  it('builds the catalog, follows changes, and a relist after 410 delivers only the difference', async () => {
    configureLogging({ level: 'error' });
    const server = await TestApiServer.start();
    const dir = mkdtempSync(join(tmpdir(), 'kube-catalog-'));
    const kubeconfig = join(dir, 'kubeconfig');
    await server.writeKubeconfig(kubeconfig);
    const catalog = new Catalog({ kinds: KINDS });
    const source = new KubeSource({ kubeconfig, kinds: KINDS, backoff: { initialMs: 50, maxMs: 500 } });
    try {
      server.create(service({ name: 'web', clusterIP: '10.96.0.10' }));
      server.create(endpointSlice({ service: 'web', addresses: ['10.0.0.1', '10.0.0.2'] }));
      server.create(endpointSlice({ service: 'web', name: 'web-def', addresses: ['10.0.0.3'] }));
      server.create(service({ name: 'api', clusterIP: '10.96.0.11' }));
      server.create(node('node-a', ['10.244.0.0/24'], '192.168.0.2'));
      const changes: { services: string[]; synced: boolean }[] = [];
      catalog.onChange((c) => changes.push({ services: [...c.services].sort(), synced: c.synced }));
      await source.start(catalog);
      await until('the catalog to sync', () => catalog.synced);
      expect(catalog.service('default/web')?.clusterIPs).toEqual(['10.96.0.10']);
      expect(catalog.endpoints('default/web')?.endpoints.map((e) => e.ip)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
      expect(catalog.node('node-a')?.podCIDRs).toEqual(['10.244.0.0/24']);

      await until('the watches', () => server.watchCount === KINDS.length);
      server.update(endpointSlice({ service: 'web', name: 'web-def', addresses: ['10.0.0.4'] }));
      await until('the endpoint change', () => catalog.endpoints('default/web')?.endpoints.some((e) => e.ip === '10.0.0.4') ?? false);

      // While the client is cut off: one service goes away, the history is compacted.
      await server.setDown(true);
      server.delete('Service', 'default', 'api');
      server.compact();
      changes.length = 0;
      await server.setDown(false);
      await until('the deleted service to leave the catalog', () => catalog.service('default/api') === undefined);
      await until('the relists of the other kinds', () => server.count('list', 'endpointslices') === 2 && server.count('list', 'nodes') === 2);
      expect(catalog.service('default/web')).toBeDefined();
      expect(catalog.endpoints('default/web')?.endpoints.map((e) => e.ip)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.4']);
      // The relists found one difference; nothing else was reported as changed.
      expect(changes.flatMap((c) => c.services)).toEqual(['default/api']);
    } finally {
      await source.stop();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
