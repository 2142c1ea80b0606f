// `kube-dataplane dns`: the cluster DNS server alone; `startDns` is also the DNS half of `agent`.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { UsageError, type Options } from '../cli/flags.js';
import type { CatalogView } from '../cluster/types.js';
import { HttpEndpoint, parseHostPort, type ListenAddress, type Route } from '../common/http-server.js';
import { logger, type LogFormat, type LogLevel } from '../common/log.js';
import { exposition } from '../common/metrics.js';
import { buildChain, listenKey, type Chain, type ChainContext } from './chain.js';
import { configFromFlags, type DnsConfig } from './config.js';
import { CorefileError, readCorefile } from './corefile/parse.js';
import { configFromCorefile } from './corefile/to-config.js';
import { parseUpstream, upstreamLabel } from './forwarder.js';
import type { QueryHandler } from './handler.js';
import { buildAcl, type SourceAcl } from './acl.js';
import { ensureLinkLocal } from './linklocal.js';
import { DnsMetrics } from './metrics.js';
import { DnsListener, defaultUdp, serverLabel } from './server.js';
import { usableCpus } from '../common/cpus.js';
import type { AnswerSink } from './handler.js';
import { WorkerPool, type PoolRoute } from './workers/pool.js';
import { dnsThreads } from './workers/threads.js';

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
  for (const i of parsed.ignored) log.warn('Corefile plugin ignored: it changes no answer, and kube-dataplane does not implement it', { plugin: i.plugin, at: `${i.at.file}:${i.at.line}` });
  return parsed.config;
}

/** Whether any block of `config` answers pod names from real Pods (the catalog then watches them). */
export const needsPods = (config: DnsConfig): boolean => config.servers.some((s) => s.kubernetes?.pods === 'verified');

/** Starts the DNS server on an open catalog (the agent shares one catalog with the proxy). */
export async function startDns(opts: Options, catalog: CatalogView, config: DnsConfig = dnsConfig(opts)): Promise<RunningDns> {
  const clusterDomain = config.servers.find((s) => s.kubernetes)?.kubernetes?.domain ?? opts.clusterDomain;
  const metrics = new DnsMetrics(`${clusterDomain}.`);
  let acl: SourceAcl;
  try {
    acl = buildAcl({ allowFrom: opts.allowFrom, clusterCIDRs: opts.clusterCIDR });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (acl.clusterless) log.warn('no --cluster-cidr: only the node itself may ask, pods get REFUSED', { hint: 'give --cluster-cidr or --allow-from' });

  // `--workers`: the main thread and N-1 worker threads, each with a UDP socket of its own on
  // every address (dns/workers/). One thread is the server as it always was.
  let threads: number;
  try {
    const t = dnsThreads(opts.workers, usableCpus());
    if (t.warning) log.warn(t.warning, { hint: 'run on Node 24' });
    threads = t.threads;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  let pool: WorkerPool | undefined;
  const sink: AnswerSink = { target: (msg, q) => pool?.target(msg, q) };

  const ctx: ChainContext = {
    opts, catalog, metrics, log,
    ...(threads > 1 ? { sink } : {}),
    // CoreDNS's `loop` stops the process (log.Fatal): the pod restarts, and its log says why.
    onLoop: (server, upstreams, arrivals) => {
      log.error('forwarding loop detected: its probe came back; stopping (see dns/README.md, loop)', { zone: server.zones[0] || '.', arrivals, upstreams });
      process.exit(1);
    },
  };
  let chain = buildChain(config, ctx);
  let wasSynced = catalog.synced;
  const unwatch = catalog.onChange((change) => {
    if (!wasSynced && catalog.synced) {
      wasSynced = true;
      log.info('catalog synced: serving the cluster zone', { ...chain.zones[0]?.size });
    }
    // How long a change took from the endpoints controller to our answers (CoreDNS's metric).
    if (!change.synced && catalog.synced && chain.zones.length > 0) {
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
  const cacheLabel = (c: Chain) => {
    const first = c.blocks.find((b) => b.server.cache)?.server.listens[0];
    return first ? serverLabel(first) : 'dns://:53';
  };
  metrics.cacheServer = cacheLabel(chain);
  metrics.cacheSize = () => chain.cacheSize();

  const listeners = new Map<string, DnsListener>();
  const listenerFor = (addr: ListenAddress, handler: QueryHandler) => new DnsListener(addr, handler, log, { allows: (a) => acl.allows(a), reusePort: threads > 1 });
  const poolRoutes = (c: Chain): PoolRoute[] => [...c.routes].flatMap(([key, route]) => {
    const bound = listeners.get(key)?.bound;
    return bound ? [{ key, addr: bound, handler: route.handler }] : [];
  });
  const http: HttpEndpoint[] = [];
  // The node's own addresses are allowed sources; they change (DHCP, a new interface).
  const aclTimer = setInterval(() => acl.refresh(), 2000);
  aclTimer.unref();
  let reloadTimer: NodeJS.Timeout | undefined;
  let stopping = false;
  const stopAll = async () => {
    clearTimeout(reloadTimer);
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
    await pool?.stop();
    await Promise.all([...listeners.values()].map((l) => l.stop()));
    await Promise.all(http.map((h) => h.close()));
    await chain.retire();
  };
  const probeLoops = (c: Chain) => {
    for (const { server, loop } of c.blocks) {
      const first = server.listens[0];
      const bound = first && listeners.get(listenKey(first))?.bound;
      if (loop && bound) void loop.probe(bound, 2500, log);
    }
  };

  /** `reload`: the Corefile is read again when its content changed; a new chain replaces the
   *  old one at once (the listeners keep their sockets), addresses that came or went are bound
   *  or closed, and a Corefile that does not parse leaves everything as it was. */
  const reloader = config.reload && opts.corefile ? newReloader(opts.corefile) : undefined;
  const reload = async () => {
    if (!reloader || stopping || !reloader.changed()) return;
    let next: DnsConfig;
    try {
      next = dnsConfig(opts);
    } catch (err) {
      log.error('Corefile not reloaded: it has an error; the running configuration stays', { error: (err as Error).message.replace(/^--corefile: /, '') });
      return;
    }
    if (needsPods(next) && !needsPods(config)) log.warn('pods verified needs Pods watched: restart to apply', { config: next.origin });
    if (JSON.stringify([next.health, next.ready, next.metrics]) !== JSON.stringify([config.health, config.ready, config.metrics])) {
      log.warn('health, ready and prometheus addresses are read at start only: restart to apply them');
    }
    const old = chain;
    const fresh = buildChain(next, ctx);
    try {
      for (const [key, route] of fresh.routes) if (!listeners.has(key)) {
        const l = listenerFor(route.addr, route.handler);
        await l.start();
        listeners.set(key, l);
      }
    } catch (err) {
      log.error('Corefile not reloaded: cannot listen; the running configuration stays', { error: (err as Error).message });
      for (const [key, l] of listeners) if (!old.routes.has(key)) {
        await l.stop();
        listeners.delete(key);
      }
      await fresh.retire();
      return;
    }
    chain = fresh;
    for (const [key, l] of listeners) {
      const route = fresh.routes.get(key);
      if (route) l.setHandler(route.handler);
    }
    for (const [key, l] of [...listeners]) if (!fresh.routes.has(key)) {
      listeners.delete(key);
      void l.stop();
    }
    metrics.cacheServer = cacheLabel(fresh);
    await pool?.reroute(poolRoutes(fresh), metrics.cacheServer);
    log.info('Corefile reloaded', { config: next.origin, zones: next.servers.map((s) => s.zones.map((z) => z || '.').join(' ')).join(', ') });
    probeLoops(fresh);
    // Exchanges the old forwarders have in flight finish before their sockets close.
    void old.retire(3000);
  };
  const scheduleReload = () => {
    if (!reloader || !config.reload) return;
    const { intervalMs, jitterMs } = config.reload;
    reloadTimer = setTimeout(() => void reload().finally(scheduleReload), intervalMs + Math.round((Math.random() * 2 - 1) * jitterMs));
    reloadTimer.unref();
  };

  try {
    await ensureLinkLocal(config.servers.flatMap((s) => s.listens).map((l) => l.host), opts.listenInterface, log);
    const addresses: ListenAddress[] = [];
    for (const [key, route] of chain.routes) {
      const l = listenerFor(route.addr, route.handler);
      listeners.set(key, l);
      addresses.push(await l.start());
    }
    if (threads > 1) {
      pool = await WorkerPool.start({
        threads: threads - 1, acl: { allowFrom: opts.allowFrom, clusterCIDRs: opts.clusterCIDR }, clusterZone: `${clusterDomain}.`,
        cacheServer: metrics.cacheServer, logLevel: opts.logLevel as LogLevel, logFormat: opts.logFormat as LogFormat,
      }, poolRoutes(chain), catalog, log);
    }
    probeLoops(chain);

    // Health, readiness and metrics may share an address; each address gets one server.
    const routes = new Map<string, Record<string, Route>>();
    const at = (addr: ListenAddress | undefined, path: string, route: Route) => {
      if (!addr) return;
      const key = JSON.stringify(addr);
      routes.set(key, { ...(routes.get(key) ?? {}), [path]: route });
    };
    at(config.health?.listen, '/health', () => (stopping ? { status: 503, body: 'stopping\n' } : { status: 200, body: 'OK' }));
    at(config.ready?.listen, '/ready', () => (catalog.synced ? { status: 200, body: 'OK' } : { status: 503, body: 'catalog not synced\n' }));
    at(config.metrics?.listen, '/metrics', async () => {
      // The workers' counts are summed with this thread's: one server, as CoreDNS reports it.
      if (pool) metrics.setForeign(await pool.snapshots());
      return { status: 200, body: await exposition(metrics.registry), contentType: metrics.registry.contentType };
    });
    const bound: Record<string, ListenAddress> = {};
    for (const [key, r] of routes) {
      const h = new HttpEndpoint(r);
      http.push(h);
      const a = await h.listen(JSON.parse(key) as ListenAddress);
      for (const path of Object.keys(r)) bound[path] = { host: a.address, port: a.port };
    }
    scheduleReload();
    log.info('serving', {
      config: config.origin,
      listen: addresses.map((a) => serverLabel(a)).join(','),
      zones: config.servers.map((s) => s.zones.map((z) => z || '.').join(' ')).join(', '),
      upstreams: chain.forwarders.flatMap((f) => f.upstreams.map(upstreamLabel)).join(',') || 'none',
      allowFrom: acl.describe(),
      workers: threads,
      udp: defaultUdp.fallbackReason ? 'dgram' : 'batched',
      synced: catalog.synced,
    });
    if (defaultUdp.fallbackReason) log.warn('UDP queries go through node:dgram, at about twice the CPU per query: the batch binding is not built', { reason: defaultUdp.fallbackReason, hint: 'make build compiles dist/dns/udp/udp-batch.node' });
    return { addresses, metrics, http: bound, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** Whether the Corefile's bytes changed since the last look (CoreDNS compares a digest too). */
function newReloader(path: string): { changed(): boolean } {
  const digest = () => {
    try {
      return createHash('sha512').update(readFileSync(path)).digest('hex');
    } catch {
      return undefined;
    }
  };
  let last = digest();
  return {
    changed: () => {
      const now = digest();
      if (now === undefined || now === last) return false;
      last = now;
      return true;
    },
  };
}

export async function main(opts: Options): Promise<number> {
  const { serveUntilSignalled } = await import('../cli/serve.js');
  const config = dnsConfig(opts);
  return serveUntilSignalled(opts, { pods: needsPods(config), namespaces: true }, log, [(view) => startDns(opts, view, config)]);
}
