// Turns one Service and its merged EndpointSlices into the ServicePlan backends render: the
// policy decisions (which addresses capture traffic, which endpoints serve it) made once here.
import type { Endpoint, IPFamily, Service, ServiceEndpoints, ServicePort } from '../../cluster/types.js';
import { familyOf } from '../../common/ip.js';
import type { ServicePlan, ServicePortPlan, Target } from './model.js';
import { selectEndpoints } from './topology.js';

export interface NodeContext {
  readonly nodeName: string;
  readonly zone?: string;
}

/** Why a service gets no rules at all, or undefined when it does. */
export function skipReason(svc: Service): string | undefined {
  if (svc.type === 'ExternalName') return 'ExternalName';
  if (svc.headless) return 'headless';
  if (svc.serviceProxyName) return `service-proxy-name ${svc.serviceProxyName}`;
  if (svc.clusterIPs.length === 0) return 'no cluster IP';
  return undefined;
}

export function portName(svc: Pick<Service, 'namespace' | 'name'>, port: Pick<ServicePort, 'name'>): string {
  return `${svc.namespace}/${svc.name}${port.name ? `:${port.name}` : ''}`;
}

function byTarget(a: Target, b: Target): number {
  return a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.port - b.port;
}

/** The endpoints of one service port in one family, each with its own target port. */
function endpointsFor(eps: ServiceEndpoints | undefined, port: ServicePort, family: IPFamily): { ep: Endpoint; port: number }[] {
  const out: { ep: Endpoint; port: number }[] = [];
  if (!eps) return out;
  for (const p of eps.ports) {
    if (p.name !== port.name || p.protocol !== port.protocol) continue;
    for (const ep of p.endpoints) if (ep.family === family) out.push({ ep, port: p.port });
  }
  return out;
}

export function planService(svc: Service, eps: ServiceEndpoints | undefined, node: NodeContext): ServicePlan | undefined {
  if (skipReason(svc)) return undefined;
  const ports: ServicePortPlan[] = [];
  const seen = new Set<string>();
  for (const port of svc.ports) {
    const id = `${port.name}/${port.protocol}`;
    // The API refuses duplicates; a hand-written manifest may not. The first one wins, as a map
    // keyed by port name would have it.
    if (seen.has(id)) continue;
    seen.add(id);
    for (const clusterIP of svc.clusterIPs) {
      const family = familyOf(clusterIP);
      const ofFamily = (ips: readonly string[]) => ips.filter((ip) => familyOf(ip) === family);
      const externalIPs = ofFamily(svc.externalIPs);
      const loadBalancerIPs = svc.type === 'LoadBalancer' ? ofFamily(svc.loadBalancerIPs) : [];
      const nodePort = svc.type === 'NodePort' || svc.type === 'LoadBalancer' ? port.nodePort : 0;
      const externallyAccessible = nodePort > 0 || externalIPs.length > 0 || loadBalancerIPs.length > 0;
      const candidates = endpointsFor(eps, port, family);
      const portOf = new Map(candidates.map((c) => [c.ep, c.port]));
      const sel = selectEndpoints({
        endpoints: candidates.map((c) => c.ep),
        nodeName: node.nodeName,
        zone: node.zone,
        internalLocal: svc.internalTrafficPolicy === 'Local',
        externalLocal: svc.externalTrafficPolicy === 'Local',
        externallyAccessible,
        trafficDistribution: svc.trafficDistribution,
      });
      const toTarget = (ep: Endpoint): Target => ({ ip: ep.ip, port: portOf.get(ep)!, local: ep.nodeName === node.nodeName, ready: ep.ready, ...(ep.nodeName ? {} : { nodeUnknown: true }) });
      ports.push({
        serviceKey: svc.key,
        name: portName(svc, port),
        family,
        protocol: port.protocol,
        port: port.port,
        clusterIP,
        nodePort,
        externalIPs,
        loadBalancerIPs,
        firewall: loadBalancerIPs.length > 0 && svc.loadBalancerSourceRanges.length > 0,
        sourceRanges: svc.loadBalancerSourceRanges.filter((c) => familyOf(c.split('/')[0]) === family),
        affinitySeconds: svc.sessionAffinity === 'ClientIP' ? svc.sessionAffinityTimeoutSeconds : 0,
        internalLocal: svc.internalTrafficPolicy === 'Local',
        externalLocal: svc.externalTrafficPolicy === 'Local' && externallyAccessible,
        externallyAccessible,
        clusterEndpoints: sel.cluster.map(toTarget).sort(byTarget),
        localEndpoints: sel.local.map(toTarget).sort(byTarget),
        hasAnyEndpoints: sel.hasAny,
      });
    }
  }
  // Counted per family and the larger taken: a dual-stack pod is one endpoint, not two.
  const localReady = { IPv4: 0, IPv6: 0 };
  for (const ep of eps?.endpoints ?? []) if (ep.ready && ep.nodeName === node.nodeName) localReady[ep.family]++;
  return {
    key: svc.key,
    namespace: svc.namespace,
    name: svc.name,
    ports,
    healthCheckNodePort: svc.externalTrafficPolicy === 'Local' ? svc.healthCheckNodePort : 0,
    localReadyEndpoints: Math.max(localReady.IPv4, localReady.IPv6),
    ...(eps?.lastChangeTriggerTime !== undefined ? { lastChangeTriggerTime: eps.lastChangeTriggerTime } : {}),
  };
}
