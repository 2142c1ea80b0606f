// Hostile names in manifests, iptables mode, real iptables-restore: a Service whose name tries to
// close the comment's quote and start a filter rule of its own is refused with a log line naming
// it and the field; it adds no rule anywhere, and every other service keeps working — at start
// (full sync) and when it arrives later (partial sync).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProxyEnv, serviceYaml, tally } from './proxy-env.js';

const PODS = ['pod-a', 'pod-b'];
const INJECT = 'x" -j ACCEPT\n-I INPUT 1 -j ACCEPT';

/** serviceYaml with the Service's and the slices' names replaced by `name` (JSON escapes the newline). */
function hostileYaml(env: ProxyEnv, name: string, vip: string): string {
  const yaml = serviceYaml({ name: 'placeholder', clusterIPs: [vip], endpoints: env.pods.map((p) => ({ ip: p.ip4 })) });
  return yaml.split('\n---\n').map((doc) => {
    const o = JSON.parse(doc);
    if (o.kind === 'Service') o.metadata.name = name;
    else o.metadata.labels['kubernetes.io/service-name'] = name;
    return JSON.stringify(o);
  }).join('\n---\n');
}

describe('proxy (iptables): hostile names', () => {
  let env: ProxyEnv;
  const save = async (table: string) => (await env.node.exec('iptables-save', ['-t', table])).stdout;

  beforeAll(async () => {
    env = await ProxyEnv.create({ pods: PODS });
    env.write('web.yaml', serviceYaml({ name: 'web', clusterIPs: ['10.96.0.10'], endpoints: env.pods.map((p) => ({ ip: p.ip4 })) }));
    env.write('evil.yaml', hostileYaml(env, INJECT, '10.96.0.66'));
    await env.startProxy({ pods: PODS });
  });

  afterAll(async () => {
    await env?.destroy();
  });

  it('at start: the hostile Service is refused by name and field, the others are programmed', async () => {
    expect(env.proxy!.stderr).toMatch(/rejected object.*kind=Service.*metadata\.name: .*RFC 1035/);
    const t = tally(await env.connect(env.client, 'tcp', '10.96.0.10', 80, 20));
    expect(Object.keys(t).sort()).toEqual(PODS);
  });

  it('at start: no rule of its own in INPUT or anywhere, and nothing for its address', async () => {
    const filter = await save('filter');
    const nat = await save('nat');
    const input = filter.split('\n').filter((l) => l.startsWith('-A INPUT '));
    expect(input.every((l) => / -j KUBE-/.test(l)), input.join('\n')).toBe(true);
    expect(filter + nat).not.toContain('10.96.0.66');
    expect(filter).not.toMatch(/^-A INPUT -j ACCEPT$/m);
  });

  it('arriving later (a partial sync): refused alone; a service added with it works', async () => {
    env.write('evil2.yaml', hostileYaml(env, 'y" -j ACCEPT\n-A FORWARD -j ACCEPT', '10.96.0.67'));
    env.write('late.yaml', serviceYaml({ name: 'late', clusterIPs: ['10.96.0.11'], endpoints: env.pods.map((p) => ({ ip: p.ip4 })) }));
    await env.eventually('late reachable', async () => tally(await env.connect(env.client, 'tcp', '10.96.0.11', 80, 6, 1000)), (t) => Object.keys(t).sort().join() === PODS.join());
    const all = (await save('filter')) + (await save('nat'));
    expect(all).not.toContain('10.96.0.67');
    expect(all.split('\n').filter((l) => /^-A (INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING) /.test(l)).every((l) => / -j KUBE-/.test(l))).toBe(true);
    expect(Object.keys(tally(await env.connect(env.client, 'tcp', '10.96.0.10', 80, 10))).sort()).toEqual(PODS);
  });
});
