// The test API server's protocol, checked with plain HTTP: list pages, watch from a
// resourceVersion, bookmarks, timeoutSeconds, 410 Gone, single GETs, writes, down/up.
//
// Timers are fake (the server's bookmark and timeoutSeconds timers, and Date): time moves only
// when a test advances it, so nothing here sleeps or depends on the machine's speed. Waiting for
// network I/O is by event-loop turns (setImmediate, left real), not by a clock.
import http from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { configureLogging } from '../common/log.js';
import { TestApiServer } from './server.js';
import { endpointSlice, node, service } from './population.js';

interface WatchEvent { type: string; object: Record<string, any> }

/** The parts of a kubeconfig file the tests read. */
interface Kubeconfig {
  clusters: Array<{ name: string; cluster: { server: string } }>;
  users: Array<{ name: string; user: { token: string } }>;
}

/** An open watch stream: events as they arrive, and whether the server ended it. */
class Stream {
  readonly events: WatchEvent[] = [];
  ended = false;
  status = 0;
  private req: http.ClientRequest;

  constructor(url: string) {
    this.req = http.get(url, (res) => {
      this.status = res.statusCode ?? 0;
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          this.events.push(JSON.parse(buf.slice(0, i)) as WatchEvent);
          buf = buf.slice(i + 1);
        }
      });
      res.on('end', () => { this.ended = true; });
      res.on('error', () => { this.ended = true; });
    });
    this.req.on('error', () => { this.ended = true; });
  }

  async waitFor(n: number): Promise<WatchEvent[]> {
    await until(`${n} events`, () => this.events.length >= n);
    return this.events;
  }

  close(): void {
    this.req.destroy();
  }
}

/** Lets I/O run until `cond` holds: a bounded number of event-loop turns, not a clock. */
async function until(what: string, cond: () => boolean, turns = 200_000): Promise<void> {
  for (let i = 0; !cond(); i++) {
    if (i >= turns) throw new Error(`${what}: not after ${turns} event-loop turns`);
    await new Promise((r) => setImmediate(r));
  }
}

/** A few turns of I/O, so that what was going to arrive has arrived. */
const drain = async () => {
  for (let i = 0; i < 200; i++) await new Promise((r) => setImmediate(r));
};

async function getJson(url: string, init?: RequestInit): Promise<{ status: number; body: any }> {
  const res = await fetch(url, init);
  return { status: res.status, body: await res.json() };
}

describe('test API server', () => {
  let server: TestApiServer;
  const streams: Stream[] = [];

  function watch(path: string): Stream {
    const s = new Stream(server.url + path);
    streams.push(s);
    return s;
  }

  /** The resourceVersion before the fixtures: the initial namespaces take the first ones. */
  let start = 0;

  beforeEach(async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    configureLogging({ level: 'error' });
    server = await TestApiServer.start({ bookmarkIntervalMs: 100 });
    start = server.resourceVersion;
    server.create(service({ name: 'a', clusterIP: '10.96.0.1' }));
    server.create(service({ name: 'b', namespace: 'kube-system', clusterIP: '10.96.0.2' }));
    server.create(service({ name: 'c', clusterIP: '10.96.0.3' }));
    server.create(endpointSlice({ service: 'a', addresses: ['10.0.0.1'] }));
    server.create(node('n1', ['10.244.0.0/24'], '192.168.0.2'));
  });

  afterEach(async () => {
    for (const s of streams.splice(0)) s.close();
    await server.stop();
    vi.useRealTimers();
  });

  it('lists a kind with its list kind, apiVersion and the current resourceVersion', async () => {
    const { status, body } = await getJson(`${server.url}/api/v1/services`);
    expect(status).toBe(200);
    expect(body.kind).toBe('ServiceList');
    expect(body.apiVersion).toBe('v1');
    expect(body.metadata.resourceVersion).toBe(String(server.resourceVersion));
    expect(body.items.map((s: any) => `${s.metadata.namespace}/${s.metadata.name}`)).toEqual(['default/a', 'default/c', 'kube-system/b']);
    expect(body.items[0].kind).toBe('Service');
    expect(body.items[0].metadata.resourceVersion).toBe(String(start + 1));
    expect(body.items[0].metadata.uid).toMatch(/^[0-9a-f-]{36}$/);

    const slices = await getJson(`${server.url}/apis/discovery.k8s.io/v1/endpointslices`);
    expect(slices.body.kind).toBe('EndpointSliceList');
    expect(slices.body.apiVersion).toBe('discovery.k8s.io/v1');
    expect(slices.body.items).toHaveLength(1);
  });

  it('lists one namespace, and selects by metadata.name', async () => {
    const ns = await getJson(`${server.url}/api/v1/namespaces/kube-system/services`);
    expect(ns.body.items.map((s: any) => s.metadata.name)).toEqual(['b']);
    const named = await getJson(`${server.url}/api/v1/services?fieldSelector=metadata.name%3Dc`);
    expect(named.body.items.map((s: any) => s.metadata.name)).toEqual(['c']);
  });

  it('pages with limit/continue over one consistent snapshot', async () => {
    const first = await getJson(`${server.url}/api/v1/services?limit=2`);
    expect(first.body.items.map((s: any) => s.metadata.name)).toEqual(['a', 'c']);
    const token = first.body.metadata.continue;
    expect(token).toBeTruthy();
    const rv = first.body.metadata.resourceVersion;
    // Changes between pages do not show in the rest of the list.
    server.delete('Service', 'kube-system', 'b');
    server.create(service({ name: 'z', namespace: 'zz', clusterIP: '10.96.0.9' }));
    const second = await getJson(`${server.url}/api/v1/services?limit=2&continue=${encodeURIComponent(token)}`);
    expect(second.body.metadata.resourceVersion).toBe(rv);
    expect(second.body.items.map((s: any) => s.metadata.name)).toEqual(['b']);
    expect(second.body.metadata.continue).toBeUndefined();
  });

  it('answers an expired continue token and an exact list of a compacted version with 410 Gone', async () => {
    const first = await getJson(`${server.url}/api/v1/services?limit=1`);
    server.update(service({ name: 'a', clusterIP: '10.96.0.1', port: 81 }));
    server.compact();
    const next = await getJson(`${server.url}/api/v1/services?limit=1&continue=${encodeURIComponent(first.body.metadata.continue)}`);
    expect(next.status).toBe(410);
    expect(next.body).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'Expired', code: 410 });
    const exact = await getJson(`${server.url}/api/v1/services?resourceVersion=${start + 2}&resourceVersionMatch=Exact`);
    expect(exact.status).toBe(410);
    expect(exact.body.reason).toBe('Expired');
  });

  it('serves an exact list of an older, not yet compacted version', async () => {
    const rv = server.resourceVersion;
    server.delete('Service', 'default', 'a');
    server.update(service({ name: 'c', clusterIP: '10.96.0.3', port: 99 }));
    const { body } = await getJson(`${server.url}/api/v1/services?resourceVersion=${rv}&resourceVersionMatch=Exact`);
    expect(body.items.map((s: any) => s.metadata.name)).toEqual(['a', 'c', 'b']);
    expect(body.items[1].spec.ports[0].port).toBe(80);
  });

  it('watches from a resourceVersion: the events after it, then live ones, with their versions', async () => {
    const from = server.resourceVersion;
    server.update(service({ name: 'a', clusterIP: '10.96.0.1', port: 81 }));
    const s = watch(`/api/v1/services?watch=1&resourceVersion=${from}`);
    await s.waitFor(1);
    server.delete('Service', 'default', 'c');
    server.create(service({ name: 'd', clusterIP: '10.96.0.4' }));
    server.create(node('n2', ['10.244.1.0/24'], '192.168.0.3')); // another kind: not in this stream
    const events = await s.waitFor(3);
    expect(events.map((e) => `${e.type} ${e.object.metadata.name} ${e.object.metadata.resourceVersion}`)).toEqual([
      `MODIFIED a ${from + 1}`, `DELETED c ${from + 2}`, `ADDED d ${from + 3}`,
    ]);
    expect(s.status).toBe(200);
  });

  it('watches without a resourceVersion: the current objects as ADDED first', async () => {
    const s = watch('/api/v1/namespaces/default/services?watch=true');
    const events = await s.waitFor(2);
    expect(events.map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual(['ADDED a', 'ADDED c']);
    server.create(service({ name: 'x', namespace: 'other', clusterIP: '10.96.0.7' })); // other namespace
    server.create(service({ name: 'y', clusterIP: '10.96.0.8' }));
    await s.waitFor(3);
    expect(s.events[2].object.metadata.name).toBe('y');
  });

  it('sends bookmarks with the current resourceVersion when asked, and only then', async () => {
    const withBookmarks = watch(`/api/v1/nodes?watch=true&resourceVersion=${server.resourceVersion}&allowWatchBookmarks=true`);
    const without = watch(`/api/v1/pods?watch=true&resourceVersion=${server.resourceVersion}`);
    await until('both watches open', () => server.watchCount === 2);
    await vi.advanceTimersByTimeAsync(99);
    await drain();
    expect(withBookmarks.events).toEqual([]); // not before the interval (100 ms here)
    await vi.advanceTimersByTimeAsync(101); // two intervals in all
    await withBookmarks.waitFor(2);
    server.create(service({ name: 'bump', clusterIP: '10.96.0.5' }));
    await vi.advanceTimersByTimeAsync(100);
    await until('a bookmark after the write', () => withBookmarks.events.some((e) => e.object.metadata.resourceVersion === String(server.resourceVersion)));
    for (const e of withBookmarks.events) {
      expect(e.type).toBe('BOOKMARK');
      expect(e.object).toMatchObject({ kind: 'Node', apiVersion: 'v1' });
    }
    expect(without.events).toEqual([]);
  });

  it('ends a watch after timeoutSeconds', async () => {
    const s = watch(`/api/v1/services?watch=true&resourceVersion=${server.resourceVersion}&timeoutSeconds=1`);
    await until('the watch to open', () => server.watchCount === 1);
    await vi.advanceTimersByTimeAsync(999);
    await drain();
    expect(s.ended).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await until('the server to end the watch', () => s.ended);
    expect(s.status).toBe(200);
  });

  it('answers a watch from a compacted resourceVersion with an in-stream 410 ERROR, then ends it', async () => {
    server.update(service({ name: 'a', clusterIP: '10.96.0.1', port: 82 }));
    server.compact();
    const s = watch(`/api/v1/services?watch=true&resourceVersion=${start + 2}`);
    const [e] = await s.waitFor(1);
    expect(s.status).toBe(200);
    expect(e.type).toBe('ERROR');
    expect(e.object).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'Expired', code: 410 });
    expect(e.object.message).toMatch(new RegExp(`too old resource version: ${start + 2} \\(\\d+\\)`));
    await until('the stream to end', () => s.ended);
    // From the compaction point on, watching works.
    const ok = watch(`/api/v1/services?watch=true&resourceVersion=${server.resourceVersion}`);
    server.create(service({ name: 'e', clusterIP: '10.96.0.6' }));
    expect((await ok.waitFor(1))[0].type).toBe('ADDED');
  });

  it('compacts its own history beyond historyLimit', async () => {
    const small = await TestApiServer.start({ historyLimit: 2 });
    try {
      const base = small.resourceVersion;
      for (let i = 0; i < 5; i++) small.create(service({ name: `s${i}`, clusterIP: `10.96.3.${i}` }));
      const s = new Stream(`${small.url}/api/v1/services?watch=true&resourceVersion=${base + 1}`);
      streams.push(s);
      expect((await s.waitFor(1))[0].object.code).toBe(410);
      const s2 = new Stream(`${small.url}/api/v1/services?watch=true&resourceVersion=${base + 3}`);
      streams.push(s2);
      expect((await s2.waitFor(2)).map((e) => e.object.metadata.name)).toEqual(['s3', 's4']);
    } finally {
      await small.stop();
    }
  });

  it('gets one object, and answers 404 with a Status', async () => {
    const n = await getJson(`${server.url}/api/v1/nodes/n1`);
    expect(n.status).toBe(200);
    expect(n.body.spec.podCIDRs).toEqual(['10.244.0.0/24']);
    const svc = await getJson(`${server.url}/api/v1/namespaces/default/services/a`);
    expect(svc.body.spec.clusterIP).toBe('10.96.0.1');
    const missing = await getJson(`${server.url}/api/v1/nodes/nope`);
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ kind: 'Status', reason: 'NotFound', code: 404 });
    expect((await getJson(`${server.url}/api/v1/configmaps`)).status).toBe(404);
  });

  it('creates, updates and deletes over HTTP, and watchers see it', async () => {
    const s = watch(`/api/v1/services?watch=true&resourceVersion=${server.resourceVersion}`);
    const body = service({ name: 'h', clusterIP: '10.96.0.20' });
    const created = await getJson(`${server.url}/api/v1/namespaces/default/services`, { method: 'POST', body: JSON.stringify(body) });
    expect(created.status).toBe(201);
    const dup = await getJson(`${server.url}/api/v1/namespaces/default/services`, { method: 'POST', body: JSON.stringify(body) });
    expect(dup.status).toBe(409);
    const updated = await getJson(`${server.url}/api/v1/namespaces/default/services/h`, { method: 'PUT', body: JSON.stringify(service({ name: 'h', clusterIP: '10.96.0.20', port: 90 })) });
    expect(updated.body.spec.ports[0].port).toBe(90);
    expect(updated.body.metadata.uid).toBe(created.body.metadata.uid);
    const deleted = await getJson(`${server.url}/api/v1/namespaces/default/services/h`, { method: 'DELETE' });
    expect(deleted.status).toBe(200);
    expect((await s.waitFor(3)).map((e) => e.type)).toEqual(['ADDED', 'MODIFIED', 'DELETED']);
    const bad = await getJson(`${server.url}/api/v1/namespaces/default/services`, { method: 'POST', body: '{"metadata":' });
    expect(bad.status).toBe(400);
  });

  it('drops watch connections on demand', async () => {
    const s = watch(`/api/v1/services?watch=true&resourceVersion=${server.resourceVersion}`);
    await until('the watch to open', () => server.watchCount === 1);
    server.dropConnections();
    await until('the stream to be cut', () => s.ended);
    expect(server.watchCount).toBe(0);
  });

  it('freezes open watches: connected but silent; new watches still get events', async () => {
    const frozen = watch(`/api/v1/services?watch=true&resourceVersion=${server.resourceVersion}&allowWatchBookmarks=true`);
    await until('the watch to open', () => server.watchCount === 1);
    server.freezeWatches();
    const fresh = watch(`/api/v1/services?watch=true&resourceVersion=${server.resourceVersion}`);
    await until('the second watch', () => server.watchCount === 2);
    server.create(service({ name: 'f', clusterIP: '10.96.0.30' }));
    await fresh.waitFor(1);
    await vi.advanceTimersByTimeAsync(300); // three bookmark intervals
    await drain();
    expect(frozen.events).toEqual([]);
    expect(frozen.ended).toBe(false);
  });

  it('goes down (connections refused) and comes back on the same port with its state', async () => {
    const url = server.url;
    const s = watch(`/api/v1/services?watch=true&resourceVersion=${server.resourceVersion}`);
    await until('the watch to open', () => server.watchCount === 1);
    await server.setDown(true);
    await until('the watch to be cut', () => s.ended);
    await expect(fetch(`${url}/api/v1/services`)).rejects.toThrow();
    server.create(service({ name: 'while-down', clusterIP: '10.96.0.31' }));
    await server.setDown(false);
    expect(server.url).toBe(url);
    const { body } = await getJson(`${url}/api/v1/services`);
    expect(body.items.map((x: any) => x.metadata.name)).toContain('while-down');
  });

  it('requires the bearer token when configured, and writes a kubeconfig carrying it', async () => {
    const secured = await TestApiServer.start({ token: 't0ken' });
    const dir = mkdtempSync(join(tmpdir(), 'test-apiserver-'));
    try {
      expect((await getJson(`${secured.url}/api/v1/nodes`)).status).toBe(401);
      const ok = await getJson(`${secured.url}/api/v1/nodes`, { headers: { Authorization: 'Bearer t0ken' } });
      expect(ok.status).toBe(200);
      await secured.writeKubeconfig(join(dir, 'kc'));
      const kc = yaml.load(readFileSync(join(dir, 'kc'), 'utf8')) as Kubeconfig;
      expect(kc.clusters[0].cluster.server).toBe(secured.url);
      expect(kc.users[0].user.token).toBe('t0ken');
    } finally {
      await secured.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('serves aggregated discovery when asked for it, and the legacy documents otherwise', async () => {
    const aggregated = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json';
    const res = await fetch(`${server.url}/api`, { headers: { Accept: aggregated } });
    expect(res.headers.get('content-type')).toBe('application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList');
    const core = (await res.json()) as any;
    expect(core.kind).toBe('APIGroupDiscoveryList');
    const services = core.items[0].versions[0].resources.find((r: any) => r.resource === 'services');
    expect(services).toMatchObject({ scope: 'Namespaced', singularResource: 'service', shortNames: ['svc'], responseKind: { group: '', version: 'v1', kind: 'Service' } });
    const beta = await fetch(`${server.url}/apis`, { headers: { Accept: 'application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList' } });
    expect(((await beta.json()) as any).items.map((g: any) => g.metadata.name)).toEqual(['discovery.k8s.io', 'networking.k8s.io']);
    expect(beta.headers.get('content-type')).toContain('v=v2beta1');

    expect((await getJson(`${server.url}/api`)).body).toMatchObject({ kind: 'APIVersions', versions: ['v1'] });
    const groups = (await getJson(`${server.url}/apis`)).body;
    expect(groups.groups[0]).toMatchObject({ name: 'discovery.k8s.io', preferredVersion: { groupVersion: 'discovery.k8s.io/v1' } });
    expect((await getJson(`${server.url}/apis/discovery.k8s.io`)).body.kind).toBe('APIGroup');
    const v1 = (await getJson(`${server.url}/api/v1`)).body;
    expect(v1.resources.map((r: any) => `${r.name}:${r.namespaced}:${(r.shortNames ?? []).join()}`)).toEqual(['services:true:svc', 'nodes:false:no', 'pods:true:po', 'namespaces:false:ns']);
    expect(v1.resources[0].verbs).toContain('patch');
    expect((await getJson(`${server.url}/apis/discovery.k8s.io/v1`)).body.resources[0]).toMatchObject({ name: 'endpointslices', kind: 'EndpointSlice', namespaced: true });
  });

  it('holds namespaces: the initial ones, one per namespace an object was written to, deleted with what is in them', async () => {
    const names = async () => (await getJson(`${server.url}/api/v1/namespaces`)).body.items.map((n: any) => n.metadata.name);
    expect(await names()).toEqual(['default', 'kube-node-lease', 'kube-public', 'kube-system']);
    const s = watch(`/api/v1/namespaces?watch=true&resourceVersion=${server.resourceVersion}`);
    const svcs = watch(`/api/v1/services?watch=true&resourceVersion=${server.resourceVersion}`);
    server.create(service({ name: 'x', namespace: 'team-a', clusterIP: '10.96.0.40' }));
    expect((await s.waitFor(1))[0]).toMatchObject({ type: 'ADDED', object: { kind: 'Namespace', metadata: { name: 'team-a' }, status: { phase: 'Active' } } });
    expect((await getJson(`${server.url}/api/v1/namespaces/team-a`)).body.metadata.labels).toEqual({ 'kubernetes.io/metadata.name': 'team-a' });
    const gone = await getJson(`${server.url}/api/v1/namespaces/team-a`, { method: 'DELETE' });
    expect(gone.status).toBe(200);
    expect((await svcs.waitFor(2)).map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual(['ADDED x', 'DELETED x']);
    expect((await s.waitFor(2))[1].type).toBe('DELETED');
    const forbidden = await getJson(`${server.url}/api/v1/namespaces/default`, { method: 'DELETE' });
    expect(forbidden).toMatchObject({ status: 403, body: { reason: 'Forbidden' } });
  });

  it('patches by content type; a patch bumps the resourceVersion and is seen as MODIFIED, one that changes nothing is no write', async () => {
    const url = `${server.url}/api/v1/namespaces/default/services/a`;
    const patch = (type: string, body: unknown) => getJson(url, { method: 'PATCH', headers: { 'Content-Type': type }, body: JSON.stringify(body) });
    const s = watch(`/api/v1/services?watch=true&resourceVersion=${server.resourceVersion}`);
    const merged = await patch('application/merge-patch+json', { metadata: { labels: { tier: 'web' } } });
    expect(merged.status).toBe(200);
    expect(merged.body.metadata.labels).toEqual({ tier: 'web' });
    expect(merged.body.metadata.resourceVersion).toBe(String(server.resourceVersion));
    expect((await s.waitFor(1))[0].type).toBe('MODIFIED');
    const rv = server.resourceVersion;
    const same = await patch('application/strategic-merge-patch+json', { metadata: { labels: { tier: 'web' } }, spec: { ports: [{ port: 80, targetPort: 8080 }] } });
    expect(same.status).toBe(200);
    expect(server.resourceVersion).toBe(rv);
    const json = await patch('application/json-patch+json', [{ op: 'replace', path: '/spec/ports/0/port', value: 81 }]);
    expect(json.body.spec.ports[0].port).toBe(81);
    await drain();
    expect(s.events.map((e) => e.type)).toEqual(['MODIFIED', 'MODIFIED']);
  });

  it('answers bad patches with the API\'s codes: 400, 404, 409, 415, 422', async () => {
    const patch = (url: string, type: string, body: string) => getJson(`${server.url}${url}`, { method: 'PATCH', headers: { 'Content-Type': type }, body });
    const a = '/api/v1/namespaces/default/services/a';
    expect((await patch(a, 'application/merge-patch+json', '{"metadata":')).body).toMatchObject({ code: 400, reason: 'BadRequest' });
    expect((await patch('/api/v1/namespaces/default/services/nope', 'application/merge-patch+json', '{}')).body).toMatchObject({ code: 404, reason: 'NotFound' });
    expect((await patch(a, 'application/merge-patch+json', '{"metadata":{"resourceVersion":"1"}}')).body).toMatchObject({ code: 409, reason: 'Conflict' });
    const ssa = await patch(a, 'application/apply-patch+yaml', 'apiVersion: v1');
    expect(ssa.body).toMatchObject({ code: 415, reason: 'UnsupportedMediaType' });
    expect(ssa.body.message).toMatch(/server-side apply/);
    expect((await patch(a, 'text/plain', '{}')).status).toBe(415);
    expect((await patch(a, 'application/json-patch+json', '[{"op":"remove","path":"/spec/nope"}]')).body).toMatchObject({ code: 422, reason: 'Invalid' });
    const invalid = await patch(a, 'application/merge-patch+json', '{"spec":{"ports":[{"port":0}]}}');
    expect(invalid.body).toMatchObject({ code: 422, reason: 'Invalid', details: { name: 'a', kind: 'Service', causes: [{ field: 'spec.ports[0].port' }] } });
    expect((await patch(a, 'application/merge-patch+json', '{"metadata":{"name":"b"}}')).status).toBe(400);
    expect((await getJson(`${server.url}${a}`)).body.spec.ports[0].port).toBe(80);
  });

  it('checks unknown fields under fieldValidation: Strict refuses, Warn (the default) answers with a Warning', async () => {
    const url = `${server.url}/api/v1/namespaces/default/services/a`;
    const send = (q: string) => fetch(`${url}${q}`, { method: 'PATCH', headers: { 'Content-Type': 'application/merge-patch+json' }, body: '{"spec":{"portz":1}}' });
    const strict = await send('?fieldValidation=Strict');
    expect(strict.status).toBe(400);
    expect(((await strict.json()) as any).message).toMatch(/strict decoding error: unknown field "spec\.portz"/);
    const warn = await send('');
    expect(warn.status).toBe(200);
    expect(warn.headers.get('warning')).toBe('299 - "unknown field \\"spec.portz\\""');
    expect((await send('?fieldValidation=Ignore')).headers.get('warning')).toBeNull();
    expect((await send('?fieldValidation=Loose')).status).toBe(400);
  });

  it('answers lists, gets and watches as Tables when kubectl asks for them', async () => {
    const accept = { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json' };
    const list = await getJson(`${server.url}/api/v1/namespaces/default/services`, { headers: accept });
    expect(list.body).toMatchObject({ kind: 'Table', metadata: { resourceVersion: String(server.resourceVersion) } });
    expect(list.body.rows.map((r: any) => r.cells.slice(0, 5))).toEqual([['a', 'ClusterIP', '10.96.0.1', '<none>', '80/TCP'], ['c', 'ClusterIP', '10.96.0.3', '<none>', '80/TCP']]);
    expect(list.body.rows[0].object.metadata.namespace).toBe('default');
    expect((await getJson(`${server.url}/api/v1/nodes/n1`, { headers: accept })).body.rows[0].cells[0]).toBe('n1');

    const events: any[] = [];
    const req = http.get(`${server.url}/api/v1/namespaces/default/services?watch=true`, { headers: accept }, (res) => {
      let buf = '';
      res.on('data', (d: Buffer) => {
        buf += d.toString();
        for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) events.push(JSON.parse(buf.slice(0, i)));
      });
    });
    try {
      await until('the two ADDED rows', () => events.length === 2);
      server.update(service({ name: 'a', clusterIP: '10.96.0.1', port: 8443 }));
      await until('the MODIFIED row', () => events.length === 3);
      expect(events.map((e) => `${e.type} ${e.object.kind} ${e.object.rows[0].cells[4]}`)).toEqual(['ADDED Table 80/TCP', 'ADDED Table 80/TCP', 'MODIFIED Table 8443/TCP']);
      expect(events.map((e) => 'columnDefinitions' in e.object)).toEqual([true, false, false]);
    } finally {
      req.destroy();
    }
  });

  it('decodes a Namespace sent as protobuf (kubectl create namespace) and refuses other protobuf bodies with 415', async () => {
    const field = (n: number, body: Buffer | string) => {
      const b = typeof body === 'string' ? Buffer.from(body) : body;
      return Buffer.concat([Buffer.from([(n << 3) | 2, b.length]), b]);
    };
    const envelope = (kind: string, raw: Buffer) =>
      Buffer.concat([Buffer.from('k8s\0', 'latin1'), field(1, Buffer.concat([field(1, 'v1'), field(2, kind)])), field(2, raw)]);
    const meta = Buffer.concat([field(1, 'team-p'), field(3, ''), field(11, Buffer.concat([field(1, 'env'), field(2, 'prod')]))]);
    const post = (path: string, body: Buffer) =>
      getJson(`${server.url}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/vnd.kubernetes.protobuf' }, body });
    const created = await post('/api/v1/namespaces', envelope('Namespace', field(1, meta)));
    expect(created.status).toBe(201);
    expect(created.body.metadata).toMatchObject({ name: 'team-p', labels: { env: 'prod', 'kubernetes.io/metadata.name': 'team-p' } });
    const svc = await post('/api/v1/namespaces/default/services', envelope('Service', field(1, Buffer.concat([field(1, 'x')]))));
    expect(svc.body).toMatchObject({ code: 415, reason: 'UnsupportedMediaType' });
    expect(svc.body.message).toMatch(/Namespace only .* not "Service"/);
  });

  it('filters lists and watches by label selector: an object that stops matching is DELETED for the watch', async () => {
    server.update({ ...service({ name: 'a', clusterIP: '10.96.0.1' }), metadata: { name: 'a', namespace: 'default', labels: { tier: 'web' } } });
    const list = await getJson(`${server.url}/api/v1/services?labelSelector=tier%3Dweb`);
    expect(list.body.items.map((o: any) => o.metadata.name)).toEqual(['a']);
    const s = watch('/api/v1/services?watch=true&labelSelector=tier%3Dweb');
    expect((await s.waitFor(1)).map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual(['ADDED a']);
    server.update({ ...service({ name: 'c', clusterIP: '10.96.0.3' }), metadata: { name: 'c', namespace: 'default', labels: { tier: 'web' } } });
    server.update(service({ name: 'a', clusterIP: '10.96.0.1' })); // the label removed
    server.update(service({ name: 'b', namespace: 'kube-system', clusterIP: '10.96.0.2', port: 99 })); // never matched
    expect((await s.waitFor(3)).map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual(['ADDED a', 'ADDED c', 'DELETED a']);
    expect((await getJson(`${server.url}/api/v1/services?fieldSelector=spec.type%3DClusterIP`)).body).toMatchObject({ code: 400, message: expect.stringMatching(/field label not supported/) });
    const bad = await fetch(`${server.url}/api/v1/services?watch=true&labelSelector=a%20in%20b`);
    expect(bad.status).toBe(400);
  });

  it('rejects objects of kinds it does not serve, and objects without a name', () => {
    expect(() => server.create({ kind: 'ConfigMap', metadata: { name: 'x' } })).toThrow(/ConfigMap/);
    expect(() => server.create({ kind: 'Service', metadata: {} })).toThrow(/metadata\.name/);
    expect(() => server.create(service({ name: 'a', clusterIP: '10.96.0.1' }))).toThrow(/already exists/);
    expect(() => server.delete('Service', 'default', 'nope')).toThrow(/not found/);
  });
});
