// `kube-dataplane ipam …`: operator tools around the IPAM store and the node's pod CIDRs.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { attachmentText, type Attachment } from './allocator.js';
import { DEFAULT_MASK_SIZES, nodeCIDR, parseClusterCIDRs } from './node-cidrs.js';
import { DEFAULT_NODE_POD_CIDRS_FILE, writeNodePodCIDRsFile } from './node-pod-cidrs.js';
import { ipString, parseIP } from '../common/ip-bigint.js';
import { DEFAULT_DATA_DIR, NetworkStore } from './store.js';

const USAGE = `Usage: kube-dataplane ipam COMMAND [flags]

Commands:
  node-cidrs   carve per-node pod CIDRs out of cluster CIDRs, as the node IPAM controller does
      --cluster-cidr LIST              e.g. 10.244.0.0/16,fd00:10:244::/56 (one per family)
      --node-cidr-mask-size-ipv4 N     default 24
      --node-cidr-mask-size-ipv6 N     default 64
      --index N                        node number (0-based); or
      --count N                        the first N nodes, one line each
      --json                           print JSON instead of "INDEX CIDR,CIDR" lines
  list         print the allocations of a network
      --network NAME  --data-dir DIR (default ${DEFAULT_DATA_DIR})  --json
  gc           release addresses no live attachment holds
      --network NAME  --data-dir DIR
      --valid-attachments FILE         JSON list of {"containerID","ifname"} still in use
      --keep CONTAINERID/IFNAME        (repeatable) an attachment still in use
      --kubeconfig FILE                also keep addresses that a pod on this node reports
      --node-name NAME                 default: the hostname
      --min-age DURATION               with --kubeconfig: spare allocations younger than this
                                       (a pod whose status has no IP yet); default 5m
      --dry-run                        say what would be released, change nothing
  set-node-pod-cidrs  write the node pod CIDRs file the plugin reads (podCIDRsFrom: "node")
      --node-name NAME  --pod-cidrs LIST  --file PATH (default ${DEFAULT_NODE_POD_CIDRS_FILE})
`;

class UsageError extends Error {}

interface Parsed {
  values: Map<string, string[]>;
  bools: Set<string>;
}

const BOOL_FLAGS = new Set(['json', 'dry-run', 'help']);

function parseArgs(argv: readonly string[], known: readonly string[]): Parsed {
  const values = new Map<string, string[]>();
  const bools = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    if (BOOL_FLAGS.has(name) && eq < 0) {
      bools.add(name);
      continue;
    }
    if (!known.includes(name)) throw new UsageError(`unknown flag --${name}`);
    const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new UsageError(`--${name} needs a value`);
    values.set(name, [...(values.get(name) ?? []), value]);
  }
  return { values, bools };
}

function one(p: Parsed, name: string): string | undefined {
  return p.values.get(name)?.at(-1);
}

function required(p: Parsed, name: string): string {
  const v = one(p, name);
  if (!v) throw new UsageError(`--${name} is required`);
  return v;
}

function intFlag(p: Parsed, name: string, dflt?: number): number | undefined {
  const v = one(p, name);
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v)) throw new UsageError(`--${name} ${JSON.stringify(v)}: want a non-negative integer`);
  return Number(v);
}

/** "90s", "5m", "2h" → milliseconds. */
export function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(s);
  if (!m) throw new UsageError(`duration ${JSON.stringify(s)}: want a number with ms, s, m or h`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
}

function out(s: string): void {
  process.stdout.write(s + '\n');
}

function nodeCidrs(argv: readonly string[]): number {
  const p = parseArgs(argv, ['cluster-cidr', 'node-cidr-mask-size-ipv4', 'node-cidr-mask-size-ipv6', 'index', 'count']);
  const masks = {
    ipv4: intFlag(p, 'node-cidr-mask-size-ipv4', DEFAULT_MASK_SIZES.ipv4)!,
    ipv6: intFlag(p, 'node-cidr-mask-size-ipv6', DEFAULT_MASK_SIZES.ipv6)!,
  };
  const index = intFlag(p, 'index');
  const count = intFlag(p, 'count');
  if ((index === undefined) === (count === undefined)) throw new UsageError('give exactly one of --index N and --count N');
  let clusters;
  try {
    clusters = parseClusterCIDRs(required(p, 'cluster-cidr'), masks);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const indexes = index !== undefined ? [index] : Array.from({ length: count! }, (_, i) => i);
  const rows: { index: number; podCIDRs: string[] }[] = [];
  try {
    for (const i of indexes) rows.push({ index: i, podCIDRs: clusters.map((c) => nodeCIDR(c, i)) });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (p.bools.has('json')) out(JSON.stringify(index !== undefined ? rows[0] : rows, null, 2));
  else for (const r of rows) out(`${r.index} ${r.podCIDRs.join(',')}`);
  return 0;
}

function storeFrom(p: Parsed): NetworkStore {
  return new NetworkStore(one(p, 'data-dir') ?? DEFAULT_DATA_DIR, required(p, 'network'), {
    log: (msg) => process.stderr.write(`kube-dataplane ipam: ${msg}\n`),
  });
}

function list(argv: readonly string[]): number {
  const p = parseArgs(argv, ['network', 'data-dir']);
  const rows = storeFrom(p).list().map(({ address, containerID, ifname, time, indexed }) => ({ address, containerID, ifname, time, indexed }));
  if (p.bools.has('json')) {
    out(JSON.stringify(rows, null, 2));
    return 0;
  }
  for (const r of rows) out(`${r.address.padEnd(40)} ${r.containerID} ${r.ifname} ${r.time}${r.indexed ? '' : ' (in no index: left by a killed call or by host-local; gc decides)'}`);
  process.stderr.write(`${rows.length} addresses allocated\n`);
  return 0;
}

function readValidAttachments(path: string): Attachment[] {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new UsageError(`--valid-attachments ${path}: ${(err as Error).message}`);
  }
  if (!Array.isArray(doc)) throw new UsageError(`--valid-attachments ${path}: want a JSON list of {"containerID","ifname"}`);
  return doc.map((a: Partial<Attachment>, i: number) => {
    if (!a || typeof a.containerID !== 'string' || typeof a.ifname !== 'string') {
      throw new UsageError(`--valid-attachments ${path}[${i}]: want {"containerID": …, "ifname": …}, got ${JSON.stringify(a)}`);
    }
    return { containerID: a.containerID, ifname: a.ifname };
  });
}

async function gc(argv: readonly string[]): Promise<number> {
  const p = parseArgs(argv, ['network', 'data-dir', 'valid-attachments', 'keep', 'kubeconfig', 'node-name', 'min-age']);
  const valid: Attachment[] = [];
  const file = one(p, 'valid-attachments');
  if (file) valid.push(...readValidAttachments(file));
  for (const k of p.values.get('keep') ?? []) {
    const slash = k.lastIndexOf('/');
    if (slash <= 0 || slash === k.length - 1) throw new UsageError(`--keep ${JSON.stringify(k)}: want CONTAINERID/IFNAME`);
    valid.push({ containerID: k.slice(0, slash), ifname: k.slice(slash + 1) });
  }
  const kubeconfig = one(p, 'kubeconfig');
  if (!file && !p.values.has('keep') && !kubeconfig) {
    throw new UsageError('gc needs to know what is in use: --valid-attachments FILE, --keep ID/IFNAME or --kubeconfig FILE');
  }
  const minAgeMs = parseDuration(one(p, 'min-age') ?? '5m');
  const podAddresses = new Set<string>();
  if (kubeconfig) {
    const { listNodePods } = await import('./kube-api.js');
    const node = one(p, 'node-name') ?? hostname();
    for (const pod of await listNodePods(kubeconfig, node)) {
      for (const ip of pod.ips) {
        const parsed = parseIP(ip);
        if (parsed) podAddresses.add(ipString(parsed));
      }
    }
  }
  const dryRun = p.bools.has('dry-run');
  const now = Date.now();
  const { freed, removed } = storeFrom(p).gc(
    (all) => {
      // Attachments to keep: the listed ones, plus (with a kubeconfig) every attachment holding
      // an address a pod reports, or holding one too young for the pod's status to show it.
      const keep = [...valid];
      if (kubeconfig) {
        for (const a of all) {
          const age = now - Date.parse(a.time);
          if (podAddresses.has(a.address) || !(age >= minAgeMs)) keep.push(a);
        }
      }
      return keep;
    },
    { dryRun },
  );
  for (const f of freed) out(`${dryRun ? 'would release' : 'released'} ${f.address} (${attachmentText(f)}, since ${f.time})`);
  for (const name of removed) out(`removed leftover ${name}`);
  process.stderr.write(`${freed.length} addresses ${dryRun ? 'would be ' : ''}released\n`);
  return 0;
}

function setNodePodCIDRs(argv: readonly string[]): number {
  const p = parseArgs(argv, ['node-name', 'pod-cidrs', 'file']);
  const path = one(p, 'file') ?? DEFAULT_NODE_POD_CIDRS_FILE;
  try {
    writeNodePodCIDRsFile(path, one(p, 'node-name') ?? hostname(), required(p, 'pod-cidrs').split(',').filter(Boolean));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError((err as Error).message);
  }
  out(`wrote ${path}`);
  return 0;
}

export async function main(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === '-h' || sub === 'help' || rest.includes('--help')) {
    process.stdout.write(USAGE);
    return sub ? 0 : 2;
  }
  try {
    switch (sub) {
      case 'node-cidrs':
        return nodeCidrs(rest);
      case 'list':
        return list(rest);
      case 'gc':
        return await gc(rest);
      case 'set-node-pod-cidrs':
        return setNodePodCIDRs(rest);
      default:
        throw new UsageError(`unknown command ${JSON.stringify(sub)} (try kube-dataplane ipam --help)`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`kube-dataplane ipam ${sub}: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`kube-dataplane ipam ${sub}: ${(err as Error).message}\n`);
    return 1;
  }
}
