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
// How a run is measured is shared with bench/proxy-iptables (bench/proxy-common.ts).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { IPFamily } from '../../cluster/types.js';
import { logger } from '../../common/log.js';
import { NftablesBackend } from '../../proxy/nftables/backend.js';
import { Topology } from '../../netns-tests/harness/netns.js';
import {
  PROXY_BENCH_OPTIONS, connectSummary, eventToRuleSummary, failedFullSyncReason, fullSyncCells, fullSyncSummary,
  latencyAndMemoryCells, measureProxyRun, median, nodeWithOnePod, partialSyncCells, partialSyncSummary, predictedFullSyncMs,
  printTable, progress, proxyChildArgs, reportToParent, roundTenths, runBenchmark, runChildInNamespace, writeLinesInSlices,
  writeResults, type FullSyncSummary, type PartialSyncSummary, type ProxyRunFigures, type RunSummary,
} from '../proxy-common.js';

const { values } = parseArgs({
  options: {
    ...PROXY_BENCH_OPTIONS,
    sizes: { type: 'string', default: '10,1000,10000' },
    out: { type: 'string', default: 'bench/results/proxy-nftables.json' },
  },
});

const BENCH = 'bench/proxy-nftables';
const M = Number(values.endpoints);
const FAMILIES: IPFamily[] = ['IPv4', 'IPv6'];
const say = progress(BENCH);

interface ChildResult extends ProxyRunFigures {
  fullLines: number;
  inputFiles: string[];
  /** nft -f input lines of each partial sync, in the order of `partial`. */
  partialLines: number[];
}

// ---------------------------------------------------------------- child: one measured run

async function child(): Promise<void> {
  const dir = values.dir!;
  const inputFiles: string[] = [];
  const partialLines: number[] = [];
  let fullLines = 0;
  let updateLines = 0;
  let captureFull = true;
  const figures = await measureProxyRun({
    services: Number(values.services),
    endpointsPerService: M,
    updates: Number(values.updates),
    connects: Number(values.connects),
    dir,
    makeBackend: () => new NftablesBackend({
      families: FAMILIES,
      clusterCIDRs: ['10.0.0.0/9'],
      masqueradeAll: false,
      onApply: (family, lines, full) => {
        if (!full) {
          updateLines += lines.length;
          return;
        }
        if (!captureFull) return;
        const f = join(dir, `full-${family}.nft`);
        writeLinesInSlices(f, lines);
        inputFiles.push(f);
        fullLines += lines.length;
      },
    }, logger('bench')),
    afterFirstSync: () => {
      captureFull = false;
    },
    beforeUpdate: () => {
      updateLines = 0;
    },
    afterUpdate: () => {
      partialLines.push(updateLines);
    },
  });
  const result: ChildResult = { ...figures, fullLines, inputFiles, partialLines };
  reportToParent(result);
}

// ---------------------------------------------------------------- parent: namespaces and tables

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

type Run = RunSummary & { full: FullSyncSummary & { inputLines: number }; partial?: PartialSyncSummary & { inputLines: number } };

async function measure(n: number, dir: string): Promise<{ run?: Run; failure?: string; fullMs: number }> {
  const topo = await Topology.create();
  try {
    const node = await nodeWithOnePod(topo);
    const res = await runChildInNamespace<ChildResult>(node.name, fileURLToPath(import.meta.url), proxyChildArgs(n, dir, values));
    const fresh = await topo.namespace('fresh');
    if (res.error) return { failure: failedFullSyncReason(res.error, 'nft', () => toolAlone(fresh.name, res.inputFiles)), fullMs: 0 };
    const toolMs = toolAlone(fresh.name, res.inputFiles);
    const partial = partialSyncSummary(res.partial);
    return {
      fullMs: res.fullSyncMs,
      run: {
        services: n,
        endpoints: n * M,
        full: { ...fullSyncSummary(res, toolMs), inputLines: res.fullLines },
        partial: partial && { ...partial, inputLines: median(res.partialLines) },
        eventToRule: eventToRuleSummary(res.eventToRuleMs),
        connect: connectSummary(res),
        peakRssMB: res.peakRssMB,
      },
    };
  } finally {
    await topo.destroy();
  }
}

async function parent(): Promise<void> {
  const sizes = values.sizes!.split(',').map(Number);
  const budgetMs = Number(values['budget-s']) * 1000;
  const runs: Run[] = [];
  const skipped: { services: number; reason: string }[] = [];
  let prev: { n: number; ms: number } | undefined;
  for (const n of sizes) {
    const predicted = predictedFullSyncMs(prev, n);
    if (predicted > budgetMs) {
      skipped.push({ services: n, reason: `predicted full sync ${Math.round(predicted / 1000)} s > budget ${budgetMs / 1000} s (from ${roundTenths(prev!.ms / 1000)} s at ${prev!.n})` });
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

  printTable(
    `${BENCH} (${M} endpoints per service, IPv4 and IPv6 tables; min-sync-period 0 for the latencies)`,
    ['services', 'full ours', 'nft alone', 'ratio', 'partial wall', 'nft', 'ours', 'lines', 'event→rule p50/p99', 'connect VIP / pod p50', 'RSS'],
    runs.map((r) => [String(r.services), ...fullSyncCells(r), ...partialSyncCells(r), r.partial ? String(r.partial.inputLines) : '-', ...latencyAndMemoryCells(r)]),
    skipped.map((s) => ({ what: String(s.services), reason: s.reason })),
  );
  writeResults(values.out!, {
    benchmark: 'proxy-nftables',
    endpointsPerService: M,
    runs,
    skipped,
    notes: [
      'full.oursMs: first sync end to end (plan, render, nft -f of both families); toolAloneMs: the same nft -f inputs replayed in a fresh namespace; inputLines: both families',
      'partial: one endpoint replaced in one service, through the test API server; oursMs = wall − nft (diffing, rendering, planning, process spawn); inputLines: the nft -f input',
      'connect: TCP handshakes from the node namespace; the ClusterIP is found through the service-ips verdict map',
    ],
  });
}

runBenchmark(BENCH, values.child!, child, parent);
