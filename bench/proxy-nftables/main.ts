// Benchmark: the nftables proxy (`--proxy-mode nftables`), in network namespaces, per size
// (N services × 10 endpoints, from the test API server through the real watch client). Both
// families are programmed as the proxy does (the IPv6 table holds only the fixed objects: the
// population is IPv4).
//   1. Full sync: our end-to-end time (plan, render, `nft -f` per family) against `nft -f` alone
//      replaying the same inputs in a fresh namespace. The ratio is the figure.
//   2. One endpoint change: partial sync wall time, nft's part, ours (the rest), input lines.
//   3. Event → rule live: from the write to the API server until the sync carrying it is done.
//   4. First-packet TCP connect time through a ClusterIP and directly to the pod (a verdict-map
//      lookup: no position in a rule list to be worst at).
//   5. Peak RSS of the proxy process (catalog + proxier; the API server runs apart).
// A size whose full sync is predicted (quadratic from the previous size) to take longer than
// --budget-s is not run, and the table says so. Table on stdout, JSON in bench/results/.
//
// The layout follows bench/proxy-iptables/main.ts, which exports nothing (it runs on import), so
// the few helpers below are small copies.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Catalog } from '../../cluster/catalog.js';
import type { Kind } from '../../cluster/sink.js';
import type { IPFamily } from '../../cluster/types.js';
import { configureLogging, logger } from '../../common/log.js';
import { Proxier } from '../../proxy/core/proxier.js';
import { NftablesBackend } from '../../proxy/nftables/backend.js';
import { Topology } from '../../netns-tests/harness/netns.js';
import { agentNodeFlags } from '../agent-node-flags.js';

const { values } = parseArgs({
  options: {
    child: { type: 'boolean', default: false },
    sizes: { type: 'string', default: '10,1000,10000' },
    endpoints: { type: 'string', default: '10' },
    updates: { type: 'string', default: '10' },
    connects: { type: 'string', default: '200' },
    'budget-s': { type: 'string', default: '150' },
    out: { type: 'string', default: 'bench/results/proxy-nftables.json' },
    // child only
    services: { type: 'string' },
    dir: { type: 'string' },
  },
});

const M = Number(values.endpoints);
const FAMILIES: IPFamily[] = ['IPv4', 'IPv6'];
const TARGET_VIP = '10.95.0.1';
const POD_IP = '10.250.0.2';
const KINDS: Kind[] = ['Service', 'EndpointSlice', 'Node'];

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const r1 = (x: number) => Math.round(x * 10) / 10;
const r3 = (x: number) => Math.round(x * 1000) / 1000;
const say = (s: string) => process.stderr.write(`bench/proxy-nftables: ${s}\n`);

interface ChildResult {
  /** Set when the first full sync failed; the rest is then empty. */
  error?: string;
  fullSyncMs: number;
  fullOwnMs: number;
  fullToolMs: number;
  fullPlanMs: number;
  fullLines: number;
  inputFiles: string[];
  partial: { wallMs: number; toolMs: number; oursMs: number; planMs: number; renderMs: number; lines: number }[];
  eventToRuleMs: number[];
  connectViaVipMs: number[];
  connectDirectMs: number[];
  peakRssMB: number;
}

// ---------------------------------------------------------------- child: one measured run

async function connectTimes(host: string, port: number, n: number): Promise<number[]> {
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

/** Writes one nft input in slices: one string of the whole input would show in the RSS measured. */
function writeInput(file: string, lines: readonly string[]): void {
  const fd = openSync(file, 'w');
  try {
    for (let i = 0; i < lines.length; i += 20_000) writeSync(fd, lines.slice(i, i + 20_000).join('\n') + '\n');
  } finally {
    closeSync(fd);
  }
}

async function child(): Promise<void> {
  configureLogging({ level: 'warn' });
  const N = Number(values.services);
  const dir = values.dir!;
  const { forkTestApiServer } = await import('../../test-apiserver/child.js');
  const { endpointSlice, endpointIP, service } = await import('../../test-apiserver/population.js');
  const kubeconfig = join(dir, 'kubeconfig');
  const server = await forkTestApiServer(['--services', String(N), '--endpoints-per-service', String(M), '--nodes', '10', '--kubeconfig-out', kubeconfig, '--log-level', 'warn']);
  try {
    await server.send({ op: 'apply', object: service({ namespace: 'zz-bench', name: 'target', clusterIP: TARGET_VIP }) });
    await server.send({ op: 'apply', object: endpointSlice({ namespace: 'zz-bench', service: 'target', addresses: [POD_IP], nodeName: 'node-0' }) });

    const { KubeSource } = await import('../../cluster/sources/kube.js');
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

    const inputFiles: string[] = [];
    let fullLines = 0;
    let partialLines = 0;
    let captureFull = true;
    const backend = new NftablesBackend({
      families: FAMILIES,
      clusterCIDRs: ['10.0.0.0/9'],
      masqueradeAll: false,
      onApply: (family, lines, full) => {
        if (!full) {
          partialLines += lines.length;
          return;
        }
        if (!captureFull) return;
        const f = join(dir, `full-${family}.nft`);
        writeInput(f, lines);
        inputFiles.push(f);
        fullLines += lines.length;
      },
    }, logger('bench'));
    const proxier = new Proxier(catalog, backend, {
      nodeName: 'node-0',
      minSyncPeriodMs: 0,
      syncPeriodMs: 3_600_000,
      nodeFacts: async () => ({ nodeIPs: { IPv4: [], IPv6: [] }, nodePortAddresses: { IPv4: 'all', IPv6: 'all' } }),
    }, logger('bench'));

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
    captureFull = false;
    const rss = () => r1((process.resourceUsage().maxRSS * 1024) / 1048576);
    const result: ChildResult = {
      fullSyncMs: 0, fullOwnMs: 0, fullToolMs: backend.lastToolMs, fullPlanMs: 0, fullLines, inputFiles,
      partial: [], eventToRuleMs: [], connectViaVipMs: [], connectDirectMs: [], peakRssMB: 0,
    };
    const full = proxier.lastReport;
    if (!full) {
      await proxier.stop();
      await source.stop();
      process.stdout.write(`RESULT ${JSON.stringify({ ...result, error: syncError ?? 'first sync failed', peakRssMB: rss() })}\n`);
      return;
    }
    if (!full.full) throw new Error('first sync was not a full sync');
    Object.assign(result, { fullSyncMs: full.totalMs, fullOwnMs: backend.lastOwnMs, fullToolMs: backend.lastToolMs, fullPlanMs: full.planMs });

    // One endpoint change at a time, through the API server.
    for (let k = 0; k < Number(values.updates); k++) {
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
      partialLines = 0;
      const t0 = performance.now();
      await server.send({ op: 'update', object: slice });
      await done;
      result.eventToRuleMs.push(performance.now() - t0);
      const rep = proxier.lastReport!;
      if (rep.full || rep.changed !== 1) throw new Error(`update ${k}: expected a partial sync of one service, got ${JSON.stringify(rep)}`);
      result.partial.push({ wallMs: rep.totalMs, toolMs: backend.lastToolMs, oursMs: rep.totalMs - backend.lastToolMs, planMs: rep.planMs, renderMs: backend.lastOwnMs, lines: partialLines });
    }

    result.connectViaVipMs = await connectTimes(TARGET_VIP, 80, Number(values.connects));
    result.connectDirectMs = await connectTimes(POD_IP, 8080, Number(values.connects));
    await proxier.stop();
    await source.stop();
    result.peakRssMB = rss();
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  } finally {
    await server.stop();
  }
}

// ---------------------------------------------------------------- parent: namespaces and tables

function runChild(ns: string, args: string[]): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const p = spawn('ip', ['netns', 'exec', ns, process.execPath, '--max-old-space-size=8192', ...agentNodeFlags(), fileURLToPath(import.meta.url), '--child', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.on('exit', (code) => {
      const m = /^RESULT (.*)$/m.exec(out);
      if (code === 0 && m) resolve(JSON.parse(m[1]) as ChildResult);
      else reject(new Error(`child in ${ns} exited ${code}:\n${out.slice(-2000)}`));
    });
  });
}

/** nft alone: replays the captured full-sync inputs (each makes its table anew) in a fresh namespace. */
function toolAlone(ns: string, files: string[]): number {
  let ms = 0;
  for (const f of files) {
    const t0 = performance.now();
    execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', f], { stdio: ['ignore', 'ignore', 'inherit'] });
    ms += performance.now() - t0;
  }
  return ms;
}

async function measure(n: number, dir: string): Promise<{ run?: Record<string, unknown>; failure?: string; fullMs: number }> {
  const topo = await Topology.create();
  try {
    const node = await topo.namespace('node');
    const pod = await topo.namespace('pod');
    await topo.veth({ ns: node, ifname: 'pod0', addresses: ['10.250.0.1/24'] }, { ns: pod, ifname: 'eth0', addresses: [`${POD_IP}/24`] });
    await pod.addRoute('default', 'via', '10.250.0.1');
    // Locally sent packets need a route to the service range before nat output rewrites them.
    await node.addRoute('default', 'via', POD_IP);
    const srv = pod.spawn(process.execPath, ['-e', "require('net').createServer((s) => s.end()).listen(8080, () => console.log('up'))"]);
    await srv.waitForOutput('up');
    const res = await runChild(node.name, ['--services', String(n), '--dir', dir, '--updates', values.updates!, '--connects', values.connects!, '--endpoints', values.endpoints!]);
    const fresh = await topo.namespace('fresh');
    if (res.error) {
      const t0 = performance.now();
      let alone: string;
      try {
        toolAlone(fresh.name, res.inputFiles);
        alone = `nft alone applied the same input in ${Math.round(performance.now() - t0)} ms`;
      } catch {
        alone = `nft alone fails on the same input too (after ${Math.round((performance.now() - t0) / 1000)} s)`;
      }
      return { failure: `full sync failed: ${res.error.split('\n')[0]}; ${alone}`, fullMs: 0 };
    }
    const toolMs = toolAlone(fresh.name, res.inputFiles);
    const p = res.partial;
    const med = (f: (x: ChildResult['partial'][number]) => number) => pct(p.map(f), 50);
    return {
      fullMs: res.fullSyncMs,
      run: {
        services: n,
        endpoints: n * M,
        full: { oursMs: Math.round(res.fullSyncMs), toolAloneMs: Math.round(toolMs), ratio: r3(res.fullSyncMs / toolMs), planMs: Math.round(res.fullPlanMs), renderMs: Math.round(res.fullOwnMs), toolInSyncMs: Math.round(res.fullToolMs), inputLines: res.fullLines },
        partial: p.length ? {
          count: p.length,
          wallMs: r1(med((x) => x.wallMs)),
          toolMs: r1(med((x) => x.toolMs)),
          oursMs: r3(med((x) => x.oursMs)),
          oursMaxMs: r3(Math.max(...p.map((x) => x.oursMs))),
          planMs: r3(med((x) => x.planMs)),
          renderMs: r3(med((x) => x.renderMs)),
          inputLines: med((x) => x.lines),
        } : undefined,
        eventToRule: res.eventToRuleMs.length ? { p50Ms: r1(pct(res.eventToRuleMs, 50)), p99Ms: r1(pct(res.eventToRuleMs, 99)) } : undefined,
        connect: { viaClusterIPp50Ms: r3(pct(res.connectViaVipMs, 50)), viaClusterIPp99Ms: r3(pct(res.connectViaVipMs, 99)), directP50Ms: r3(pct(res.connectDirectMs, 50)) },
        peakRssMB: res.peakRssMB,
      },
    };
  } finally {
    await topo.destroy();
  }
}

function printTable(runs: any[], skipped: { services: number; reason: string }[]): void {
  const header = ['services', 'full ours', 'nft alone', 'ratio', 'partial wall', 'nft', 'ours', 'lines', 'event→rule p50/p99', 'connect VIP / pod p50', 'RSS'];
  const rows = runs.map((r) => [
    String(r.services), `${r.full.oursMs} ms`, `${r.full.toolAloneMs} ms`, `${r.full.ratio}×`,
    r.partial ? `${r.partial.wallMs} ms` : '-', r.partial ? `${r.partial.toolMs} ms` : '-', r.partial ? `${r.partial.oursMs} ms` : '-', r.partial ? String(r.partial.inputLines) : '-',
    r.eventToRule ? `${r.eventToRule.p50Ms} / ${r.eventToRule.p99Ms} ms` : '-',
    `${r.connect.viaClusterIPp50Ms} / ${r.connect.directP50Ms} ms`, `${r.peakRssMB} MB`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  process.stdout.write(`bench/proxy-nftables (${M} endpoints per service, IPv4 and IPv6 tables; min-sync-period 0 for the latencies)\n`);
  process.stdout.write(line(header) + '\n');
  for (const r of rows) process.stdout.write(line(r) + '\n');
  for (const s of skipped) process.stdout.write(`  ${s.services}: not run — ${s.reason}\n`);
}

async function parent(): Promise<void> {
  const sizes = values.sizes!.split(',').map(Number);
  const budgetMs = Number(values['budget-s']) * 1000;
  const runs: Record<string, unknown>[] = [];
  const skipped: { services: number; reason: string }[] = [];
  let prev: { n: number; ms: number } | undefined;
  for (const n of sizes) {
    // Below 1k the fixed costs (process spawn, base table) hide the growth.
    const predicted = prev && prev.n >= 1000 ? prev.ms * (n / prev.n) ** 2 : 0;
    if (predicted > budgetMs) {
      skipped.push({ services: n, reason: `predicted full sync ${Math.round(predicted / 1000)} s > budget ${budgetMs / 1000} s (from ${r1(prev!.ms / 1000)} s at ${prev!.n})` });
      say(`${n}: skipped (${skipped[skipped.length - 1].reason})`);
      continue;
    }
    say(`${n} services × ${M} endpoints …`);
    const dir = mkdtempSync(join(tmpdir(), 'bench-proxy-nft-'));
    try {
      const r = await measure(n, dir);
      if (r.failure) {
        skipped.push({ services: n, reason: r.failure });
        say(`${n}: ${r.failure}`);
        break; // larger sizes would fail too
      }
      runs.push(r.run!);
      prev = { n, ms: r.fullMs };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  printTable(runs, skipped);
  const result = {
    benchmark: 'proxy-nftables',
    date: new Date().toISOString(),
    node: process.version,
    endpointsPerService: M,
    runs,
    skipped,
    notes: [
      'full.oursMs: first sync end to end (plan, render, nft -f of both families); toolAloneMs: the same nft -f inputs replayed in a fresh namespace; inputLines: both families',
      'partial: one endpoint replaced in one service, through the test API server; oursMs = wall − nft (diffing, rendering, planning, process spawn); inputLines: the nft -f input',
      'connect: TCP handshakes from the node namespace; the ClusterIP is found through the service-ips verdict map',
    ],
  };
  mkdirSync(dirname(values.out!), { recursive: true });
  writeFileSync(values.out!, JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(`  → ${values.out}\n`);
}

(values.child ? child() : parent()).catch((err: unknown) => {
  say(err instanceof Error ? err.stack ?? err.message : String(err));
  process.exit(1);
});
