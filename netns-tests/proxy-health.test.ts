// Node eligibility on /healthz, as kube-proxy reports it (KEP-3836, issue 11 item 9): a node
// being deleted (metadata.deletionTimestamp) or tainted ToBeDeletedByClusterAutoscaler makes
// /healthz answer 503 with "nodeEligible": false, so that load balancers drain it, while /livez
// (the liveness probe) stays 200: the proxy itself is fine and must not be restarted for it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE, ProxyEnv, serviceYaml } from './proxy-env.js';

function nodeYaml(o: { taints?: { key: string; effect: string }[]; deleting?: boolean }): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: NODE, ...(o.deleting ? { deletionTimestamp: '2026-12-01T00:00:00Z', finalizers: ['example.com/hold'] } : {}) },
    spec: { taints: o.taints ?? [] },
    status: { addresses: [{ type: 'InternalIP', address: '192.168.50.1' }] },
  }) + '\n';
}

describe('proxy: /healthz reports node eligibility as kube-proxy does', () => {
  let env: ProxyEnv;

  beforeAll(async () => {
    env = await ProxyEnv.create({ pods: ['pod-a'] });
    env.write('web.yaml', serviceYaml({ name: 'web', clusterIPs: ['10.96.8.1'], endpoints: [{ ip: env.pods[0].ip4 }] }));
    env.write('node.yaml', nodeYaml({}));
    await env.startProxy({ pods: [] });
  });
  afterAll(async () => {
    await env?.destroy();
  });

  const get = async (path: string) => {
    const r = await env.http(`http://127.0.0.1:10256${path}`);
    return { status: r.status, body: JSON.parse(r.body) as Record<string, unknown> };
  };

  it('an ordinary node is eligible', async () => {
    const h = await get('/healthz');
    expect(h.status).toBe(200);
    expect(h.body.nodeEligible).toBe(true);
  });

  it('tainted ToBeDeletedByClusterAutoscaler: /healthz 503 with nodeEligible false; /livez 200', async () => {
    env.write('node.yaml', nodeYaml({ taints: [{ key: 'ToBeDeletedByClusterAutoscaler', effect: 'NoSchedule' }] }));
    const h = await env.eventually('healthz 503', () => get('/healthz'), (r) => r.status === 503);
    expect(h.body.nodeEligible).toBe(false);
    const l = await get('/livez');
    expect(l.status).toBe(200);
    expect(l.body).not.toHaveProperty('nodeEligible');
  });

  it('another taint does not count; the taint removed makes it eligible again', async () => {
    env.write('node.yaml', nodeYaml({ taints: [{ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' }] }));
    const h = await env.eventually('healthz 200', () => get('/healthz'), (r) => r.status === 200);
    expect(h.body.nodeEligible).toBe(true);
  });

  it('a node being deleted (deletionTimestamp set): /healthz 503, /livez 200', async () => {
    env.write('node.yaml', nodeYaml({ deleting: true }));
    const h = await env.eventually('healthz 503', () => get('/healthz'), (r) => r.status === 503);
    expect(h.body.nodeEligible).toBe(false);
    expect((await get('/livez')).status).toBe(200);
  });
});
