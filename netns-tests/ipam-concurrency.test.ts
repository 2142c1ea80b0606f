// The store under pressure, with the real binary: 50 ADDs at once, then 200 ADD/DEL calls of
// which many are killed with SIGKILL at random instants (mid-start, waiting for the lock, holding
// it, writing). Afterwards no address is held twice, and GC reclaims every orphan.
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { callPlugin as callAny, readAddressFiles, snapshotPlugin, type PluginCall } from '../ipam/plugin-runner.js';
import { lockName } from '../ipam/lock.js';

const work = mkdtempSync(join(tmpdir(), 'kdp-ipam-chaos-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
// The test build: it honours KUBE_DATAPLANE_IPAM_TEST_HOLD_LOCK_MS, which the shipped one ignores.
const bin = snapshotPlugin(join(work, 'bin'), { testHooks: true });
const callPlugin = (c: PluginCall) => callAny({ ...c, argv: [bin] });

function config(network: string, extra: Record<string, unknown> = {}) {
  return {
    cniVersion: '1.1.0',
    name: network,
    ipam: { type: 'kube-dataplane-ipam', dataDir: work, ranges: [[{ subnet: '10.250.0.0/24' }], [{ subnet: 'fd00:250::/64' }]] },
    ...extra,
  };
}


/** The abstract sockets bound in this network namespace (the plugin runs here, like a runtime's):
 *  name → socket inode. Node pads an abstract name with NULs to the full sun_path, which
 *  /proc/net/unix shows as trailing '@'s. */
function abstractSockets(): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[7]?.startsWith('@')) out.set(f[7].slice(1).replace(/@+$/, ''), f[6]);
  }
  return out;
}

function boundLocks(): string[] {
  return [...abstractSockets().keys()];
}

/** The pid holding lock `name`: the plugin process whose fd is that socket. */
function victimPid(name: string): number {
  const inode = abstractSockets().get(name);
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`) return Number(pid);
      }
    } catch {
      /* gone, or not ours to read */
    }
  }
  throw new Error(`no process holds @${name}`);
}

function stateOf(network: string): Record<string, { containerID: string; ifname: string }> {
  return readAddressFiles(join(work, network));
}

/** The index by attachment: "containerID:ifname" → the addresses it lists. */
function indexOf(network: string): Record<string, string[]> {
  const dir = join(work, network, 'attachments');
  return Object.fromEntries(readdirSync(dir).map((n) => [n, JSON.parse(readFileSync(join(dir, n), 'utf8')).addresses as string[]]));
}

function addresses(json: { ips: { address: string }[] }): string[] {
  return json.ips.map((i) => i.address.split('/')[0]);
}

describe('kube-dataplane-ipam under concurrency and SIGKILL', () => {
  it('50 parallel ADDs get 50 distinct address pairs, all recorded', async () => {
    const net = 'parallel';
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => callPlugin({ command: 'ADD', config: config(net), containerID: `c${i}` })),
    );
    for (const r of results) expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const all = results.flatMap((r) => addresses(r.json));
    expect(all).toHaveLength(100);
    expect(new Set(all).size).toBe(100);
    const st = stateOf(net);
    expect(Object.keys(st)).toHaveLength(100);
    results.forEach((r, i) => {
      for (const a of addresses(r.json)) expect(st[a].containerID).toBe(`c${i}`);
    });
    expect(Object.keys(indexOf(net))).toHaveLength(50);
    expect(boundLocks()).not.toContain(lockName(join(work, net)));
  });

  it('a holder killed inside the lock: the kernel frees the lock, the next call gets it and the state is intact', async () => {
    const net = 'takeover';
    const first = await callPlugin({ command: 'ADD', config: config(net), containerID: 'before' });
    expect(first.exitCode).toBe(0);
    const victim = callPlugin({ command: 'ADD', config: config(net), containerID: 'victim', env: { KUBE_DATAPLANE_IPAM_TEST_HOLD_LOCK_MS: '60000' } });
    // Inside the lock once its decision is recorded in the index (before the hold).
    const name = lockName(join(work, net));
    const deadline = Date.now() + 10_000;
    while (!(existsSync(join(work, net, 'attachments', 'victim:eth0')) && boundLocks().includes(name)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(boundLocks()).toContain(name);
    const holderPid = victimPid(name);
    process.kill(holderPid, 'SIGKILL');
    expect((await victim).signal).toBe('SIGKILL');
    expect(boundLocks()).not.toContain(name);
    const next = await callPlugin({ command: 'ADD', config: { ...config(net), ipam: { ...config(net).ipam, lockTimeoutSeconds: 2 } }, containerID: 'after' });
    expect(next.exitCode, next.stdout).toBe(0);
    // The victim's decision is in the index but it never claimed: the others hold 4 addresses.
    expect(Object.values(stateOf(net)).map((o) => o.containerID).sort()).toEqual(['after', 'after', 'before', 'before']);
  });

  it('200 ADD/DEL calls with random SIGKILLs never hand an address out twice; GC reclaims every orphan', async () => {
    const net = 'chaos';
    // What the "runtime" knows: keys whose last call succeeded with ADD hold these addresses.
    const live = new Map<string, string[]>();
    const owner = new Map<string, string>(); // address -> key, for live keys only
    const busy = new Set<string>(); // a runtime never runs two calls for one attachment at once
    let killed = 0;
    let ops = 0;
    const recent: number[] = [];
    const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

    async function one(): Promise<void> {
      const free = keys.filter((k) => !busy.has(k));
      const key = free[Math.floor(rand() * free.length)];
      busy.add(key);
      const command = live.has(key) && rand() < 0.7 ? 'DEL' : 'ADD';
      // Start-up is most of a call and the locked section is short, so half the calls stay 40 ms
      // in the lock (a test-only hook), and kill times spread over the whole length of recent
      // calls (which varies with the machine's load), biased to their end, where the lock is.
      const typical = recent.length ? [...recent].sort((a, b) => a - b)[recent.length >> 1] : 100;
      const kill = rand() < 0.5 ? Math.floor(typical * (0.3 + 0.8 * Math.sqrt(rand()))) : undefined;
      const hold = rand() < 0.5 ? { KUBE_DATAPLANE_IPAM_TEST_HOLD_LOCK_MS: '40' } : {};
      const call: PluginCall = { command, config: config(net), containerID: key, killAfterMs: kill, env: hold };
      const r = await callPlugin(call);
      ops++;
      if (r.signal === null) recent.splice(0, recent.length >= 20 ? 1 : 0, r.ms);
      if (r.signal === 'SIGKILL') {
        killed++;
        // Unknown outcome: the key may or may not hold addresses now. Forget what we knew; if it
        // still holds them, only GC can tell, and no other live key may be given them meanwhile.
        for (const a of live.get(key) ?? []) owner.delete(a);
        live.delete(key);
      } else {
        expect(r.exitCode, `${command} ${key}: ${r.stdout}${r.stderr}`).toBe(0);
        if (command === 'ADD') {
          const got = addresses(r.json);
          for (const a of got) {
            const holder = owner.get(a);
            expect(holder === undefined || holder === key, `${a} handed to ${key} while ${holder} holds it`).toBe(true);
            owner.set(a, key);
          }
          live.set(key, got);
        } else {
          for (const a of live.get(key) ?? []) owner.delete(a);
          live.delete(key);
        }
      }
      busy.delete(key);
    }

    const workers = Array.from({ length: 8 }, async () => {
      while (ops + busy.size < 200) await one();
    });
    await Promise.all(workers);
    expect(ops).toBeGreaterThanOrEqual(200);
    expect(killed).toBeGreaterThan(20);

    // The store never holds an address for two keys (it maps address -> key), and every live key
    // holds exactly what its ADD returned.
    const before = stateOf(net);
    for (const [key, addrs] of live) for (const a of addrs) expect(before[a]?.containerID).toBe(key);

    const gc = await callPlugin({
      command: 'GC',
      config: config(net, { 'cni.dev/valid-attachments': [...live.keys()].map((k) => ({ containerID: k, ifname: 'eth0' })) }),
    });
    expect(gc.exitCode, gc.stdout + gc.stderr).toBe(0);
    const after = stateOf(net);
    const expected = new Map<string, string>();
    for (const [key, addrs] of live) for (const a of addrs) expected.set(a, key);
    expect(new Map(Object.entries(after).map(([a, o]) => [a, o.containerID]))).toEqual(expected);
    // The index lists exactly what each live key holds, and nothing for the others.
    expect(indexOf(net)).toEqual(Object.fromEntries([...live].map(([k, addrs]) => [`${k}:eth0`, addrs])));
    // Nothing left behind by the killed calls: no lock bound, no staging dirs, no temp files.
    const others = readdirSync(join(work, net)).filter((n) => !(n in after)).sort();
    expect(others).toEqual(['README', 'attachments', 'last_reserved_ip.0', 'last_reserved_ip.1']);
    expect(boundLocks()).not.toContain(lockName(join(work, net)));
    console.log(`chaos: ${ops} calls, ${killed} killed, ${Object.keys(before).length - Object.keys(after).length} orphaned addresses reclaimed by GC`);
  });
});
