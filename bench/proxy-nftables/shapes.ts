// The nftables table in shapes other than plain ClusterIPs, where the kernel's cost is not the
// elements' count: ClientIP affinity (a chain and a timeout set per endpoint) and LoadBalancers
// with source ranges (concatenated intervals: a pipapo set). Each shape is loaded in a fresh
// namespace both ways: the netlink writer as the agent ships it (a table made anew, then the
// full sync over it, the hourly one), and `nft -f` of the same table's text (made anew, then
// refilled), the anchor. Also the kernel memory the table holds: what MemAvailable regains when
// the table is deleted at the end, once it has settled (machine-wide, so a neighbour's
// allocations show too; the kernel frees a table's sets after a grace period).
//
// Run by main.ts (`--only shapes`, or after the sizes); this file is also the child that
// loads one shape (`runChildInNamespace` with `--shape-child SHAPE N ours|nft`).
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { logger } from '../../common/log.js';
import type { FamilyConfig } from '../../proxy/core/family-config.js';
import type { ServicePlan, ServicePortPlan, Target } from '../../proxy/core/model.js';
import { nftApply } from '../../proxy/nftables/backend.js';
import { NftNetlink } from '../../proxy/nftables/netlink/client.js';
import { NetlinkTableWriter } from '../../proxy/nftables/netlink-writer.js';
import { collectTable, fullLines, renderService, type TableContent } from '../../proxy/nftables/render.js';

export const SHAPES = {
  affinity: { services: 1000, what: 'ClientIP affinity, 10 endpoints each' },
  'source-ranges': { services: 5000, what: 'LoadBalancer with 5 source ranges, 3 endpoints each' },
} as const;
export type Shape = keyof typeof SHAPES;

export interface ShapeRun {
  loadMs: number;
  /** The full sync over the table just made (hourly; new node facts). */
  refillMs: number;
  /** Whether `ours` refilled through netlink (false: the table outgrew one transaction, nft -f did it). */
  refillViaNetlink?: boolean;
  kernelMB: number;
}

const CFG: FamilyConfig = { family: 'IPv4', clusterCIDRs: ['10.0.0.0/9'], masqueradeAll: false, nodePortAddresses: 'all', nodeIPs: ['192.168.1.1'], serviceCIDRs: ['172.16.0.0/12'] };

function plans(shape: Shape, n: number): ServicePlan[] {
  const out: ServicePlan[] = [];
  const perService = shape === 'affinity' ? 10 : 3;
  for (let i = 0; i < n; i++) {
    const key = `bench/s${i}`;
    const eps: Target[] = Array.from({ length: perService }, (_, j) => ({ ip: `10.${1 + (i >> 12)}.${(i >> 4) & 255}.${((i & 15) << 4) + j + 1}`, port: 8080, local: j === 0, ready: true }));
    const port: ServicePortPlan = {
      serviceKey: key, name: `${key}:http`, family: 'IPv4', protocol: 'TCP', port: 80, nodePort: 0, externalIPs: [], internalLocal: false,
      externalLocal: false, clusterEndpoints: eps, localEndpoints: eps.filter((e) => e.local), hasAnyEndpoints: true, clusterIP: `172.16.${i >> 8}.${i & 255}`,
      ...(shape === 'affinity'
        ? { affinitySeconds: 10800, loadBalancerIPs: [], firewall: false, sourceRanges: [], externallyAccessible: false }
        : {
          affinitySeconds: 0, loadBalancerIPs: [`203.${1 + (i >> 8)}.${i & 255}.1`], firewall: true, externallyAccessible: true,
          sourceRanges: Array.from({ length: 5 }, (_, k) => `198.${((i * 5 + k) >> 8) & 255}.${(i * 5 + k) & 255}.0/24`),
        }),
    };
    out.push({ key, namespace: 'bench', name: `s${i}`, ports: [port], healthCheckNodePort: 0, localReadyEndpoints: 1 });
  }
  return out;
}

function memAvailableMB(): number {
  const m = /^MemAvailable:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** MemAvailable once two reads 300 ms apart agree within 2 MB (at most 5 s). */
async function settledMemAvailableMB(): Promise<number> {
  let last = memAvailableMB();
  for (let i = 0; i < 16; i++) {
    await new Promise((r) => setTimeout(r, 300));
    const now = memAvailableMB();
    if (Math.abs(now - last) < 2) return now;
    last = now;
  }
  return last;
}

/** What deleting the table gives back to MemAvailable. */
async function tableMB(): Promise<number> {
  const held = await settledMemAvailableMB();
  await nftApply(['delete table ip kube-dataplane']);
  return (await settledMemAvailableMB()) - held;
}

async function loadOnce(content: TableContent, how: 'ours' | 'nft'): Promise<ShapeRun> {
  const previous = { chains: new Set(content.chains.keys()), sets: new Set(content.sets.keys()), countChains: content.countChains };
  if (how === 'nft') {
    const t0 = performance.now();
    await nftApply(fullLines(content));
    const loadMs = performance.now() - t0;
    const t1 = performance.now();
    await nftApply(fullLines(content, previous));
    const refillMs = performance.now() - t1;
    return { loadMs, refillMs, kernelMB: await tableMB() };
  }
  const nl = NftNetlink.open();
  try {
    const writer = new NetlinkTableWriter(nl, logger('bench'));
    const t0 = performance.now();
    if (!(await writer.loadFresh(content))) throw new Error('the fresh load declined');
    const loadMs = performance.now() - t0;
    const t1 = performance.now();
    // As the backend does: nft -f when the refill does not fit one transaction.
    const refillViaNetlink = await writer.refill(content, previous);
    if (!refillViaNetlink) await nftApply(fullLines(content, previous));
    const refillMs = performance.now() - t1;
    return { loadMs, refillMs, refillViaNetlink, kernelMB: await tableMB() };
  } finally {
    nl.close();
  }
}

/** The child: one shape loaded one way in the namespace it runs in; prints `RESULT {…}`. */
export async function shapeChild(shape: Shape, n: number, how: 'ours' | 'nft'): Promise<void> {
  const content = collectTable(plans(shape, n).map((p) => renderService(p, CFG)).filter((r) => r !== undefined), CFG);
  const r = await loadOnce(content, how);
  process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
}

const at = process.argv.indexOf('--shape-child');
if (at >= 0) {
  const [shape, n, how] = process.argv.slice(at + 1);
  if (!(shape in SHAPES) || (how !== 'ours' && how !== 'nft')) throw new Error(`--shape-child ${shape} ${n} ${how}: expected ${Object.keys(SHAPES).join('|')} N ours|nft`);
  await shapeChild(shape as Shape, Number(n), how);
}
