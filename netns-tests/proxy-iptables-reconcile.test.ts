// The iptables mode's reconcile with real packets: the proxy runs with --sync-period 2s; an
// "operator" inside the node namespace flushes a service chain, deletes the KUBE-SERVICES jumps
// from PREROUTING/OUTPUT and puts a stray DROP in an endpoint chain. Within a few ticks service
// traffic works again, /metrics counts the repairs, and quiet ticks rewrite nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProxyEnv, serviceYaml, tally } from './proxy-env.js';

const PODS = ['pod-a', 'pod-b', 'pod-c'];
const VIP4 = '10.96.0.10';
const VIP6 = 'fd00:96::10';

/** The value of one sample of /metrics (0 when absent). */
function metric(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('proxy: iptables reconcile', () => {
  let env: ProxyEnv;
  const metrics = async () => (await env.http('http://127.0.0.1:10249/metrics')).body;
  const ipt = (family: 4 | 6, args: string[]) => env.node.exec(family === 4 ? 'iptables-nft' : 'ip6tables-nft', args);
  const reachesAll = async (vip: string) => Object.keys(tally(await env.connect(env.client, 'tcp', vip, 80, 24, 1000))).sort().join(',') === PODS.join(',');
  /** Waits until the proxy has done `n` more reconciles. */
  const ticks = async (n: number) => {
    const start = metric(await metrics(), 'kubedataplane_proxy_reconciles_total');
    await env.eventually(`${n} reconciles`, async () => metric(await metrics(), 'kubedataplane_proxy_reconciles_total'), (v) => v >= start + n, 15_000);
  };

  beforeAll(async () => {
    env = await ProxyEnv.create({ pods: PODS });
    env.write('web.yaml', serviceYaml({ name: 'web', clusterIPs: [VIP4, VIP6], endpoints: env.pods.flatMap((p) => [{ ip: p.ip4 }, { ip: p.ip6 }]) }));
    await env.startProxy({ pods: PODS, flags: ['--iptables-backend', 'nft', '--sync-period', '2s', '--min-sync-period', '100ms'] });
  });

  afterAll(async () => {
    await env?.destroy();
  });

  it('quiet ticks read the rules back and rewrite nothing', async () => {
    expect(await reachesAll(VIP4)).toBe(true);
    await ticks(2);
    const m = await metrics();
    expect(metric(m, 'kubeproxy_sync_full_proxy_rules_duration_seconds_count')).toBe(1);
    expect(m).not.toMatch(/^kubedataplane_proxy_reconcile_repairs_total\{/m);
    expect(env.proxy!.stderr).not.toMatch(/repairing iptables rules/);
  });

  it('a flushed service chain, deleted jumps and a stray rule are repaired within a few seconds', async () => {
    const services = (await ipt(4, ['-t', 'nat', '-S', 'KUBE-SERVICES'])).stdout;
    const svc = new RegExp(`-d ${VIP4.replace(/\./g, '\\.')}/32 .*-j (KUBE-SVC-\\S+)`).exec(services)![1];
    const seps = (await ipt(4, ['-t', 'nat', '-S', svc])).stdout.match(/KUBE-SEP-\S+/g)!;
    const jump = ['-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'];

    // The operator.
    await ipt(4, ['-t', 'nat', '-F', svc]);
    await ipt(4, ['-t', 'nat', '-D', 'PREROUTING', ...jump]);
    await ipt(4, ['-t', 'nat', '-D', 'OUTPUT', ...jump]);
    await ipt(6, ['-t', 'nat', '-D', 'PREROUTING', ...jump]);
    await ipt(4, ['-t', 'nat', '-I', seps[0], '1', '-p', 'tcp', '-j', 'RETURN']);
    const t0 = Date.now();
    // Broken now: nothing DNATs the cluster IPs from outside the node (until the next tick).
    expect((await ipt(4, ['-t', 'nat', '-S', 'PREROUTING'])).stdout).not.toMatch(/KUBE-SERVICES/);

    await env.eventually('IPv4 service traffic repaired', () => reachesAll(VIP4), (ok) => ok, 10_000);
    await env.eventually('IPv6 service traffic repaired', () => reachesAll(VIP6), (ok) => ok, 10_000);
    expect(Date.now() - t0).toBeLessThan(10_000);

    const m = await metrics();
    expect(metric(m, 'kubedataplane_proxy_reconcile_repairs_total', 'kind="chains"')).toBeGreaterThanOrEqual(2);
    expect(metric(m, 'kubedataplane_proxy_reconcile_repairs_total', 'kind="jumps"')).toBeGreaterThanOrEqual(3);
    // Only repairs: no full rewrite.
    expect(metric(m, 'kubeproxy_sync_full_proxy_rules_duration_seconds_count')).toBe(1);
    expect((await ipt(4, ['-t', 'nat', '-S', seps[0]])).stdout).not.toMatch(/-j RETURN/);
    expect((await ipt(4, ['-t', 'nat', '-S', 'PREROUTING'])).stdout.match(/-j KUBE-SERVICES/g)).toHaveLength(1);
    expect(env.proxy!.stderr).toMatch(/repairing iptables rules/);
  });

  it('after the repair, quiet ticks again write nothing', async () => {
    const before = await metrics();
    await ticks(2);
    const after = await metrics();
    for (const kind of ['chains', 'jumps']) {
      const labels = `kind="${kind}"`;
      expect(metric(after, 'kubedataplane_proxy_reconcile_repairs_total', labels)).toBe(metric(before, 'kubedataplane_proxy_reconcile_repairs_total', labels));
    }
    expect(metric(after, 'kubeproxy_sync_full_proxy_rules_duration_seconds_count')).toBe(1);
    expect(metric(after, 'kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total')).toBe(0);
  });
});
