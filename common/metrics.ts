// The process-wide registry for what the shared parts measure (the catalog, the watches). The
// proxy and DNS halves each keep their own registry, named as kube-proxy's and CoreDNS's so
// existing dashboards work, and serve it on their own /metrics together with this one.
import type { Registry } from 'prom-client';
import { Registry as PromRegistry } from 'prom-client';

export const registry = new PromRegistry();

/** Returns the metric already registered under `name`, or creates it: modules and tests may
 *  construct a component twice in one process, and prom-client refuses duplicate names. */
export function metricOnce<T>(name: string, create: () => T): T {
  const existing = registry.getSingleMetric(name);
  return (existing as T | undefined) ?? create();
}

/** The /metrics body of a component: its own registry, then the shared one. */
export async function exposition(own: Registry): Promise<string> {
  return (await own.metrics()) + '\n' + (await registry.metrics());
}
