// The process-wide Prometheus registry. Components register their metrics here under the names
// kube-proxy and CoreDNS use, so existing dashboards keep working.
import { Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
let defaultsOn = false;

/** Process metrics (RSS, CPU, event-loop lag); called once by long-running commands. */
export function enableProcessMetrics(): void {
  if (defaultsOn) return;
  defaultsOn = true;
  collectDefaultMetrics({ register: registry });
}

/** Returns the metric already registered under `name`, or creates it: modules and tests may
 *  construct a component twice in one process, and prom-client refuses duplicate names. */
export function metricOnce<T>(name: string, create: () => T): T {
  const existing = registry.getSingleMetric(name);
  return (existing as T | undefined) ?? create();
}
