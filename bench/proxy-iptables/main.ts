// Benchmark: the iptables proxy, in network namespaces, for each iptables flavour and size
// (N services × 10 endpoints, from the test API server through the real watch client). Everything
// runs with the shipped defaults (cli/flags.ts's parse: --min-sync-period 1s, --sync-period 30s,
// a full rewrite hourly) unless a row says otherwise; the flavour is named per row (the shipped
// `--iptables-backend auto` picks the host's; both are measured).
//   1. Full sync: our end-to-end time (plan, render, iptables-save, iptables-restore) against the
//      tool alone replaying the same restore input in a fresh namespace. The ratio is the figure.
//      Plus a restart: a second process's first sync over the rules already there.
//   2. Steady phase (--steady-s, default 180 s): one endpoint write a second through the API
//      server and a burst of --burst (100) writes in the middle: event → rule p50/p99/max, the
//      longest sync and its kind, the syncs by kind, CPU seconds per minute of the proxy process
//      (its iptables-restore children included), peak RSS.
//   3. One endpoint change with --min-sync-period 0 (the row says so): wall, the tool's part, ours.
//   4. First-packet TCP connect time through a ClusterIP (its rule the last in KUBE-SERVICES, the
//      worst case) and directly to the pod.
//   5. Quiet reconciles (the --sync-period tick's request with nothing changed): wall, ours, tool,
//      and their CPU as a share of a core at the shipped --sync-period.
// A size whose full sync is predicted (quadratic from the previous size) to take longer than
// --budget-s is not run, and the table says so. --quick: 1k and a 30 s steady phase. Tables on
// stdout, JSON in bench/results/.
//
// The parent (root namespace) only creates namespaces and replays files; each measured run is a
// child process started inside its own fresh namespace with `ip netns exec`. How a run is measured
// is shared with bench/proxy-nftables (bench/proxy-common.ts).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { IPFamily } from '../../cluster/types.js';
import { logger } from '../../common/log.js';
import { IptablesBackend } from '../../proxy/iptables/backend.js';
import { toolName, type Flavour } from '../../proxy/iptables/tools.js';
import { Topology } from '../../netns-tests/harness/netns.js';
import {
  COMMON_NOTES, PROXY_BENCH_OPTIONS, STEADY_HEADER, connectCells, describeSettings, failedFullSyncReason, fullSyncCells,
  measureProxyRun, nodeWithOnePod, oneChangeCells, predictedFullSyncMs, predictedRunS, printTable, progress, proxyChildArgs,
  proxyRunNumbers, reportToParent, restartCells, runBenchmark, runChildInNamespace, runSummary, shippedProxyFlags, steadyCells,
  steadySeconds, syncSettings, writeLinesInSlices, writeResults, type ProxyRunFigures, type RunSummary,
} from '../proxy-common.js';

const { values } = parseArgs({
  options: {
    ...PROXY_BENCH_OPTIONS,
    flavours: { type: 'string', default: 'legacy,nft' },
    sizes: { type: 'string' },
    out: { type: 'string', default: 'bench/results/proxy-iptables.json' },
    // child only
    flavour: { type: 'string' },
  },
});

const BENCH = 'bench/proxy-iptables';
const M = Number(values.endpoints);
const say = progress(BENCH);

interface ChildResult extends ProxyRunFigures {
  flavour: Flavour;
  services: number;
  restoreFiles: string[];
}

// ---------------------------------------------------------------- child: one measured run

async function child(): Promise<void> {
  const flavour = values.flavour as Flavour;
  const N = Number(values.services);
  const dir = values.dir!;
  const restoreFiles: string[] = [];
  let captureFull = true;
  const figures = await measureProxyRun({
    ...proxyRunNumbers(values),
    dir,
    makeBackend: (flags, metrics) => new IptablesBackend({
      flavour,
      families: ['IPv4', 'IPv6'],
      // The population's pod range (the cluster CIDR a deployment would give).
      clusterCIDRs: ['10.0.0.0/9'],
      masqueradeAll: flags.masqueradeAll,
      onRestore: (family: IPFamily, text: string | readonly string[], full: boolean) => {
        if (!full || !captureFull) return;
        const f = join(dir, `full-${family}.rules`);
        if (typeof text === 'string') writeFileSync(f, text);
        else writeLinesInSlices(f, text);
        restoreFiles.push(f);
      },
    }, logger('bench'), metrics),
    afterFirstSync: () => {
      captureFull = false;
    },
  });
  const result: ChildResult = { ...figures, flavour, services: N, restoreFiles };
  reportToParent(result);
}

// ---------------------------------------------------------------- parent: namespaces and tables

/** The tool alone: replays the captured restore inputs in a fresh namespace. */
function toolAlone(ns: string, flavour: Flavour, files: string[]): number {
  let ms = 0;
  for (const f of files) {
    const family: IPFamily = f.includes('IPv6') ? 'IPv6' : 'IPv4';
    const input = readFileSync(f);
    const t0 = performance.now();
    execFileSync('ip', ['netns', 'exec', ns, toolName(flavour, family, 'restore'), '--noflush', '--wait=5'], { input, stdio: ['pipe', 'ignore', 'inherit'], maxBuffer: 1 << 30 });
    ms += performance.now() - t0;
  }
  return ms;
}

type Run = { flavour: Flavour } & RunSummary;

async function parent(): Promise<void> {
  const flavours = values.flavours!.split(',') as Flavour[];
  const sizes = (values.sizes ?? (values.quick ? '1000' : '10,1000,10000,30000')).split(',').map(Number);
  const steadyS = steadySeconds(values);
  const budgetMs = Number(values['budget-s']) * 1000;
  const runs: Run[] = [];
  const skipped: { flavour: string; services: number; reason: string }[] = [];

  for (const flavour of flavours) {
    let prev: { n: number; ms: number } | undefined;
    for (const n of sizes) {
      const predicted = predictedFullSyncMs(prev, n);
      if (predicted > budgetMs) {
        skipped.push({ flavour, services: n, reason: `predicted full sync ${Math.round(predicted / 1000)} s > budget ${budgetMs / 1000} s (from ${Math.round(prev!.ms / 1000)} s at ${prev!.n})` });
        say(`${flavour} ${n}: skipped (${skipped[skipped.length - 1].reason})`);
        continue;
      }
      say(`${flavour} ${n} services × ${M} endpoints … (steady phase ${steadyS} s${predicted ? `, about ${predictedRunS(predicted, steadyS)} s in all` : ''})`);
      const topo = await Topology.create();
      const dir = mkdtempSync(join(tmpdir(), 'bench-proxy-'));
      try {
        const node = await nodeWithOnePod(topo);
        const res = await runChildInNamespace<ChildResult>(node.name, fileURLToPath(import.meta.url), ['--flavour', flavour, ...proxyChildArgs(n, dir, values)]);
        const fresh = await topo.namespace('fresh');
        if (res.error) {
          const reason = failedFullSyncReason(res.error, 'the tool', () => toolAlone(fresh.name, flavour, res.restoreFiles));
          skipped.push({ flavour, services: n, reason });
          say(`${flavour} ${n}: ${reason}`);
          break; // larger sizes of this flavour would fail too
        }
        const toolMs = toolAlone(fresh.name, flavour, res.restoreFiles);
        runs.push({ flavour, ...runSummary(n, M, res, toolMs) });
        prev = { n, ms: res.fullSyncMs };
      } finally {
        await topo.destroy();
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }

  const shipped = syncSettings(shippedProxyFlags());
  const notRun = skipped.map((s) => ({ what: `${s.flavour} ${s.services}`, reason: s.reason }));
  printTable(
    `${BENCH}: first full load, restart, one change, connect (${M} endpoints per service; shipped defaults: ${describeSettings(shipped)}, except the one-change columns)`,
    ['flavour', 'services', 'first sync ours', 'tool alone', 'ours/alone', 'restart full sync', 'one change wall / tool / ours (--min-sync-period 0)', 'event→rule p50 (--min-sync-period 0)', 'connect VIP / pod p50'],
    runs.map((r) => [r.flavour, String(r.services), ...fullSyncCells(r), ...restartCells(r), ...oneChangeCells(r), ...connectCells(r)]),
    notRun,
  );
  process.stdout.write('\n');
  printTable(
    `${BENCH}: steady phase (${steadyS} s, one endpoint write a second + a burst in the middle) and quiet reconciles, shipped defaults: ${describeSettings(shipped)}`,
    ['flavour', ...STEADY_HEADER],
    runs.map((r) => [r.flavour, ...steadyCells(r)]),
    notRun,
  );
  writeResults(values.out!, {
    benchmark: 'proxy-iptables',
    endpointsPerService: M,
    settings: shipped,
    runs,
    skipped,
    notes: [
      ...COMMON_NOTES,
      'full.oursMs: first sync end to end (plan, render, iptables-save, iptables-restore of both families); toolAloneMs: the same restore inputs replayed in a fresh namespace',
      'flavour: the iptables backend measured (the shipped --iptables-backend auto picks the one the host uses; both are measured)',
      'connect: TCP handshakes from the node namespace; the ClusterIP rule is the last one in KUBE-SERVICES (worst case)',
    ],
  });
}

runBenchmark(BENCH, values.child!, child, parent);
