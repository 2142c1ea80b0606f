// Benchmark: the iptables proxy, in network namespaces, for each iptables flavour and size
// (N services × 10 endpoints, from the test API server through the real watch client).
//   1. Full sync: our end-to-end time (plan, render, iptables-save, iptables-restore) against the
//      tool alone replaying the same restore input in a fresh namespace. The ratio is the figure.
//   2. One endpoint change: partial sync wall time, the tool's part, and ours (the rest).
//   3. Event → rule live: from the write to the API server until the sync carrying it is done.
//   4. First-packet TCP connect time through a ClusterIP (its rule the last in KUBE-SERVICES, the
//      worst case) and directly to the pod.
//   5. Peak RSS of the proxy process (catalog + proxier; the API server runs apart).
// A size whose full sync is predicted (quadratic from the previous size) to take longer than
// --budget-s is not run, and the table says so. Table on stdout, JSON in bench/results/.
//
// The parent (root namespace) only creates namespaces and replays files; each measured run is a
// child process started inside its own fresh namespace with `ip netns exec`.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
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
import { IptablesBackend } from '../../proxy/iptables/backend.js';
import { toolName, type Flavour } from '../../proxy/iptables/tools.js';
import { Topology } from '../../netns-tests/harness/netns.js';
import { agentNodeFlags } from '../agent-node-flags.js';

const { values } = parseArgs({
  options: {
    child: { type: 'boolean', default: false },
    flavours: { type: 'string', default: 'legacy,nft' },
    sizes: { type: 'string', default: '10,1000,10000,30000' },
    endpoints: { type: 'string', default: '10' },
    updates: { type: 'string', default: '10' },
    connects: { type: 'string', default: '200' },
    'budget-s': { type: 'string', default: '150' },
    out: { type: 'string', default: 'bench/results/proxy-iptables.json' },
    // child only
    flavour: { type: 'string' },
    services: { type: 'string' },
    dir: { type: 'string' },
  },
});

const M = Number(values.endpoints);
const TARGET_VIP = '10.95.0.1';
const POD_IP = '10.250.0.2';
const KINDS: Kind[] = ['Service', 'EndpointSlice', 'Node'];

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const median = (xs: number[]) => pct(xs, 50);
const r1 = (x: number) => Math.round(x * 10) / 10;
const r3 = (x: number) => Math.round(x * 1000) / 1000;

interface ChildResult {
  /** Set when the first full sync failed; the rest is then empty. */
  error?: string;
  flavour: Flavour;
  services: number;
  fullSyncMs: number;
  fullOwnMs: number;
  fullToolMs: number;
  fullPlanMs: number;
  restoreFiles: string[];
  partial: { wallMs: number; toolMs: number; oursMs: number; planMs: number; renderMs: number }[];
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

async function child(): Promise<void> {
  configureLogging({ level: 'warn' });
  const flavour = values.flavour as Flavour;
  const N = Number(values.services);
  const dir = values.dir!;
  const { forkTestApiServer } = await import('../../test-apiserver/child.js');
  const { endpointSlice, endpointIP, service } = await import('../../test-apiserver/population.js');
  const kubeconfig = join(dir, 'kubeconfig');
  const server = await forkTestApiServer(['--services', String(N), '--endpoints-per-service', String(M), '--nodes', '10', '--kubeconfig-out', kubeconfig, '--log-level', 'warn']);
  try {
    // The service whose first packets are timed: applied last, so its rule is the last one.
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

    const restoreFiles: string[] = [];
    let captureFull = true;
    const backend = new IptablesBackend({
      flavour,
      families: ['IPv4', 'IPv6'],
      clusterCIDRs: ['10.0.0.0/9'],
      masqueradeAll: false,
      onRestore: (family: IPFamily, text: string | readonly string[], full: boolean) => {
        if (!full || !captureFull) return;
        const f = join(dir, `full-${family}.rules`);
        // Written in slices: one string of the whole ruleset would show in the RSS we measure.
        if (typeof text === 'string') writeFileSync(f, text);
        else {
          const fd = openSync(f, 'w');
          for (let i = 0; i < text.length; i += 20_000) writeSync(fd, text.slice(i, i + 20_000).join('\n') + '\n');
          closeSync(fd);
        }
        restoreFiles.push(f);
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
    if (!proxier.lastReport) {
      await proxier.stop();
      await source.stop();
      const failed: ChildResult = {
        error: syncError ?? 'first sync failed', flavour, services: N, fullSyncMs: 0, fullOwnMs: 0, fullToolMs: backend.lastToolMs, fullPlanMs: 0,
        restoreFiles, partial: [], eventToRuleMs: [], connectViaVipMs: [], connectDirectMs: [], peakRssMB: r1((process.resourceUsage().maxRSS * 1024) / 1048576),
      };
      process.stdout.write(`RESULT ${JSON.stringify(failed)}\n`);
      return;
    }
    const full = proxier.lastReport;
    if (!full.full) throw new Error('first sync was not a full sync');
    const fullOwnMs = backend.lastOwnMs;
    const fullToolMs = backend.lastToolMs;

    // One endpoint change at a time, through the API server.
    const partial: ChildResult['partial'] = [];
    const eventToRuleMs: number[] = [];
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
      const t0 = performance.now();
      await server.send({ op: 'update', object: slice });
      await done;
      eventToRuleMs.push(performance.now() - t0);
      const rep = proxier.lastReport!;
      if (rep.full || rep.changed !== 1) throw new Error(`update ${k}: expected a partial sync of one service, got ${JSON.stringify(rep)}`);
      partial.push({ wallMs: rep.totalMs, toolMs: backend.lastToolMs, oursMs: rep.totalMs - backend.lastToolMs, planMs: rep.planMs, renderMs: backend.lastOwnMs });
    }

    const connectViaVipMs = await connectTimes(TARGET_VIP, 80, Number(values.connects));
    const connectDirectMs = await connectTimes(POD_IP, 8080, Number(values.connects));
    await proxier.stop();
    await source.stop();
    const result: ChildResult = {
      flavour,
      services: N,
      fullSyncMs: full.totalMs,
      fullOwnMs,
      fullToolMs,
      fullPlanMs: full.planMs,
      restoreFiles,
      partial,
      eventToRuleMs,
      connectViaVipMs,
      connectDirectMs,
      peakRssMB: r1((process.resourceUsage().maxRSS * 1024) / 1048576),
    };
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

async function parent(): Promise<void> {
  const flavours = values.flavours!.split(',') as Flavour[];
  const sizes = values.sizes!.split(',').map(Number);
  const budgetMs = Number(values['budget-s']) * 1000;
  const runs: Record<string, unknown>[] = [];
  const skipped: { flavour: string; services: number; reason: string }[] = [];

  for (const flavour of flavours) {
    let prev: { n: number; ms: number } | undefined;
    for (const n of sizes) {
      if (prev && prev.n >= 1000) {
        const predicted = prev.ms * (n / prev.n) ** 2;
        if (predicted > budgetMs) {
          skipped.push({ flavour, services: n, reason: `predicted full sync ${Math.round(predicted / 1000)} s > budget ${budgetMs / 1000} s (from ${Math.round(prev.ms / 1000)} s at ${prev.n})` });
          process.stderr.write(`bench/proxy-iptables: ${flavour} ${n}: skipped (${skipped[skipped.length - 1].reason})\n`);
          continue;
        }
      }
      process.stderr.write(`bench/proxy-iptables: ${flavour} ${n} services × ${M} endpoints …\n`);
      const topo = await Topology.create();
      const dir = mkdtempSync(join(tmpdir(), 'bench-proxy-'));
      try {
        const node = await topo.namespace('node');
        const pod = await topo.namespace('pod');
        await topo.veth({ ns: node, ifname: 'pod0', addresses: ['10.250.0.1/24'] }, { ns: pod, ifname: 'eth0', addresses: [`${POD_IP}/24`] });
        await pod.addRoute('default', 'via', '10.250.0.1');
        // Locally sent packets need a route to the service range before nat OUTPUT rewrites them.
        await node.addRoute('default', 'via', POD_IP);
        const srv = pod.spawn(process.execPath, ['-e', "require('net').createServer((s) => s.end()).listen(8080, () => console.log('up'))"]);
        await srv.waitForOutput('up');
        const res = await runChild(node.name, ['--flavour', flavour, '--services', String(n), '--dir', dir, '--updates', values.updates!, '--connects', values.connects!, '--endpoints', values.endpoints!]);
        const fresh = await topo.namespace('fresh');
        if (res.error) {
          let alone: string;
          const t0 = performance.now();
          try {
            toolAlone(fresh.name, flavour, res.restoreFiles);
            alone = `the tool alone applied the same input in ${Math.round(performance.now() - t0)} ms`;
          } catch {
            alone = `the tool alone fails on the same input too (after ${Math.round((performance.now() - t0) / 1000)} s)`;
          }
          const reason = `full sync failed: ${res.error.split('\n')[0]}; ${alone}`;
          skipped.push({ flavour, services: n, reason });
          process.stderr.write(`bench/proxy-iptables: ${flavour} ${n}: ${reason}\n`);
          break; // larger sizes of this flavour would fail too
        }
        const toolMs = toolAlone(fresh.name, flavour, res.restoreFiles);
        const p = res.partial;
        const run = {
          flavour,
          services: n,
          endpoints: n * M,
          full: { oursMs: Math.round(res.fullSyncMs), toolAloneMs: Math.round(toolMs), ratio: r3(res.fullSyncMs / toolMs), planMs: Math.round(res.fullPlanMs), renderMs: Math.round(res.fullOwnMs), toolInSyncMs: Math.round(res.fullToolMs) },
          partial: p.length ? {
            count: p.length,
            wallMs: r1(median(p.map((x) => x.wallMs))),
            toolMs: r1(median(p.map((x) => x.toolMs))),
            oursMs: r3(median(p.map((x) => x.oursMs))),
            oursMaxMs: r3(Math.max(...p.map((x) => x.oursMs))),
            planMs: r3(median(p.map((x) => x.planMs))),
            renderMs: r3(median(p.map((x) => x.renderMs))),
          } : undefined,
          eventToRule: res.eventToRuleMs.length ? { p50Ms: r1(pct(res.eventToRuleMs, 50)), p99Ms: r1(pct(res.eventToRuleMs, 99)) } : undefined,
          connect: { viaClusterIPp50Ms: r3(median(res.connectViaVipMs)), viaClusterIPp99Ms: r3(pct(res.connectViaVipMs, 99)), directP50Ms: r3(median(res.connectDirectMs)) },
          peakRssMB: res.peakRssMB,
        };
        runs.push(run);
        prev = { n, ms: res.fullSyncMs };
      } finally {
        await topo.destroy();
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }

  const header = ['flavour', 'services', 'full ours', 'tool alone', 'ratio', 'partial wall', 'tool', 'ours', 'event→rule p50/p99', 'connect VIP / pod p50', 'RSS'];
  const rows = runs.map((r: any) => [
    r.flavour, String(r.services),
    `${r.full.oursMs} ms`, `${r.full.toolAloneMs} ms`, `${r.full.ratio}×`,
    r.partial ? `${r.partial.wallMs} ms` : '-', r.partial ? `${r.partial.toolMs} ms` : '-', r.partial ? `${r.partial.oursMs} ms` : '-',
    r.eventToRule ? `${r.eventToRule.p50Ms} / ${r.eventToRule.p99Ms} ms` : '-',
    `${r.connect.viaClusterIPp50Ms} / ${r.connect.directP50Ms} ms`,
    `${r.peakRssMB} MB`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  process.stdout.write(`bench/proxy-iptables (${M} endpoints per service; min-sync-period 0 for the latencies)\n`);
  process.stdout.write(line(header) + '\n');
  for (const r of rows) process.stdout.write(line(r) + '\n');
  for (const s of skipped) process.stdout.write(`  ${s.flavour} ${s.services}: not run — ${s.reason}\n`);
  const result = {
    benchmark: 'proxy-iptables',
    date: new Date().toISOString(),
    node: process.version,
    endpointsPerService: M,
    runs,
    skipped,
    notes: [
      'full.oursMs: first sync end to end (plan, render, iptables-save, iptables-restore of both families); toolAloneMs: the same restore inputs replayed in a fresh namespace',
      'partial: one endpoint replaced in one service, through the test API server; oursMs = wall − tool (diffing, rendering, planning, process spawn)',
      'connect: TCP handshakes from the node namespace; the ClusterIP rule is the last one in KUBE-SERVICES (worst case)',
    ],
  };
  mkdirSync(dirname(values.out!), { recursive: true });
  writeFileSync(values.out!, JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(`  → ${values.out}\n`);
}

(values.child ? child() : parent()).catch((err: unknown) => {
  process.stderr.write(`bench/proxy-iptables: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
