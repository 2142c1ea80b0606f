// The protocol layer with in-memory I/O: results per CNI version, the ips conventions,
// podCIDRsFrom node, CHECK, GC and STATUS. The real binary's error table is in netns-tests.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runWith } from './cni-plugin.js';
import { writeNodePodCIDRsFile } from './node-pod-cidrs.js';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'ipam-plugin-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

type Json = Record<string, any>;

async function call(command: string, conf: Json, env: Record<string, string> = {}): Promise<{ code: number; out: Json | null; err: string }> {
  let out = '';
  let err = '';
  const code = await runWith({
    env: { CNI_COMMAND: command, CNI_CONTAINERID: 'c1', CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', ...env },
    stdin: () => JSON.stringify(conf),
    stdout: (s) => (out += s),
    stderr: (s) => (err += s),
  });
  return { code, out: out ? (JSON.parse(out) as Json) : null, err };
}

function conf(dataDir: string, ipam: Json = {}, extra: Json = {}): Json {
  return {
    cniVersion: '1.0.0',
    name: 'podnet',
    type: 'bridge',
    ipam: { type: 'kube-dataplane-ipam', dataDir, ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd01::/64' }]], routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0', gw: 'fd01::1' }], ...ipam },
    ...extra,
  };
}

describe('kube-dataplane-ipam protocol', () => {
  it.each([
    ['1.1.0', undefined],
    ['1.0.0', undefined],
    ['0.4.0', '4'],
    ['0.3.1', '4'],
    ['0.3.0', '4'],
  ])('answers ADD in version %s', async (v, family) => {
    const r = await call('ADD', { ...conf(tmp()), cniVersion: v });
    expect(r.code).toBe(0);
    expect(r.out).toEqual({
      cniVersion: v,
      ips: [
        { ...(family ? { version: '4' } : {}), address: '10.1.0.2/24', gateway: '10.1.0.1' },
        { ...(family ? { version: '6' } : {}), address: 'fd01::2/64', gateway: 'fd01::1' },
      ],
      routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0', gw: 'fd01::1' }],
      dns: {},
    });
  });

  it('DEL frees, is idempotent, and works without CNI_NETNS', async () => {
    const d = tmp();
    await call('ADD', conf(d));
    const env = { CNI_NETNS: '' };
    expect((await call('DEL', conf(d), env)).code).toBe(0);
    expect((await call('DEL', conf(d), env)).code).toBe(0);
    expect((await call('CHECK', conf(d))).out).toEqual({
      cniVersion: '1.0.0',
      code: 103,
      msg: 'network "podnet": no address is allocated to container c1 ifname eth0',
    });
  });

  it('CHECK passes for the allocation and fails for a prevResult address not held', async () => {
    const d = tmp();
    const add = await call('ADD', conf(d));
    expect((await call('CHECK', conf(d, {}, { prevResult: add.out }))).code).toBe(0);
    const wrong = { ...add.out, ips: [{ address: '10.1.0.99/24' }] };
    expect((await call('CHECK', conf(d, {}, { prevResult: wrong }))).out?.msg).toBe(
      'network "podnet": prevResult address 10.1.0.99/24 is not allocated to container c1 ifname eth0 (it holds 10.1.0.2, fd01::2)',
    );
  });

  it('takes requested addresses from CNI_ARGS, args.cni.ips and runtimeConfig.ips', async () => {
    const d = tmp();
    const a = await call('ADD', conf(d), { CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.1.0.50,fd01::50' });
    expect(a.out?.ips.map((i: Json) => i.address)).toEqual(['10.1.0.50/24', 'fd01::50/64']);
    const b = await call('ADD', conf(d, {}, { args: { cni: { ips: ['10.1.0.60'] } } }), { CNI_CONTAINERID: 'c2' });
    expect(b.out?.ips.map((i: Json) => i.address)).toEqual(['10.1.0.60/24', 'fd01::51/64']);
    const c = await call('ADD', conf(d, {}, { runtimeConfig: { ips: ['10.1.0.70/24'] } }), { CNI_CONTAINERID: 'c3' });
    expect(c.out?.ips[0].address).toBe('10.1.0.70/24');
  });

  it('accepts host-local\'s old single-range form and runtimeConfig.ipRanges', async () => {
    const d = tmp();
    const old = { cniVersion: '0.3.1', name: 'old', ipam: { type: 'kube-dataplane-ipam', dataDir: d, subnet: '10.9.0.0/16', rangeStart: '10.9.5.10', gateway: '10.9.0.254' } };
    expect((await call('ADD', old)).out?.ips).toEqual([{ version: '4', address: '10.9.5.10/16', gateway: '10.9.0.254' }]);
    const rt = await call('ADD', conf(d, {}, { runtimeConfig: { ipRanges: [[{ subnet: '10.7.0.0/24' }]] } }));
    expect(rt.out?.ips).toEqual([{ address: '10.7.0.2/24', gateway: '10.7.0.1' }]);
  });

  it('fills dns from resolvConf', async () => {
    const d = tmp();
    writeFileSync(join(d, 'resolv.conf'), 'nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5\n');
    const r = await call('ADD', conf(d, { resolvConf: join(d, 'resolv.conf') }));
    expect(r.out?.dns).toEqual({ nameservers: ['10.96.0.10'], search: ['default.svc.cluster.local', 'svc.cluster.local'], options: ['ndots:5'] });
  });

  it('podCIDRsFrom node reads the file the agent keeps, and says "try again later" before it exists', async () => {
    const d = tmp();
    const file = join(d, 'node-pod-cidrs.json');
    const c = { cniVersion: '1.0.0', name: 'n', ipam: { type: 'kube-dataplane-ipam', dataDir: d, podCIDRsFrom: 'node', nodePodCIDRsFile: file, nodeName: 'node-1' } };
    expect((await call('ADD', c)).out).toEqual({
      cniVersion: '1.0.0',
      code: 11,
      msg: `ipam.podCIDRsFrom "node": node pod CIDRs file ${file} does not exist yet (the kube-dataplane agent writes it once the Node has spec.podCIDRs)`,
    });
    expect((await call('STATUS', c)).out?.code).toBe(50);
    writeNodePodCIDRsFile(file, 'node-1', ['10.244.3.0/24', 'fd00:10:244:3::/64']);
    expect((await call('ADD', c)).out?.ips).toEqual([
      { address: '10.244.3.2/24', gateway: '10.244.3.1' },
      { address: 'fd00:10:244:3::2/64', gateway: 'fd00:10:244:3::1' },
    ]);
    expect((await call('STATUS', c)).code).toBe(0);
    writeNodePodCIDRsFile(file, 'node-2', ['10.244.4.0/24']);
    expect((await call('ADD', c, { CNI_CONTAINERID: 'c9' })).out?.msg).toBe(`ipam.podCIDRsFrom "node": node pod CIDRs file ${file} is for node node-2, not node-1`);
  });

  it('GC releases attachments not listed and needs the list', async () => {
    const d = tmp();
    for (const id of ['a', 'b', 'c']) await call('ADD', conf(d), { CNI_CONTAINERID: id });
    expect((await call('GC', { ...conf(d), cniVersion: '1.1.0' })).out?.code).toBe(7);
    const gc = await call('GC', { ...conf(d), cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'b', ifname: 'eth0' }] });
    expect(gc.code).toBe(0);
    expect(gc.err.match(/GC released/g)).toHaveLength(4);
    expect((await call('CHECK', conf(d), { CNI_CONTAINERID: 'b' })).code).toBe(0);
    expect((await call('CHECK', conf(d), { CNI_CONTAINERID: 'a' })).code).toBe(1);
  });

  it('STATUS reports 50 when a range set is full', async () => {
    const d = tmp();
    const small = conf(d, { ranges: [[{ subnet: '10.2.0.0/30' }]] }); // one address: .2
    expect((await call('STATUS', small)).code).toBe(0);
    await call('ADD', small);
    expect((await call('STATUS', small)).out).toEqual({
      cniVersion: '1.0.0',
      code: 50,
      msg: 'network "podnet": range set 0 (10.2.0.0/30 (10.2.0.1-10.2.0.2)) has no free address',
    });
  });

  it('VERSION lists the supported versions', async () => {
    const r = await call('VERSION', { cniVersion: '0.4.0' });
    expect(r.out).toEqual({ cniVersion: '0.4.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });
});
