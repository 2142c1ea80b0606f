// `kube-dataplane dns`: the cluster DNS server alone; `startDns` is also the DNS half of `agent`.
import { UsageError, type Options } from '../cli/flags.js';
import type { CatalogView } from '../cluster/types.js';
import { HttpEndpoint, parseHostPort, type ListenAddress, type Route } from '../common/http-server.js';
import { logger } from '../common/log.js';
import { exposition } from '../common/metrics.js';
import { AnswerCache, DEFAULT_CACHE } from './cache.js';
import { Forwarder, type Upstream, parseUpstream, upstreamLabel } from './forwarder.js';
import { chooseResolvConf, upstreamsFromResolvConf } from './resolvconf.js';
import { DnsHandler } from './handler.js';
import { buildAcl, type SourceAcl } from './acl.js';
import { ensureLinkLocal } from './linklocal.js';
import { DnsMetrics, rcodeName } from './metrics.js';
import { DnsListener, serverLabel } from './server.js';
import { ClusterZone, serverAddresses } from './zone.js';

export interface Running {
  stop(): Promise<void>;
}

export interface RunningDns extends Running {
  /** The DNS addresses bound (a port 0 in --listen becomes the real one). */
  readonly addresses: readonly ListenAddress[];
  readonly metrics: DnsMetrics;
  /** Where /health, /ready and /metrics are served (a port 0 becomes the real one). */
  readonly http: Readonly<Record<string, ListenAddress>>;
}

const log = logger('dns');

/** Starts the DNS server on an open catalog (the agent shares one catalog with the proxy). */
export async function startDns(opts: Options, catalog: CatalogView): Promise<RunningDns> {
  const metrics = new DnsMetrics(`${opts.clusterDomain}.`);
  let listens: ListenAddress[];
  let upstreams: Upstream[];
  let acl: SourceAcl;
  try {
    acl = buildAcl({ allowFrom: opts.allowFrom, clusterCIDRs: opts.clusterCIDR });
    listens = opts.listen.map((l) => parseHostPort(l, '--listen'));
    if (opts.upstream.length > 0) upstreams = opts.upstream.map(parseUpstream);
    else {
      const conf = chooseResolvConf({ path: opts.resolvConf, systemdPath: opts.systemdResolvConf });
      upstreams = upstreamsFromResolvConf(conf.text, listens);
      log.info('upstreams from resolv.conf', { path: conf.path, ...(conf.reason ? { reason: conf.reason } : {}), upstreams: upstreams.map(upstreamLabel).join(',') || 'none' });
    }
    for (const a of [opts.healthListen, opts.readyListen, opts.metricsListen]) if (a) parseHostPort(a, 'HTTP address');
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (acl.clusterless) log.warn('no --cluster-cidr: only the node itself may ask, pods get REFUSED', { hint: 'give --cluster-cidr or --allow-from' });
  if (upstreams.length === 0) log.warn('no upstream resolver: names outside the cluster zone get SERVFAIL', { hint: 'give --upstream or a nameserver in --resolv-conf' });

  const zone = new ClusterZone({ domain: opts.clusterDomain, ttl: opts.ttl, pods: opts.pods, ownAddresses: serverAddresses(listens.map((l) => l.host)) }, catalog);
  zone.attach();
  let wasSynced = catalog.synced;
  const unwatch = catalog.onChange((change) => {
    if (!wasSynced && catalog.synced) {
      wasSynced = true;
      log.info('catalog synced: serving the cluster zone', { ...zone.size });
    }
    // How long a change took from the endpoints controller to our answers (CoreDNS's metric).
    if (!change.synced && catalog.synced) {
      const now = Date.now();
      for (const key of change.services) {
        const t = catalog.endpoints(key)?.lastChangeTriggerTime;
        const svc = catalog.service(key);
        if (t === undefined || !svc) continue;
        const kind = svc.headless ? (svc.hasSelector ? 'headless_with_selector' : 'headless_without_selector') : 'cluster_ip';
        metrics.programming.labels(kind).observe(Math.max(0, now - t) / 1000);
      }
    }
  });

  const cacheServer = listens.length > 0 ? serverLabel(listens[0]) : 'dns://:53';
  const cache = new AnswerCache(DEFAULT_CACHE, metrics.cacheEvents(cacheServer));
  const forwarder = new Forwarder(upstreams, {
    log,
    onExchange: (u, seconds, rcode) => metrics.proxyDuration.labels('forward', upstreamLabel(u), rcode === undefined ? 'timeout' : rcodeName(rcode)).observe(seconds),
    onHealthcheckFailure: (u) => metrics.healthcheckFailures.labels('forward', upstreamLabel(u)).inc(),
    onAllDown: () => metrics.healthcheckBroken.inc(),
  });
  metrics.cacheServer = cacheServer;
  metrics.cacheSize = () => cache.size;
  const handler = new DnsHandler(zone, forwarder, cache, metrics, log);

  const listeners = listens.map((a) => new DnsListener(a, handler, log, { allows: (addr) => acl.allows(addr) }));
  const http: HttpEndpoint[] = [];
  // The node's own addresses are allowed sources; they change (DHCP, a new interface).
  const aclTimer = setInterval(() => acl.refresh(), 2000);
  aclTimer.unref();
  const stopAll = async () => {
    clearInterval(aclTimer);
    unwatch();
    zone.detach();
    await Promise.all(listeners.map((l) => l.stop()));
    await Promise.all(http.map((h) => h.close()));
    forwarder.close();
  };
  try {
    await ensureLinkLocal(listens.map((l) => l.host), opts.listenInterface, log);
    const addresses: ListenAddress[] = [];
    for (const l of listeners) addresses.push(await l.start());

    // Health, readiness and metrics may share an address; each address gets one server.
    const routes = new Map<string, Record<string, Route>>();
    const at = (addr: string, path: string, route: Route) => {
      if (!addr) return; // an empty address turns the endpoint off
      const key = JSON.stringify(parseHostPort(addr, `--${path.slice(1)}-listen`));
      routes.set(key, { ...(routes.get(key) ?? {}), [path]: route });
    };
    at(opts.healthListen, '/health', () => ({ status: 200, body: 'OK' }));
    at(opts.readyListen, '/ready', () => (catalog.synced ? { status: 200, body: 'OK' } : { status: 503, body: 'catalog not synced\n' }));
    at(opts.metricsListen, '/metrics', async () => ({ status: 200, body: await exposition(metrics.registry), contentType: metrics.registry.contentType }));
    const bound: Record<string, ListenAddress> = {};
    for (const [key, r] of routes) {
      const h = new HttpEndpoint(r);
      http.push(h);
      const a = await h.listen(JSON.parse(key) as ListenAddress);
      for (const path of Object.keys(r)) bound[path] = { host: a.address, port: a.port };
    }
    log.info('serving', {
      listen: addresses.map((a) => serverLabel(a)).join(','),
      zone: opts.clusterDomain,
      upstreams: upstreams.map(upstreamLabel).join(',') || 'none',
      allowFrom: acl.describe(),
      synced: catalog.synced,
    });
    return { addresses, metrics, http: bound, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

export async function main(opts: Options): Promise<number> {
  const { serveUntilSignalled } = await import('../cli/serve.js');
  return serveUntilSignalled(opts, { pods: opts.pods === 'verified' }, log, [(view) => startDns(opts, view)]);
}
