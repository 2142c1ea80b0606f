// Reverse names of the cluster zone's addresses: which names an address points back to. The
// catalog indexes every address's owners (a service's cluster IP, an endpoint, a pod), so
// nothing is indexed here; a PTR answer is derived when first asked, then kept by the zone.
import type { CatalogView, ObjectKey, Service, ServiceEndpoints } from '../cluster/types.js';
import { ipFromReverse } from './names.js';
import type { ServiceRecords } from './service-records.js';

export interface IndexedService {
  readonly svc: Service;
  readonly eps: ServiceEndpoints | undefined;
  /** `<svc>.<ns>.svc.<zone>`. */
  readonly base: string;
}

/**
 * The names a reverse name's address points back to, sorted: the service name of a cluster IP,
 * the endpoint name of a published endpoint of any service but an ExternalName (as CoreDNS
 * answers), every owner's; undefined when the address is none of ours.
 */
export function ptrTargets(reverse: string, catalog: CatalogView, indexed: (key: ObjectKey) => IndexedService | undefined, records: ServiceRecords): string[] | undefined {
  const ip = ipFromReverse(reverse);
  if (!ip) return undefined;
  const targets = new Set<string>();
  for (const o of catalog.ownersOfIP(ip)) {
    if (o.kind === 'pod') continue;
    const s = indexed(o.serviceKey);
    if (!s || s.svc.type === 'ExternalName') continue;
    if (o.kind === 'service') {
      if (!s.svc.headless && s.svc.clusterIPs.includes(ip)) targets.add(s.base);
    } else {
      const e = records.published(s.svc, s.eps).find((x) => x.ip === ip);
      if (e) targets.add(`${records.label(e)}.${s.base}`);
    }
  }
  return targets.size > 0 ? [...targets].sort() : undefined;
}
