// The whole product on one node, as the DaemonSet runs it: `kube-dataplane agent` (proxy + DNS on
// one catalog) in a node namespace, pods wired by Debian's bridge plugin delegating to our IPAM
// with the ranges the agent publishes from the Node's spec.podCIDRs, real dig, real connections.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, startExampleNode, type ExampleNode } from './harness/example-node.js';

describe('kube-dataplane agent on one node', () => {
  let ex: ExampleNode;

  beforeAll(async () => {
    ex = await startExampleNode();
  });

  afterAll(async () => {
    await ex?.destroy();
  });

  const dig = async (...args: string[]) => (await ex.pods.client.exec('dig', ['+short', ...args])).stdout.trim();

  it('IPAM gave the pods addresses from the node pod CIDRs the agent published', () => {
    expect(ex.addresses['web-0']).toEqual(['10.244.0.11/24', 'fd00:244::11/64']);
    expect(ex.addresses['web-1']).toEqual(['10.244.0.12/24', 'fd00:244::12/64']);
    const [v4, v6] = ex.addresses.client;
    expect(v4).toMatch(/^10\.244\.0\.\d+\/24$/);
    expect(v6).toMatch(/^fd00:244::[0-9a-f]+\/64$/);
    expect([v4, v6]).not.toContain('10.244.0.11/24');
    expect([v4, v6]).not.toContain('10.244.0.12/24');
  });

  it('answers cluster names from the pod, including through its search path', async () => {
    expect(await dig('web.demo.svc.cluster.local')).toBe('10.96.0.80');
    expect(await dig('AAAA', 'web.demo.svc.cluster.local')).toBe('fd00:96::80');
    expect(await dig('+search', 'web')).toBe('10.96.0.80');
    expect(await dig('docs.demo.svc.cluster.local')).toBe('docs.example.test.\n192.0.2.10');
  });

  it('balances connections to a ClusterIP over both backends, over IPv4 and IPv6', async () => {
    for (const url of ['http://10.96.0.80/', 'http://[fd00:96::80]/']) {
      const counts = await ex.fetchCounts(url, 30);
      expect(Object.keys(counts).sort(), url).toEqual(['web-0', 'web-1']);
    }
  });

  it('serves the proxy health and the DNS readiness endpoints', async () => {
    const get = async (url: string) => (await ex.node.exec('node', ['-e', `fetch(${JSON.stringify(url)}).then(async r => console.log(r.status, await r.text()))`])).stdout;
    expect(await get('http://127.0.0.1:10256/healthz')).toMatch(/^200 /);
    expect(await get('http://127.0.0.1:8181/ready')).toMatch(/^200 /);
    const proxyMetrics = await get('http://127.0.0.1:10249/metrics');
    const dnsMetrics = await get('http://127.0.0.1:9153/metrics');
    expect(proxyMetrics).toContain('kubeproxy_sync_proxy_rules_duration_seconds');
    expect(dnsMetrics).toContain('coredns_dns_requests_total');
    // The shared catalog's own metrics are served on both.
    for (const m of [proxyMetrics, dnsMetrics]) expect(m).toMatch(/^kubedataplane_catalog_objects\{kind="Service"\} 3$/m);
  });

  it('follows a manifest edit in both halves: a new service resolves and connects', async () => {
    writeFileSync(
      join(ex.manifests, 'api.yaml'),
      `apiVersion: v1
kind: Service
metadata: { name: api, namespace: demo }
spec:
  clusterIP: 10.96.0.81
  ports: [{ name: http, port: 80, targetPort: 8080 }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: api-1, namespace: demo, labels: { kubernetes.io/service-name: api } }
addressType: IPv4
ports: [{ name: http, port: 8080, protocol: TCP }]
endpoints: [{ addresses: [10.244.0.12] }]
`,
    );
    const { answer, counts } = await ex.waitUntilServed('api.demo.svc.cluster.local', '10.96.0.81', 'http://api.demo.svc.cluster.local/', 'web-1');
    expect(answer).toBe('10.96.0.81');
    expect(counts).toEqual({ 'web-1': 3 });
  });

  it('exits 1 naming the reason when a port it needs is taken', async () => {
    // The running agent holds the DNS port; a second one on the same node must fail cleanly.
    const second = ex.node.spawn(process.execPath, [BIN, ...ex.agentArgs, '--healthz-bind-address', '127.0.0.1:20256', '--metrics-bind-address', '127.0.0.1:20249', '--node-pod-cidrs-file', ''], { label: 'agent-2' });
    const code = await Promise.race([second.exited, new Promise((r) => setTimeout(r, 20_000, 'hung'))]);
    expect(code).toBe(1);
    expect(second.stderr).toMatch(/EADDRINUSE/);
  });

  it('stops cleanly on SIGTERM', async () => {
    expect(await ex.agent.stop(5_000)).toBe(0);
  });
});
