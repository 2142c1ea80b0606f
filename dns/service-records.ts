// The records one service gives in the cluster zone (the `kubernetes` plugin's service and
// endpoint answers), under the plugin's naming options. The zone indexes services by name and
// asks this for the records of a name when it first answers it; nothing here is kept.
import type { Endpoint, Service, ServiceEndpoints } from '../cluster/types.js';
import { flat } from '../common/strings.js';
import { dashedIP, ipFromDashed } from './names.js';
import { addressRec, type Rec } from './records.js';
import { QTYPE } from './wire.js';

export interface NamingOptions {
  /** `endpoint_pod_names`: an endpoint without a hostname is named by its pod (when that name
   *  is a DNS label), else by its dashed address. */
  readonly endpointPodNames?: boolean;
  /** `noendpoints`: no endpoint records at all (endpoint names, headless services, their PTRs). */
  readonly noEndpoints?: boolean;
  /** `ignore empty_service`: a ClusterIP service without a ready endpoint is NXDOMAIN. */
  readonly ignoreEmptyService?: boolean;
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export class ServiceRecords {
  constructor(private readonly opts: NamingOptions = {}) {}

  /** The endpoints a service publishes in DNS. */
  published(svc: Service, eps: ServiceEndpoints | undefined): readonly Endpoint[] {
    if (this.opts.noEndpoints) return [];
    const all = eps?.endpoints ?? [];
    return svc.publishNotReadyAddresses ? all : all.filter((e) => e.ready);
  }

  /** An endpoint's label under its service: its hostname, its pod's name with
   *  `endpoint_pod_names`, else its dashed address. */
  label(e: Endpoint): string {
    return this.name(e) ?? dashedIP(e.ip);
  }

  /** The published endpoints whose label under their service is `label`. */
  labelled(svc: Service, eps: ServiceEndpoints | undefined, label: string): Endpoint[] {
    // A spelled address is compared as an address: a service may have thousands of endpoints.
    const ip = ipFromDashed(label)?.ip;
    return this.published(svc, eps).filter((e) => {
      const name = this.name(e);
      return name !== undefined ? name === label : e.ip === ip && dashedIP(e.ip) === label;
    });
  }

  /** The records of a service's own name; undefined when the service does not exist in DNS. */
  ofService(svc: Service, eps: ServiceEndpoints | undefined, base: string): Rec[] | undefined {
    if (svc.type === 'ExternalName') return svc.externalName ? [{ type: QTYPE.CNAME, target: svc.externalName.toLowerCase() }] : undefined;
    if (!svc.headless) {
      if (this.opts.ignoreEmptyService && !(eps?.endpoints ?? []).some((e) => e.ready)) return undefined;
      // An SRV question for the service name itself gets every port (CoreDNS does this; the
      // specification only defines the per-port names).
      const weight = Math.max(1, Math.floor(100 / Math.max(1, svc.ports.length)));
      return [...svc.clusterIPs.map(addressRec), ...svc.ports.map((p): Rec => ({ type: QTYPE.SRV, priority: 0, weight, port: p.port, target: base }))];
    }
    const endpoints = this.published(svc, eps);
    // A headless service with nothing to publish does not exist in DNS (NXDOMAIN).
    if (endpoints.length === 0) return undefined;
    const targets: Array<{ port: number; target: string }> = [];
    for (const p of eps?.ports ?? []) {
      for (const e of p.endpoints) if (e.ready || svc.publishNotReadyAddresses) targets.push({ port: p.port, target: `${this.label(e)}.${base}` });
    }
    const weight = Math.max(1, Math.floor(100 / Math.max(1, targets.length)));
    return [...endpoints.map((e) => addressRec(e.ip)), ...targets.map((t): Rec => ({ type: QTYPE.SRV, priority: 0, weight, port: t.port, target: t.target }))];
  }

  /** SRV records of `_<port>._<proto>.<base>`. */
  ofPort(svc: Service, eps: ServiceEndpoints | undefined, base: string, port: string, proto: string): Rec[] {
    const matches = (p: { name: string; protocol: string }) => p.name !== '' && p.name.toLowerCase() === port && p.protocol.toLowerCase() === proto;
    if (!svc.headless) {
      if (this.opts.ignoreEmptyService && !(eps?.endpoints ?? []).some((e) => e.ready)) return [];
      return svc.ports.filter(matches).map((p): Rec => ({ type: QTYPE.SRV, priority: 0, weight: 100, port: p.port, target: base }));
    }
    if (this.opts.noEndpoints) return [];
    const out: Rec[] = [];
    for (const p of (eps?.ports ?? []).filter(matches)) {
      const hosts = [...new Set(p.endpoints.filter((e) => e.ready || svc.publishNotReadyAddresses).map((e) => `${this.label(e)}.${base}`))];
      const weight = Math.max(1, Math.floor(100 / Math.max(1, hosts.length)));
      for (const h of hosts) out.push({ type: QTYPE.SRV, priority: 0, weight, port: p.port, target: h });
    }
    return out;
  }

  /** An endpoint's own name (hostname, or pod name), if it has one. */
  private name(e: Endpoint): string | undefined {
    if (e.hostname) return e.hostname.toLowerCase();
    if (!this.opts.endpointPodNames || !e.podKey) return undefined;
    const pod = e.podKey.slice(e.podKey.indexOf('/') + 1).toLowerCase();
    return DNS_LABEL.test(pod) ? pod : undefined;
  }
}

export function srvName(port: string, protocol: string, base: string): string {
  return flat(`_${port}._${protocol}.${base}`).toLowerCase();
}
