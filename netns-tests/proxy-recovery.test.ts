// Failure and life cycle: an iptables-restore that fails (a failing wrapper first in PATH) is
// counted, logged and recovered from with a full sync; a restart over the existing ruleset keeps
// established flows; health and metrics endpoints; bad objects stay alone; --cleanup.
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, CLIENT, ProxyEnv, serviceYaml, tally } from './proxy-env.js';

const PODS = ['pod-a', 'pod-b'];

describe('proxy: failures and life cycle', () => {
  let env: ProxyEnv;
  const wrappers = mkdtempSync(join(tmpdir(), 'kdp-wrap-'));
  const flag = join(wrappers, 'fail');
  const all = () => env.pods.flatMap((p) => [{ ip: p.ip4 }, { ip: p.ip6 }]);
  const proxyEnv = { ...process.env, PATH: `${wrappers}:${process.env.PATH}` };

  beforeAll(async () => {
    // The wrapper fails while the flag file exists, and is the real tool otherwise.
    for (const tool of ['iptables-nft-restore', 'ip6tables-nft-restore']) {
      const path = join(wrappers, tool);
      writeFileSync(path, `#!/bin/sh\nif [ -e ${flag} ]; then cat >/dev/null; echo "injected failure" >&2; exit 1; fi\nexec /usr/sbin/${tool} "$@"\n`);
      chmodSync(path, 0o755);
    }
    env = await ProxyEnv.create({ pods: PODS });
    env.write('web.yaml', serviceYaml({ name: 'web', clusterIPs: ['10.96.2.1', 'fd00:96::2:1'], endpoints: all(), ports: [
      { name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP' },
      { name: 'echo', port: 90, targetPort: 9090, protocol: 'TCP' },
    ] }));
    await env.startProxy({ pods: PODS, flags: ['--iptables-backend', 'nft'], env: proxyEnv });
  });

  afterAll(async () => {
    await env?.destroy();
    rmSync(wrappers, { recursive: true, force: true });
  });

  it('/healthz and /livez answer with kube-proxy\'s JSON; /metrics has kube-proxy\'s names', async () => {
    for (const path of ['/healthz', '/livez']) {
      const r = await env.http(`http://127.0.0.1:10256${path}`);
      expect(r.status).toBe(200);
      const body = JSON.parse(r.body);
      expect(Date.parse(body.lastUpdated)).toBeGreaterThan(0);
      expect(Date.parse(body.currentTime)).toBeGreaterThan(0);
      if (path === '/healthz') expect(body.nodeEligible).toBe(true);
    }
    const m = await env.http('http://127.0.0.1:10249/metrics');
    expect(m.status).toBe(200);
    for (const name of [
      'kubeproxy_sync_proxy_rules_duration_seconds_bucket',
      'kubeproxy_sync_full_proxy_rules_duration_seconds_count',
      'kubeproxy_sync_proxy_rules_last_timestamp_seconds',
      'kubeproxy_sync_proxy_rules_iptables_total{table="nat"}',
      'kubeproxy_sync_proxy_rules_endpoint_changes_total',
      'kubeproxy_sync_proxy_rules_service_changes_total',
      'kubeproxy_sync_proxy_rules_iptables_restore_failures_total 0',
      'kubeproxy_network_programming_duration_seconds_count',
    ]) expect(m.body).toContain(name);
  });

  it('a failing iptables-restore is counted, logged and recovered from with a full sync', async () => {
    const fullsBefore = (env.proxy!.stderr.match(/rules synced sync=full/g) ?? []).length;
    writeFileSync(flag, '');
    env.write('late.yaml', serviceYaml({ name: 'late', clusterIPs: ['10.96.2.2'], endpoints: all() }));
    await env.proxy!.waitForOutput('injected failure', 15_000);
    expect(env.proxy!.stderr).toMatch(/ERROR proxy iptables-restore failed/);
    const m = await env.http('http://127.0.0.1:10249/metrics');
    expect(m.body).toMatch(/kubeproxy_sync_proxy_rules_iptables_restore_failures_total [1-9]/);
    expect(m.body).toMatch(/kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total [1-9]/);
    // While the tool fails, the new service has no rules.
    expect(await env.connect(env.client, 'tcp', '10.96.2.2', 80, 1, 1500)).toEqual(['ERR ETIMEDOUT']);
    rmSync(flag);
    const t = await env.eventually('late service works', async () => tally(await env.connect(env.client, 'tcp', '10.96.2.2', 80, 10, 1500)), (t) => Object.keys(t).length === 2);
    expect(Object.keys(t).sort()).toEqual(PODS);
    expect((env.proxy!.stderr.match(/rules synced sync=full/g) ?? []).length).toBeGreaterThan(fullsBefore);
  });

  it('a restart over the existing ruleset keeps an established connection, and adds no duplicate jumps', async () => {
    const stream = env.client.spawn('node', [CLIENT, 'tcp-stream', '10.96.2.1', '90', '100'], { label: 'tcp stream' });
    await stream.waitForOutput(/pod-\w 3\n/);
    await env.proxy!.stop();
    await env.startProxy({ pods: PODS, flags: ['--iptables-backend', 'nft'], env: proxyEnv });
    const mark = stream.stdout.length;
    await env.eventually('stream goes on', async () => stream.stdout.slice(mark), (s) => s.split('\n').length > 10, 10_000);
    expect(stream.stdout).not.toContain('ERR');
    expect(new Set(stream.stdout.trim().split('\n').map((l) => l.split(' ')[0])).size).toBe(1);
    await stream.stop();
    const saved = (await env.node.exec('iptables-nft-save', [])).stdout;
    expect(saved.match(/^-A PREROUTING .*-j KUBE-SERVICES$/gm)).toHaveLength(1);
    expect(saved.match(/^-A FORWARD .*-j KUBE-FORWARD$/gm)).toHaveLength(1);
  });

  it('bad objects are refused alone; a selector-less service with hand-made slices works', async () => {
    const bad = [
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'port-zero', namespace: 'test' }, spec: { clusterIP: '10.96.2.10', ports: [{ port: 0, protocol: 'TCP' }] } },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'dup-ports', namespace: 'test' }, spec: { clusterIP: '10.96.2.11', ports: [{ name: 'a', port: 80, protocol: 'TCP' }, { name: 'a', port: 80, protocol: 'TCP' }] } },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'wrong-family', namespace: 'test' }, spec: { clusterIP: '10.96.2.12', clusterIPs: ['10.96.2.12'], ipFamilies: ['IPv6'], ports: [{ port: 80 }] } },
      { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'orphan', namespace: 'test', labels: { 'kubernetes.io/service-name': 'missing' } }, addressType: 'IPv4', ports: [{ port: 8080 }], endpoints: [{ addresses: ['10.244.0.11'] }] },
    ];
    env.write('bad.yaml', bad.map((d) => JSON.stringify(d)).join('\n---\n'));
    const manual = serviceYaml({ name: 'manual', clusterIPs: ['10.96.2.13'], endpoints: [{ ip: env.pods[1].ip4 }] })
      .replace('"selector":{"app":"manual"}', '"selector":null');
    env.write('manual.yaml', manual);
    const t = await env.eventually('manual service works', async () => tally(await env.connect(env.client, 'tcp', '10.96.2.13', 80, 5, 1500)), (t) => t['pod-b'] === 5);
    expect(t).toEqual({ 'pod-b': 5 });
    // The others were not disturbed.
    expect(Object.keys(tally(await env.connect(env.client, 'tcp', '10.96.2.1', 80, 20))).sort()).toEqual(PODS);
  });

  it('--cleanup removes every chain and jump it created, in both families', async () => {
    await env.proxy!.stop();
    const r = await env.node.exec('node', [BIN, 'proxy', '--cleanup'], { allowFailure: true });
    expect(r.code).toBe(0);
    for (const tool of ['iptables-nft-save', 'ip6tables-nft-save']) {
      const saved = (await env.node.exec(tool, [])).stdout;
      expect(saved).not.toMatch(/KUBE-/);
    }
    expect(existsSync(flag)).toBe(false);
  });
});

describe('proxy: the legacy iptables backend', () => {
  let env: ProxyEnv;

  beforeAll(async () => {
    env = await ProxyEnv.create({ pods: PODS });
    // A host already using legacy iptables: auto must pick it.
    await env.node.exec('iptables-legacy', ['-t', 'filter', '-A', 'FORWARD', '-s', '192.0.2.0/24', '-j', 'ACCEPT']);
    env.write('web.yaml', serviceYaml({ name: 'web', clusterIPs: ['10.96.3.1', 'fd00:96::3:1'], endpoints: env.pods.flatMap((p) => [{ ip: p.ip4 }, { ip: p.ip6 }]) }));
    await env.startProxy({ pods: PODS });
  });

  afterAll(async () => {
    await env?.destroy();
  });

  it('auto picks legacy on a host with legacy rules, logs why, and its rules carry traffic', async () => {
    expect(env.proxy!.stderr).toMatch(/iptables backend chosen backend=legacy reason=.*legacy rules/);
    for (const vip of ['10.96.3.1', 'fd00:96::3:1']) {
      expect(Object.keys(tally(await env.connect(env.client, 'tcp', vip, 80, 30))).sort()).toEqual(PODS);
    }
    expect((await env.node.exec('iptables-legacy-save', ['-t', 'nat'])).stdout).toMatch(/^:KUBE-SVC-/m);
    expect((await env.node.exec('iptables-nft-save', ['-t', 'nat'])).stdout).not.toMatch(/KUBE-/);
  });
});
