// This machine's kubectl (v1.32) against the test API server on loopback, through the kubeconfig
// the server writes: discovery (aggregated, and the legacy fallback), get (-A, -o json, -w),
// apply (create, then an edited file), label, annotate, patch, delete, namespaces, and the
// errors kubectl shows for bad input. kubectl runs as a child process with its own discovery
// cache directory, so nothing is shared with another run or with ~/.kube.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { configureLogging } from '../common/log.js';
import { endpointSlice, manifest, node, service } from './population.js';
import { resourceByKind } from './resources.js';
import { TestApiServer } from './server.js';

interface Result { code: number; stdout: string; stderr: string }

let dir: string;
/** kubectl's minor version: 1.32 on these machines (gcloud's, 1.27 to 1.33 behind a dispatcher); Debian's kubernetes-client (what the Makefile
 *  installs where there is none) is 1.20, which predates aggregated discovery (1.26) and
 *  fieldValidation (1.25, server-side by default from 1.27). The assertions differ only there. */
let minor = 0;

function kubectlIn(server: TestApiServer, kubeconfig: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile('kubectl', ['--kubeconfig', kubeconfig, ...args], {
      env: { ...process.env, KUBECACHEDIR: join(dir, `cache-${server.url.replace(/\W/g, '')}`), KUBECONFIG: '', ...env },
      timeout: 30_000,
    }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

/** Polls `cond` with a short real pause: kubectl is another process, its output arrives when it
 *  arrives. Fails with `what` after `ms`. */
async function until(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** demo/api (10.96.0.90:80 → 8080) with its slice of two endpoints, as a test edits them. */
function apiObjects(): { svc: Record<string, any>; slice: Record<string, any> } {
  const svc: Record<string, any> = service({ namespace: 'demo', name: 'api', clusterIP: '10.96.0.90' });
  svc.metadata.labels = { tier: 'backend' };
  return { svc, slice: endpointSlice({ namespace: 'demo', service: 'api', name: 'api-1', addresses: ['10.244.0.11', '10.244.0.12'] }) };
}
const MANIFEST = manifest(Object.values(apiObjects()));

describe('kubectl against the test API server', () => {
  let server: TestApiServer;
  let kubeconfig: string;
  const children: ChildProcess[] = [];
  const kubectl = (...args: string[]) => kubectlIn(server, kubeconfig, args);
  const stored = (kind: string, namespace: string | undefined, name: string) =>
    server.store.get(resourceByKind(kind), namespace, name)?.object as any;

  beforeAll(() => {
    configureLogging({ level: 'error' });
    dir = mkdtempSync(join(tmpdir(), 'kdp-kubectl-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  beforeEach(async () => {
    server = await TestApiServer.start({ bookmarkIntervalMs: 1_000 });
    kubeconfig = join(dir, 'kubeconfig');
    await server.writeKubeconfig(kubeconfig);
    server.create(service({ namespace: 'demo', name: 'web', clusterIP: '10.96.0.80' }));
    server.create(endpointSlice({ namespace: 'demo', service: 'web', addresses: ['10.244.0.11', '10.244.0.12'] }));
    server.create(service({ namespace: 'kube-system', name: 'kube-dns', clusterIP: '10.96.0.10', port: 53, protocol: 'UDP' }));
    server.create(node('node-a', ['10.244.0.0/24'], '192.168.0.2'));
    // Asked with the server's kubeconfig: gcloud's kubectl dispatcher picks its version by the
    // server's (this one says 1.32).
    if (!minor) minor = parseInt((JSON.parse((await kubectl('version', '--client', '-o', 'json')).stdout) as { clientVersion: { minor: string } }).clientVersion.minor, 10);
  });

  afterEach(async () => {
    for (const c of children.splice(0)) c.kill();
    await server.stop();
  });

  it('api-versions and api-resources come from the aggregated discovery kubectl asks for first (1.26+)', async () => {
    const versions = await kubectl('api-versions');
    expect(versions).toMatchObject({ code: 0, stdout: 'discovery.k8s.io/v1\nnetworking.k8s.io/v1\nv1\n' });
    const resources = await kubectl('api-resources', '--no-headers');
    expect(resources.code).toBe(0);
    const rows = resources.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/));
    expect(rows).toEqual([
      ['namespaces', 'ns', 'v1', 'false', 'Namespace'],
      ['nodes', 'no', 'v1', 'false', 'Node'],
      ['pods', 'po', 'v1', 'true', 'Pod'],
      ['services', 'svc', 'v1', 'true', 'Service'],
      ['endpointslices', 'discovery.k8s.io/v1', 'true', 'EndpointSlice'],
      ['servicecidrs', 'networking.k8s.io/v1', 'false', 'ServiceCIDR'],
    ]);
    const api = server.requests.find((r) => r.path === '/api');
    const perGroupVersion = server.requests.filter((r) => r.path === '/api/v1' || r.path === '/apis/discovery.k8s.io/v1');
    if (minor >= 26) {
      // v2 first from 1.30 (v2beta1 before): the server answers either.
      expect(api?.accept).toMatch(new RegExp(`^application/json;g=apidiscovery\\.k8s\\.io;v=${minor >= 30 ? 'v2' : 'v2beta1'};as=APIGroupDiscoveryList`));
      // Served aggregated, kubectl needs no per-group-version documents.
      expect(perGroupVersion).toEqual([]);
    } else {
      expect(api?.accept).not.toMatch(/apidiscovery/);
      expect(perGroupVersion.map((r) => r.path).sort()).toEqual(['/api/v1', '/apis/discovery.k8s.io/v1']);
    }
  });

  it('falls back to the legacy discovery documents when the server has no aggregated discovery', async () => {
    const legacy = await TestApiServer.start({ discovery: 'legacy' });
    try {
      const kc = join(dir, 'kubeconfig-legacy');
      await legacy.writeKubeconfig(kc);
      legacy.create(service({ namespace: 'demo', name: 'old', clusterIP: '10.96.0.99' }));
      const r = await kubectlIn(legacy, kc, ['get', 'svc', '-A', '-o', 'name']);
      expect(r).toMatchObject({ code: 0, stdout: 'service/old\n' });
      const shortName = await kubectlIn(legacy, kc, ['get', 'no,ns', '-o', 'name']);
      expect(shortName.stdout).toContain('namespace/kube-system\n');
      expect(legacy.requests.some((q) => q.path === '/api/v1')).toBe(true);
      expect(legacy.requests.some((q) => q.path === '/apis/discovery.k8s.io/v1')).toBe(true);
    } finally {
      await legacy.stop();
    }
  });

  it('get svc,endpointslices -A lists both kinds across namespaces, also as JSON', async () => {
    const r = await kubectl('get', 'svc,endpointslices', '-A');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^demo\s+service\/web\s/m);
    expect(r.stdout).toMatch(/^kube-system\s+service\/kube-dns\s/m);
    expect(r.stdout).toMatch(/^demo\s+endpointslice\.discovery\.k8s\.io\/web-abc\s/m);
    // Printed from the server's tables, as on a cluster.
    const table = await kubectl('get', 'svc,endpointslices', '-n', 'demo', '-o', 'wide');
    expect(table.stdout).toMatch(/^NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE\s+SELECTOR$/m);
    expect(table.stdout).toMatch(/^service\/web\s+ClusterIP\s+10\.96\.0\.80\s+<none>\s+80\/TCP\s+\d+s\s+app=web$/m);
    expect(table.stdout).toMatch(/^NAME\s+ADDRESSTYPE\s+PORTS\s+ENDPOINTS\s+AGE$/m);
    expect(table.stdout).toMatch(/^endpointslice\.discovery\.k8s\.io\/web-abc\s+IPv4\s+8080\s+10\.244\.0\.11,10\.244\.0\.12\s+\d+s$/m);
    const selected = await kubectl('get', 'endpointslices', '-A', '-l', 'kubernetes.io/service-name=web', '-o', 'name');
    expect(selected).toMatchObject({ code: 0, stdout: 'endpointslice.discovery.k8s.io/web-abc\n' });
    expect((await kubectl('get', 'svc', '-A', '-l', 'app=none', '-o', 'name')).stdout).toBe('');
    const json = await kubectl('get', 'svc,endpointslices', '-A', '-o', 'json');
    const list = JSON.parse(json.stdout);
    expect(list.items.map((o: any) => `${o.kind} ${o.metadata.namespace}/${o.metadata.name}`)).toEqual([
      'Service demo/web', 'Service kube-system/kube-dns', 'EndpointSlice demo/web-abc',
    ]);
    expect(list.items[0].spec.clusterIP).toBe('10.96.0.80');
  });

  it('get -w shows the object ADDED, then MODIFIED as it changes, then DELETED', async () => {
    const w = spawn('kubectl', ['--kubeconfig', kubeconfig, 'get', 'svc', 'web', '-n', 'demo', '-w', '--output-watch-events', '--no-headers'], {
      env: { ...process.env, KUBECACHEDIR: join(dir, 'cache-watch') },
    });
    children.push(w);
    let out = '';
    w.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await until('the ADDED line', () => /^ADDED\s+web\s/m.test(out));
    await until('the watch to be open', () => server.watchCount === 1);
    server.update(service({ namespace: 'demo', name: 'web', clusterIP: '10.96.0.80', port: 8080 }));
    await until('the MODIFIED line', () => /^MODIFIED\s+web\s/m.test(out));
    server.delete('Service', 'demo', 'web');
    await until('the DELETED line', () => /^DELETED\s+web\s/m.test(out));
    expect(out.trim().split('\n').map((l) => l.split(/\s+/)[0])).toEqual(['ADDED', 'MODIFIED', 'DELETED']);
  });

  it('apply -f creates, an edited file patches (a port added, a label changed, an endpoint removed), the same file again changes nothing', async () => {
    const file = join(dir, 'api.yaml');
    writeFileSync(file, MANIFEST);
    const created = await kubectl('apply', '-f', file);
    expect(created).toMatchObject({ code: 0, stdout: 'service/api created\nendpointslice.discovery.k8s.io/api-1 created\n' });
    const first = stored('Service', 'demo', 'api');
    expect(JSON.parse(first.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']).spec.clusterIP).toBe('10.96.0.90');

    const { svc: editedSvc, slice: editedSlice } = apiObjects();
    editedSvc.metadata.labels.tier = 'api';
    editedSvc.spec.ports.push({ name: 'https', port: 443, targetPort: 8443 });
    editedSlice.endpoints.pop();
    writeFileSync(file, manifest([editedSvc, editedSlice]));
    const edited = await kubectl('apply', '-f', file);
    expect(edited).toMatchObject({ code: 0, stdout: 'service/api configured\nendpointslice.discovery.k8s.io/api-1 configured\n' });
    const svc = stored('Service', 'demo', 'api');
    expect(svc.metadata.labels).toEqual({ tier: 'api' });
    expect(svc.spec.ports.map((p: any) => `${p.name}:${p.port}`)).toEqual(['http:80', 'https:443']);
    expect(Number(svc.metadata.resourceVersion)).toBeGreaterThan(Number(first.metadata.resourceVersion));
    expect(svc.metadata.uid).toBe(first.metadata.uid);
    expect(stored('EndpointSlice', 'demo', 'api-1').endpoints.map((e: any) => e.addresses[0])).toEqual(['10.244.0.11']);
    const patches = server.requests.filter((r) => r.verb === 'patch');
    expect(patches.map((r) => r.resource)).toEqual(['services', 'endpointslices']);

    const rv = server.resourceVersion;
    const again = await kubectl('apply', '-f', file);
    expect(again).toMatchObject({ code: 0, stdout: 'service/api unchanged\nendpointslice.discovery.k8s.io/api-1 unchanged\n' });
    expect(server.resourceVersion).toBe(rv);
  });

  it('label and annotate patch the object (merge patch), and a no-op keeps the resourceVersion', async () => {
    expect(await kubectl('label', 'svc', 'web', '-n', 'demo', 'tier=frontend')).toMatchObject({ code: 0, stdout: 'service/web labeled\n' });
    // 1.27 prints "annotate".
    expect(await kubectl('annotate', 'svc/web', '-n', 'demo', 'owner=team-a')).toMatchObject({ code: 0, stdout: expect.stringMatching(/^service\/web annotated?\n$/) });
    expect(await kubectl('label', 'endpointslices', 'web-abc', '-n', 'demo', 'zone=a')).toMatchObject({ code: 0 });
    expect(await kubectl('label', 'node', 'node-a', 'role=edge')).toMatchObject({ code: 0 });
    let web = stored('Service', 'demo', 'web');
    expect(web.metadata.labels).toEqual({ tier: 'frontend' });
    expect(web.metadata.annotations).toEqual({ owner: 'team-a' });
    expect(stored('EndpointSlice', 'demo', 'web-abc').metadata.labels.zone).toBe('a');
    expect(stored('Node', undefined, 'node-a').metadata.labels.role).toBe('edge');

    const refused = await kubectl('label', 'svc', 'web', '-n', 'demo', 'tier=backend');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/'tier' already has a value \(frontend\)/);
    const rv = web.metadata.resourceVersion;
    expect(await kubectl('label', 'svc', 'web', '-n', 'demo', 'tier=frontend', '--overwrite')).toMatchObject({ code: 0 });
    expect(stored('Service', 'demo', 'web').metadata.resourceVersion).toBe(rv);
    // 1.20 says "labeled" for a removal too.
    expect(await kubectl('label', 'svc', 'web', '-n', 'demo', 'tier-')).toMatchObject({ code: 0, stdout: expect.stringMatching(/^service\/web (un)?labeled\n$/) });
    web = stored('Service', 'demo', 'web');
    expect(web.metadata.labels ?? {}).toEqual({});
    expect(Number(web.metadata.resourceVersion)).toBeGreaterThan(Number(rv));
  });

  it('patch takes each patch type, and answers a stale resourceVersion with 409 Conflict', async () => {
    expect(await kubectl('patch', 'svc', 'web', '-n', 'demo', '--type=strategic', '-p', '{"spec":{"ports":[{"port":443,"name":"https"}]}}')).toMatchObject({ code: 0 });
    expect(stored('Service', 'demo', 'web').spec.ports.map((p: any) => p.port)).toEqual([80, 443]);
    expect(await kubectl('patch', 'svc', 'web', '-n', 'demo', '--type=merge', '-p', '{"spec":{"selector":{"app":"v2"}}}')).toMatchObject({ code: 0 });
    expect(stored('Service', 'demo', 'web').spec.selector).toEqual({ app: 'v2' });
    expect(await kubectl('patch', 'endpointslice', 'web-abc', '-n', 'demo', '--type=json', '-p', '[{"op":"remove","path":"/endpoints/1"}]')).toMatchObject({ code: 0 });
    expect(stored('EndpointSlice', 'demo', 'web-abc').endpoints).toHaveLength(1);

    const stale = await kubectl('patch', 'svc', 'web', '-n', 'demo', '--type=merge', '-p', '{"metadata":{"resourceVersion":"1"},"spec":{"selector":{"app":"v3"}}}');
    expect(stale.code).not.toBe(0);
    expect(stale.stderr).toMatch(/Operation cannot be fulfilled on services "web": the object has been modified/);
    const failed = await kubectl('patch', 'svc', 'web', '-n', 'demo', '--type=json', '-p', '[{"op":"test","path":"/spec/clusterIP","value":"10.0.0.1"}]');
    expect(failed.code).not.toBe(0);
    // 1.20 prints only "The request is invalid" for a 422 without field causes.
    expect(failed.stderr).toMatch(minor >= 26 ? /JSON patch operation 0 \(test \/spec\/clusterIP\)/ : /The request is invalid/);
    expect(stored('Service', 'demo', 'web').spec.selector).toEqual({ app: 'v2' });
    expect(server.requests.filter((r) => r.verb === 'patch').map((r) => r.status)).toEqual([200, 200, 200, 409, 422]);
  });

  it('edit (a strategic merge patch of what the editor changed) and replace (a PUT that names the version it read)', async () => {
    // The "editor" is sed: kubectl writes the object to a file, runs it, and patches the difference.
    const edited = await kubectlIn(server, kubeconfig, ['edit', 'endpointslice', 'web-abc', '-n', 'demo'], { KUBE_EDITOR: 'sed -i s/10.244.0.12/10.244.0.13/' });
    expect(edited).toMatchObject({ code: 0, stdout: 'endpointslice.discovery.k8s.io/web-abc edited\n' });
    expect(stored('EndpointSlice', 'demo', 'web-abc').endpoints.map((e: any) => e.addresses[0])).toEqual(['10.244.0.11', '10.244.0.13']);

    const current = (await kubectl('get', 'svc', 'web', '-n', 'demo', '-o', 'json')).stdout;
    const file = join(dir, 'web.json');
    const read = JSON.parse(current);
    read.spec.ports[0].port = 8080;
    writeFileSync(file, JSON.stringify(read));
    expect(await kubectl('replace', '-f', file)).toMatchObject({ code: 0, stdout: 'service/web replaced\n' });
    expect(stored('Service', 'demo', 'web').spec.ports[0].port).toBe(8080);
    // The same file again names a version that is no longer the stored one.
    const stale = await kubectl('replace', '-f', file);
    expect(stale.code).not.toBe(0);
    expect(stale.stderr).toMatch(/the object has been modified; please apply your changes to the latest version/);
    expect(server.requests.filter((r) => r.verb === 'update').map((r) => r.status)).toEqual([200, 409]);
  });

  it('refuses invalid objects (422, the field named), unknown fields (strict), and server-side apply (415)', async () => {
    const file = join(dir, 'bad.yaml');
    const { svc: bad, slice } = apiObjects();
    bad.spec.ports[0].port = 70000;
    writeFileSync(file, manifest([bad, slice]));
    const invalid = await kubectl('apply', '-f', file);
    expect(invalid.code).not.toBe(0);
    expect(invalid.stderr).toMatch(/The Service "api" is invalid: spec\.ports\[0\]\.port: Invalid value: 70000: must be between 1 and 65535/);
    bad.spec.ports[0].port = 80;
    bad.spec.clusterIPz = 'x';
    writeFileSync(file, manifest([bad, slice]));
    const unknown = await kubectl('apply', '-f', file);
    if (minor >= 27) {
      // kubectl found fieldValidation in the OpenAPI v3 and asked for Strict.
      expect(unknown.code).not.toBe(0);
      expect(unknown.stderr).toMatch(/strict decoding error: unknown field "spec\.clusterIPz"/);
      expect(stored('Service', 'demo', 'api')).toBeUndefined();
    } else {
      // Older kubectl sends no fieldValidation: the server's default, Warn.
      expect(unknown.code).toBe(0);
      expect(unknown.stderr).toMatch(/Warning: unknown field "spec\.clusterIPz"/);
      expect(await kubectl('delete', '-f', file)).toMatchObject({ code: 0 });
    }
    writeFileSync(file, MANIFEST);
    const ssa = await kubectl('apply', '--server-side', '-f', file);
    expect(ssa.code).not.toBe(0);
    expect(ssa.stderr).toMatch(/server-side apply \(application\/apply-patch\+yaml\) is not implemented/);
  });

  it('delete removes the object; get ns shows the initial namespaces and those objects were created in', async () => {
    expect(await kubectl('delete', 'svc', 'web', '-n', 'demo')).toMatchObject({ code: 0, stdout: 'service "web" deleted\n' });
    expect(stored('Service', 'demo', 'web')).toBeUndefined();
    const missing = await kubectl('get', 'svc', 'web', '-n', 'demo');
    expect(missing.stderr).toMatch(/services "web" not found/);

    const ns = await kubectl('get', 'ns', '-o', 'name');
    expect(ns.stdout).toBe('namespace/default\nnamespace/demo\nnamespace/kube-node-lease\nnamespace/kube-public\nnamespace/kube-system\n');
    expect(await kubectl('create', 'namespace', 'team-b')).toMatchObject({ code: 0, stdout: 'namespace/team-b created\n' });
    const phase = await kubectl('get', 'ns', 'team-b', '-o', 'jsonpath={.status.phase} {.metadata.labels.kubernetes\\.io/metadata\\.name}');
    expect(phase.stdout).toBe('Active team-b');
    // A namespace takes what is in it along; the built-in ones may not be deleted.
    expect(await kubectl('delete', 'ns', 'demo')).toMatchObject({ code: 0 });
    expect(stored('EndpointSlice', 'demo', 'web-abc')).toBeUndefined();
    const forbidden = await kubectl('delete', 'ns', 'kube-system');
    expect(forbidden.stderr).toMatch(/namespaces "kube-system" is forbidden: this namespace may not be deleted/);
  });
});
