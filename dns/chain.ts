// The query-answering parts a DnsConfig describes, built together and retired together: per
// server block its cluster zone, cache, forwarder and handler, and per listen address the
// handler its queries go to (a block's, or a router over the blocks that share the address).
// A `reload` builds a new chain beside the old one and swaps the listeners over to it at once,
// so no query meets half of each.
import { readFileSync } from 'node:fs';
import type { ListenAddress } from '../common/http-server.js';
import type { Logger } from '../common/log.js';
import type { Options } from '../cli/flags.js';
import type { CatalogView } from '../cluster/types.js';
import { AnswerCache } from './cache.js';
import type { CacheKind } from './cache.js';
import type { DnsConfig, ForwardConfig, ServerConfig } from './config.js';
import { Forwarder, upstreamLabel, type TlsClientOptions } from './forwarder.js';
import { DnsHandler, takes, type AnswerSink, type BlockHandler, type ForwardRoute, type QueryHandler } from './handler.js';
import { RewritingHandler } from './rewrite.js';
import { AclHandler } from './acl-plugin.js';
import { HostsPlugin } from './hosts.js';
import { LoopDetector } from './loop.js';
import { LoggingHandler, QueryLog } from './querylog.js';
import { type DnsMetrics, rcodeName } from './metrics.js';
import { AutopathHandler } from './autopath.js';
import { chooseResolvConf, readOrUndefined, searchDomains, upstreamsFromResolvConf } from './resolvconf.js';
import { ZoneRouter, type RoutedBlock } from './router.js';
import { serverLabel } from './server.js';
import { serverAddresses } from './apex-records.js';
import { ClusterZone } from './zone.js';

export interface ChainBlock {
  readonly server: ServerConfig;
  readonly handler: BlockHandler;
  readonly loop?: LoopDetector;
}

export interface Chain {
  readonly blocks: readonly ChainBlock[];
  /** `host|port` → the address and the handler its listener gives queries to. */
  readonly routes: ReadonlyMap<string, { readonly addr: ListenAddress; readonly handler: QueryHandler }>;
  readonly zones: readonly ClusterZone[];
  readonly forwarders: readonly Forwarder[];
  cacheSize(): Record<CacheKind, number>;
  /** Stops following the catalog and closes the upstream sockets; an exchange still in flight
   *  may take `graceMs` to end first (a reload lets them finish). */
  retire(graceMs?: number): Promise<void>;
}

export interface ChainContext {
  readonly opts: Options;
  readonly catalog: CatalogView;
  readonly metrics: DnsMetrics;
  readonly log: Logger;
  /** What a forwarding loop does (CoreDNS: log and exit). */
  readonly onLoop: (server: ServerConfig, upstreams: string, arrivals: number) => void;
  /** The worker threads' answer table (`--workers` > 1). */
  readonly sink?: AnswerSink;
}

export function listenKey(a: ListenAddress): string {
  return `${a.host}|${a.port}`;
}

export function buildChain(config: DnsConfig, ctx: ChainContext): Chain {
  const { opts, catalog, metrics, log } = ctx;
  const allListens = config.servers.flatMap((s) => s.listens);
  const zones: ClusterZone[] = [];
  const caches: AnswerCache[] = [];
  const forwarders: Forwarder[] = [];
  const walkers: AutopathHandler[] = [];
  const blocks = config.servers.map((server): ChainBlock => {
    const k = server.kubernetes;
    const zone = k
      ? new ClusterZone({
          domain: k.domain, ttl: k.ttl, pods: k.pods, reverseZones: k.reverseZones, fallthrough: k.fallthrough ?? [],
          ...(k.naming ? { naming: k.naming } : {}), ...(k.namespaces ? { namespaces: k.namespaces } : {}),
          ownAddresses: serverAddresses(server.listens.map((l) => l.host)),
        }, catalog)
      : undefined;
    if (zone) zones.push(zone);
    const routes: ForwardRoute[] = server.forwards.map((f) => ({
      forwarder: startForwarder(f, opts, allListens, metrics, log), from: f.from, except: f.except, maxConcurrent: f.maxConcurrent,
      ...(f.next?.length ? { next: new Set(f.next) } : {}), ...(f.nextOnNodata ? { nextOnNodata: true } : {}),
    }));
    for (const r of routes) forwarders.push(r.forwarder);
    // The loop probe is a name in the block's zone: the forward that takes it is the one tested.
    const probeZone = server.zones[0] ?? '';
    const probed = routes.find((r) => takes(r, probeZone));
    const label = server.listens.length > 0 ? serverLabel(server.listens[0]) : 'dns://:53';
    const c = server.cache;
    const cache = c
      ? new AnswerCache({
          capacity: c.capacity, maxTtl: c.maxTtl, maxNegativeTtl: c.maxNegativeTtl,
          ...(c.serveStale ? { staleMs: c.serveStale.ms } : {}), ...(c.prefetch ? { prefetch: c.prefetch } : {}),
        }, metrics.cacheEvents(label))
      : undefined;
    if (cache) caches.push(cache);
    const loop = server.loop && probed
      ? new LoopDetector(probeZone, (arrivals) => ctx.onLoop(server, probed.forwarder.upstreams.map(upstreamLabel).join(','), arrivals))
      : undefined;
    const hosts = server.hosts ? new HostsPlugin(server.hosts, log) : undefined;
    // Published for the workers only where an answer depends on the question alone: not under
    // `log` (every query is a line), `acl` (the asker), `rewrite`, `autopath` (the asker's pod) or `hosts` (a file).
    const publishes = !server.log && !server.acl && !server.rewrite?.length && !server.autopath && !server.hosts;
    const plugins = new DnsHandler(zone, routes, cache, metrics, log, {
      loadbalance: server.loadbalance, loop, hosts, staleVerify: c?.serveStale?.verify,
      ...(publishes && ctx.sink ? { sink: ctx.sink, publishCache: !c?.prefetch } : {}),
    });
    // CoreDNS's order: `log` sees the client's question, then `acl`, then `rewrite`, then the
    // rest, which sees the rewritten name.
    const walker = server.autopath && k ? new AutopathHandler({ domain: k.domain, zones: server.autopath.zones, extraSearch: searchDomains(readOrUndefined(opts.resolvConf) ?? '') }, catalog, plugins) : undefined;
    if (walker) walkers.push(walker);
    const walking = walker ?? plugins;
    const rewriting = server.rewrite?.length ? new RewritingHandler(server.rewrite, walking) : walking;
    const guarded = server.acl?.length ? new AclHandler(server.acl, rewriting, metrics) : rewriting;
    const handler = server.log ? new LoggingHandler(new QueryLog(server.log), guarded) : guarded;
    return { server, handler, ...(loop ? { loop } : {}) };
  });
  for (const z of zones) z.attach();

  // One listener per address; the blocks that share it are routed by zone.
  const byAddress = new Map<string, { addr: ListenAddress; blocks: RoutedBlock[] }>();
  for (const { server, handler } of blocks) {
    for (const addr of server.listens) {
      const entry = byAddress.get(listenKey(addr)) ?? { addr, blocks: [] };
      entry.blocks.push({ zones: server.zones, handler });
      byAddress.set(listenKey(addr), entry);
    }
  }
  const routes = new Map<string, { addr: ListenAddress; handler: QueryHandler }>();
  for (const [key, { addr, blocks: routed }] of byAddress) {
    routes.set(key, { addr, handler: routed.length === 1 && routed[0].zones.includes('') ? routed[0].handler : new ZoneRouter(routed) });
  }

  return {
    blocks,
    routes,
    zones,
    forwarders,
    cacheSize: () => {
      const sum = { success: 0, denial: 0 };
      for (const c of caches) {
        const s = c.size;
        sum.success += s.success;
        sum.denial += s.denial;
      }
      return sum;
    },
    retire: async (graceMs = 0) => {
      for (const z of zones) z.detach();
      for (const w of walkers) w.detach();
      if (graceMs > 0) await new Promise((r) => setTimeout(r, graceMs).unref());
      for (const f of forwarders) f.close();
    },
  };
}

/** A block's forwarder: its upstreams, and the nameservers of its resolv.conf files. */
function startForwarder(f: ForwardConfig, opts: Options, ours: readonly ListenAddress[], metrics: DnsMetrics, log: Logger): Forwarder {
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
    forceTcp: f.forceTcp,
    ...(f.tls ? { tls: tlsClient(f.tls) } : {}),
    // The handler refuses past max_concurrent distinct questions, each on one socket at a time;
    // this bound on sockets leaves room for the health probes.
    maxInflight: f.maxConcurrent + upstreams.length,
    healthCheckMs: f.healthCheckMs,
    maxFails: f.maxFails,
    ...(f.failover?.length ? { failover: new Set(f.failover) } : {}),
    ...(f.failfastAllDown ? { failfastAllDown: true } : {}),
    ...(f.dohMethod ? { dohMethod: f.dohMethod } : {}),
    ...(f.maxAttempts ? { maxAttempts: f.maxAttempts } : {}),
    onExchange: (u, seconds, rcode) => metrics.proxyDuration.labels('forward', upstreamLabel(u), rcode === undefined ? 'timeout' : rcodeName(rcode)).observe(seconds),
    onHealthcheckFailure: (u) => metrics.healthcheckFailures.labels('forward', upstreamLabel(u)).inc(),
    onAllDown: () => metrics.healthcheckBroken.inc(),
  });
}

/** The forwarder's TLS options: the files of `tls`, read now (a missing one stops the start). */
function tlsClient(t: NonNullable<ForwardConfig['tls']>): TlsClientOptions {
  return {
    ...(t.caFile ? { ca: readFileSync(t.caFile) } : {}),
    ...(t.certFile ? { cert: readFileSync(t.certFile) } : {}),
    ...(t.keyFile ? { key: readFileSync(t.keyFile) } : {}),
    ...(t.servername ? { servername: t.servername } : {}),
  };
}
