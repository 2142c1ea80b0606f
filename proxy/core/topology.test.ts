import { describe, expect, it } from 'vitest';
import type { Endpoint } from '../../cluster/types.js';
import { selectEndpoints, type SelectionInput } from './topology.js';

const ME = 'node-a';

function ep(ip: string, opts: Partial<Endpoint> = {}): Endpoint {
  const ready = opts.ready ?? true;
  return { ip, family: 'IPv4', ready, serving: opts.serving ?? ready, terminating: opts.terminating ?? false, nodeName: opts.nodeName ?? 'node-b', ...opts };
}
const hints = (zones: string[], nodes: string[] = []) => ({ forZones: zones, forNodes: nodes });

function select(endpoints: Endpoint[], over: Partial<SelectionInput> = {}) {
  const s = selectEndpoints({ endpoints, nodeName: ME, zone: 'z1', internalLocal: false, externalLocal: false, externallyAccessible: false, ...over });
  return { cluster: s.cluster.map((e) => e.ip), local: s.local.map((e) => e.ip), hasAny: s.hasAny, topology: s.topology };
}

describe('selectEndpoints', () => {
  const cases: { name: string; eps: Endpoint[]; over?: Partial<SelectionInput>; cluster: string[]; local: string[]; hasAny: boolean; topology?: string }[] = [
    { name: 'ready endpoints serve cluster traffic', eps: [ep('10.0.0.1'), ep('10.0.0.2')], cluster: ['10.0.0.1', '10.0.0.2'], local: [], hasAny: true },
    { name: 'not-ready endpoints are left out', eps: [ep('10.0.0.1'), ep('10.0.0.2', { ready: false })], cluster: ['10.0.0.1'], local: [], hasAny: true },
    {
      name: 'no ready endpoint: serving-terminating ones take over',
      eps: [ep('10.0.0.1', { ready: false, serving: true, terminating: true }), ep('10.0.0.2', { ready: false, serving: false, terminating: true })],
      cluster: ['10.0.0.1'], local: [], hasAny: true,
    },
    { name: 'a ready endpoint wins over a terminating one', eps: [ep('10.0.0.1', { ready: false, serving: true, terminating: true }), ep('10.0.0.2')], cluster: ['10.0.0.2'], local: [], hasAny: true },
    { name: 'nothing usable: hasAny is false (REJECT)', eps: [ep('10.0.0.1', { ready: false })], cluster: [], local: [], hasAny: false },
    {
      name: 'internalTrafficPolicy Local: only this node, no cluster set',
      eps: [ep('10.0.0.1', { nodeName: ME }), ep('10.0.0.2')], over: { internalLocal: true },
      cluster: [], local: ['10.0.0.1'], hasAny: true,
    },
    {
      name: 'iTP Local with no local endpoint: hasAny stays true (DROP, not REJECT)',
      eps: [ep('10.0.0.2')], over: { internalLocal: true }, cluster: [], local: [], hasAny: true,
    },
    {
      name: 'eTP Local: local set for external, cluster set for internal',
      eps: [ep('10.0.0.1', { nodeName: ME }), ep('10.0.0.2')], over: { externalLocal: true, externallyAccessible: true },
      cluster: ['10.0.0.1', '10.0.0.2'], local: ['10.0.0.1'], hasAny: true,
    },
    {
      name: 'local set falls back to local serving-terminating endpoints',
      eps: [ep('10.0.0.1', { nodeName: ME, ready: false, serving: true, terminating: true }), ep('10.0.0.2')], over: { internalLocal: true },
      cluster: [], local: ['10.0.0.1'], hasAny: true,
    },
    // Topology, as kube-proxy's CategorizeEndpoints / topologyModeFromHints decide it
    // (pkg/proxy/topology.go): kube-proxy reads only the hints. trafficDistribution (PreferClose,
    // PreferSameZone, PreferSameNode) and the service.kubernetes.io/topology-mode annotation are
    // read by the EndpointSlice controller, which writes the hints; kube-proxy never applies
    // locality of its own. Node hints apply when EVERY ready endpoint has one and one names this
    // node; else zone hints when every ready endpoint has one and one names this node's zone;
    // else every ready endpoint.
    {
      name: 'zone hints on every ready endpoint: those hinted for my zone',
      eps: [ep('10.0.0.1', { hints: hints(['z1']) }), ep('10.0.0.2', { hints: hints(['z2']) })],
      cluster: ['10.0.0.1'], local: [], hasAny: true, topology: 'hints-zone',
    },
    {
      name: 'node hints on every ready endpoint, one for this node: those hinted for this node (PreferSameNode)',
      eps: [ep('10.0.0.1', { hints: hints(['z1'], ['node-b']) }), ep('10.0.0.2', { hints: hints(['z1'], [ME]) }), ep('10.0.0.3', { hints: hints(['z1'], ['node-c']) })],
      cluster: ['10.0.0.2'], local: [], hasAny: true, topology: 'hints-node',
    },
    {
      name: 'node hints on only some ready endpoints: ignored, zone hints decide',
      eps: [ep('10.0.0.1', { hints: hints(['z1']) }), ep('10.0.0.2', { hints: hints(['z1'], [ME]) }), ep('10.0.0.3', { hints: hints(['z2'], ['node-c']) })],
      cluster: ['10.0.0.1', '10.0.0.2'], local: [], hasAny: true, topology: 'hints-zone',
    },
    {
      name: 'node hints on every ready endpoint, none for this node: zone hints decide',
      eps: [ep('10.0.0.1', { hints: hints(['z1'], ['node-b']) }), ep('10.0.0.2', { hints: hints(['z2'], ['node-c']) })],
      cluster: ['10.0.0.1'], local: [], hasAny: true, topology: 'hints-zone',
    },
    {
      name: 'node hints without zone hints, none for this node: every ready endpoint',
      eps: [ep('10.0.0.1', { hints: hints([], ['node-b']) }), ep('10.0.0.2', { hints: hints([], ['node-c']) })],
      cluster: ['10.0.0.1', '10.0.0.2'], local: [], hasAny: true, topology: 'none',
    },
    {
      name: 'one ready endpoint without hints disables hints',
      eps: [ep('10.0.0.1', { hints: hints(['z1']) }), ep('10.0.0.2')],
      cluster: ['10.0.0.1', '10.0.0.2'], local: [], hasAny: true, topology: 'none',
    },
    {
      name: 'a not-ready endpoint without hints does not disable them',
      eps: [ep('10.0.0.1', { hints: hints(['z1']) }), ep('10.0.0.2', { hints: hints(['z2']) }), ep('10.0.0.3', { ready: false })],
      cluster: ['10.0.0.1'], local: [], hasAny: true, topology: 'hints-zone',
    },
    {
      name: 'hints for other zones only: all endpoints',
      eps: [ep('10.0.0.1', { hints: hints(['z2']) }), ep('10.0.0.2', { hints: hints(['z3']) })],
      cluster: ['10.0.0.1', '10.0.0.2'], local: [], hasAny: true, topology: 'none',
    },
    {
      name: 'a node without a zone label ignores zone hints',
      eps: [ep('10.0.0.1', { hints: hints(['z1']) }), ep('10.0.0.2', { hints: hints(['z2']) })], over: { zone: undefined },
      cluster: ['10.0.0.1', '10.0.0.2'], local: [], hasAny: true, topology: 'none',
    },
    ...(['PreferClose', 'PreferSameZone', 'PreferSameNode'] as const).map((td) => ({
      name: `${td} without hints: no locality at all, every ready endpoint`,
      eps: [ep('10.0.0.1', { nodeName: ME, zone: 'z1' }), ep('10.0.0.2', { zone: 'z1' }), ep('10.0.0.3', { zone: 'z2' })], over: { trafficDistribution: td },
      cluster: ['10.0.0.1', '10.0.0.2', '10.0.0.3'], local: [], hasAny: true, topology: 'none',
    })),
    {
      name: 'hints apply whatever trafficDistribution says (the controller wrote them, e.g. for topology-mode: Auto)',
      eps: [ep('10.0.0.1', { hints: hints(['z1']) }), ep('10.0.0.2', { hints: hints(['z2']) })], over: { trafficDistribution: undefined },
      cluster: ['10.0.0.1'], local: [], hasAny: true, topology: 'hints-zone',
    },
    {
      name: 'topology never narrows the Local set, nor the serving-terminating fallback',
      eps: [
        ep('10.0.0.1', { nodeName: ME, hints: hints(['z2']) }),
        ep('10.0.0.2', { hints: hints(['z1']) }),
      ],
      over: { externalLocal: true, externallyAccessible: true },
      cluster: ['10.0.0.2'], local: ['10.0.0.1'], hasAny: true, topology: 'hints-zone',
    },
    {
      name: 'no ready endpoint: serving-terminating ones, hints ignored',
      eps: [ep('10.0.0.1', { ready: false, serving: true, terminating: true, hints: hints(['z2']) }), ep('10.0.0.2', { ready: false, serving: true, terminating: true, hints: hints(['z1']) })],
      cluster: ['10.0.0.1', '10.0.0.2'], local: [], hasAny: true, topology: 'none',
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = select(c.eps, c.over);
      expect(got.cluster).toEqual(c.cluster);
      expect(got.local).toEqual(c.local);
      expect(got.hasAny).toBe(c.hasAny);
      if (c.topology) expect(got.topology).toBe(c.topology);
    });
  }
});
