// `kube-dataplane agent`: the proxy and DNS halves on one shared catalog, as the DaemonSet runs.
import type { Options } from './flags.js';
import { startProxy } from '../proxy/command.js';
import { dnsConfig, needsPods, startDns } from '../dns/command.js';
import { logger } from '../common/log.js';
import { keepNodePodCIDRsFile } from './node-pod-cidrs-writer.js';
import { serveUntilSignalled } from './serve.js';

export async function main(opts: Options): Promise<number> {
  const log = logger('agent');
  const dns = dnsConfig(opts);
  return serveUntilSignalled(opts, { pods: needsPods(dns), namespaces: true, serviceCIDRs: opts.proxyMode === 'nftables' }, log, [
    (view) => ({ stop: opts.nodePodCIDRsFile ? keepNodePodCIDRsFile(view, opts.nodeName, opts.nodePodCIDRsFile, log) : () => {} }),
    (view) => startProxy(opts, view),
    (view) => startDns(opts, view, dns),
  ]);
}
