// The DNS benchmark: dnsperf against `kube-dataplane dns` serving a large generated cluster,
// and in the same run against dnsmasq serving the same names from a hosts file (the reference).
// Everything runs inside one fresh network namespace on its loopback; each server is pinned to
// CPU 0 and dnsperf to CPU 1. Forwarded names go to a third process (dnsmasq) in the namespace.
//
//   node dist/bench/dns/main.js [--services 10000] [--endpoints 10] [--seconds 10] [--only workers|autopath]
//
// The workers rows (workers.ts) run the same server with --workers 1, 2 and the default on both
// CPUs; `--only workers` runs just those (results in bench/results/dns-workers.json), `--only
// autopath` the autopath rows (bench/results/dns-autopath.json).
//
// Reports QPS, CPU time per query (QPS on a busy shared machine varies with the neighbours; CPU
// per query much less), latency percentiles at a fixed moderate rate, peak RSS, and the ratio
// to dnsmasq. Prints a table and writes bench/results/dns.json.
//
// A third server, "node floor" (node-floor.ts), is measured the same way: a bare Node UDP
// responder on the server's own socket (dns/udp/, batched) that sends every query back with QR
// set and does no DNS work at all. Its CPU per query is what the socket path costs (recvmmsg,
// one call into JS per batch, sendmmsg, the kernel's loopback path), so the gap between our row
// and the floor's is what our own code costs. A fourth, "node:dgram floor" (cluster mix only),
// is the same responder on node:dgram: the server's fallback, and why it is not the default.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Topology, type Namespace, type Process } from '../../netns-tests/harness/netns.js';
import { largeCluster, serviceObjects, toYaml, type ServiceSpec } from './fixtures.js';
import { cpuSeconds, rssMB } from './process-stats.js';
import { measureLatencyReferences, measureWorkers, printWorkers, type LatencyReference } from './workers.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../../..');
const BIN = join(ROOT, 'dist/cmd/kube-dataplane.js');
const OURS = 5300;
const REF = 5301;
const UPSTREAM = 5302;
const FLOOR = 5303;
const DGRAM_FLOOR = 5304;
const FLOOR_BIN = join(HERE, 'node-floor.js');
const ZONE = 'cluster.local';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : Number(process.env[`DNS_BENCH_${name.toUpperCase()}`] ?? def);
}

interface Mix {
  readonly name: string;
  readonly lines: string[];
}

/** Query files: cluster names only (the target), and a mix with search-path misses and forwarded names. */
function queryMixes(specs: readonly ServiceSpec[]): Mix[] {
  const cluster: string[] = [];
  const mixed: string[] = [];
  specs.forEach((s, i) => {
    const fq = `${s.name}.${s.namespace}.svc.${ZONE}`;
    // A questions only: SRV cannot live in dnsmasq's hosts file, and dnsmasq scans its srv-host
    // list for every query (10k of them cost it 300 µs per query), which would measure that.
    const q = `${fq} A`;
    cluster.push(q);
    mixed.push(q);
    if (i % 4 === 0) mixed.push(`${fq}.${s.namespace}.svc.${ZONE} A`); // search-path miss
    if (i % 8 === 0) mixed.push(`host${i % 200}.example.test A`); // forwarded (cached after the first)
  });
  return [{ name: 'cluster', lines: cluster }, { name: 'mixed', lines: mixed }];
}

/** dnsmasq's view of the same cluster: a hosts file with the service and endpoint names. */
function dnsmasqHosts(specs: readonly ServiceSpec[], dir: string): string {
  const hosts: string[] = [];
  for (const s of specs) {
    const fq = `${s.name}.${s.namespace}.svc.${ZONE}`;
    if (s.headless) {
      for (const e of s.endpoints ?? []) {
        hosts.push(`${e.ip} ${fq}`);
        hosts.push(`${e.ip} ${e.ip.replace(/[.:]/g, '-')}.${fq}`);
      }
    } else for (const ip of s.clusterIPs ?? []) hosts.push(`${ip} ${fq}`);
  }
  writeFileSync(join(dir, 'hosts'), hosts.join('\n') + '\n');
  return join(dir, 'hosts');
}

interface Run {
  server: string;
  mix: string;
  qps: number;
  lostPct: number;
  cpuUsPerQuery: number;
  /** What one core would do at that CPU cost. */
  qpsPerCore: number;
  p50ms: number;
  p90ms: number;
  p99ms: number;
  rcodes: Record<string, number>;
}

async function dnsperf(ns: Namespace, port: number, file: string, extra: string[], timeoutMs: number) {
  return ns.exec('taskset', ['-c', '1', 'dnsperf', '-s', '127.0.0.1', '-p', String(port), '-d', file, ...extra], { timeoutMs, allowFailure: true });
}

async function measure(ns: Namespace, server: string, pid: number, port: number, mix: string, file: string, seconds: number): Promise<Run> {
  // Warm-up: fills the caches (ours and dnsmasq's) with the forwarded names.
  await dnsperf(ns, port, file, ['-n', '1', '-q', '20'], 120_000);
  const cpu0 = cpuSeconds(pid);
  const r = await dnsperf(ns, port, file, ['-l', String(seconds), '-q', '200'], (seconds + 30) * 1000);
  const cpu = cpuSeconds(pid) - cpu0;
  const num = (re: RegExp) => Number(re.exec(r.stdout)?.[1] ?? NaN);
  const completed = num(/Queries completed:\s+(\d+)/);
  const qps = num(/Queries per second:\s+([\d.]+)/);
  const lostPct = num(/Queries lost:\s+\d+ \(([\d.]+)%\)/);
  const rcodes: Record<string, number> = {};
  for (const m of r.stdout.matchAll(/^\s+(\w+) (\d+) \([\d.]+%\)$/gm)) rcodes[m[1]] = Number(m[2]);
  // Latency at a fixed rate well below saturation, from dnsperf's per-query lines.
  const v = await dnsperf(ns, port, file, ['-l', '2', '-Q', '5000', '-v'], 60_000);
  const lat = [...v.stdout.matchAll(/^> \S+ .* ([\d.]+)$/gm)].map((m) => Number(m[1]) * 1000).sort((a, b) => a - b);
  const pct = (p: number) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))] : NaN);
  const cpuUsPerQuery = (cpu / Math.max(1, completed)) * 1e6;
  return { server, mix, qps, lostPct, cpuUsPerQuery, qpsPerCore: 1e6 / cpuUsPerQuery, p50ms: pct(50), p90ms: pct(90), p99ms: pct(99), rcodes };
}

interface SearchRun {
  server: string;
  resolutionsPerSecond: number;
  queriesPerResolution: number;
  cpuUsPerResolution: number;
  failures: number;
}

const POD_IP = '10.244.99.99';
const SEARCH_CLIENT = join(HERE, 'search-client.js');
/** Resolutions in flight at once: enough that both ends' batches fill, so the server is what is
 *  measured (at 20 the client ran out of CPU first, near 170k queries/s, in both rows). */
const SEARCH_CONCURRENCY = 64;

/**
 * The autopath rows: a pod (an address on loopback, with its Pod object in the catalog) resolves
 * external names through its search path, against the same Corefile without and with
 * `autopath @kubernetes`. What the pod gets done per second is the figure (CoreDNS reports
 * 6.7k → 31.4k QPS with autopath on its own table).
 */
async function measureAutopath(ns: Namespace, dir: string, manifests: string, podNamespace: string, seconds: number): Promise<SearchRun[]> {
  await ns.ip('addr', 'add', `${POD_IP}/32`, 'dev', 'lo');
  writeFileSync(join(manifests, 'pods.yaml'), toYaml([{ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'client', namespace: podNamespace }, spec: {}, status: { podIP: POD_IP, podIPs: [{ ip: POD_IP }] } }]));
  const search = [`${podNamespace}.svc.${ZONE}`, `svc.${ZONE}`, ZONE];
  const names = Array.from({ length: 200 }, (_, i) => `host${i}.example.test`);
  const out: SearchRun[] = [];
  for (const [server, autopath] of [['search path by the pod', false], ['autopath @kubernetes', true]] as const) {
    const corefile = join(dir, `Corefile.${autopath ? 'autopath' : 'plain'}`);
    writeFileSync(corefile, [
      `.:${OURS} {`, '  bind 127.0.0.1',
      `  kubernetes ${ZONE} in-addr.arpa ip6.arpa {`, '    pods verified', '    fallthrough in-addr.arpa ip6.arpa', '  }',
      ...(autopath ? ['  autopath @kubernetes'] : []),
      `  forward . 127.0.0.1:${UPSTREAM}`, '  cache 30', '}', '',
    ].join('\n'));
    const p = ns.spawn('taskset', ['-c', '0', BIN, 'dns', '--manifests', manifests, '--corefile', corefile, '--cluster-cidr', '10.244.0.0/16'], { label: server });
    try {
      await waitFor(p, /dns serving/, 300_000);
      const run = async (s: number) => {
        const r = await ns.exec('taskset', ['-c', '1', 'node', SEARCH_CLIENT, '127.0.0.1', String(OURS), POD_IP, String(s), String(SEARCH_CONCURRENCY), search.join(','), ...names], { timeoutMs: (s + 30) * 1000 });
        return JSON.parse(r.stdout.trim().split('\n').pop()!) as { resolutions: number; queries: number; failures: number; seconds: number };
      };
      await run(1); // warm: every name in the cache
      const cpu0 = cpuSeconds(p.child.pid!);
      const r = await run(seconds);
      const cpu = cpuSeconds(p.child.pid!) - cpu0;
      out.push({ server, resolutionsPerSecond: r.resolutions / r.seconds, queriesPerResolution: r.queries / Math.max(1, r.resolutions + r.failures), cpuUsPerResolution: (cpu * 1e6) / Math.max(1, r.resolutions), failures: r.failures });
    } finally {
      await p.stop();
    }
  }
  return out;
}

/** Prints the autopath table; returns the gain (resolutions with autopath / without). */
function printAutopath(runs: readonly SearchRun[]): number {
  const fmt = (n: number, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : '-');
  console.log('\nExternal names from an ndots:5 pod (search path walked by the pod, or by the server with autopath); the flag changed is the Corefile\'s autopath line, all else the same\n');
  console.log('| server | resolutions/s (client side) | queries per resolution | server CPU µs per resolution | failures |');
  console.log('|---|---|---|---|---|');
  for (const r of runs) console.log(`| ${r.server} | ${fmt(r.resolutionsPerSecond)} | ${fmt(r.queriesPerResolution, 2)} | ${fmt(r.cpuUsPerResolution, 1)} | ${r.failures} |`);
  const gain = runs[1].resolutionsPerSecond / runs[0].resolutionsPerSecond;
  console.log(`\nautopath: ${gain.toFixed(2)}× the client-side resolutions (target ≥ 4×)`);
  return gain;
}

function writeResults(file: string, data: unknown): void {
  const out = join(ROOT, 'bench/results', file);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(data, null, 2) + '\n');
  console.log(`\nwrote ${out}`);
}

async function waitFor(p: Process, re: RegExp, ms: number): Promise<void> {
  await p.waitForOutput(re, ms);
}

async function main(): Promise<void> {
  const services = arg('services', 10_000);
  const endpoints = arg('endpoints', 10);
  const seconds = arg('seconds', 10);
  const onlyAt = process.argv.indexOf('--only');
  const only = onlyAt >= 0 ? process.argv[onlyAt + 1] : process.env.DNS_BENCH_ONLY;
  if (only !== undefined && only !== 'workers' && only !== 'autopath') throw new Error(`--only ${only}: expected workers or autopath`);
  const dir = mkdtempSync(join(tmpdir(), 'kdp-dns-bench-'));
  const topo = await Topology.create();
  try {
    const specs = largeCluster(services, endpoints);
    const manifests = join(dir, 'manifests');
    mkdirSync(manifests);
    // Several files, as a real manifest directory would have.
    const perFile = 1000;
    for (let i = 0; i < specs.length; i += perFile) writeFileSync(join(manifests, `svc-${i / perFile}.yaml`), toYaml(specs.slice(i, i + perFile).flatMap(serviceObjects)));
    const hosts = dnsmasqHosts(specs, dir);
    const mixes = queryMixes(specs).map((m) => {
      const file = join(dir, `${m.name}.txt`);
      writeFileSync(file, m.lines.join('\n') + '\n');
      return { ...m, file };
    });

    const ns = await topo.namespace('bench');
    const common = ['--no-daemon', '--no-resolv', '--no-hosts', '--conf-file=/dev/null', '--listen-address=127.0.0.1', '--bind-interfaces', '--user=root'];
    const upstream = ns.spawn('dnsmasq', [...common, `--port=${UPSTREAM}`, '--address=/example.test/192.0.2.1', '--local-ttl=300', `--pid-file=${join(dir, 'up.pid')}`], { label: 'upstream' });
    await waitFor(upstream, /started/, 10_000);

    const serverArgs = ['--manifests', manifests, '--listen', `127.0.0.1:${OURS}`, '--upstream', `127.0.0.1:${UPSTREAM}`, '--health-listen', '', '--ready-listen', '', '--metrics-listen', '127.0.0.1:9153'];
    const clusterFile = mixes.find((m) => m.name === 'cluster')!.file;
    const dnsmasqArgs = [...common, `--port=${REF}`, `--addn-hosts=${hosts}`, `--local=/${ZONE}/`, `--server=127.0.0.1#${UPSTREAM}`, '--local-ttl=5', '--cache-size=10000', `--pid-file=${join(dir, 'ref.pid')}`];
    const references: LatencyReference[] = [
      { server: 'dnsmasq', port: REF, command: ['dnsmasq', ...dnsmasqArgs], ready: /read .*hosts/ },
      { server: 'node floor', port: FLOOR, command: ['node', FLOOR_BIN, String(FLOOR), '127.0.0.1'], ready: /listening/ },
    ];
    const workersBench = async () => {
      const b = { ns, serverArgs, bin: BIN, port: OURS, file: clusterFile, seconds, dir, waitFor };
      const rows = await measureWorkers(b);
      return { rows, refs: await measureLatencyReferences(b, references, rows[0]?.latencyAtQps ?? 1000) };
    };
    if (only === 'autopath') {
      const searchRuns = await measureAutopath(ns, dir, manifests, specs[0].namespace, seconds);
      const gain = printAutopath(searchRuns);
      writeResults('dns-autopath.json', { date: new Date().toISOString(), services, endpoints, seconds, autopath: { runs: searchRuns, gain } });
      return;
    }
    if (only === 'workers') {
      const { rows, refs } = await workersBench();
      const ratios = printWorkers(rows, refs);
      writeResults('dns-workers.json', { date: new Date().toISOString(), services, endpoints, seconds, workers: { rows, latencyReferences: refs, ...ratios } });
      return;
    }

    const t0 = Date.now();
    // Executed as the DaemonSet executes it: the file's first line carries the agent's V8 flags.
    // Pinned to one CPU, the default is one thread: the rows below are the single-thread server.
    const ours = ns.spawn('taskset', ['-c', '0', BIN, 'dns', ...serverArgs], { label: 'kube-dataplane dns' });
    await waitFor(ours, /catalog synced/, 300_000);
    await waitFor(ours, /dns serving/, 300_000);
    const loadSeconds = (Date.now() - t0) / 1000;
    const ref = ns.spawn('taskset', ['-c', '0', 'dnsmasq', ...dnsmasqArgs], { label: 'dnsmasq' });
    await waitFor(ref, /read .*hosts/, 60_000);
    const floor = ns.spawn('taskset', ['-c', '0', 'node', FLOOR_BIN, String(FLOOR), '127.0.0.1'], { label: 'node floor' });
    await waitFor(floor, /listening/, 30_000);
    const dgramFloor = ns.spawn('taskset', ['-c', '0', 'node', FLOOR_BIN, String(DGRAM_FLOOR), '127.0.0.1', '--dgram'], { label: 'node:dgram floor' });
    await waitFor(dgramFloor, /listening/, 30_000);

    const runs: Run[] = [];
    for (const m of mixes) {
      runs.push(await measure(ns, 'kube-dataplane', ours.child.pid!, OURS, m.name, m.file, seconds));
      runs.push(await measure(ns, 'dnsmasq', ref.child.pid!, REF, m.name, m.file, seconds));
      runs.push(await measure(ns, 'node floor', floor.child.pid!, FLOOR, m.name, m.file, seconds));
      if (m.name === 'cluster') runs.push(await measure(ns, 'node:dgram floor', dgramFloor.child.pid!, DGRAM_FLOOR, m.name, m.file, seconds));
    }
    const pids = { 'kube-dataplane': ours.child.pid!, dnsmasq: ref.child.pid!, 'node floor': floor.child.pid!, 'node:dgram floor': dgramFloor.child.pid! };
    const rss = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, rssMB(pid, 'VmHWM')])) as Record<keyof typeof pids, number>;
    const steadyRss = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, rssMB(pid, 'VmRSS')])) as Record<keyof typeof pids, number>;

    const rows = runs.map((r) => {
      const refRun = runs.find((x) => x.server === 'dnsmasq' && x.mix === r.mix)!;
      const server = r.server as keyof typeof rss;
      return { ...r, ratioQps: r.qps / refRun.qps, ratioCpu: refRun.cpuUsPerQuery / r.cpuUsPerQuery, peakRssMB: rss[server], rssAfterMB: steadyRss[server] };
    });
    const fmt = (n: number, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : '-');
    console.log(`\nDNS benchmark: ${services} services, ${services * endpoints} endpoints, ${seconds}s per run; catalog load + first serve ${loadSeconds.toFixed(1)}s\n`);
    console.log('| server | mix | QPS | lost % | CPU µs/query | QPS per core | p50 ms | p90 ms | p99 ms | peak RSS MB | RSS after MB | QPS ratio | per-core ratio |');
    console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const r of rows) {
      console.log(`| ${r.server} | ${r.mix} | ${fmt(r.qps)} | ${fmt(r.lostPct, 2)} | ${fmt(r.cpuUsPerQuery, 1)} | ${fmt(r.qpsPerCore)} | ${fmt(r.p50ms, 3)} | ${fmt(r.p90ms, 3)} | ${fmt(r.p99ms, 3)} | ${fmt(r.peakRssMB)} | ${fmt(r.rssAfterMB)} | ${fmt(r.ratioQps, 2)} | ${fmt(r.ratioCpu, 2)} |`);
    }
    await ours.stop();
    await ref.stop();
    await floor.stop();
    await dgramFloor.stop();

    const { rows: workerRows, refs: latencyReferences } = await workersBench();
    const workerRatios = printWorkers(workerRows, latencyReferences);

    const searchRuns = await measureAutopath(ns, dir, manifests, specs[0].namespace, seconds);
    const gain = printAutopath(searchRuns);

    writeResults('dns.json', { date: new Date().toISOString(), services, endpoints, seconds, loadSeconds, targets: { clusterQpsPerCore: 35_000, ratioToDnsmasq: 0.75, rssMB: 164, autopathGain: 4, workersGain: 1.7, workersRss: 1.25, p99AtHalfPeakMs: 1 }, runs: rows, workers: { rows: workerRows, latencyReferences, ...workerRatios }, autopath: { runs: searchRuns, gain } });
  } finally {
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
