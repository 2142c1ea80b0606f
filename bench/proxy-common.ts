// What bench/proxy-iptables and bench/proxy-nftables share. Both measure a proxy mode the same
// way: a child process in a fresh namespace watches the test API server, makes one full sync,
// then one-endpoint updates, then first-packet connects through a ClusterIP; the parent compares
// the full sync with the tool alone and prints a table. They differ only in the backend and the
// tool they are compared with, so everything else lives here once: a change to how one mode is
// measured is then a change to both, and their figures stay comparable.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Catalog } from '../cluster/catalog.js';
import type { Kind } from '../cluster/sink.js';
import { configureLogging, logger } from '../common/log.js';
import type { Backend } from '../proxy/core/backend.js';
import { Proxier } from '../proxy/core/proxier.js';
import type { Namespace, Topology } from '../netns-tests/harness/netns.js';
import { agentNodeFlags } from './agent-node-flags.js';

/** The ClusterIP whose first packets are timed. */
export const TARGET_VIP = '10.95.0.1';
/** The one pod behind it, in its own namespace, answering TCP on port 8080. */
export const POD_IP = '10.250.0.2';
const KINDS: Kind[] = ['Service', 'EndpointSlice', 'Node'];

/** Flags both benchmarks take (for `node:util` parseArgs); the last two are the child's only. */
export const PROXY_BENCH_OPTIONS = {
  child: { type: 'boolean', default: false },
  endpoints: { type: 'string', default: '10' },
  updates: { type: 'string', default: '10' },
  connects: { type: 'string', default: '200' },
  'budget-s': { type: 'string', default: '150' },
  services: { type: 'string' },
  dir: { type: 'string' },
} as const;

/** The parsed values of PROXY_BENCH_OPTIONS the parent hands on to its child. */
export interface ProxyBenchValues {
  endpoints?: string;
  updates?: string;
  connects?: string;
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

/** What a measured child reports, whatever the backend. */
export interface ProxyRunFigures {
  /** Set when the first full sync failed; the rest is then empty. */
  error?: string;
  fullSyncMs: number;
  fullOwnMs: number;
  fullToolMs: number;
  fullPlanMs: number;
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
  /** Scratch directory: the kubeconfig goes here. */
  dir: string;
  /** Called once the catalog has synced, so only the proxy's own memory comes after it. */
  makeBackend(): TimedBackend;
  /** After the first sync, successful or not. */
  afterFirstSync?(): void;
  /** Around each one-endpoint update, before it is sent and after its sync is done. */
  beforeUpdate?(): void;
  afterUpdate?(): void;
}

/**
 * One measured run, inside the child: the test API server (N services × M endpoints, plus the
 * target service), the real watch client into a catalog, a proxier over `makeBackend()`, its
 * first full sync, `updates` one-endpoint changes and `connects` handshakes each way.
 */
export async function measureProxyRun(spec: ProxyRunSpec): Promise<ProxyRunFigures> {
  configureLogging({ level: 'warn' });
  const N = spec.services;
  const M = spec.endpointsPerService;
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

    const backend = spec.makeBackend();
    const proxier = new Proxier(catalog, backend, {
      nodeName: 'node-0',
      minSyncPeriodMs: 0,
      syncPeriodMs: 3_600_000,
      nodeFacts: async () => ({ nodeIPs: { IPv4: [], IPv6: [] }, nodePortAddresses: { IPv4: 'all', IPv6: 'all' } }),
    }, logger('bench'));

    // The proxier keeps a failed sync's error to itself (it retries); the report needs it.
    let syncError: string | undefined;
    const sync = backend.sync.bind(backend);
    backend.sync = async (req) => {
      try {
        return await sync(req);
      } catch (err) {
        syncError = (err as Error).message;
        throw err;
      }
    };
    const first = proxier.nextSync();
    proxier.start();
    await first;
    spec.afterFirstSync?.();
    const figures: ProxyRunFigures = {
      fullSyncMs: 0, fullOwnMs: 0, fullToolMs: backend.lastToolMs, fullPlanMs: 0,
      partial: [], eventToRuleMs: [], connectViaVipMs: [], connectDirectMs: [], peakRssMB: 0,
    };
    const full = proxier.lastReport;
    if (!full) {
      await proxier.stop();
      await source.stop();
      return { ...figures, error: syncError ?? 'first sync failed', peakRssMB: peakRssMB() };
    }
    if (!full.full) throw new Error('first sync was not a full sync');
    Object.assign(figures, { fullSyncMs: full.totalMs, fullOwnMs: backend.lastOwnMs, fullToolMs: backend.lastToolMs, fullPlanMs: full.planMs });

    // One endpoint change at a time, through the API server.
    for (let k = 0; k < spec.updates; k++) {
      const i = (k * 7919) % N;
      const namespace = `ns-${i % 10}`;
      const name = `svc-${i}`;
      const key = `${namespace}/${name}`;
      const addresses = Array.from({ length: M }, (_, j) => endpointIP(i, j, M));
      addresses[k % M] = `10.200.${k >> 8}.${k & 255}`; // one endpoint replaced
      const slice = endpointSlice({ namespace, service: name, addresses, nodeName: `node-${i % 10}` });
      const done = new Promise<void>((resolve) => {
        const off = catalog.onChange((c) => {
          if (!c.services.has(key)) return;
          off();
          void proxier.nextSync().then(resolve);
        });
      });
      spec.beforeUpdate?.();
      const t0 = performance.now();
      await server.send({ op: 'update', object: slice });
      await done;
      figures.eventToRuleMs.push(performance.now() - t0);
      const rep = proxier.lastReport!;
      if (rep.full || rep.changed !== 1) throw new Error(`update ${k}: expected a partial sync of one service, got ${JSON.stringify(rep)}`);
      figures.partial.push({ wallMs: rep.totalMs, toolMs: backend.lastToolMs, oursMs: rep.totalMs - backend.lastToolMs, planMs: rep.planMs, renderMs: backend.lastOwnMs });
      spec.afterUpdate?.();
    }

    figures.connectViaVipMs = await connectTimes(TARGET_VIP, 80, spec.connects);
    figures.connectDirectMs = await connectTimes(POD_IP, 8080, spec.connects);
    await proxier.stop();
    await source.stop();
    figures.peakRssMB = peakRssMB();
    return figures;
  } finally {
    await server.stop();
  }
}

/** The child's one line to its parent (runChildInNamespace reads it). */
export function reportToParent(result: object): void {
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

// ---------------------------------------------------------------- parent: namespaces and tables

/** The child's arguments for one size, from the parent's own flags. */
export function proxyChildArgs(services: number, dir: string, values: ProxyBenchValues): string[] {
  return ['--services', String(services), '--dir', dir, '--updates', values.updates!, '--connects', values.connects!, '--endpoints', values.endpoints!];
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
/** One size's row in the JSON, the part both benchmarks have. */
export interface RunSummary {
  services: number;
  endpoints: number;
  full: FullSyncSummary;
  partial?: PartialSyncSummary;
  eventToRule?: { p50Ms: number; p99Ms: number };
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

export function eventToRuleSummary(ms: readonly number[]): RunSummary['eventToRule'] {
  return ms.length ? { p50Ms: roundTenths(percentile(ms, 50)), p99Ms: roundTenths(percentile(ms, 99)) } : undefined;
}

export function connectSummary(res: ProxyRunFigures): RunSummary['connect'] {
  return { viaClusterIPp50Ms: roundThousandths(median(res.connectViaVipMs)), viaClusterIPp99Ms: roundThousandths(percentile(res.connectViaVipMs, 99)), directP50Ms: roundThousandths(median(res.connectDirectMs)) };
}

/** Table cells: full sync ours, tool alone, ratio. */
export function fullSyncCells(r: RunSummary): string[] {
  return [`${r.full.oursMs} ms`, `${r.full.toolAloneMs} ms`, `${r.full.ratio}×`];
}
/** Table cells: partial sync wall, tool, ours. */
export function partialSyncCells(r: RunSummary): string[] {
  return r.partial ? [`${r.partial.wallMs} ms`, `${r.partial.toolMs} ms`, `${r.partial.oursMs} ms`] : ['-', '-', '-'];
}
/** Table cells: event→rule p50/p99, connect VIP / pod p50, RSS. */
export function latencyAndMemoryCells(r: RunSummary): string[] {
  return [
    r.eventToRule ? `${r.eventToRule.p50Ms} / ${r.eventToRule.p99Ms} ms` : '-',
    `${r.connect.viaClusterIPp50Ms} / ${r.connect.directP50Ms} ms`,
    `${r.peakRssMB} MB`,
  ];
}

/** Prints the title, an aligned table and one line per size not run, on stdout. */
export function printTable(title: string, header: string[], rows: string[][], notRun: { what: string; reason: string }[]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  process.stdout.write(`${title}\n`);
  process.stdout.write(line(header) + '\n');
  for (const r of rows) process.stdout.write(line(r) + '\n');
  for (const s of notRun) process.stdout.write(`  ${s.what}: not run — ${s.reason}\n`);
}

/** What a benchmark found, for its JSON file. */
export interface ProxyBenchResults {
  benchmark: string;
  endpointsPerService: number;
  runs: readonly RunSummary[];
  skipped: readonly object[];
  /** What each figure means, for whoever reads the file without the code. */
  notes: string[];
}

/** Writes the results, stamped with the date and Node version, to `out` and says where. */
export function writeResults(out: string, r: ProxyBenchResults): void {
  const result = { benchmark: r.benchmark, date: new Date().toISOString(), node: process.version, endpointsPerService: r.endpointsPerService, runs: r.runs, skipped: r.skipped, notes: r.notes };
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
