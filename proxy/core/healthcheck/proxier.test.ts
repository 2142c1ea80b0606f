import { describe, expect, it } from 'vitest';
import { normalizeNode } from '../../../cluster/normalize.js';
import type { Node } from '../../../cluster/types.js';
import { nodeEligible, ProxierHealth } from './proxier.js';

function node(metadata: Record<string, unknown>, spec: Record<string, unknown> = {}): Node {
  const r = normalizeNode({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1', ...metadata }, spec });
  if (!r.ok) throw new Error(r.errors.join('; '));
  return r.value;
}

describe('node eligibility (kube-proxy SyncNode, KEP-3836)', () => {
  it('eligible unless being deleted or tainted ToBeDeletedByClusterAutoscaler (any effect)', () => {
    expect(nodeEligible(node({}))).toBe(true);
    expect(nodeEligible(node({}, { taints: [{ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' }] }))).toBe(true);
    expect(nodeEligible(node({}, { taints: [{ key: 'ToBeDeletedByClusterAutoscaler', value: '1700000000', effect: 'NoSchedule' }] }))).toBe(false);
    expect(nodeEligible(node({}, { taints: [{ key: 'ToBeDeletedByClusterAutoscaler', effect: 'PreferNoSchedule' }] }))).toBe(false);
    expect(nodeEligible(node({ deletionTimestamp: '2026-12-01T00:00:00Z' }))).toBe(false);
  });

  it('/healthz 503 with nodeEligible false while not eligible; /livez ignores it', () => {
    const h = new ProxierHealth(60_000, () => 1_000);
    expect(h.healthz().status).toBe(200); // starting up: eligible until a Node says otherwise
    h.syncNode(node({ deletionTimestamp: '2026-12-01T00:00:00Z' }));
    expect(h.healthz().status).toBe(503);
    expect(JSON.parse(h.healthz().body).nodeEligible).toBe(false);
    expect(h.livez().status).toBe(200);
    expect(JSON.parse(h.livez().body)).not.toHaveProperty('nodeEligible');
    // The Node gone from the catalog: the last judgment stays (kube-proxy judges the deleted object).
    h.syncNode(undefined);
    expect(h.nodeEligible).toBe(false);
    h.syncNode(node({}));
    expect(h.healthz().status).toBe(200);
    expect(JSON.parse(h.healthz().body).nodeEligible).toBe(true);
  });

  it('a stalled proxy fails both; an ineligible but healthy one fails only /healthz', () => {
    let now = 1; // 0 would read as "nothing pending"
    const h = new ProxierHealth(1_000, () => now);
    h.queued();
    now = 1_501;
    expect([h.healthz().status, h.livez().status]).toEqual([503, 503]);
    h.updated();
    h.syncNode(node({}, { taints: [{ key: 'ToBeDeletedByClusterAutoscaler', effect: 'NoSchedule' }] }));
    expect([h.healthz().status, h.livez().status]).toEqual([503, 200]);
  });
});
