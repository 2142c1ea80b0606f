// `kube-dataplane agent`: the proxy and DNS halves on one shared catalog, as the DaemonSet runs.
import type { Options } from './flags.js';
import { openCatalog } from '../cluster/index.js';
import { startProxy } from '../proxy/command.js';
import { startDns } from '../dns/command.js';
import { untilSignalled } from './main.js';
import { logger } from '../common/log.js';
import { keepNodePodCIDRsFile } from './node-pod-cidrs-writer.js';

export async function main(opts: Options): Promise<number> {
  const log = logger('agent');
  const catalog = await openCatalog(opts, { pods: opts.pods === 'verified' });
  const stops: Array<() => Promise<void> | void> = [() => catalog.stop()];
  // Stops what started, newest first; also when a later part fails to start (a port in use).
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop();
  };
  try {
    if (opts.nodePodCIDRsFile) stops.push(keepNodePodCIDRsFile(catalog.view, opts.nodeName, opts.nodePodCIDRsFile, log));
    const proxy = await startProxy(opts, catalog.view);
    stops.push(() => proxy.stop());
    const dns = await startDns(opts, catalog.view);
    stops.push(() => dns.stop());
  } catch (err) {
    await stopAll();
    throw err;
  }
  log.info('started', { node: opts.nodeName });
  const sig = await untilSignalled();
  log.info('stopping', { signal: sig });
  await stopAll();
  return 0;
}
