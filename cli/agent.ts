// `kube-dataplane agent`: the proxy and DNS halves on one shared catalog, as the DaemonSet runs.
import type { Options } from './flags.js';
import { openCatalog } from '../cluster/index.js';
import { startProxy } from '../proxy/command.js';
import { startDns } from '../dns/command.js';
import { untilSignalled } from './main.js';
import { logger } from '../common/log.js';
import { enableProcessMetrics } from '../common/metrics.js';
import { keepNodePodCIDRsFile } from './node-pod-cidrs-writer.js';

export async function main(opts: Options): Promise<number> {
  const log = logger('agent');
  enableProcessMetrics();
  const catalog = await openCatalog(opts, { pods: opts.pods === 'verified' });
  const stopIpamFile = opts.nodePodCIDRsFile ? keepNodePodCIDRsFile(catalog.view, opts.nodeName, opts.nodePodCIDRsFile, log) : () => {};
  const parts = [await startProxy(opts, catalog.view), await startDns(opts, catalog.view)];
  log.info('started', { node: opts.nodeName });
  const sig = await untilSignalled();
  log.info('stopping', { signal: sig });
  stopIpamFile();
  await Promise.all(parts.map((p) => p.stop()));
  await catalog.stop();
  return 0;
}
