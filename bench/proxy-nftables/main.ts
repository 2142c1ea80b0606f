// Benchmark: the nftables proxy (`--proxy-mode nftables`), in network namespaces, per size
// (N services × 10 endpoints, from the test API server through the real watch client). Both
// families are programmed as the proxy does (the IPv6 table holds only the fixed objects: the
// population is IPv4). Everything runs with the shipped defaults (cli/flags.ts's parse:
// --min-sync-period 1s, --sync-period 30s, a full rewrite hourly) unless a row says otherwise.
//   1. First full load: our first sync end to end (plan, render, the table made anew through
//      nfnetlink per family); `nft -f` alone loading the same table (its `nft -f` spelling) in a
//      fresh namespace; and `nft -f` on kube-proxy's nftables layout for the same population
//      (kube-proxy-layout.ts) in another fresh namespace, the anchor. Plus a restart: a second
//      process's first sync over our table (netlink when it fits one transaction, else nft -f),
//      and the hourly full sync over the table the same process wrote (the same).
//   2. Steady phase (--steady-s, default 180 s): one endpoint write a second through the API
//      server and a burst of --burst (100) writes in the middle: event → rule p50/p99/max, the
//      longest sync and its kind, the syncs by kind, CPU seconds per minute of the proxy process
//      (its nft children included), peak RSS.
//   3. One endpoint change with --min-sync-period 0 (the row says so): wall, nft's part, ours.
//   4. First-packet TCP connect time through a ClusterIP and directly to the pod.
//   5. Quiet reconciles (the --sync-period tick's request with nothing changed): wall, ours, nft,
//      and their CPU as a share of a core at the shipped --sync-period.
// A size whose full sync is predicted (quadratic from the previous size) to take longer than
// --budget-s is not run, nor is the kube-proxy anchor of a size whose anchor is predicted beyond
// it; the tables say so. Sizes 1k, 10k, 30k (--with-100k adds 100k; --sizes replaces them);
// --quick: 1k and a 30 s steady phase. Tables on stdout, JSON in bench/results/.
//
// How a run is measured is shared with bench/proxy-iptables (bench/proxy-common.ts).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { IPFamily } from '../../cluster/types.js';
import { logger } from '../../common/log.js';
import { NftablesBackend } from '../../proxy/nftables/backend.js';
import { NftNetlink } from '../../proxy/nftables/netlink/client.js';
import { NetlinkTableWriter } from '../../proxy/nftables/netlink-writer.js';
import { Topology } from '../../netns-tests/harness/netns.js';
import { endpointIP, serviceIP } from '../../test-apiserver/population.js';
import {
  COMMON_NOTES, PROXY_BENCH_OPTIONS, STEADY_HEADER, connectCells, describeSettings, failedFullSyncReason, fullSyncCells, hourlyCells, median,
  measureProxyRun, nodeWithOnePod, oneChangeCells, predictedFullSyncMs, predictedRunS, printTable, progress, proxyChildArgs,
  proxyRunNumbers, reportToParent, restartCells, roundTenths, roundThousandths, runBenchmark, runChildInNamespace, runSummary,
  shippedProxyFlags, steadyCells, steadySeconds, syncSettings, writeLinesInSlices, writeResults, type FullSyncSummary,
  type PartialSyncSummary, type ProxyRunFigures, type RunSummary,
} from '../proxy-common.js';
import { writeKubeProxyRuleset } from './kube-proxy-layout.js';
import { SHAPES, type Shape, type ShapeRun } from './shapes.js';

const { values } = parseArgs({
  options: {
    ...PROXY_BENCH_OPTIONS,
    sizes: { type: 'string' },
    'with-100k': { type: 'boolean', default: false },
    /** `shapes`: only the table-shape rows (shapes.ts). */
    only: { type: 'string' },
    out: { type: 'string', default: 'bench/results/proxy-nftables.json' },
  },
});

const BENCH = 'bench/proxy-nftables';
const M = Number(values.endpoints);
const FAMILIES: IPFamily[] = ['IPv4', 'IPv6'];
/** The population's pod range (the cluster CIDR a deployment would give). */
const CLUSTER_CIDR = '10.0.0.0/9';
const say = progress(BENCH);

interface ChildResult extends ProxyRunFigures {
  fullLines: number;
  inputFiles: string[];
  /** nft -f input lines of each --min-sync-period 0 partial sync, in the order of `partial`. */
  partialLines: number[];
}

// ---------------------------------------------------------------- child: one measured run

/** The writer as NetlinkTableWriter.open makes it for the agent. */
function writerAsShipped(): NetlinkTableWriter {
  return new NetlinkTableWriter(NftNetlink.open(), logger('bench'));
}

async function child(): Promise<void> {
  const dir = values.dir!;
  const inputFiles: string[] = [];
  const partialLines: number[] = [];
  let fullLines = 0;
  let updateLines = 0;
  let first: NftablesBackend | undefined;
  const figures = await measureProxyRun({
    ...proxyRunNumbers(values),
    dir,
    makeBackend: (flags, metrics) => {
      const backend = new NftablesBackend({
        families: FAMILIES,
        clusterCIDRs: [CLUSTER_CIDR],
        masqueradeAll: flags.masqueradeAll,
        // As the product runs it (proxy/command.ts): partial syncs and reconciles over nfnetlink.
        writer: writerAsShipped(),
        onApply: (_family, lines, full) => {
          if (!full) updateLines += lines.length;
        },
      }, logger('bench'), metrics);
      first ??= backend;
      return backend;
    },
    beforeUpdate: () => {
      updateLines = 0;
    },
    afterUpdate: () => {
      partialLines.push(updateLines);
    },
  });
  // Our table as `nft -f` input, for the parent's "nft -f alone": spelled after the measured
  // phases, so the peak RSS they report is the agent's alone.
  for (const family of FAMILIES) {
    const lines = first?.tableLines(family) ?? [];
    if (!lines.length) continue;
    const f = join(dir, `full-${family}.nft`);
    writeLinesInSlices(f, lines);
    inputFiles.push(f);
    fullLines += lines.length;
  }
  const result: ChildResult = { ...figures, fullLines, inputFiles, partialLines };
  reportToParent(result);
}

// ---------------------------------------------------------------- parent: namespaces and tables

/** nft alone: `nft -f` of each file (each makes its table anew) in namespace `ns`, ms in all; a failure throws with nft's first lines. */
function nftFiles(ns: string, files: string[]): number {
  let ms = 0;
  for (const f of files) {
    const t0 = performance.now();
    try {
      execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', f], { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 26 });
    } catch (err) {
      const stderr = String((err as { stderr?: Buffer }).stderr ?? '').split('\n').slice(0, 2).join(' | ');
      throw new Error(`nft -f ${f}: ${stderr || (err as Error).message}`);
    }
    ms += performance.now() - t0;
  }
  return ms;
}

/** kube-proxy's layout for the bench's population of `n` services (and the target), written to `file`. */
function kubeProxyInput(file: string, n: number): { lines: number; chains: number } {
  const services = [];
  for (let i = 0; i < n; i++) {
    services.push({
      namespace: `ns-${i % 10}`, name: `svc-${i}`, port: 80, portName: 'http', vip: serviceIP(i), targetPort: 8080,
      endpoints: Array.from({ length: M }, (_, j) => endpointIP(i, j, M)),
    });
  }
  services.push({ namespace: 'zz-bench', name: 'target', port: 80, portName: 'http', vip: '10.95.0.1', targetPort: 8080, endpoints: ['10.250.0.2'] });
  return writeKubeProxyRuleset(file, { services, clusterCIDR: CLUSTER_CIDR, serviceCIDR: '10.96.0.0/12' });
}

type KubeProxyAnchor = { nftMs: number; lines: number; chains: number } | { skipped: string };

type Run = RunSummary & {
  full: FullSyncSummary & { inputLines: number };
  kubeProxyLayout: KubeProxyAnchor;
  oneChange: RunSummary['oneChange'] & { partial?: PartialSyncSummary & { inputLines: number } };
};

/** Kube-proxy anchor times so far, for the budget's prediction. */
let prevAnchor: { n: number; ms: number } | undefined;

/** `nft -f` on kube-proxy's layout for `n` services in a fresh namespace of `topo`, within the budget. */
async function kubeProxyAnchor(topo: Topology, n: number, dir: string, budgetMs: number): Promise<KubeProxyAnchor> {
  const time = async (size: number, name: string) => {
    const ns = await topo.namespace(name);
    const file = join(dir, `kube-proxy-${size}.nft`);
    const shape = kubeProxyInput(file, size);
    say(`${n}: nft -f on kube-proxy's layout, ${size} services (${shape.chains} chains, ${shape.lines} lines) …`);
    const nftMs = nftFiles(ns.name, [file]);
    rmSync(file, { force: true });
    return { nftMs: Math.round(nftMs), ...shape };
  };
  // With nothing to predict from, 1k first (about a second) calibrates the prediction.
  if (!prevAnchor && n > 1000) {
    const cal = await time(1000, 'kp-calibrate');
    prevAnchor = { n: 1000, ms: cal.nftMs };
  }
  const predicted = predictedFullSyncMs(prevAnchor, n);
  if (predicted > budgetMs) {
    return { skipped: `predicted ${Math.round(predicted / 1000)} s > budget ${budgetMs / 1000} s (quadratic from ${roundTenths(prevAnchor!.ms / 1000)} s at ${prevAnchor!.n})` };
  }
  try {
    const r = await time(n, 'kp');
    prevAnchor = { n, ms: r.nftMs };
    return r;
  } catch (err) {
    return { skipped: `nft -f failed: ${(err as Error).message.slice(0, 300)}` };
  }
}

async function measure(n: number, dir: string, budgetMs: number): Promise<{ run?: Run; failure?: string; fullMs: number }> {
  const topo = await Topology.create();
  try {
    const node = await nodeWithOnePod(topo);
    const res = await runChildInNamespace<ChildResult>(node.name, fileURLToPath(import.meta.url), proxyChildArgs(n, dir, values));
    const fresh = await topo.namespace('fresh');
    if (res.error) {
      const failure = res.inputFiles.length ? failedFullSyncReason(res.error, 'nft', () => nftFiles(fresh.name, res.inputFiles)) : `full sync failed: ${res.error.split('\n')[0]}`;
      return { failure, fullMs: 0 };
    }
    say(`${n}: nft -f alone on our table …`);
    const toolMs = nftFiles(fresh.name, res.inputFiles);
    const anchor = await kubeProxyAnchor(topo, n, dir, budgetMs);
    const base = runSummary(n, M, res, toolMs);
    return {
      fullMs: res.fullSyncMs,
      run: {
        ...base,
        full: { ...base.full, inputLines: res.fullLines },
        kubeProxyLayout: anchor,
        oneChange: { ...base.oneChange, partial: base.oneChange.partial && { ...base.oneChange.partial, inputLines: median(res.partialLines) } },
      },
    };
  } finally {
    await topo.destroy();
  }
}

function anchorCells(r: Run): string[] {
  const a = r.kubeProxyLayout;
  if ('skipped' in a) return ['not run', '-'];
  return [a.nftMs >= 10_000 ? `${roundTenths(a.nftMs / 1000)} s` : `${a.nftMs} ms`, `${roundThousandths(r.full.oursMs / a.nftMs)}×`];
}

const SHAPES_CHILD = join(dirname(fileURLToPath(import.meta.url)), 'shapes.js');

interface ShapeRow {
  shape: Shape;
  services: number;
  ours: ShapeRun;
  nft: ShapeRun;
}

/** Each shape loaded both ways, each in a fresh namespace (shapes.ts). */
async function measureShapes(): Promise<ShapeRow[]> {
  const rows: ShapeRow[] = [];
  for (const [shape, { services }] of Object.entries(SHAPES) as [Shape, (typeof SHAPES)[Shape]][]) {
    const run = async (how: 'ours' | 'nft'): Promise<ShapeRun> => {
      const topo = await Topology.create();
      try {
        const ns = await topo.namespace(`shape-${how}`);
        say(`shape ${shape}, ${services} services, ${how === 'ours' ? 'through netlink' : 'nft -f'} …`);
        return await runChildInNamespace<ShapeRun>(ns.name, SHAPES_CHILD, ['--shape-child', shape, String(services), how]);
      } finally {
        await topo.destroy();
      }
    };
    rows.push({ shape, services, ours: await run('ours'), nft: await run('nft') });
  }
  return rows;
}

function printShapes(rows: readonly ShapeRow[]): void {
  const ms = (x: number) => (x >= 10_000 ? `${roundTenths(x / 1000)} s` : `${Math.round(x)} ms`);
  const mb = (x: number) => `${Math.round(x)} MB`;
  printTable(
    `${BENCH}: table shapes (IPv4; made anew, then the full sync over it, as the hourly one; kernel memory = what MemAvailable regains when the table is deleted, settled, machine-wide)`,
    ['shape', 'services', 'ours: load / full sync over it', 'ours: kernel memory', 'nft -f: load / refill', 'nft -f: kernel memory'],
    rows.map((r) => [SHAPES[r.shape].what, String(r.services), `${ms(r.ours.loadMs)} / ${ms(r.ours.refillMs)}${r.ours.refillViaNetlink === false ? ' (nft -f)' : ''}`, mb(r.ours.kernelMB), `${ms(r.nft.loadMs)} / ${ms(r.nft.refillMs)}`, mb(r.nft.kernelMB)]),
    [],
  );
}

async function parent(): Promise<void> {
  if (values.only !== undefined && values.only !== 'shapes') throw new Error(`--only ${values.only}: expected shapes`);
  if (values.only === 'shapes') {
    const shapes = await measureShapes();
    printShapes(shapes);
    writeResults(values.out!.replace(/\.json$/, '-shapes.json'), { benchmark: 'proxy-nftables shapes', endpointsPerService: 0, runs: [], skipped: [], shapes, notes: ['shapes.ts: each shape made anew through netlink and then the full sync over it (ours), or nft -f of the same text (made anew, then refilled), each in a fresh namespace'] });
    return;
  }
  const sizes = (values.sizes ?? (values.quick ? '1000' : '1000,10000,30000')).split(',').map(Number);
  if (values['with-100k'] && !sizes.includes(100_000)) sizes.push(100_000);
  const budgetMs = Number(values['budget-s']) * 1000;
  const steadyS = steadySeconds(values);
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
    say(`${n} services × ${M} endpoints … (steady phase ${steadyS} s${predicted ? `, about ${predictedRunS(predicted, steadyS)} s in all` : ''})`);
    const dir = mkdtempSync(join(tmpdir(), 'bench-proxy-nft-'));
    try {
      const r = await measure(n, dir, budgetMs);
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

  const shipped = syncSettings(shippedProxyFlags());
  const notRun = skipped.map((s) => ({ what: String(s.services), reason: s.reason }));
  printTable(
    `${BENCH}: first full load, restart, one change, connect (${M} endpoints per service, IPv4 and IPv6 tables; shipped defaults: ${describeSettings(shipped)}, except the one-change columns)`,
    ['services', 'first sync ours', 'nft -f ours alone', 'ours/alone', 'nft -f kube-proxy layout', 'ours/kube-proxy', 'restart full sync', 'hourly full sync wall / CPU', 'one change wall / nft / ours (--min-sync-period 0)', 'lines', 'event→rule p50 (--min-sync-period 0)', 'connect VIP / pod p50'],
    runs.map((r) => [String(r.services), ...fullSyncCells(r), ...anchorCells(r), ...restartCells(r), ...hourlyCells(r), oneChangeCells(r)[0], r.oneChange.partial ? String(r.oneChange.partial.inputLines) : '-', oneChangeCells(r)[1], ...connectCells(r)]),
    [...notRun, ...runs.flatMap((r) => ('skipped' in r.kubeProxyLayout ? [{ what: `${r.services} kube-proxy layout`, reason: r.kubeProxyLayout.skipped }] : []))],
  );
  process.stdout.write('\n');
  printTable(
    `${BENCH}: steady phase (${steadyS} s, one endpoint write a second + a burst in the middle) and quiet reconciles, shipped defaults: ${describeSettings(shipped)}`,
    STEADY_HEADER,
    runs.map(steadyCells),
    notRun,
  );
  process.stdout.write('\n');
  const shapes = await measureShapes();
  printShapes(shapes);
  writeResults(values.out!, {
    benchmark: 'proxy-nftables',
    shapes,
    endpointsPerService: M,
    netCoreWmemMax: Number(readFileSync('/proc/sys/net/core/wmem_max', 'utf8').trim()),
    settings: shipped,
    runs,
    skipped,
    notes: [
      ...COMMON_NOTES,
      'full.oursMs: first sync end to end (plan, render, both families\' tables made anew through nfnetlink: one transaction, or staged ones when the table is new and larger than the socket takes); toolAloneMs: nft -f of the same tables (their nft -f spelling, written after the run so it is not in the peak RSS) in a fresh namespace; inputLines: both families',
      'hourly: the shipped proxier\'s last request sent again with full set, to the backend that wrote the table (what the hourly full sync and a change of the node\'s facts do): the table refilled through netlink in one transaction when it fits, else nft -f; cpuMs includes nft children',
      'restart: a second proxier\'s first sync over the table the first left; over an existing table only one transaction may replace it, and a table larger than the socket\'s send buffer (net.core.wmem_max, doubled) goes through nft -f, which raises its buffer with SO_SNDBUFFORCE',
      'kubeProxyLayout: nft -f in a fresh namespace on a ruleset shaped like kube-proxy\'s nftables mode for the same population (bench/proxy-nftables/kube-proxy-layout.ts: service-ips verdict map, a chain per service port with numgen random vmap, a chain per endpoint; its fixed chains, sets and maps; knftables\' add/flush statement form); skipped when predicted (quadratic from the previous size, or from a 1k calibration) beyond --budget-s',
      'oneChange.partial.inputLines: the nft -f input of the one-endpoint change',
      'connect: TCP handshakes from the node namespace; the ClusterIP is found through the service-ips verdict map',
    ],
  });
}

runBenchmark(BENCH, values.child!, child, parent);
