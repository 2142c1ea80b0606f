// Runs inside a test's namespace (`ip netns exec NS node dist/netns-tests/nft-load-driver.js
// nft|netlink|netlink-staged|nft-refill|netlink-refill IPv4|IPv6 all|list [cidr|bridge|prefix]
// [BULK]`): loads one table made anew, with services of every kind (ClientIP affinity, node
// ports, load balancers with source ranges, eTP Local, UDP), either as `nft -f` of render.ts's
// lines or as the netlink writer's one transaction; then prints the kernel's view of it as
// JSON: chains, sets, each chain's rules as dumped expressions.
// The `-refill` modes first load an older table (other node facts, an affinity service and an
// endpoint count since gone, other endpoints), give a client a place in an affinity set, and
// then refill that table with the same services as the other modes, as a full sync over a table
// we trust does: `nft -f` of `fullLines(content, previous)`, or the writer's `refill`; `kept`
// is then the affinity set's element count.
// BULK more plain services make the table large; `netlink-staged` loads it through a socket
// whose send buffer holds only a few kilobytes, so the load is staged over many transactions,
// and then asks for a second load over the existing table, which must decline (`declined`).
// nft-load.test.ts compares the two.
import type { IPFamily } from '../cluster/types.js';
import { logger } from '../common/log.js';
import type { FamilyConfig } from '../proxy/core/family-config.js';
import type { ServicePlan, ServicePortPlan, Target } from '../proxy/core/model.js';
import { nftApply } from '../proxy/nftables/backend.js';
import { TABLE_NAME } from '../proxy/nftables/layout.js';
import { NftNetlink } from '../proxy/nftables/netlink/client.js';
import { NetlinkTableWriter } from '../proxy/nftables/netlink-writer.js';
import { collectTable, fullLines, renderService } from '../proxy/nftables/render.js';

const [mode, familyArg, nodePorts, detect, bulkArg] = process.argv.slice(2);
const bulk = Number(bulkArg ?? 0);
const family = familyArg as IPFamily;
const v6 = family === 'IPv6';
const cfg: FamilyConfig = {
  family,
  clusterCIDRs: v6 ? ['fd00::/64', 'fd10::/64'] : ['10.0.0.0/9', '10.200.0.0/16'],
  masqueradeAll: false,
  nodePortAddresses: nodePorts === 'list' ? (v6 ? ['fd01::1', 'fd01::2'] : ['192.168.1.1', '192.168.1.2']) : 'all',
  nodeIPs: [v6 ? 'fd01::1' : '192.168.1.1'],
  serviceCIDRs: v6 ? ['fd02::/112'] : ['172.30.0.0/16', '172.31.0.0/24'],
  ...(detect === 'bridge' ? { localDetector: { mode: 'BridgeInterface', bridge: 'cbr0' } } : detect === 'prefix' ? { localDetector: { mode: 'InterfaceNamePrefix', prefix: 'veth' } } : {}),
};
const ip = (n: number) => (v6 ? `fd00::${n.toString(16)}` : `10.0.0.${n}`);
const vip = (n: number) => (v6 ? `fd02::${n.toString(16)}` : `172.30.0.${n}`);
const ep = (n: number, local = true): Target => ({ ip: ip(n), port: 8080, local, ready: true });

function port(serviceKey: string, over: Partial<ServicePortPlan>): ServicePortPlan {
  return {
    serviceKey, name: `${serviceKey}:p`, family, protocol: 'TCP', port: 80, nodePort: 0, externalIPs: [], loadBalancerIPs: [], firewall: false,
    sourceRanges: [], affinitySeconds: 0, internalLocal: false, externalLocal: false, externallyAccessible: false, clusterEndpoints: [],
    localEndpoints: [], hasAnyEndpoints: true, ...over,
  };
}
function plan(key: string, p: Partial<ServicePortPlan>): ServicePlan {
  const [namespace, name] = key.split('/');
  return { key, namespace, name, ports: [port(key, p)], healthCheckNodePort: 0, localReadyEndpoints: 0 };
}
const two = [ep(11), ep(12)];
const plans: ServicePlan[] = [
  plan('t/web', { clusterIP: vip(10), clusterEndpoints: two, localEndpoints: two, nodePort: 30080, externallyAccessible: true, externalIPs: [v6 ? 'fd05::1' : '198.51.100.1'] }),
  plan('t/sticky', {
    clusterIP: vip(11), clusterEndpoints: two, localEndpoints: two, affinitySeconds: 10800, nodePort: 30081, externallyAccessible: true,
    loadBalancerIPs: [v6 ? 'fd03::2' : '203.0.113.2'], firewall: true, sourceRanges: v6 ? ['fd04::/65', 'fd06::7'] : ['198.18.0.0/9', '198.19.1.1'],
  }),
  plan('t/lb', {
    clusterIP: vip(12), protocol: 'UDP', clusterEndpoints: [ep(11), ep(13, false), ep(14, false)], localEndpoints: [ep(11)],
    loadBalancerIPs: [v6 ? 'fd03::1' : '203.0.113.1'], firewall: true, sourceRanges: [v6 ? 'fd04::/64' : '198.18.0.0/16'], externallyAccessible: true, externalLocal: true,
  }),
  plan('t/none', { clusterIP: vip(13), hasAnyEndpoints: false }),
];

for (let i = 0; i < bulk; i++) {
  const n = 1000 + i;
  const at = (k: number) => (v6 ? `fd00::${k}:${n.toString(16)}` : `10.${k}.${n >> 8}.${n & 255}`);
  plans.push(plan(`bulk/s${i}`, {
    clusterIP: v6 ? `fd02::${n.toString(16)}` : `172.30.${n >> 8}.${n & 255}`,
    clusterEndpoints: [1, 2, 3].map((k) => ({ ip: at(k), port: 8080, local: false, ready: true })),
  }));
}

const tableOf = (ps: readonly ServicePlan[], c: FamilyConfig) => collectTable(ps.map((p) => renderService(p, c)).filter((r) => r !== undefined), c);
const content = tableOf(plans, cfg);
const nl = NftNetlink.open();
// The kernel doubles the asked-for size: a batch of at most ~8 KiB.
const writer = new NetlinkTableWriter(mode === 'netlink-staged' ? NftNetlink.open({ sendBufferBytes: 4096 }) : nl, logger('nft-load-driver'));
let declined: boolean | undefined;
let kept: number | undefined;
const f = v6 ? 'ip6' : 'ip';
if (mode === 'nft-refill' || mode === 'netlink-refill') {
  const olderCfg: FamilyConfig = { ...cfg, clusterCIDRs: [v6 ? 'fd20::/64' : '10.220.0.0/16'], nodeIPs: [v6 ? 'fd01::9' : '192.168.1.9'] };
  const older = tableOf([
    ...plans.map((p) => (p.key === 't/web' ? plan('t/web', { ...p.ports[0], clusterEndpoints: [ep(15), ep(16), ep(17), ep(18)] }) : p)),
    plan('t/gone', { clusterIP: vip(20), clusterEndpoints: two, affinitySeconds: 60 }),
  ], olderCfg);
  await nftApply(fullLines(older));
  const sticky = [...content.sets.keys()].find((name) => older.sets.has(name));
  if (!sticky) throw new Error('no affinity set in both tables');
  await nftApply([`add element ${f} ${TABLE_NAME} ${sticky} { ${v6 ? 'fd09::9' : '10.9.9.9'} }`]);
  const previous = { chains: new Set(older.chains.keys()), sets: new Set(older.sets.keys()), countChains: older.countChains };
  if (mode === 'nft-refill') await nftApply(fullLines(content, previous));
  else if (!(await writer.refill(content, previous))) throw new Error('refill declined');
  kept = (await nl.listSetElements(f, TABLE_NAME, sticky)).length;
} else if (mode === 'nft') await nftApply(fullLines(content));
else if (!(await writer.loadFresh(content))) throw new Error('loadFresh declined');
if (mode === 'netlink-staged') declined = !(await writer.loadFresh(content));

const rules: Record<string, string[]> = {};
for (const r of await nl.listRules(f, TABLE_NAME)) (rules[r.chain] ??= []).push(r.expressions.toString('hex'));
const chains = (await nl.listChains(f, TABLE_NAME)).map((c) => ({ name: c.name, hook: c.hook, type: c.type }));
// Anonymous sets are named by the kernel in the order it made them; their contents are in the
// rules' text. Their number shows none was left behind by a rule that went.
const all = await nl.listSets(f, TABLE_NAME);
const sets = all.filter((s) => !s.name.startsWith('__')).map((s) => ({ ...s, handle: undefined }));
const anonymous = all.length - sets.length;
nl.close();
console.log(JSON.stringify({ rules, chains, sets, anonymous, declined, kept }));
