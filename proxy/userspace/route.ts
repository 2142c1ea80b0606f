// Where one service port sends traffic, per path: the Cluster-policy endpoints or this node's,
// as the plan's traffic policies say. Both paths share one balancer when they use the same
// endpoints, so a ClientIP-sticky client lands on the same endpoint through the cluster IP and
// the node port, as kube-proxy's chains do.
import type { ServicePortPlan } from '../core/model.js';
import { Balancer } from './balancer.js';
import type { TrafficPath } from './listeners.js';

export class PortRoute {
  private readonly cluster: Balancer;
  private readonly local: Balancer;
  private internalLocal = false;
  private externalLocal = false;

  constructor(plan: ServicePortPlan, now: () => number = Date.now) {
    this.cluster = new Balancer(now);
    this.local = new Balancer(now);
    this.update(plan);
  }

  update(plan: ServicePortPlan): void {
    this.internalLocal = plan.internalLocal;
    this.externalLocal = plan.externalLocal;
    this.cluster.update(plan.clusterEndpoints, plan.affinitySeconds);
    this.local.update(plan.localEndpoints, plan.affinitySeconds);
  }

  balancer(path: TrafficPath): Balancer {
    return (path === 'internal' ? this.internalLocal : this.externalLocal) ? this.local : this.cluster;
  }

  expire(): void {
    this.cluster.expire();
    this.local.expire();
  }
}
