// Debian's bridge plugin delegating IPAM to kube-dataplane-ipam: 50 dual-stack pods on a bridge
// in a node namespace reach each other over IPv4 and IPv6; DEL frees; new pods reuse the freed
// addresses; the 51st pod gets a clear exhaustion error through the bridge plugin.
//
// The bridge plugin runs inside the node namespace (`ip netns exec NODE bridge`), so the bridge
// and the host-side veths live there; CNI_NETNS points at each pod's namespace. The root
// namespace's links are compared before and after.
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lockName } from '../ipam/lock.js';
import { BRIDGE_BIN, callPlugin as callAny, cniEnv, readAddressFiles, snapshotPlugin, type PluginCall } from '../ipam/plugin-runner.js';
import { Topology, run, type Namespace } from './harness/netns.js';

const PODS = 50;
const NETWORK = 'kdp-bridge';

interface Pod {
  ns: Namespace;
  id: string;
  v4?: string;
  v6?: string;
}


describe('kube-dataplane-ipam under the bridge plugin', () => {
  let topo: Topology;
  let node: Namespace;
  let work: string;
  let dataDir: string;
  let cniPath: string;
  let rootLinksBefore: string;
  let plugin: string;
  const callPlugin = (c: PluginCall) => callAny({ ...c, argv: [plugin] });
  const pods: Pod[] = [];

  const config = () => ({
    cniVersion: '1.0.0',
    name: NETWORK,
    type: 'bridge',
    bridge: 'cbr0',
    isGateway: true,
    ipam: {
      type: 'kube-dataplane-ipam',
      dataDir,
      // Exactly PODS addresses per family, so that new pods must reuse freed ones.
      ranges: [
        [{ subnet: '10.244.0.0/24', rangeStart: '10.244.0.10', rangeEnd: `10.244.0.${9 + PODS}` }],
        [{ subnet: 'fd00:244::/64', rangeStart: 'fd00:244::a', rangeEnd: `fd00:244::${(9 + PODS).toString(16)}` }],
      ],
      routes: [{ dst: '10.96.0.0/12' }],
    },
  });

  /** Runs the bridge plugin in the node namespace, as a runtime on that node would. */
  async function bridge(command: string, pod: Pod) {
    const env = cniEnv({ command, config: null, containerID: pod.id, netns: `/var/run/netns/${pod.ns.name}`, cniPath });
    const r = await run('ip', ['netns', 'exec', node.name, BRIDGE_BIN], { env, input: JSON.stringify(config()), allowFailure: true, timeoutMs: 60_000 });
    let json: any;
    try {
      json = JSON.parse(r.stdout);
    } catch {
      json = undefined;
    }
    return { ...r, json };
  }

  async function addPod(pod: Pod): Promise<void> {
    const r = await bridge('ADD', pod);
    expect(r.code, `ADD ${pod.id}: ${r.stdout}${r.stderr}`).toBe(0);
    const ips = (r.json.ips as { address: string }[]).map((i) => i.address);
    pod.v4 = ips.find((a) => !a.includes(':'))?.split('/')[0];
    pod.v6 = ips.find((a) => a.includes(':'))?.split('/')[0];
  }

  function state(): Record<string, { containerID: string; ifname: string }> {
    return readAddressFiles(join(dataDir, NETWORK));
  }

  async function inParallel<T>(items: T[], width: number, fn: (t: T) => Promise<void>): Promise<void> {
    const queue = [...items];
    await Promise.all(Array.from({ length: width }, async () => {
      for (let t = queue.shift(); t !== undefined; t = queue.shift()) await fn(t);
    }));
  }

  beforeAll(async () => {
    rootLinksBefore = (await run('ip', ['-br', 'link'])).stdout;
    topo = await Topology.create();
    node = await topo.namespace('node');
    work = mkdtempSync(join(tmpdir(), 'kdp-ipam-bridge-'));
    dataDir = join(work, 'data');
    // Our plugin first in CNI_PATH, then Debian's plugins.
    const bin = join(work, 'bin');
    await run('mkdir', ['-p', bin]);
    plugin = snapshotPlugin(join(work, 'plugin'));
    symlinkSync(plugin, join(bin, 'kube-dataplane-ipam'));
    cniPath = `${bin}:/usr/lib/cni`;
    for (let i = 0; i < PODS; i++) pods.push({ ns: await topo.namespace(`p${i}`), id: `pod${i}` });
    await inParallel(pods, 6, addPod);
  });

  afterAll(async () => {
    await topo?.destroy();
    rmSync(work, { recursive: true, force: true });
    const after = (await run('ip', ['-br', 'link'])).stdout;
    const names = (s: string) => s.split('\n').map((l) => l.split(/\s+/)[0].split('@')[0]).filter(Boolean).sort();
    expect(names(after)).toEqual(names(rootLinksBefore));
  });

  it('gives every pod a unique IPv4 and IPv6 address from the ranges, on its eth0', async () => {
    const v4 = pods.map((p) => p.v4);
    const v6 = pods.map((p) => p.v6);
    expect(new Set(v4).size).toBe(PODS);
    expect(new Set(v6).size).toBe(PODS);
    for (const a of v4) expect(a).toMatch(/^10\.244\.0\.(1\d|[2-5]\d)$/);
    const sample = [pods[0], pods[17], pods[PODS - 1]];
    for (const p of sample) {
      const addrs = (await p.ns.ip('-br', 'addr', 'show', 'eth0')).stdout;
      expect(addrs).toContain(`${p.v4}/24`);
      expect(addrs).toContain(`${p.v6}/64`);
      expect((await p.ns.ip('route', 'show', '10.96.0.0/12')).stdout).toContain('via 10.244.0.1');
    }
    // The bridge took the gateways (isGateway) and lives in the node namespace.
    expect((await node.ip('-br', 'addr', 'show', 'cbr0')).stdout).toMatch(/10\.244\.0\.1\/24.*fd00:244::1\/64/);
    const st = state();
    expect(Object.keys(st)).toHaveLength(2 * PODS);
    for (const p of pods) {
      expect(st[p.v4!]).toMatchObject({ containerID: p.id, ifname: 'eth0' });
      expect(st[p.v6!]).toMatchObject({ containerID: p.id, ifname: 'eth0' });
    }
  });

  it('pods reach each other over IPv4 and IPv6 through the bridge (a sample of pairs)', async () => {
    const pairs: [Pod, Pod][] = [[pods[0], pods[PODS - 1]]];
    for (let i = 0; i < 8; i++) pairs.push([pods[(i * 7) % PODS], pods[(i * 13 + 5) % PODS]]);
    for (const [a, b] of pairs) {
      const r4 = await a.ns.exec('ping', ['-c1', '-W3', b.v4!], { allowFailure: true });
      expect(r4.stdout, `${a.id} -> ${b.id} ${b.v4}`).toMatch(/1 received/);
      const r6 = await a.ns.exec('ping', ['-6', '-c1', '-W3', b.v6!], { allowFailure: true });
      expect(r6.stdout, `${a.id} -> ${b.id} ${b.v6}`).toMatch(/1 received/);
    }
  });

  it('a 51st pod gets the exhaustion error, code and message passed through the bridge plugin', async () => {
    const extra: Pod = { ns: await topo.namespace('extra'), id: 'pod-extra' };
    const r = await bridge('ADD', extra);
    expect(r.code).not.toBe(0);
    expect(r.json).toMatchObject({
      code: 100,
      msg: 'no free IPv4 address in range set 0 (10.244.0.0/24 (10.244.0.10-10.244.0.59)): all 50 addresses are allocated',
    });
    // The runtime then cleans up with DEL, which succeeds although nothing was allocated.
    expect((await bridge('DEL', extra)).code).toBe(0);
  });

  it('a repeated ADD of a running pod returns its addresses again (no second allocation)', async () => {
    const p = pods[3];
    const r = await callPlugin({ command: 'ADD', config: config(), containerID: p.id, netns: `/var/run/netns/${p.ns.name}` });
    expect(r.exitCode).toBe(0);
    expect(r.json.ips.map((i: { address: string }) => i.address)).toEqual([`${p.v4}/24`, `${p.v6}/64`]);
    expect(Object.keys(state())).toHaveLength(2 * PODS);
  });

  it('DEL frees; new pods reuse exactly the freed addresses and reach the others', async () => {
    const gone = pods.splice(10, 10);
    await inParallel(gone, 5, async (p) => {
      const r = await bridge('DEL', p);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect((await p.ns.ip('-br', 'link')).stdout).not.toContain('eth0');
    });
    const st = state();
    expect(Object.keys(st)).toHaveLength(2 * (PODS - 10));
    for (const p of gone) {
      expect(st[p.v4!]).toBeUndefined();
      expect(st[p.v6!]).toBeUndefined();
    }
    // DEL again (a runtime retrying) is fine, also without a network namespace.
    const again = await callPlugin({ command: 'DEL', config: config(), containerID: gone[0].id, env: { CNI_NETNS: undefined } });
    expect(again.exitCode).toBe(0);

    const fresh: Pod[] = [];
    for (let i = 0; i < 10; i++) fresh.push({ ns: await topo.namespace(`q${i}`), id: `pod-new${i}` });
    await inParallel(fresh, 5, addPod);
    expect(new Set(fresh.map((p) => p.v4))).toEqual(new Set(gone.map((p) => p.v4)));
    expect(new Set(fresh.map((p) => p.v6))).toEqual(new Set(gone.map((p) => p.v6)));
    pods.push(...fresh);
    const all4 = pods.map((p) => p.v4);
    expect(new Set(all4).size).toBe(PODS);
    const r4 = await fresh[0].ns.exec('ping', ['-c1', '-W3', pods[0].v4!], { allowFailure: true });
    expect(r4.stdout).toMatch(/1 received/);
    const r6 = await pods[0].ns.exec('ping', ['-6', '-c1', '-W3', fresh[9].v6!], { allowFailure: true });
    expect(r6.stdout).toMatch(/1 received/);
  });

  it('DEL of every pod leaves an empty store and a free lock', async () => {
    await inParallel([...pods], 6, async (p) => {
      const r = await bridge('DEL', p);
      expect(r.code, r.stdout + r.stderr).toBe(0);
    });
    expect(state()).toEqual({});
    // The lock is an abstract socket in the namespace the plugin ran in (the node's): unbound.
    const sockets = (await node.exec('cat', ['/proc/net/unix'])).stdout;
    expect(sockets).not.toContain(`@${lockName(join(dataDir, NETWORK))}`);
  });
});
