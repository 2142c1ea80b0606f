// Keeps the IPAM plugin's view of this node's pod CIDRs current: the plugin is a short-lived
// process per pod and must not need an API client, so the agent writes spec.podCIDRs of its own
// Node to a small file whenever they change (ipam/node-pod-cidrs.ts owns the format).
import type { CatalogView } from '../cluster/types.js';
import type { Logger } from '../common/log.js';
import { writeNodePodCIDRsFile } from '../ipam/node-pod-cidrs.js';

export function keepNodePodCIDRsFile(catalog: CatalogView, nodeName: string, path: string, log: Logger): () => void {
  let written = '';
  const write = () => {
    const cidrs = catalog.node(nodeName)?.podCIDRs ?? [];
    const key = cidrs.join(',');
    if (cidrs.length === 0 || key === written) return;
    try {
      writeNodePodCIDRsFile(path, nodeName, cidrs);
      written = key;
      log.info('node pod CIDRs written for IPAM', { path, node: nodeName, podCIDRs: key });
    } catch (err) {
      log.error('cannot write node pod CIDRs for IPAM', { path, node: nodeName, error: (err as Error).message });
    }
  };
  write();
  return catalog.onChange((change) => {
    if (change.nodes.has(nodeName)) write();
  });
}
