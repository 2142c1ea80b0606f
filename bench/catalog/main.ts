// Benchmark: the catalog built from the test API server through KubeSource (the real client).
// 1. N services × M endpoints (default 10k × 10): time from start to a synced catalog, and the
//    process's peak RSS (the server runs in a child process, so its memory is not counted).
// 2. U single-endpoint updates, one at a time: time from the write command to the server until
//    the catalog delivers the change naming that service.
// Table on stdout, JSON in bench/results/catalog.json.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Catalog } from '../../cluster/catalog.js';
import { KubeSource } from '../../cluster/sources/kube.js';
import type { Kind } from '../../cluster/sink.js';
import type { CatalogChange } from '../../cluster/types.js';
import { configureLogging, logger } from '../../common/log.js';
import { forkTestApiServer } from '../../test-apiserver/child.js';
import { agentNodeFlags } from '../agent-node-flags.js';
import { endpointIP, endpointSlice } from '../../test-apiserver/population.js';

const { values } = parseArgs({
  options: {
    services: { type: 'string', default: '10000' },
    endpoints: { type: 'string', default: '10' },
    updates: { type: 'string', default: '1000' },
    out: { type: 'string', default: 'bench/results/catalog.json' },
  },
});
const N = Number(values.services);
const M = Number(values.endpoints);
const U = Number(values.updates);
const NODES = 10;
const NAMESPACES = 10;
const KINDS: Kind[] = ['Service', 'EndpointSlice', 'Node'];

function mb(bytes: number): number {
  return Math.round((bytes / 1048576) * 10) / 10;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main(): Promise<void> {
  configureLogging({ level: (process.env.BENCH_LOG_LEVEL as 'warn' | undefined) ?? 'warn' });
  const dir = mkdtempSync(join(tmpdir(), 'bench-catalog-'));
  const kubeconfig = join(dir, 'kubeconfig');
  const server = await forkTestApiServer([
    '--services', String(N), '--endpoints-per-service', String(M), '--nodes', String(NODES),
    '--kubeconfig-out', kubeconfig, '--log-level', 'warn',
  ]);
  try {
    const rssBefore = process.memoryUsage().rss;
    const catalog = new Catalog({ kinds: KINDS });
    const source = new KubeSource({ kubeconfig, kinds: KINDS, log: logger('bench') });
    const synced = new Promise<void>((resolve) => {
      const off = catalog.onChange((c) => { if (c.synced) { off(); resolve(); } });
    });
    const t0 = performance.now();
    await source.start(catalog);
    await synced;
    const syncMs = performance.now() - t0;
    const peakRss = process.resourceUsage().maxRSS * 1024;
    const rssSynced = process.memoryUsage().rss;
    // The live heap, not what the next collection would free (the child runs with --expose-gc).
    (globalThis as { gc?: () => void }).gc?.();
    const heapSynced = process.memoryUsage().heapUsed;

    let services = 0;
    let endpoints = 0;
    for (const s of catalog.services()) {
      services++;
      endpoints += catalog.endpoints(s.key)?.endpoints.length ?? 0;
    }
    if (services !== N || endpoints !== N * M) throw new Error(`catalog holds ${services} services and ${endpoints} endpoints, expected ${N} and ${N * M}`);

    // The watches open right after the lists; let them, so update 1 is not measured against a
    // watch still connecting.
    await source.synced;
    await new Promise((r) => setTimeout(r, 500));

    let waiter: { key: string; resolve: (t: number) => void } | undefined;
    const off = catalog.onChange((c: CatalogChange) => {
      if (waiter && c.services.has(waiter.key)) {
        const w = waiter;
        waiter = undefined;
        w.resolve(performance.now());
      }
    });
    const latencies: number[] = [];
    const notReady = new Map<number, number>(); // service → its endpoint currently not ready
    for (let k = 0; k < U; k++) {
      const i = (k * 7919) % N;
      const namespace = `ns-${i % NAMESPACES}`;
      const name = `svc-${i}`;
      const addresses = Array.from({ length: M }, (_, j) => endpointIP(i, j, M));
      const slice = endpointSlice({ namespace, service: name, addresses, nodeName: `node-${i % NODES}` }) as { endpoints: { conditions: { ready: boolean; serving: boolean } }[] };
      // One endpoint flips to not ready (the previous one of this service, if any, is ready again).
      const j = (notReady.get(i) ?? -1) + 1 < M ? (notReady.get(i) ?? -1) + 1 : 0;
      slice.endpoints[j].conditions = { ready: false, serving: false };
      notReady.set(i, j);
      const changed = new Promise<number>((resolve) => { waiter = { key: `${namespace}/${name}`, resolve }; });
      const start = performance.now();
      await server.send({ op: 'update', object: slice });
      const end = await changed;
      latencies.push(end - start);
    }
    off();
    await source.stop();

    const sorted = [...latencies].sort((a, b) => a - b);
    const mean = latencies.reduce((a, b) => a + b, 0) / (latencies.length || 1);
    const result = {
      benchmark: 'catalog',
      date: new Date().toISOString(),
      node: process.version,
      services: N,
      endpointsPerService: M,
      endpoints: N * M,
      nodes: NODES,
      sync: {
        timeToSyncedMs: Math.round(syncMs),
        peakRssMB: mb(peakRss),
        rssBeforeMB: mb(rssBefore),
        rssSyncedMB: mb(rssSynced),
        heapUsedSyncedMB: mb(heapSynced),
      },
      updates: U === 0 ? undefined : {
        count: U,
        meanMs: +mean.toFixed(3),
        p50Ms: +percentile(sorted, 50).toFixed(3),
        p95Ms: +percentile(sorted, 95).toFixed(3),
        p99Ms: +percentile(sorted, 99).toFixed(3),
        maxMs: +sorted[sorted.length - 1].toFixed(3),
      },
      note: 'update latency: from sending the write to the server process (IPC) until the catalog delivered the change naming the service; the server runs in a child process',
    };

    const rows: [string, string][] = [
      ['services × endpoints', `${N} × ${M} (${N * M} endpoints), ${NODES} nodes`],
      ['time to synced', `${result.sync.timeToSyncedMs} ms`],
      ['peak RSS (process)', `${result.sync.peakRssMB} MB (before: ${result.sync.rssBeforeMB} MB)`],
      ['RSS / heap after sync', `${result.sync.rssSyncedMB} MB / ${result.sync.heapUsedSyncedMB} MB`],
    ];
    if (result.updates) {
      const u = result.updates;
      rows.push(['updates', `${u.count}, one endpoint each, sequential`]);
      rows.push(['per update mean / p50', `${u.meanMs} ms / ${u.p50Ms} ms`]);
      rows.push(['per update p95 / p99 / max', `${u.p95Ms} ms / ${u.p99Ms} ms / ${u.maxMs} ms`]);
    }
    const w = Math.max(...rows.map(([k]) => k.length));
    process.stdout.write(`bench/catalog (KubeSource + Catalog against the test API server)\n`);
    for (const [k, v] of rows) process.stdout.write(`  ${k.padEnd(w)}  ${v}\n`);
    mkdirSync(dirname(values.out!), { recursive: true });
    writeFileSync(values.out!, JSON.stringify(result, null, 2) + '\n');
    process.stdout.write(`  → ${values.out}\n`);
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// Measured as deployed: the work runs in a child with the agent's V8 flags.
if (process.env.KDP_BENCH_CHILD) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench/catalog: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  });
} else {
  const child = spawnSync(process.execPath, [...agentNodeFlags(), '--expose-gc', fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, KDP_BENCH_CHILD: '1' },
  });
  process.exit(child.status ?? 1);
}
