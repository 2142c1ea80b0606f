// `kube-dataplane proxy`: the service proxy alone; `startProxy` is also the proxy half of
// `agent`, on the catalog it shares with DNS.
import type { Options } from '../cli/flags.js';
import { UsageError } from '../cli/flags.js';
import type { CatalogView, IPFamily } from '../cluster/types.js';
import { HttpEndpoint, parseHostPort, type ListenAddress } from '../common/http-server.js';
import { parseCIDR } from '../common/ip.js';
import { logger, type Logger } from '../common/log.js';
import { exposition } from '../common/metrics.js';
import { conntrackTool, StaleFlowCleaner } from './core/conntrack-cleaner.js';
import { ProxierHealth } from './core/healthcheck/proxier.js';
import { ServiceHealthServers } from './core/healthcheck/services.js';
import { ProxyMetrics } from './core/metrics.js';
import type { DetectLocalMode, DetectLocalOptions } from './core/family-config.js';
import { checkNodePortAddresses, localAddresses, nodeFacts } from './core/node.js';
import { Proxier } from './core/proxier.js';
import type { Backend } from './core/backend.js';
import { runTool } from '../common/process.js';
import { IptablesBackend } from './iptables/backend.js';
import { ensureRouteLocalnet } from './iptables/route-localnet.js';
import { chooseFlavour, toolName, type Flavour } from './iptables/tools.js';
import { NftablesBackend, usableFamilies as nftFamilies } from './nftables/backend.js';
import { NetlinkTableWriter } from './nftables/netlink-writer.js';
import type { TableWriter } from './nftables/writer.js';
import { UserspaceBackend } from './userspace/backend.js';

export interface Running {
  stop(): Promise<void>;
}

/** A running proxy with its parts exposed, for tests and benchmarks. */
export interface RunningProxy extends Running {
  readonly proxier: Proxier;
  readonly backend: Backend;
  readonly metrics: ProxyMetrics;
}

interface Checked {
  clusterCIDRs: string[];
  detectLocal: DetectLocalOptions;
  serviceCIDRs: string[];
  healthz?: ListenAddress;
  metrics?: ListenAddress;
}

type Mode = 'iptables' | 'nftables' | 'userspace';
const MODES: readonly Mode[] = ['iptables', 'nftables', 'userspace'];

function checkOptions(opts: Options): Checked {
  if (!(MODES as readonly string[]).includes(opts.proxyMode)) throw new UsageError(`--proxy-mode ${opts.proxyMode} is not supported; use iptables, nftables or userspace`);
  const cidrs = (flag: string, list: readonly string[]) => list.map((c) => {
    const parsed = parseCIDR(c);
    if (!parsed) throw new UsageError(`${flag}: ${JSON.stringify(c)} is not a CIDR`);
    return parsed.cidr;
  });
  const clusterCIDRs = cidrs('--cluster-cidr', opts.clusterCIDR);
  // kube-proxy takes a single CIDR or a dual-stack pair (validateDualStackCIDRStrings): a
  // detector is one match, and two `! -s` rules of one family would OR into "masquerade all".
  for (const family of ['IPv4', 'IPv6'] as const) {
    const of = clusterCIDRs.filter((c) => (family === 'IPv6') === c.includes(':'));
    if (of.length > 1) throw new UsageError(`--cluster-cidr: ${of.join(', ')} are ${of.length} ${family} CIDRs; give at most one CIDR per IP family (a single CIDR or a dual-stack pair), as kube-proxy does`);
  }
  const detectLocal = checkDetectLocal(opts);
  const serviceCIDRs = cidrs('--service-cidr', opts.serviceCIDR ?? []);
  const bad = checkNodePortAddresses(opts.nodePortAddresses);
  if (bad) throw new UsageError(bad);
  if (opts.minSyncPeriodMs > opts.syncPeriodMs) throw new UsageError('--min-sync-period must not exceed --sync-period');
  const addr = (flag: string, s: string) => {
    if (!s) return undefined; // empty disables the server, as with kube-proxy
    try {
      return parseHostPort(s, flag);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  };
  return { clusterCIDRs, detectLocal, serviceCIDRs, healthz: addr('--healthz-bind-address', opts.healthzBindAddress), metrics: addr('--metrics-bind-address', opts.metricsBindAddress) };
}

/** --detect-local-mode with the interface flag its mode needs (kube-proxy's validateInterface). */
function checkDetectLocal(opts: Options): DetectLocalOptions {
  const mode = opts.detectLocalMode as DetectLocalMode;
  if (mode === 'BridgeInterface') {
    if (!opts.podBridgeInterface) throw new UsageError('--detect-local-mode BridgeInterface needs --pod-bridge-interface (the pods\' bridge)');
    return { mode, bridge: checkInterface('--pod-bridge-interface', opts.podBridgeInterface) };
  }
  if (mode === 'InterfaceNamePrefix') {
    if (!opts.podInterfaceNamePrefix) throw new UsageError('--detect-local-mode InterfaceNamePrefix needs --pod-interface-name-prefix');
    return { mode, prefix: checkInterface('--pod-interface-name-prefix', opts.podInterfaceNamePrefix) };
  }
  return { mode };
}

/** An interface name as the kernel allows one (IFNAMSIZ 16, no '/', space or ':'); it goes into rules. */
function checkInterface(flag: string, name: string): string {
  if (!/^[A-Za-z0-9_.@-]{1,15}$/.test(name)) throw new UsageError(`${flag}: ${JSON.stringify(name)} is not an interface name (1-15 of letters, digits, '_', '.', '@', '-')`);
  return name;
}

/** The families this host's tools can program. */
async function usableFamilies(flavour: Flavour): Promise<IPFamily[]> {
  const log = logger('proxy');
  const out: IPFamily[] = [];
  for (const family of ['IPv4', 'IPv6'] as const) {
    const r = await runTool(toolName(flavour, family, 'restore'), ['--noflush', '--wait=5'], '*nat\nCOMMIT\n', 30_000);
    if (r.code === 0) out.push(family);
    else log.warn('IP family not available; its services get no rules', { family, error: r.stderr.trim() });
  }
  if (out.length === 0) throw new Error(`neither ${toolName(flavour, 'IPv4', 'restore')} nor ${toolName(flavour, 'IPv6', 'restore')} works here`);
  return out;
}

function staleFlowCleaner(families: readonly IPFamily[], metrics: ProxyMetrics): StaleFlowCleaner['clean'] {
  const cleaner = new StaleFlowCleaner(
    conntrackTool((cmd, args) => runTool(cmd, args, undefined, 30_000)),
    families,
    logger('proxy'),
    (result, n) => metrics.conntrackDeletions.inc({ result }, n),
  );
  return (plans, endpointsOf) => cleaner.clean(plans, endpointsOf);
}

/** The iptables mode's backend, after choosing the flavour and the families its tools can do. */
async function iptablesBackend(opts: Options, checked: Checked, metrics: ProxyMetrics): Promise<{ backend: IptablesBackend; families: IPFamily[] }> {
  const log = logger('proxy');
  const choice = await chooseFlavour(opts.iptablesBackend);
  log.info('iptables backend chosen', { backend: choice.flavour, reason: choice.reason });
  const families = await usableFamilies(choice.flavour);
  if (checked.detectLocal.mode === 'ClusterCIDR' && checked.clusterCIDRs.length === 0 && !opts.masqueradeAll) {
    log.warn('no --cluster-cidr: traffic from outside the cluster to cluster IPs is not masqueraded');
  }
  // kube-proxy serves localhost node ports only when its node-port addresses include loopback;
  // ours never list loopback addresses, so that is the "all" default.
  let localhostNodePorts = opts.iptablesLocalhostNodeports && families.includes('IPv4') && opts.nodePortAddresses.length === 0;
  if (localhostNodePorts) {
    // kube-proxy refuses to start here; an unprivileged container has a read-only /proc/sys, and
    // a proxy that will not start for a convenience feature is worse than one without it.
    try {
      if (await ensureRouteLocalnet()) log.info('set net.ipv4.conf.all.route_localnet=1 so that node ports answer on 127.0.0.1 (--iptables-localhost-nodeports)');
    } catch (err) {
      localhostNodePorts = false;
      log.warn('node ports do not answer on 127.0.0.1: route_localnet cannot be set; give --iptables-localhost-nodeports=false to silence this, or let the proxy write /proc/sys', { error: (err as Error).message });
    }
  }
  if (checked.detectLocal.mode === 'NodeCIDR') log.info('local traffic is told by the Node\'s spec.podCIDRs; until it has some, traffic from outside the cluster to cluster IPs is not masqueraded', { node: opts.nodeName });
  return {
    backend: new IptablesBackend({ flavour: choice.flavour, families, clusterCIDRs: checked.clusterCIDRs, detectLocal: checked.detectLocal, localhostNodePorts, masqueradeAll: opts.masqueradeAll }, log, metrics),
    families,
  };
}

/** The userspace mode's backend (its VIP interface is made by `prepare`, which fails without CAP_NET_ADMIN). */
async function userspaceBackend(opts: Options): Promise<{ backend: UserspaceBackend; families: IPFamily[] }> {
  const log = logger('proxy');
  if (opts.clusterCIDR.length || opts.masqueradeAll) log.info('--cluster-cidr and --masquerade-all do not apply in userspace mode: endpoints always see the node as the source');
  return { backend: new UserspaceBackend({ maxUdpSessionsPerService: opts.userspaceUdpMaxSessions }, log), families: ['IPv4', 'IPv6'] };
}

type Built = { backend: Backend; families: IPFamily[] };
const BUILD: Record<Mode, (opts: Options, checked: Checked, metrics: ProxyMetrics) => Promise<Built>> = {
  iptables: iptablesBackend,
  nftables: nftablesBackend,
  userspace: (opts) => userspaceBackend(opts),
};

/** Removes what a mode leaves in the kernel: its iptables rules, its nftables tables, or its
 *  VIP interface. */
function removeLeftovers(mode: Mode, log: Logger): Promise<void> {
  switch (mode) {
    case 'iptables':
      return new IptablesBackend({ flavour: 'nft', families: [], clusterCIDRs: [], masqueradeAll: false }, log).cleanup();
    case 'nftables':
      return new NftablesBackend({ families: [], clusterCIDRs: [], masqueradeAll: false }, log).cleanup();
    case 'userspace':
      return new UserspaceBackend({}, log).cleanup();
  }
}

/**
 * At start, what the other modes left goes: their iptables rules or nftables tables would DNAT
 * service traffic beside (or before) ours, and their VIP interface would make this node answer
 * for the service addresses itself. A failure is logged and the mode starts anyway.
 */
async function removeOtherModes(mode: Mode, log: Logger): Promise<void> {
  for (const other of MODES) {
    if (other === mode) continue;
    try {
      await removeLeftovers(other, log);
    } catch (err) {
      log.warn(`cannot remove what the ${other} mode left; it may capture service traffic`, { error: (err as Error).message });
    }
  }
}

/** The nfnetlink writer for partial syncs and reconciles; undefined (partial syncs through `nft`,
 *  no reconcile) when no netlink socket can be opened here. */
function openNetlinkWriter(log: Logger): Promise<TableWriter | undefined> {
  return NetlinkTableWriter.open(log);
}

/** The nftables mode's backend, for the families its `nft` can program. */
async function nftablesBackend(opts: Options, checked: Checked, metrics: ProxyMetrics): Promise<{ backend: NftablesBackend; families: IPFamily[] }> {
  const log = logger('proxy');
  const families = await nftFamilies(log);
  if (checked.detectLocal.mode === 'ClusterCIDR' && checked.clusterCIDRs.length === 0 && !opts.masqueradeAll) {
    log.warn('no --cluster-cidr: traffic from outside the cluster to cluster IPs is not masqueraded');
  }
  if (checked.detectLocal.mode === 'NodeCIDR') log.info('local traffic is told by the Node\'s spec.podCIDRs; until it has some, traffic from outside the cluster to cluster IPs is not masqueraded', { node: opts.nodeName });
  const writer = await openNetlinkWriter(log);
  const backend = new NftablesBackend({ families, clusterCIDRs: checked.clusterCIDRs, detectLocal: checked.detectLocal, serviceCIDRs: checked.serviceCIDRs, masqueradeAll: opts.masqueradeAll, writer }, log, metrics);
  return { backend, families };
}

/** Starts the proxy on an open catalog (the agent shares one catalog with DNS). */
export async function startProxy(opts: Options, catalog: CatalogView): Promise<RunningProxy> {
  const checked = checkOptions(opts);
  const log = logger('proxy');
  const metrics = new ProxyMetrics({ processMetrics: true });
  const mode = opts.proxyMode as Mode;
  const { backend, families } = await BUILD[mode](opts, checked, metrics);
  await removeOtherModes(mode, log);
  await backend.prepare();
  const health = new ProxierHealth(2 * opts.syncPeriodMs);
  // /healthz follows this node's Node object (being deleted, autoscaler taint), as kube-proxy's.
  health.syncNode(catalog.node(opts.nodeName));
  const unfollowNode = catalog.onChange((c) => c.nodes.has(opts.nodeName) && health.syncNode(catalog.node(opts.nodeName)));
  const hcServers = new ServiceHealthServers(log, () => health.healthy());
  const proxier = new Proxier(
    catalog,
    backend,
    {
      nodeName: opts.nodeName,
      minSyncPeriodMs: opts.minSyncPeriodMs,
      syncPeriodMs: opts.syncPeriodMs,
      nodeFacts: async () => nodeFacts(
        catalog.node(opts.nodeName),
        await localAddresses(backend.ownedInterface),
        opts.nodePortAddresses,
        catalog.serviceCIDRs(),
      ),
      // Without NAT flows (userspace) there is nothing to clear; its UDP sessions are pruned by the backend.
      ...(backend.natFlows ? { cleanStaleFlows: staleFlowCleaner(families, metrics) } : {}),
    },
    log,
    metrics,
    health,
    hcServers,
  );

  const servers: HttpEndpoint[] = [];
  try {
    if (checked.healthz) {
      const s = new HttpEndpoint({ '/healthz': () => health.healthz(), '/livez': () => health.livez() });
      const a = await s.listen(checked.healthz);
      servers.push(s);
      log.info('health endpoint listening', { address: `${a.address}:${a.port}` });
    }
    if (checked.metrics) {
      const s = new HttpEndpoint({ '/metrics': async () => ({ status: 200, body: await exposition(metrics.registry), contentType: metrics.registry.contentType }) });
      const a = await s.listen(checked.metrics);
      servers.push(s);
      log.info('metrics endpoint listening', { address: `${a.address}:${a.port}` });
    }
  } catch (err) {
    unfollowNode();
    await Promise.all(servers.map((s) => s.close()));
    backend.close();
    throw err;
  }

  proxier.start();
  log.info('proxy started', { mode: opts.proxyMode, node: opts.nodeName, families: families.join(',') });
  return {
    proxier,
    backend,
    metrics,
    async stop() {
      unfollowNode();
      await proxier.stop();
      // What runs in process ends with the proxy (userspace listeners); kernel state stays, so a
      // restart reconciles it.
      backend.close();
      await Promise.all(servers.map((s) => s.close()));
    },
  };
}

export async function main(opts: Options): Promise<number> {
  const log = logger('proxy');
  if (opts.cleanup) {
    // Whatever mode ran before: every mode's leftovers go, as kube-proxy's --cleanup does; the
    // first failure is the exit's reason, after every mode was tried.
    let failed: unknown;
    for (const mode of MODES) {
      try {
        await removeLeftovers(mode, log);
      } catch (err) {
        failed ??= err;
      }
    }
    if (failed) throw failed;
    log.info('cleanup done');
    return 0;
  }
  checkOptions(opts);
  const { serveUntilSignalled } = await import('../cli/serve.js');
  // Where DNS runs in a container of its own (the DaemonSet), the proxy keeps the IPAM plugin's
  // node pod CIDRs file, as the agent does.
  const { keepNodePodCIDRsFile } = await import('../cli/node-pod-cidrs-writer.js');
  return serveUntilSignalled(opts, { serviceCIDRs: opts.proxyMode === 'nftables' }, log, [
    (view) => ({ stop: opts.nodePodCIDRsFile ? keepNodePodCIDRsFile(view, opts.nodeName, opts.nodePodCIDRsFile, log) : () => {} }),
    (view) => startProxy(opts, view),
  ]);
}
