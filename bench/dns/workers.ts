// The workers rows of the DNS benchmark: the same server and cluster with `--workers 1`, `2` and
// the default (one thread per CPU it may use, at most 4).
//
// This machine has two cores, and dnsperf needs about as much CPU per query as the server, so no
// run here can saturate two server threads without dnsperf taking their CPU. The capacity on N
// cores is therefore composed from two measurements a shared machine does not distort:
// - each thread's CPU per query at saturation, as the single-thread rows measure it (server on
//   CPU 0, dnsperf on CPU 1, one client, so one source port and one thread's socket; the run is
//   repeated until every thread has been the one that served, told apart by
//   kube_dataplane_dns_worker_queries_total);
// - how the kernel spreads 256 clients (256 source ports) over the threads' sockets, at half the
//   single thread's peak, where latency and memory are read too (dnsperf on CPU 1: with two
//   server threads on two cores one of them shares its CPU with dnsperf, which shows in the tail).
// A thread that gets a share f of the queries at c µs each is saturated when the total rate is
// 1 / (f·c); the server's capacity is the smallest of these. For one thread it is 1 / c.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Namespace, Process } from '../../netns-tests/harness/netns.js';
import { metricSum } from '../../netns-tests/harness/probes.js';
import { cpuSeconds, rssMB } from './process-stats.js';

/** dnsperf's clients: source ports enough that the kernel's hash spreads them evenly over the
 *  threads' sockets (20 gave splits like 55/39 on two threads, 64 up to 39/61; a pod asks from a new random port per query). */
const CLIENTS = 256;

export interface WorkersRow {
  row: string;
  threads: number;
  qps: number;
  /** The main thread's CPU per query at saturation (µs). */
  cpuUsPerQuery: number;
  /** Each thread's CPU per query at saturation, the main thread first (µs). */
  threadUsPerQuery: number[];
  /** What N cores, one per serving thread, would answer (see above). */
  qpsOnThreads: number;
  /** Each thread's share of 64 clients' queries, the main thread first (%). */
  threadShares: number[];
  p50ms: number;
  p99ms: number;
  /** The offered load the spread and latency were measured at (the same for every row). */
  latencyAtQps: number;
  peakRssMB: number;
  rssAfterMB: number;
  /** Of the queries the worker threads received in the measured run, the fraction answered from the table. */
  fromTable: number;
}

export interface WorkersBench {
  readonly ns: Namespace;
  /** The server's command line without `--workers`. */
  readonly serverArgs: readonly string[];
  readonly bin: string;
  readonly port: number;
  /** A query file (dnsperf's -d). */
  readonly file: string;
  readonly seconds: number;
  /** A scratch directory. */
  readonly dir: string;
  readonly waitFor: (p: Process, re: RegExp, ms: number) => Promise<void>;
}

const ROWS = [['--workers 1', ['--workers', '1']], ['--workers 2', ['--workers', '2']], ['default (no --workers)', []]] as const;

export async function measureWorkers(b: WorkersBench): Promise<WorkersRow[]> {
  const rows: WorkersRow[] = [];
  let rate = 0;
  for (const [row, flag] of ROWS) {
    // The spread, latency and memory: the server on both CPUs, as the default would run it.
    const p = b.ns.spawn('taskset', ['-c', '0,1', b.bin, 'dns', ...b.serverArgs, ...flag], { label: `dns ${row}` });
    let spread: Spread;
    let threads: number;
    try {
      await b.waitFor(p, /dns serving/, 300_000);
      threads = Number(/dns serving .*workers=(\d+)/.exec(p.stdout + p.stderr)?.[1] ?? NaN);
      // Each thread's cost at saturation first (the first row's peak sets the common rate).
      spread = await measureSpread(b, p, rate || 1000);
    } finally {
      await p.stop();
    }
    const costs = await measureCosts(b, threads);
    if (rate === 0) {
      rate = Math.max(1000, Math.round(costs.peakQps / 2));
      // The first row's spread ran before its peak was known: measure it again at that rate.
      const again = b.ns.spawn('taskset', ['-c', '0,1', b.bin, 'dns', ...b.serverArgs, ...flag], { label: `dns ${row}` });
      try {
        await b.waitFor(again, /dns serving/, 300_000);
        spread = await measureSpread(b, again, rate);
      } finally {
        await again.stop();
      }
    }
    // The main thread's share is what the workers did not get.
    const shares = [1 - spread.workerShares.reduce((n, f) => n + f, 0), ...spread.workerShares];
    const perThread = shares.map((f, i) => (f > 0 ? 1e6 / (f * (costs.usPerQuery[i] ?? NaN)) : Infinity));
    rows.push({
      row, threads, qps: costs.peakQps, cpuUsPerQuery: costs.usPerQuery[0], threadUsPerQuery: costs.usPerQuery, threadShares: shares.map((f) => f * 100),
      qpsOnThreads: Math.min(...perThread), p50ms: spread.p50ms, p99ms: spread.p99ms, latencyAtQps: rate,
      peakRssMB: spread.peakRssMB, rssAfterMB: spread.rssAfterMB, fromTable: spread.fromTable,
    });
  }
  return rows;
}

async function dnsperf(b: WorkersBench, extra: string[], timeoutMs: number, pin?: string) {
  const cmd = ['dnsperf', '-s', '127.0.0.1', '-p', String(b.port), '-d', b.file, ...extra];
  return pin ? b.ns.exec('taskset', ['-c', pin, ...cmd], { timeoutMs, allowFailure: true }) : b.ns.exec(cmd[0], cmd.slice(1), { timeoutMs, allowFailure: true });
}

interface Spread {
  /** Each worker's share of the queries (worker 1, 2, …). */
  workerShares: number[];
  fromTable: number;
  p50ms: number;
  p99ms: number;
  peakRssMB: number;
  rssAfterMB: number;
}

async function workerCounts(b: WorkersBench, threads: number): Promise<Array<{ table: number; main: number }>> {
  const text = (await b.ns.exec('curl', ['-s', 'http://127.0.0.1:9153/metrics'], { allowFailure: true })).stdout;
  return Array.from({ length: Math.max(0, threads - 1) }, (_, i) => ({
    table: metricSum(text, 'kube_dataplane_dns_worker_queries_total', { worker: String(i + 1), answered: 'table' }),
    main: metricSum(text, 'kube_dataplane_dns_worker_queries_total', { worker: String(i + 1), answered: 'main' }),
  }));
}

/** 256 clients at `rate` for the run's length: each worker's share, latency, memory. */
async function measureSpread(b: WorkersBench, p: Process, rate: number): Promise<Spread> {
  const threads = Number(/dns serving .*workers=(\d+)/.exec(p.stdout + p.stderr)?.[1] ?? 1);
  // Warm-up: every name asked a few times, so that each has reached a worker and is published.
  await dnsperf(b, ['-c', String(CLIENTS), '-n', '4', '-q', '20'], 180_000);
  const before = await workerCounts(b, threads);
  const l = await latencyAt(b, b.port, rate);
  const after = await workerCounts(b, threads);
  const deltas = after.map((a, i) => ({ table: a.table - (before[i]?.table ?? 0), main: a.main - (before[i]?.main ?? 0) }));
  const toWorkers = deltas.reduce((n, d) => n + d.table + d.main, 0);
  return {
    workerShares: deltas.map((d) => (d.table + d.main) / Math.max(1, l.completed)),
    fromTable: toWorkers > 0 ? deltas.reduce((n, d) => n + d.table, 0) / toWorkers : NaN,
    p50ms: l.p50ms, p99ms: l.p99ms, peakRssMB: rssMB(p.child.pid!, 'VmHWM'), rssAfterMB: rssMB(p.child.pid!, 'VmRSS'),
  };
}

/** 256 clients at `rate` against `port` for the run's length: dnsperf's per-query latencies. */
async function latencyAt(b: WorkersBench, port: number, rate: number): Promise<{ completed: number; p50ms: number; p99ms: number }> {
  // dnsperf on CPU 1, its per-query lines into a file: streamed through a pipe into this process
  // (which runs on the same two cores) they doubled the p99 they were measuring.
  const lines = join(b.dir, 'dnsperf-v.txt');
  await b.ns.exec('sh', ['-c', `taskset -c 1 dnsperf -s 127.0.0.1 -p ${port} -d ${b.file} -c ${CLIENTS} -l ${b.seconds} -Q ${rate} -v > ${lines}`], { timeoutMs: (b.seconds + 60) * 1000, allowFailure: true });
  const out = readFileSync(lines, 'utf8');
  const lat = [...out.matchAll(/^> \S+ .* ([\d.]+)$/gm)].map((m) => Number(m[1]) * 1000).sort((x, y) => x - y);
  const pct = (q: number) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor((q / 100) * lat.length))] : NaN);
  return { completed: Number(/Queries completed:\s+(\d+)/.exec(out)?.[1] ?? NaN), p50ms: pct(50), p99ms: pct(99) };
}

/** A server measured beside ours for latency only: what this machine and dnsperf give anyway. */
export interface LatencyReference {
  readonly server: string;
  readonly port: number;
  /** Its command line (spawned as ours is, on both CPUs) and what it prints once serving. */
  readonly command: readonly string[];
  readonly ready: RegExp;
}

export interface LatencyRow {
  server: string;
  latencyAtQps: number;
  p50ms: number;
  p99ms: number;
}

/**
 * The same latency run against dnsmasq and the node floor at the same rate. On a machine where
 * dnsperf shares the server's second CPU, the tail is partly dnsperf's own and the machine's;
 * these rows show how much, so that ours is read against them.
 */
export async function measureLatencyReferences(b: WorkersBench, refs: readonly LatencyReference[], rate: number): Promise<LatencyRow[]> {
  const rows: LatencyRow[] = [];
  for (const r of refs) {
    const p = b.ns.spawn('taskset', ['-c', '0,1', ...r.command], { label: r.server });
    try {
      await b.waitFor(p, r.ready, 60_000);
      await b.ns.exec('dnsperf', ['-s', '127.0.0.1', '-p', String(r.port), '-d', b.file, '-c', String(CLIENTS), '-n', '2', '-q', '20'], { timeoutMs: 180_000, allowFailure: true });
      const l = await latencyAt(b, r.port, rate);
      rows.push({ server: r.server, latencyAtQps: rate, p50ms: l.p50ms, p99ms: l.p99ms });
    } finally {
      await p.stop();
    }
  }
  return rows;
}

/**
 * Each thread's CPU per query at saturation: the server (`--workers threads`) on CPU 0,
 * dnsperf on CPU 1 with one client, as the single-thread rows run. One client is one source
 * port, so one thread serves the whole run; runs are repeated (a new port each) until every
 * thread has served one. Index 0 is the main thread.
 */
async function measureCosts(b: WorkersBench, threads: number): Promise<{ peakQps: number; usPerQuery: number[] }> {
  const us: number[] = Array(threads).fill(NaN);
  let peakQps = NaN;
  const p = b.ns.spawn('taskset', ['-c', '0', b.bin, 'dns', ...b.serverArgs, '--workers', String(threads)], { label: `dns --workers ${threads} on CPU 0` });
  try {
    await b.waitFor(p, /dns serving/, 300_000);
    await dnsperf(b, ['-c', String(CLIENTS), '-n', '4', '-q', '20'], 180_000);
    const seconds = Math.max(3, Math.round(b.seconds / 2));
    for (let run = 0; run < 8 * threads && us.some((x) => Number.isNaN(x)); run++) {
      const before = await workerCounts(b, threads);
      const cpu0 = cpuSeconds(p.child.pid!);
      const r = await dnsperf(b, ['-l', String(seconds), '-q', '200'], (seconds + 60) * 1000, '1');
      const cpu = cpuSeconds(p.child.pid!) - cpu0;
      const after = await workerCounts(b, threads);
      const completed = Number(/Queries completed:\s+(\d+)/.exec(r.stdout)?.[1] ?? NaN);
      const got = after.map((a, i) => a.table + a.main - (before[i]?.table ?? 0) - (before[i]?.main ?? 0));
      // Which thread served: the worker that counted the run's queries, else the main thread.
      const w = got.findIndex((n) => n > completed / 2);
      const who = w >= 0 ? w + 1 : 0;
      if (Number.isNaN(us[who])) us[who] = (cpu / Math.max(1, completed)) * 1e6;
      if (who === 0 && Number.isNaN(peakQps)) peakQps = Number(/Queries per second:\s+([\d.]+)/.exec(r.stdout)?.[1] ?? NaN);
    }
  } finally {
    await p.stop();
  }
  return { peakQps, usPerQuery: us };
}

/** The table, and the two ratios the issue sets targets for. */
export function printWorkers(rows: readonly WorkersRow[], refs: readonly LatencyRow[] = []): { qpsGain: number; rssRatio: number } {
  const fmt = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  console.log(`\nWorkers (the cluster mix). Each thread's CPU per query at saturation (server on CPU 0, dnsperf on CPU 1, one client); the spread of ${CLIENTS} clients over the threads, latency and RSS at ${rows[0]?.latencyAtQps ?? '?'} QPS (half the single thread's peak, the server on both CPUs); "QPS on N cores" = min over threads of 1 / (share × CPU per query)\n`);
  console.log('| row | threads | CPU µs/query per thread (main, workers…) | share of the clients % | QPS on N cores (CPU time) | worker queries from the table | p50 / p99 ms | peak / after RSS MB |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.row} | ${r.threads} | ${r.threadUsPerQuery.map((x) => fmt(x, 1)).join(' / ')} | ${r.threadShares.map((x) => fmt(x)).join(' / ')} | ${fmt(r.qpsOnThreads)} | ${Number.isFinite(r.fromTable) ? `${fmt(r.fromTable * 100, 2)} %` : '-'} | ${fmt(r.p50ms, 3)} / ${fmt(r.p99ms, 3)} | ${fmt(r.peakRssMB)} / ${fmt(r.rssAfterMB)} |`);
  }
  for (const r of refs) console.log(`| ${r.server} (latency reference) | – | – | – | – | – | ${fmt(r.p50ms, 3)} / ${fmt(r.p99ms, 3)} | – |`);
  const one = rows.find((r) => r.row === '--workers 1');
  const two = rows.find((r) => r.row === '--workers 2');
  const all = rows.find((r) => r.row.startsWith('default'));
  const qpsGain = two && one ? two.qpsOnThreads / one.qpsOnThreads : NaN;
  const rssRatio = all && one ? all.peakRssMB / one.peakRssMB : NaN;
  console.log(`\n2 workers: ${fmt(qpsGain, 2)}× one worker's QPS from CPU time (target ≥ 1.7); RSS with the default (${all?.threads ?? '?'} threads): ${fmt(rssRatio, 2)}× one worker's (target ≤ 1.25); single thread's peak ${fmt(one?.qps ?? NaN)} QPS`);
  return { qpsGain, rssRatio };
}
