// What bench/proxy-iptables and bench/proxy-nftables share. Both measure a proxy mode the same
// way: a child process in a fresh namespace watches the test API server and runs the proxier with
// the shipped defaults (cli/flags.ts's parse): its first full sync, a steady phase of one write a
// second plus a burst, quiet reconciles; then a second proxier with --min-sync-period 0 (a
// restart over the table already there, one-endpoint updates, first-packet connects through a
// ClusterIP); the parent compares the full sync with the tool alone and prints the tables. They differ only in the backend and the
// tool they are compared with, so everything else lives here once: a change to how one mode is
// measured is then a change to both, and their figures stay comparable.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Catalog } from '../cluster/catalog.js';
import type { Kind } from '../cluster/sink.js';
import { configureLogging, logger } from '../common/log.js';
import { parseFlags, type Options } from '../cli/flags.js';
import type { Backend, NodeFacts, SyncRequest } from '../proxy/core/backend.js';
import { ProxyMetrics } from '../proxy/core/metrics.js';
import { FULL_SYNC_PERIOD_MS, Proxier, type SyncReport } from '../proxy/core/proxier.js';
import type { Namespace, Topology } from '../netns-tests/harness/netns.js';
import { agentNodeFlags } from './agent-node-flags.js';

/** The ClusterIP whose first packets are timed. */
export const TARGET_VIP = '10.95.0.1';
/** The one pod behind it, in its own namespace, answering TCP on port 8080. */
export const POD_IP = '10.250.0.2';
const KINDS: Kind[] = ['Service', 'EndpointSlice', 'Node'];

/** Flags both benchmarks take (for `node:util` parseArgs); `child`, `services` and `dir` are the child's only. */
export const PROXY_BENCH_OPTIONS = {
  child: { type: 'boolean', default: false },
  quick: { type: 'boolean', default: false },
  endpoints: { type: 'string', default: '10' },
  updates: { type: 'string', default: '10' },
  connects: { type: 'string', default: '200' },
  'budget-s': { type: 'string', default: '150' },
  /** Length of the steady phase (default 180, 30 with --quick). */
  'steady-s': { type: 'string' },
  burst: { type: 'string', default: '100' },
  reconciles: { type: 'string', default: '5' },
  services: { type: 'string' },
  dir: { type: 'string' },
} as const;

/** The parsed values of PROXY_BENCH_OPTIONS the parent hands on to its child. */
export interface ProxyBenchValues {
  endpoints?: string;
  updates?: string;
  connects?: string;
  quick?: boolean;
  'steady-s'?: string;
  burst?: string;
  reconciles?: string;
}

/** The steady phase's length in seconds: --steady-s, else 30 with --quick, else 180. */
export function steadySeconds(values: ProxyBenchValues): number {
  return Number(values['steady-s'] ?? (values.quick ? 30 : 180));
}

// ---------------------------------------------------------------- the shipped defaults

/**
 * The proxy's options as a user gets them: cli/flags.ts's parse of a command line that names
 * only a source (and `extra`, a flag a row changes on purpose). The benchmarks take their sync
 * periods from here, so they follow the product's defaults instead of copies of them.
 */
export function shippedProxyFlags(extra: readonly string[] = []): Options {
  return parseFlags('proxy', ['--kubeconfig', '/dev/null', ...extra]);
}

/** The sync settings a run used, for the JSON and the table titles. */
export interface SyncSettings {
  minSyncPeriodMs: number;
  syncPeriodMs: number;
  fullSyncPeriodMs: number;
}

export function syncSettings(flags: Options): SyncSettings {
  return { minSyncPeriodMs: flags.minSyncPeriodMs, syncPeriodMs: flags.syncPeriodMs, fullSyncPeriodMs: FULL_SYNC_PERIOD_MS };
}

/** "--min-sync-period 1s --sync-period 30s, full sync every 60 min", from the parsed defaults. */
export function describeSettings(s: SyncSettings): string {
  const d = (ms: number) => (ms % 60_000 === 0 && ms >= 60_000 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`);
  return `--min-sync-period ${d(s.minSyncPeriodMs)} --sync-period ${d(s.syncPeriodMs)}, full rewrite every ${d(s.fullSyncPeriodMs)}`;
}

// ---------------------------------------------------------------- numbers

/** The p-th percentile (nearest rank, from below) of `xs`. */
export function percentile(xs: readonly number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
export const median = (xs: readonly number[]): number => percentile(xs, 50);
export const roundTenths = (x: number): number => Math.round(x * 10) / 10;
export const roundThousandths = (x: number): number => Math.round(x * 1000) / 1000;

/** Peak resident set of this process so far, MB. */
export function peakRssMB(): number {
  return roundTenths((process.resourceUsage().maxRSS * 1024) / 1048576);
}

/** A progress line on stderr, prefixed with the benchmark's name. */
export function progress(bench: string): (line: string) => void {
  return (line) => process.stderr.write(`${bench}: ${line}\n`);
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * CPU time of this process and of its children that have ended (the `nft`, `iptables-restore`
 * and `conntrack` runs the proxy spawns: libuv waits for them, so the kernel adds them to
 * cutime/cstime), ms. A child still running (the test API server) is not in it.
 */
export function cpuNow(): { selfMs: number; childrenMs: number } {
  const u = process.cpuUsage();
  // /proc/self/stat: "pid (comm) state ..." — fields after the comm's closing parenthesis;
  // utime, stime, cutime, cstime are fields 14–17 of the line.
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(f[13]) + Number(f[14]); // cutime + cstime (fields 16, 17)
  return { selfMs: (u.user + u.system) / 1000, childrenMs: (ticks * 1000) / CLK_TCK };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

// ---------------------------------------------------------------- child: one measured run

/** Times `n` TCP handshakes to host:port, one after another, ms each. */
export async function connectTimes(host: string, port: number, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      const s = net.connect({ host, port }, () => {
        out.push(performance.now() - t0);
        s.destroy();
        resolve();
      });
      s.setTimeout(5000, () => reject(new Error(`connect to ${host}:${port} timed out`)));
      s.on('error', reject);
    });
  }
  return out;
}

/** Writes a captured ruleset in slices: one string of the whole input would show in the RSS measured. */
export function writeLinesInSlices(file: string, lines: readonly string[]): void {
  const fd = openSync(file, 'w');
  try {
    for (let i = 0; i < lines.length; i += 20_000) writeSync(fd, lines.slice(i, i + 20_000).join('\n') + '\n');
  } finally {
    closeSync(fd);
  }
}

/** A proxy backend that splits each sync's time into its own code and the kernel tool's. */
export type TimedBackend = Backend & { lastOwnMs: number; lastToolMs: number };

export interface PartialSyncFigures {
  wallMs: number;
  toolMs: number;
  oursMs: number;
  planMs: number;
  renderMs: number;
}

export type SyncKind = 'full' | 'partial' | 'reconcile';

/** One sync the proxier made during the steady phase. */
export interface SyncRecord {
  kind: SyncKind;
  ms: number;
  changed: number;
  repaired: number;
}

/** The steady phase: shipped defaults, one write a second and a burst in the middle. */
export interface SteadyFigures {
  settings: SyncSettings;
  seconds: number;
  writes: number;
  burst: number;
  /** From each write to the API server until the end of the sync that carried it, every write. */
  eventToRuleMs: number[];
  /** The same, the one-a-second writes only. */
  steadyEventToRuleMs: number[];
  /** The same, the burst's writes only. */
  burstEventToRuleMs: number[];
  /** Writes whose sync had not come 60 s after the phase (then left out of eventToRuleMs). */
  lost: number;
  syncs: SyncRecord[];
  failedSyncs: number;
  wallMs: number;
  cpuSelfMs: number;
  cpuChildrenMs: number;
  /** Peak RSS of the process up to the end of the phase (the first full sync's peak included). */
  peakRssMB: number;
  /** RSS at the end of the phase. */
  rssEndMB: number;
}

/** Quiet reconciles: the --sync-period tick's request with nothing changed, straight to the backend. */
export interface ReconcileFigures {
  wallMs: number[];
  ownMs: number[];
  toolMs: number[];
  /** CPU of the process and its ended children per reconcile. */
  cpuMs: number[];
  repaired: number;
}

/** What a measured child reports, whatever the backend. */
export interface ProxyRunFigures {
  /** Set when the first full sync failed; the rest is then empty. */
  error?: string;
  settings: SyncSettings;
  fullSyncMs: number;
  fullOwnMs: number;
  fullToolMs: number;
  fullPlanMs: number;
  steady?: SteadyFigures;
  reconcile?: ReconcileFigures;
  /** The second proxier's first sync: a new process's full rewrite over the table already there. */
  restart?: { totalMs: number; ownMs: number; toolMs: number; planMs: number };
  /** A full sync by the same backend over the table it wrote (the hourly one, and a change of
   *  the node's facts): the shipped proxier's request with `full` set. */
  hourly?: { totalMs: number; ownMs: number; toolMs: number; cpuMs: number };
  /** The second proxier's settings (--min-sync-period 0, the rest shipped). */
  oneChangeSettings?: SyncSettings;
  partial: PartialSyncFigures[];
  eventToRuleMs: number[];
  connectViaVipMs: number[];
  connectDirectMs: number[];
  peakRssMB: number;
}

export interface ProxyRunSpec {
  services: number;
  endpointsPerService: number;
  updates: number;
  connects: number;
  steadySeconds: number;
  burst: number;
  reconciles: number;
  /** Scratch directory: the kubeconfig goes here. */
  dir: string;
  /** Called once the catalog has synced (and again for the restart), so only the proxy's own memory comes after it. */
  makeBackend(flags: Options, metrics: ProxyMetrics): TimedBackend;
  /** After the first sync, successful or not. */
  afterFirstSync?(): void;
  /** Around each one-endpoint update of the --min-sync-period 0 part, before it is sent and after its sync is done. */
  beforeUpdate?(): void;
  afterUpdate?(): void;
}

const NODE_FACTS = async (): Promise<NodeFacts> => ({ nodeIPs: { IPv4: [], IPv6: [] }, nodePortAddresses: { IPv4: 'all', IPv6: 'all' } });

function kindOf(r: SyncReport): SyncKind {
  return r.full ? 'full' : r.reconcile ? 'reconcile' : 'partial';
}

/**
 * A proxier built the way proxy/command.ts builds it from `flags` (its sync periods, metrics),
 * over `backend`, with a wrapper that keeps the last request and counts failures: the proxier
 * keeps a failed sync's error to itself (it retries); the report needs it.
 */
function measuredProxier(catalog: Catalog, backend: TimedBackend, flags: Options, metrics: ProxyMetrics) {
  const rec = { lastRequest: undefined as SyncRequest | undefined, failures: 0, error: undefined as string | undefined };
  const sync = backend.sync.bind(backend);
  backend.sync = async (req) => {
    rec.lastRequest = req;
    try {
      return await sync(req);
    } catch (err) {
      rec.failures++;
      rec.error = (err as Error).message;
      throw err;
    }
  };
  const proxier = new Proxier(catalog, backend, {
    nodeName: 'node-0',
    minSyncPeriodMs: flags.minSyncPeriodMs,
    syncPeriodMs: flags.syncPeriodMs,
    nodeFacts: NODE_FACTS,
  }, logger('bench'), metrics);
  return { proxier, rec };
}

/**
 * One measured run, inside the child: the test API server (N services × M endpoints, plus the
 * target service) and the real watch client into a catalog, then
 *   A. a proxier with the shipped defaults: its first (full) sync, then the steady phase;
 *   R. quiet reconciles: the tick's request with nothing changed, sent to its backend directly
 *      after that proxier stopped;
 *   H. then the same request as a full sync (what the hourly full sync and a change of the
 *      node's facts send): the table the backend trusts, written again;
 *   B. a second proxier with `--min-sync-period 0` over a new backend (a restart: its first
 *      sync rewrites the table already there), `updates` one-endpoint changes, one at a time,
 *      and `connects` handshakes each way.
 */
export async function measureProxyRun(spec: ProxyRunSpec): Promise<ProxyRunFigures> {
  configureLogging({ level: 'warn' });
  const N = spec.services;
  const M = spec.endpointsPerService;
  const shipped = shippedProxyFlags();
  const { forkTestApiServer } = await import('../test-apiserver/child.js');
  const { endpointSlice, endpointIP, service } = await import('../test-apiserver/population.js');
  const kubeconfig = join(spec.dir, 'kubeconfig');
  const server = await forkTestApiServer(['--services', String(N), '--endpoints-per-service', String(M), '--nodes', '10', '--kubeconfig-out', kubeconfig, '--log-level', 'warn']);
  try {
    // The service whose first packets are timed: applied last, so its rule is the last one.
    await server.send({ op: 'apply', object: service({ namespace: 'zz-bench', name: 'target', clusterIP: TARGET_VIP }) });
    await server.send({ op: 'apply', object: endpointSlice({ namespace: 'zz-bench', service: 'target', addresses: [POD_IP], nodeName: 'node-0' }) });

    const { KubeSource } = await import('../cluster/sources/kube.js');
    const catalog = new Catalog({ kinds: KINDS });
    const source = new KubeSource({ kubeconfig, kinds: KINDS, log: logger('bench') });
    const synced = new Promise<void>((resolve) => {
      const off = catalog.onChange((c) => {
        if (c.synced) {
          off();
          resolve();
        }
      });
    });
    await source.start(catalog);
    await synced;
    await source.synced;

    // Each write replaces one endpoint of service i with an address never used before.
    let written = 0;
    const sliceFor = (i: number) => {
      const k = written++;
      const addresses = Array.from({ length: M }, (_, j) => endpointIP(i, j, M));
      addresses[k % M] = `10.200.${(k >> 8) & 255}.${k & 255}`;
      return { key: `ns-${i % 10}/svc-${i}`, object: endpointSlice({ namespace: `ns-${i % 10}`, service: `svc-${i}`, addresses, nodeName: `node-${i % 10}` }) };
    };

    // ---- A: shipped defaults
    const metricsA = new ProxyMetrics({ processMetrics: true });
    const backend = spec.makeBackend(shipped, metricsA);
    await backend.prepare();
    const a = measuredProxier(catalog, backend, shipped, metricsA);
    const first = a.proxier.nextSync();
    a.proxier.start();
    await first;
    spec.afterFirstSync?.();
    const figures: ProxyRunFigures = {
      settings: syncSettings(shipped),
      fullSyncMs: 0, fullOwnMs: 0, fullToolMs: backend.lastToolMs, fullPlanMs: 0,
      partial: [], eventToRuleMs: [], connectViaVipMs: [], connectDirectMs: [], peakRssMB: 0,
    };
    const full = a.proxier.lastReport;
    if (!full) {
      await a.proxier.stop();
      await source.stop();
      return { ...figures, error: a.rec.error ?? 'first sync failed', peakRssMB: peakRssMB() };
    }
    if (!full.full) throw new Error('first sync was not a full sync');
    Object.assign(figures, { fullSyncMs: full.totalMs, fullOwnMs: backend.lastOwnMs, fullToolMs: backend.lastToolMs, fullPlanMs: full.planMs });

    figures.steady = await steadyPhase(spec, catalog, a.proxier, a.rec, server, sliceFor, N);
    await a.proxier.stop();

    // ---- R: quiet reconciles, the tick's own request
    if (spec.reconciles > 0 && a.rec.lastRequest) {
      const rq: ReconcileFigures = { wallMs: [], ownMs: [], toolMs: [], cpuMs: [], repaired: 0 };
      const req: SyncRequest = { ...a.rec.lastRequest, changed: new Set(), full: false, reconcile: true };
      for (let r = 0; r < spec.reconciles; r++) {
        const c0 = cpuNow();
        const t0 = performance.now();
        const res = await backend.sync(req);
        rq.wallMs.push(performance.now() - t0);
        const c1 = cpuNow();
        rq.cpuMs.push(c1.selfMs - c0.selfMs + c1.childrenMs - c0.childrenMs);
        rq.ownMs.push(backend.lastOwnMs);
        rq.toolMs.push(backend.lastToolMs);
        rq.repaired += Object.values(res.repaired ?? {}).reduce((x, y) => x + y, 0);
      }
      figures.reconcile = rq;
    }
    // ---- H: the hourly full sync, over the table this backend wrote
    if (a.rec.lastRequest) {
      const req: SyncRequest = { ...a.rec.lastRequest, changed: new Set(a.rec.lastRequest.plans.keys()), full: true, reconcile: false };
      const c0 = cpuNow();
      const t0 = performance.now();
      await backend.sync(req);
      const c1 = cpuNow();
      figures.hourly = { totalMs: performance.now() - t0, ownMs: backend.lastOwnMs, toolMs: backend.lastToolMs, cpuMs: c1.selfMs - c0.selfMs + c1.childrenMs - c0.childrenMs };
    }
    backend.close();

    // ---- B: --min-sync-period 0 (the rest shipped), a restart over the table already there
    const zeroMin = shippedProxyFlags(['--min-sync-period', '0s']);
    figures.oneChangeSettings = syncSettings(zeroMin);
    const metricsB = new ProxyMetrics();
    const backendB = spec.makeBackend(zeroMin, metricsB);
    await backendB.prepare();
    const b = measuredProxier(catalog, backendB, zeroMin, metricsB);
    const firstB = b.proxier.nextSync();
    b.proxier.start();
    await firstB;
    const rs = b.proxier.lastReport;
    if (rs?.full) figures.restart = { totalMs: rs.totalMs, ownMs: backendB.lastOwnMs, toolMs: backendB.lastToolMs, planMs: rs.planMs };
    for (let k = 0; k < spec.updates && rs; k++) {
      const { key, object } = sliceFor((k * 7919) % N);
      const done = new Promise<void>((resolve) => {
        const off = catalog.onChange((c) => {
          if (!c.services.has(key)) return;
          off();
          void b.proxier.nextSync().then(resolve);
        });
      });
      spec.beforeUpdate?.();
      const t0 = performance.now();
      await server.send({ op: 'update', object });
      await done;
      figures.eventToRuleMs.push(performance.now() - t0);
      const rep = b.proxier.lastReport!;
      if (rep.full || rep.changed !== 1) throw new Error(`update ${k}: expected a partial sync of one service, got ${JSON.stringify(rep)}`);
      figures.partial.push({ wallMs: rep.totalMs, toolMs: backendB.lastToolMs, oursMs: rep.totalMs - backendB.lastToolMs, planMs: rep.planMs, renderMs: backendB.lastOwnMs });
      spec.afterUpdate?.();
    }

    figures.connectViaVipMs = await connectTimes(TARGET_VIP, 80, spec.connects);
    figures.connectDirectMs = await connectTimes(POD_IP, 8080, spec.connects);
    await b.proxier.stop();
    backendB.close();
    await source.stop();
    figures.peakRssMB = peakRssMB();
    return figures;
  } finally {
    await server.stop();
  }
}

/**
 * The steady phase, on the running proxier with the shipped defaults: one endpoint write a
 * second (at a random moment of it) through the API server for `steadySeconds`, plus `burst` writes at once in the middle.
 * Every write's event → rule time (write sent → end of the first sync started after the catalog
 * saw it), every sync the proxier made (periodic ticks included), the process's CPU (its ended
 * children's included) and memory.
 */
async function steadyPhase(
  spec: ProxyRunSpec,
  catalog: Catalog,
  proxier: Proxier,
  rec: { failures: number },
  server: { send(cmd: Record<string, unknown> & { op: string }): Promise<number> },
  sliceFor: (i: number) => { key: string; object: Record<string, unknown> },
  N: number,
): Promise<SteadyFigures> {
  const seconds = spec.steadySeconds;
  const out: SteadyFigures = {
    settings: syncSettings(shippedProxyFlags()), seconds, writes: 0, burst: 0, eventToRuleMs: [], steadyEventToRuleMs: [], burstEventToRuleMs: [], lost: 0,
    syncs: [], failedSyncs: 0, wallMs: 0, cpuSelfMs: 0, cpuChildrenMs: 0, peakRssMB: 0, rssEndMB: 0,
  };
  // Every sync, as the proxier reports it (a failed one leaves lastReport as it was).
  let watching = true;
  void (async () => {
    let seen = proxier.lastReport;
    while (watching) {
      await proxier.nextSync();
      const r = proxier.lastReport;
      if (watching && r && r !== seen) out.syncs.push({ kind: kindOf(r), ms: r.totalMs, changed: r.changed, repaired: Object.values(r.repaired).reduce((x, y) => x + y, 0) });
      seen = r;
    }
  })();

  // Writes sent and not yet seen by the catalog, by service.
  const sent = new Map<string, { t0: number; burst: boolean }[]>();
  let outstanding = 0;
  let allDone: () => void = () => {};
  const off = catalog.onChange((c) => {
    for (const key of c.services) {
      const ws = sent.get(key);
      if (!ws) continue;
      sent.delete(key);
      void proxier.nextSync().then(() => {
        const t = performance.now();
        for (const w of ws) {
          out.eventToRuleMs.push(t - w.t0);
          (w.burst ? out.burstEventToRuleMs : out.steadyEventToRuleMs).push(t - w.t0);
        }
        outstanding -= ws.length;
        if (outstanding === 0) allDone();
      });
    }
  });
  const write = (i: number, burst: boolean): Promise<number> => {
    const { key, object } = sliceFor(i);
    const list = sent.get(key) ?? [];
    list.push({ t0: performance.now(), burst });
    sent.set(key, list);
    outstanding++;
    return server.send({ op: 'update', object });
  };

  const failures0 = rec.failures;
  const c0 = cpuNow();
  const t0 = performance.now();
  let w = 0;
  const next = () => (1 + (w++ * 7919)) % N;
  // Each write at a random moment of its second (seeded, the same every run): writes exactly a
  // second apart would lock into phase with the runner's 1 s minimum interval and all wait alike.
  let seed = 0x2545f491;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  for (let s = 0; s < seconds; s++) {
    await sleep(t0 + (s + rand()) * 1000 - performance.now());
    const sends = [write(next(), false)];
    out.writes++;
    if (s === Math.floor(seconds / 2)) {
      for (let b = 0; b < spec.burst; b++) sends.push(write(next(), true));
      out.burst = spec.burst;
    }
    await Promise.all(sends);
  }
  // The phase ends a second after the last write, or when its rule is in if later.
  await sleep(t0 + seconds * 1000 - performance.now());
  if (outstanding > 0) {
    await Promise.race([new Promise<void>((r) => (allDone = r)), sleep(60_000)]);
  }
  const elapsed = performance.now() - t0;
  const c1 = cpuNow();
  watching = false;
  off();
  out.lost = outstanding;
  out.wallMs = elapsed;
  out.cpuSelfMs = c1.selfMs - c0.selfMs;
  out.cpuChildrenMs = c1.childrenMs - c0.childrenMs;
  out.failedSyncs = rec.failures - failures0;
  out.peakRssMB = peakRssMB();
  out.rssEndMB = roundTenths(process.memoryUsage().rss / 1048576);
  return out;
}

/** The child's one line to its parent (runChildInNamespace reads it). */
export function reportToParent(result: object): void {
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

// ---------------------------------------------------------------- parent: namespaces and tables

/** The child's arguments for one size, from the parent's own flags. */
export function proxyChildArgs(services: number, dir: string, values: ProxyBenchValues): string[] {
  return [
    '--services', String(services), '--dir', dir, '--updates', values.updates!, '--connects', values.connects!, '--endpoints', values.endpoints!,
    '--steady-s', String(steadySeconds(values)), '--burst', values.burst!, '--reconciles', values.reconciles!,
  ];
}

/** The child's ProxyRunSpec numbers from its flags. */
export function proxyRunNumbers(values: ProxyBenchValues & { services?: string }): Pick<ProxyRunSpec, 'services' | 'endpointsPerService' | 'updates' | 'connects' | 'steadySeconds' | 'burst' | 'reconciles'> {
  return {
    services: Number(values.services),
    endpointsPerService: Number(values.endpoints),
    updates: Number(values.updates),
    connects: Number(values.connects),
    steadySeconds: steadySeconds(values),
    burst: Number(values.burst),
    reconciles: Number(values.reconciles),
  };
}

/**
 * Runs `script --child ...args` inside namespace `ns` with the agent's V8 flags (so its memory is
 * as deployed) and resolves with the result it reported.
 */
export function runChildInNamespace<T>(ns: string, script: string, args: string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const p = spawn('ip', ['netns', 'exec', ns, process.execPath, '--max-old-space-size=8192', ...agentNodeFlags(), script, '--child', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.on('exit', (code) => {
      const m = /^RESULT (.*)$/m.exec(out);
      if (code === 0 && m) resolve(JSON.parse(m[1]) as T);
      else reject(new Error(`child in ${ns} exited ${code}:\n${out.slice(-2000)}`));
    });
  });
}

/**
 * The node namespace the proxy runs in, with a veth to a pod namespace whose server at
 * POD_IP:8080 accepts and closes each connection.
 */
export async function nodeWithOnePod(topo: Topology): Promise<Namespace> {
  const node = await topo.namespace('node');
  const pod = await topo.namespace('pod');
  await topo.veth({ ns: node, ifname: 'pod0', addresses: ['10.250.0.1/24'] }, { ns: pod, ifname: 'eth0', addresses: [`${POD_IP}/24`] });
  await pod.addRoute('default', 'via', '10.250.0.1');
  // Locally sent packets need a route to the service range before nat output rewrites them.
  await node.addRoute('default', 'via', POD_IP);
  const srv = pod.spawn(process.execPath, ['-e', "require('net').createServer((s) => s.end()).listen(8080, () => console.log('up'))"]);
  await srv.waitForOutput('up');
  return node;
}

/**
 * Why a size is reported as not run after its first full sync failed: the error, and whether
 * `tool` alone (`replayAlone`, the same input in a fresh namespace) fails on it too.
 */
export function failedFullSyncReason(error: string, tool: string, replayAlone: () => void): string {
  const t0 = performance.now();
  let alone: string;
  try {
    replayAlone();
    alone = `${tool} alone applied the same input in ${Math.round(performance.now() - t0)} ms`;
  } catch {
    alone = `${tool} alone fails on the same input too (after ${Math.round((performance.now() - t0) / 1000)} s)`;
  }
  return `full sync failed: ${error.split('\n')[0]}; ${alone}`;
}

/**
 * Full-sync time predicted for `n` services, quadratic from the previous size; 0 when there is
 * nothing to predict from: below 1k the fixed costs (process spawn, base table) hide the growth.
 */
export function predictedFullSyncMs(prev: { n: number; ms: number } | undefined, n: number): number {
  return prev && prev.n >= 1000 ? prev.ms * (n / prev.n) ** 2 : 0;
}

/**
 * A size's run time predicted beyond the full sync: the steady phase, the restart's full sync
 * and the tool replay (each about one full sync), for the progress line.
 */
export function predictedRunS(fullMs: number, steadyS: number): number {
  return Math.round((3 * fullMs) / 1000 + steadyS);
}

export interface FullSyncSummary {
  oursMs: number;
  toolAloneMs: number;
  ratio: number;
  planMs: number;
  renderMs: number;
  toolInSyncMs: number;
}
export interface PartialSyncSummary {
  count: number;
  wallMs: number;
  toolMs: number;
  oursMs: number;
  oursMaxMs: number;
  planMs: number;
  renderMs: number;
}
export interface LatencySummary {
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}
export interface SteadySummary {
  settings: SyncSettings;
  seconds: number;
  writes: number;
  burst: number;
  /** Every write of the phase (the burst's included: with the default burst they are most of them). */
  eventToRule?: LatencySummary;
  /** The one-a-second writes only. */
  steadyEventToRule?: LatencySummary;
  /** The burst's writes only. */
  burstEventToRule?: LatencySummary;
  lost: number;
  syncs: Record<SyncKind, number>;
  failedSyncs: number;
  longestSync?: { ms: number; kind: SyncKind; changed: number };
  /** Syncs that were reconciles (the --sync-period tick folded into a write's sync), median ms. */
  reconcileSyncP50Ms?: number;
  /** CPU of the proxy process per minute of the phase: its own, its ended children's (nft / iptables-restore), both. */
  cpuSecondsPerMinute: { total: number; self: number; children: number };
  peakRssMB: number;
  rssEndMB: number;
}
export interface ReconcileSummary {
  count: number;
  wallMs: number;
  oursMs: number;
  toolMs: number;
  cpuMs: number;
  /** cpuMs once per --sync-period (shipped), as a share of one core, %. */
  cpuShareOfCorePct: number;
  syncPeriodMs: number;
  repaired: number;
}
/** One size's row in the JSON, the part both benchmarks have. */
export interface RunSummary {
  services: number;
  endpoints: number;
  /** The shipped defaults the first sync, the steady phase and the reconciles ran with. */
  settings: SyncSettings;
  full: FullSyncSummary;
  steady?: SteadySummary;
  reconcile?: ReconcileSummary;
  /** A second process over the table already there: its first (full) sync. */
  restart?: { totalMs: number; oursMs: number; toolMs: number };
  /** A full sync over the table the same backend wrote (hourly; a change of the node's facts). */
  hourly?: { totalMs: number; oursMs: number; toolMs: number; cpuMs: number };
  /** One endpoint change at a time with --min-sync-period 0 (the rest shipped): the sync's own cost, without the runner's wait. */
  oneChange: { settings?: SyncSettings; changedFlag: string; partial?: PartialSyncSummary; eventToRule?: LatencySummary };
  connect: { viaClusterIPp50Ms: number; viaClusterIPp99Ms: number; directP50Ms: number };
  peakRssMB: number;
}

export function fullSyncSummary(res: ProxyRunFigures, toolAloneMs: number): FullSyncSummary {
  return {
    oursMs: Math.round(res.fullSyncMs),
    toolAloneMs: Math.round(toolAloneMs),
    ratio: roundThousandths(res.fullSyncMs / toolAloneMs),
    planMs: Math.round(res.fullPlanMs),
    renderMs: Math.round(res.fullOwnMs),
    toolInSyncMs: Math.round(res.fullToolMs),
  };
}

export function partialSyncSummary(p: readonly PartialSyncFigures[]): PartialSyncSummary | undefined {
  if (!p.length) return undefined;
  return {
    count: p.length,
    wallMs: roundTenths(median(p.map((x) => x.wallMs))),
    toolMs: roundTenths(median(p.map((x) => x.toolMs))),
    oursMs: roundThousandths(median(p.map((x) => x.oursMs))),
    oursMaxMs: roundThousandths(Math.max(...p.map((x) => x.oursMs))),
    planMs: roundThousandths(median(p.map((x) => x.planMs))),
    renderMs: roundThousandths(median(p.map((x) => x.renderMs))),
  };
}

export function latencySummary(ms: readonly number[]): LatencySummary | undefined {
  return ms.length ? { count: ms.length, p50Ms: roundTenths(percentile(ms, 50)), p99Ms: roundTenths(percentile(ms, 99)), maxMs: roundTenths(Math.max(...ms)) } : undefined;
}

export function steadySummary(s: SteadyFigures | undefined): SteadySummary | undefined {
  if (!s) return undefined;
  const syncs: Record<SyncKind, number> = { full: 0, partial: 0, reconcile: 0 };
  for (const x of s.syncs) syncs[x.kind]++;
  const longest = s.syncs.reduce<SyncRecord | undefined>((m, x) => (!m || x.ms > m.ms ? x : m), undefined);
  const rec = s.syncs.filter((x) => x.kind === 'reconcile').map((x) => x.ms);
  const perMin = (ms: number) => roundThousandths(ms / 1000 / (s.wallMs / 60_000));
  return {
    settings: s.settings,
    seconds: s.seconds,
    writes: s.writes,
    burst: s.burst,
    eventToRule: latencySummary(s.eventToRuleMs),
    steadyEventToRule: latencySummary(s.steadyEventToRuleMs),
    burstEventToRule: latencySummary(s.burstEventToRuleMs),
    lost: s.lost,
    syncs,
    failedSyncs: s.failedSyncs,
    longestSync: longest && { ms: roundTenths(longest.ms), kind: longest.kind, changed: longest.changed },
    reconcileSyncP50Ms: rec.length ? roundTenths(median(rec)) : undefined,
    cpuSecondsPerMinute: { total: perMin(s.cpuSelfMs + s.cpuChildrenMs), self: perMin(s.cpuSelfMs), children: perMin(s.cpuChildrenMs) },
    peakRssMB: s.peakRssMB,
    rssEndMB: s.rssEndMB,
  };
}

export function reconcileSummary(r: ReconcileFigures | undefined, syncPeriodMs: number): ReconcileSummary | undefined {
  if (!r || !r.wallMs.length) return undefined;
  const cpuMs = median(r.cpuMs);
  return {
    count: r.wallMs.length,
    wallMs: roundThousandths(median(r.wallMs)),
    oursMs: roundThousandths(median(r.ownMs)),
    toolMs: roundThousandths(median(r.toolMs)),
    cpuMs: roundTenths(cpuMs),
    cpuShareOfCorePct: roundThousandths((100 * cpuMs) / syncPeriodMs),
    syncPeriodMs,
    repaired: r.repaired,
  };
}

export function connectSummary(res: ProxyRunFigures): RunSummary['connect'] {
  return { viaClusterIPp50Ms: roundThousandths(median(res.connectViaVipMs)), viaClusterIPp99Ms: roundThousandths(percentile(res.connectViaVipMs, 99)), directP50Ms: roundThousandths(median(res.connectDirectMs)) };
}

/** Everything of a size's row but the backend's own extras. */
export function runSummary(n: number, M: number, res: ProxyRunFigures, toolAloneMs: number): RunSummary {
  return {
    services: n,
    endpoints: n * M,
    settings: res.settings,
    full: fullSyncSummary(res, toolAloneMs),
    steady: steadySummary(res.steady),
    reconcile: reconcileSummary(res.reconcile, res.settings.syncPeriodMs),
    restart: res.restart && { totalMs: Math.round(res.restart.totalMs), oursMs: Math.round(res.restart.totalMs - res.restart.toolMs), toolMs: Math.round(res.restart.toolMs) },
    hourly: res.hourly && { totalMs: Math.round(res.hourly.totalMs), oursMs: Math.round(res.hourly.totalMs - res.hourly.toolMs), toolMs: Math.round(res.hourly.toolMs), cpuMs: Math.round(res.hourly.cpuMs) },
    oneChange: { settings: res.oneChangeSettings, changedFlag: '--min-sync-period 0', partial: partialSyncSummary(res.partial), eventToRule: latencySummary(res.eventToRuleMs) },
    connect: connectSummary(res),
    peakRssMB: res.peakRssMB,
  };
}

const ms = (x: number | undefined): string => (x === undefined ? '-' : x >= 10_000 ? `${roundTenths(x / 1000)} s` : `${x} ms`);

/** Table cells: full sync ours, tool alone, ratio. */
export function fullSyncCells(r: RunSummary): string[] {
  return [ms(r.full.oursMs), ms(r.full.toolAloneMs), `${r.full.ratio}×`];
}
/** Table cells: restart full sync. */
export function restartCells(r: RunSummary): string[] {
  return [r.restart ? ms(r.restart.totalMs) : '-'];
}
/** Table cells: the hourly full sync, wall / CPU (children included). */
export function hourlyCells(r: RunSummary): string[] {
  return [r.hourly ? `${ms(r.hourly.totalMs)} / ${ms(r.hourly.cpuMs)}` : '-'];
}
/** Table cells: one change (--min-sync-period 0) wall, tool, ours, event→rule p50. */
export function oneChangeCells(r: RunSummary): string[] {
  const p = r.oneChange.partial;
  return p ? [`${p.wallMs} / ${p.toolMs} / ${p.oursMs} ms`, r.oneChange.eventToRule ? `${r.oneChange.eventToRule.p50Ms} ms` : '-'] : ['-', '-'];
}
/** Table cells: connect VIP / pod p50. */
export function connectCells(r: RunSummary): string[] {
  return [`${r.connect.viaClusterIPp50Ms} / ${r.connect.directP50Ms} ms`];
}

/** The second table's header: the steady phase and the reconciles, shipped defaults. */
export const STEADY_HEADER = [
  'services', 'writes', 'event→rule 1/s writes p50 / p99 / max', 'burst p50 / max', 'all max', 'longest sync (kind)', 'syncs full/partial/reconcile',
  'CPU s/min (self+children)', 'peak RSS / end', 'quiet reconcile wall / ours / tool', 'reconcile CPU share of a core',
];
export function steadyCells(r: RunSummary): string[] {
  const s = r.steady;
  const q = r.reconcile;
  if (!s) return [String(r.services), ...Array<string>(STEADY_HEADER.length - 1).fill('-')];
  const e = s.steadyEventToRule;
  const b = s.burstEventToRule;
  return [
    String(r.services),
    `${s.writes}+${s.burst}${s.lost ? ` (${s.lost} lost)` : ''}`,
    e ? `${e.p50Ms} / ${e.p99Ms} / ${e.maxMs} ms` : '-',
    b ? `${b.p50Ms} / ${b.maxMs} ms` : '-',
    s.eventToRule ? `${s.eventToRule.maxMs} ms` : '-',
    s.longestSync ? `${s.longestSync.ms} ms (${s.longestSync.kind}, ${s.longestSync.changed} svc)` : '-',
    `${s.syncs.full}/${s.syncs.partial}/${s.syncs.reconcile}${s.failedSyncs ? ` (${s.failedSyncs} failed)` : ''}`,
    `${s.cpuSecondsPerMinute.total} (${s.cpuSecondsPerMinute.self}+${s.cpuSecondsPerMinute.children})`,
    `${s.peakRssMB} / ${s.rssEndMB} MB`,
    q ? `${q.wallMs} / ${q.oursMs} / ${q.toolMs} ms` : '-',
    q ? `${q.cpuShareOfCorePct} % (${q.cpuMs} ms per ${q.syncPeriodMs / 1000} s)` : '-',
  ];
}

/** Prints the title, an aligned table and one line per size not run, on stdout. */
export function printTable(title: string, header: string[], rows: string[][], notRun: { what: string; reason: string }[]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  process.stdout.write(`${title}\n`);
  process.stdout.write(line(header) + '\n');
  for (const r of rows) process.stdout.write(line(r) + '\n');
  for (const s of notRun) process.stdout.write(`  ${s.what}: not run — ${s.reason}\n`);
}

/** Notes both benchmarks' JSON carries about the shared figures. */
export const COMMON_NOTES = [
  'settings: the shipped defaults, parsed by cli/flags.ts from a command line naming only a source (fullSyncPeriodMs: proxy/core FULL_SYNC_PERIOD_MS); the first sync, the steady phase and the reconciles run with them',
  'steady: one endpoint write a second (at a seeded random moment within each second) through the test API server for `seconds`, plus `burst` writes at once in the middle; eventToRule: write sent → end of the first sync started after the catalog saw it, every write of the phase (the syncs that fold in the --sync-period reconcile included; with the default burst of 100 most samples are the burst\'s); steadyEventToRule: the one-a-second writes only; burstEventToRule: the burst\'s only; syncs: every sync the proxier made in the phase, by kind; longestSync: the longest of them',
  'steady.cpuSecondsPerMinute: the proxy child process (catalog, watch client, proxier, backend; the bench\'s own write loop is in it too, the API server is not) from process.cpuUsage, plus the ended children it waited for (the nft / iptables-restore runs) from /proc/self/stat cutime+cstime, per minute of the phase',
  'steady.peakRssMB: the process\'s peak so far (the first full sync\'s peak included); rssEndMB: at the end of the phase',
  'reconcile: after the steady phase the proxier is stopped and its last request is sent to the same backend as a quiet tick (reconcile: true, nothing changed), `count` times; medians; cpuShareOfCorePct = cpuMs / syncPeriodMs',
  'restart: a second proxier and a new backend in the same process, over the table the first left: its first sync (a full rewrite), as after a restart',
  'oneChange: the second proxier runs with --min-sync-period 0 (changedFlag; the rest shipped) so that a single change is timed without the runner\'s wait: one endpoint replaced in one service at a time; partial.oursMs = wall − tool (diffing, rendering, planning, process spawn)',
];

/** What a benchmark found, for its JSON file. */
export interface ProxyBenchResults {
  benchmark: string;
  endpointsPerService: number;
  /** The shipped defaults the runs used. */
  settings?: SyncSettings;
  /** net.core.wmem_max where it ran (an nfnetlink transaction is at most twice it). */
  netCoreWmemMax?: number;
  /** Rows of a benchmark's own beyond the sizes (bench/proxy-nftables/shapes.ts). */
  shapes?: readonly object[];
  runs: readonly RunSummary[];
  skipped: readonly object[];
  /** What each figure means, for whoever reads the file without the code. */
  notes: string[];
}

/** Writes the results, stamped with the date and Node version, to `out` and says where. */
export function writeResults(out: string, r: ProxyBenchResults): void {
  const result = { benchmark: r.benchmark, date: new Date().toISOString(), node: process.version, endpointsPerService: r.endpointsPerService, settings: r.settings, runs: r.runs, skipped: r.skipped, notes: r.notes };
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(`  → ${out}\n`);
}

/** Runs the child or the parent side; an error ends the process with status 1. */
export function runBenchmark(bench: string, isChild: boolean, child: () => Promise<void>, parent: () => Promise<void>): void {
  (isChild ? child() : parent()).catch((err: unknown) => {
    progress(bench)(err instanceof Error ? err.stack ?? err.message : String(err));
    process.exit(1);
  });
}
