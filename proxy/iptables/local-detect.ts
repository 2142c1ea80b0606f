// kube-proxy's local-traffic detector as iptables matches (pkg/proxy/util/localdetector.go):
// a source CIDR (`-s` / `! -s`) or the input interface (`-i` / `! -i`; a name prefix is
// iptables' `name+`). Traffic the node sends itself has no input interface, so with an interface
// detector it is never local, as with kube-proxy.
import type { FamilyConfig, LocalDetector } from '../core/family-config.js';

export function detectorOf(cfg: FamilyConfig): LocalDetector {
  if (cfg.localDetector) return cfg.localDetector;
  return cfg.clusterCIDRs[0] ? { mode: 'ClusterCIDR', cidr: cfg.clusterCIDRs[0] } : { mode: 'ClusterCIDR' };
}

/** The match of local traffic, or undefined when the detector knows nothing local. */
export function ifLocal(d: LocalDetector): string | undefined {
  switch (d.mode) {
    case 'ClusterCIDR':
    case 'NodeCIDR':
      return d.cidr ? `-s ${d.cidr}` : undefined;
    case 'BridgeInterface':
      return `-i ${d.bridge}`;
    case 'InterfaceNamePrefix':
      return `-i ${d.prefix}+`;
  }
}

/** The match of traffic that is not local, or undefined when the detector knows nothing local. */
export function ifNotLocal(d: LocalDetector): string | undefined {
  const m = ifLocal(d);
  return m && `! ${m}`;
}
