// The agent as the DaemonSet runs it: reading a Kubernetes API through --kubeconfig (the repo's
// test API server, real @kubernetes/client-node) instead of a manifest directory. Same node,
// pods and checks as agent-e2e, plus a change made through the API reaching DNS and the rules.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExampleNode, type ExampleNode } from './harness/example-node.js';

describe('kube-dataplane agent --kubeconfig on one node', () => {
  let ex: ExampleNode;

  beforeAll(async () => {
    ex = await startExampleNode({ source: 'api' });
  });

  afterAll(async () => {
    await ex?.destroy();
  });

  const dig = async (...args: string[]) => (await ex.pods.client.exec('dig', ['+short', ...args])).stdout.trim();

  it('listed the API: names resolve and the ClusterIP reaches both backends', async () => {
    expect(await dig('web.demo.svc.cluster.local')).toBe('10.96.0.80');
    expect(await dig('AAAA', 'web.demo.svc.cluster.local')).toBe('fd00:96::80');
    const counts = await ex.fetchCounts('http://10.96.0.80/', 30);
    expect(Object.keys(counts).sort()).toEqual(['web-0', 'web-1']);
  });

  it('published the Node spec.podCIDRs it watched for the IPAM plugin', () => {
    expect(ex.addresses.client[0]).toMatch(/^10\.244\.0\.\d+\/24$/);
  });

  it('follows a service and its slice created through the API', async () => {
    await ex.apiWrite('POST', '/api/v1/namespaces/demo/services', {
      apiVersion: 'v1', kind: 'Service', metadata: { name: 'api', namespace: 'demo' },
      spec: { clusterIP: '10.96.0.82', ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
    });
    await ex.apiWrite('POST', '/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices', {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
      metadata: { name: 'api-1', namespace: 'demo', labels: { 'kubernetes.io/service-name': 'api' } },
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], endpoints: [{ addresses: ['10.244.0.11'] }],
    });
    const { answer, counts } = await ex.waitUntilServed('api.demo.svc.cluster.local', '10.96.0.82', 'http://10.96.0.82/', 'web-0');
    expect(answer).toBe('10.96.0.82');
    expect(counts).toEqual({ 'web-0': 3 });
  });

  it('watches Namespaces: one without services is a name (NODATA, as CoreDNS answers) until it is deleted', async () => {
    const status = async (name: string) => {
      const out = (await ex.pods.client.exec('dig', ['+time=2', '+tries=1', name, 'A'])).stdout;
      return `${/status: (\w+)/.exec(out)?.[1]} ${/ANSWER: (\d+)/.exec(out)?.[1]} ${/AUTHORITY: (\d+)/.exec(out)?.[1]}`;
    };
    const poll = async (name: string, want: string) => {
      let got = '';
      for (let i = 0; i < 100 && got !== want; i++) {
        got = await status(name);
        if (got !== want) await new Promise((r) => setTimeout(r, 50));
      }
      return got;
    };
    expect(await status('quiet.svc.cluster.local')).toBe('NXDOMAIN 0 1');
    await ex.apiWrite('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'quiet' } });
    expect(await poll('quiet.svc.cluster.local', 'NOERROR 0 1')).toBe('NOERROR 0 1');
    await ex.apiWrite('DELETE', '/api/v1/namespaces/quiet');
    expect(await poll('quiet.svc.cluster.local', 'NXDOMAIN 0 1')).toBe('NXDOMAIN 0 1');
  });
});
