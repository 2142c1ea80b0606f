// `kube-dataplane dns`: the cluster DNS server alone; `startDns` is also the DNS half of `agent`.
import { UsageError, type Options } from '../cli/flags.js';
import type { CatalogView } from '../cluster/types.js';
import { HttpEndpoint, parseHostPort, type ListenAddress, type Route } from '../common/http-server.js';
import { logger } from '../common/log.js';
import { exposition } from '../common/metrics.js';
import { AnswerCache } from './cache.js';
import { configFromFlags, type DnsConfig, type ForwardConfig } from './config.js';
import { CorefileError, readCorefile } from './corefile/parse.js';
import { configFromCorefile } from './corefile/to-config.js';
import { Forwarder, parseUpstream, upstreamLabel } from './forwarder.js';
import { chooseResolvConf, upstreamsFromResolvConf } from './resolvconf.js';
import { DnsHandler } from './handler.js';
import { buildAcl, type SourceAcl } from './acl.js';
import { ensureLinkLocal } from './linklocal.js';
import { DnsMetrics, rcodeName } from './metrics.js';
import { LoopDetector } from './loop.js';
import { ZoneRouter, type RoutedBlock } from './router.js';
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

/** What the options say to serve: the Corefile's blocks (`--corefile`), else the flags' one. */
export function dnsConfig(opts: Options): DnsConfig {
  if (!opts.corefile) {
    try {
      const listens = opts.listen.map((l) => parseHostPort(l, '--listen'));
      return configFromFlags(opts, listens, opts.upstream.map(parseUpstream), parseHostPort);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  let parsed;
  try {
    parsed = configFromCorefile(readCorefile(opts.corefile), opts.corefile);
  } catch (err) {
    if (err instanceof CorefileError || (err as NodeJS.ErrnoException).code === 'ENOENT') throw new UsageError(`--corefile: ${(err as Error).message}`);
    throw err;
  }
  for (const i of parsed.ignored) log.warn('Corefile plugin accepted but not implemented yet: it has no effect', { plugin: i.plugin, at: `${i.at.file}:${i.at.line}` });
  return parsed.config;
}

/** Whether any block of `config` answers pod names from real Pods (the catalog then watches them). */
export const needsPods = (config: DnsConfig): boolean => config.servers.some((s) => s.kubernetes?.pods === 'verified');

/** Starts the DNS server on an open catalog (the agent shares one catalog with the proxy). */
export async function startDns(opts: Options, catalog: CatalogView, config: DnsConfig = dnsConfig(opts)): Promise<RunningDns> {
  const clusterDomain = config.servers.find((s) => s.kubernetes)?.kubernetes?.domain ?? opts.clusterDomain;
  const metrics = new DnsMetrics(`${clusterDomain}.`);
  let acl: SourceAcl;
  const allListens = config.servers.flatMap((s) => s.listens);
  try {
    acl = buildAcl({ allowFrom: opts.allowFrom, clusterCIDRs: opts.clusterCIDR });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (acl.clusterless) log.warn('no --cluster-cidr: only the node itself may ask, pods get REFUSED', { hint: 'give --cluster-cidr or --allow-from' });

  const zones: ClusterZone[] = [];
  const caches: AnswerCache[] = [];
  const forwarders: Forwarder[] = [];
  const blocks = config.servers.map((server) => {
    const k = server.kubernetes;
    const zone = k
      ? new ClusterZone({
          domain: k.domain, ttl: k.ttl, pods: k.pods, reverseZones: k.reverseZones, fallthrough: k.fallthrough ?? [],
          ownAddresses: serverAddresses(server.listens.map((l) => l.host)),
        }, catalog)
      : undefined;
    if (zone) zones.push(zone);
    const forwarder = server.forward ? startForwarder(server.forward, opts, allListens, metrics) : undefined;
    if (forwarder) forwarders.push(forwarder);
    const label = server.listens.length > 0 ? serverLabel(server.listens[0]) : 'dns://:53';
    const cache = server.cache ? new AnswerCache({ capacity: server.cache.capacity, maxTtl: server.cache.maxTtl, maxNegativeTtl: server.cache.maxNegativeTtl }, metrics.cacheEvents(label)) : undefined;
    if (cache) caches.push(cache);
    // CoreDNS's `loop` stops the process (log.Fatal): the pod restarts, and its log says why.
    const loop = server.loop && forwarder ? new LoopDetector(server.zones[0] ?? '', (arrivals) => {
      log.error('forwarding loop detected: its probe came back; stopping (see dns/README.md, loop)', { zone: server.zones[0] || '.', arrivals, upstreams: forwarder.upstreams.map(upstreamLabel).join(',') });
      process.exit(1);
    }) : undefined;
    const handler = new DnsHandler(zone, forwarder, cache, metrics, log, { forwardScope: server.forward, loadbalance: server.loadbalance, loop });
    return { server, handler, loop };
  });
  for (const z of zones) z.attach();
  let wasSynced = catalog.synced;
  const unwatch = catalog.onChange((change) => {
    if (!wasSynced && catalog.synced) {
      wasSynced = true;
      log.info('catalog synced: serving the cluster zone', { ...zones[0]?.size });
    }
    // How long a change took from the endpoints controller to our answers (CoreDNS's metric).
    if (!change.synced && catalog.synced && zones.length > 0) {
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
  metrics.cacheServer = blocks.find((b) => b.server.cache)?.server.listens[0] ? serverLabel(blocks.find((b) => b.server.cache)!.server.listens[0]) : 'dns://:53';
  metrics.cacheSize = () => {
    const sum = { success: 0, denial: 0 };
    for (const c of caches) {
      const s = c.size;
      sum.success += s.success;
      sum.denial += s.denial;
    }
    return sum;
  };

  // One listener per address; the blocks that share it are routed by zone.
  const byAddress = new Map<string, { addr: ListenAddress; blocks: RoutedBlock[] }>();
  for (const { server, handler } of blocks) {
    for (const addr of server.listens) {
      const key = `${addr.host}|${addr.port}`;
      const entry = byAddress.get(key) ?? { addr, blocks: [] };
      entry.blocks.push({ zones: server.zones, handler });
      byAddress.set(key, entry);
    }
  }
  const listenerAt = new Map<string, DnsListener>();
  const listeners = [...byAddress.entries()].map(([key, { addr, blocks: routed }]) => {
    const h = routed.length === 1 && routed[0].zones.includes('') ? routed[0].handler : new ZoneRouter(routed);
    const l = new DnsListener(addr, h, log, { allows: (a) => acl.allows(a) });
    listenerAt.set(key, l);
    return l;
  });
  const http: HttpEndpoint[] = [];
  // The node's own addresses are allowed sources; they change (DHCP, a new interface).
  const aclTimer = setInterval(() => acl.refresh(), 2000);
  aclTimer.unref();
  let stopping = false;
  const stopAll = async () => {
    // `health { lameduck D }`: keep answering for D after being told to stop, so clients move
    // on (kube-proxy drops the endpoint) before the sockets close; /health says 503 meanwhile.
    if (!stopping && config.health?.lameduckMs) {
      stopping = true;
      log.info('lame duck: answering a while longer before stopping', { ms: config.health.lameduckMs });
      await new Promise((r) => setTimeout(r, config.health!.lameduckMs));
    }
    stopping = true;
    clearInterval(aclTimer);
    unwatch();
    for (const z of zones) z.detach();
    await Promise.all(listeners.map((l) => l.stop()));
    await Promise.all(http.map((h) => h.close()));
    for (const f of forwarders) f.close();
  };
  try {
    await ensureLinkLocal(allListens.map((l) => l.host), opts.listenInterface, log);
    const addresses: ListenAddress[] = [];
    for (const l of listeners) addresses.push(await l.start());
    for (const { server, loop } of blocks) {
      const first = server.listens[0];
      const bound = first && listenerAt.get(`${first.host}|${first.port}`)?.bound;
      if (loop && bound) void loop.probe(bound, 2500, log);
    }

    // Health, readiness and metrics may share an address; each address gets one server.
    const routes = new Map<string, Record<string, Route>>();
    const at = (addr: ListenAddress | undefined, path: string, route: Route) => {
      if (!addr) return;
      const key = JSON.stringify(addr);
      routes.set(key, { ...(routes.get(key) ?? {}), [path]: route });
    };
    at(config.health?.listen, '/health', () => (stopping ? { status: 503, body: 'stopping\n' } : { status: 200, body: 'OK' }));
    at(config.ready?.listen, '/ready', () => (catalog.synced ? { status: 200, body: 'OK' } : { status: 503, body: 'catalog not synced\n' }));
    at(config.metrics?.listen, '/metrics', async () => ({ status: 200, body: await exposition(metrics.registry), contentType: metrics.registry.contentType }));
    const bound: Record<string, ListenAddress> = {};
    for (const [key, r] of routes) {
      const h = new HttpEndpoint(r);
      http.push(h);
      const a = await h.listen(JSON.parse(key) as ListenAddress);
      for (const path of Object.keys(r)) bound[path] = { host: a.address, port: a.port };
    }
    log.info('serving', {
      config: config.origin,
      listen: addresses.map((a) => serverLabel(a)).join(','),
      zones: config.servers.map((s) => s.zones.map((z) => z || '.').join(' ')).join(', '),
      upstreams: forwarders.flatMap((f) => f.upstreams.map(upstreamLabel)).join(',') || 'none',
      allowFrom: acl.describe(),
      synced: catalog.synced,
    });
    return { addresses, metrics, http: bound, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** A block's forwarder: its upstreams, and the nameservers of its resolv.conf files. */
function startForwarder(f: ForwardConfig, opts: Options, ours: readonly ListenAddress[], metrics: DnsMetrics): Forwarder {
  const upstreams = [...f.to];
  for (const path of f.resolvConfs) {
    const conf = chooseResolvConf({ path, systemdPath: opts.systemdResolvConf });
    const found = upstreamsFromResolvConf(conf.text, ours);
    log.info('upstreams from resolv.conf', { path: conf.path, ...(conf.reason ? { reason: conf.reason } : {}), upstreams: found.map(upstreamLabel).join(',') || 'none' });
    upstreams.push(...found);
  }
  if (upstreams.length === 0) log.warn('no upstream resolver: forwarded names get SERVFAIL', { zone: f.from || '.', hint: 'give --upstream or a nameserver in --resolv-conf' });
  return new Forwarder(upstreams, {
    log,
    policy: f.policy,
    maxInflight: f.maxConcurrent,
    healthCheckMs: f.healthCheckMs,
    maxFails: f.maxFails,
    onExchange: (u, seconds, rcode) => metrics.proxyDuration.labels('forward', upstreamLabel(u), rcode === undefined ? 'timeout' : rcodeName(rcode)).observe(seconds),
    onHealthcheckFailure: (u) => metrics.healthcheckFailures.labels('forward', upstreamLabel(u)).inc(),
    onAllDown: () => metrics.healthcheckBroken.inc(),
  });
}

export async function main(opts: Options): Promise<number> {
  const { serveUntilSignalled } = await import('../cli/serve.js');
  const config = dnsConfig(opts);
  return serveUntilSignalled(opts, { pods: needsPods(config) }, log, [(view) => startDns(opts, view, config)]);
}
