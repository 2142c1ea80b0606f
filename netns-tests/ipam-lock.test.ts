// The IPAM lock across pid namespaces (issue 11, item 14). A CNI runtime in a container (Multus
// thick plugin, a containerised containerd) runs the plugin in a pid namespace of its own, on the
// host's /var/lib/cni/networks. A lock holder there must still exclude every other caller, and
// its lock must come free the moment it dies.
//
// Each plugin call runs inside a network namespace this test made (`ip netns exec`), the holder
// additionally under `unshare --pid --fork`, so nothing lives in the root namespaces.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cniEnv, snapshotPlugin } from '../ipam/plugin-runner.js';
import { Topology, type Namespace, type Process } from './harness/netns.js';

const work = mkdtempSync(join(tmpdir(), 'kdp-ipam-lock-'));
const shipped = snapshotPlugin(join(work, 'bin'));
const withHooks = snapshotPlugin(join(work, 'bin-hooks'), { testHooks: true });

function config(network: string, lockTimeoutSeconds?: number): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: network,
    ipam: { type: 'kube-dataplane-ipam', dataDir: work, ranges: [[{ subnet: '10.250.0.0/24' }]], lockTimeoutSeconds },
  });
}

describe('kube-dataplane-ipam lock', () => {
  let topo: Topology;
  let ns: Namespace;

  beforeAll(async () => {
    topo = await Topology.create();
    ns = await topo.namespace('ipam');
  });
  afterAll(async () => {
    await topo?.destroy();
    rmSync(work, { recursive: true, force: true });
  });

  /** A plugin call as a runtime in the test's network namespace makes it. */
  function call(bin: string, command: string, network: string, id: string, opts: { lockTimeoutSeconds?: number; env?: Record<string, string> } = {}) {
    return ns.exec(bin, [], {
      env: { ...cniEnv({ command, config: null, containerID: id, env: opts.env }) },
      input: config(network, opts.lockTimeoutSeconds),
      allowFailure: true,
      timeoutMs: 60_000,
    });
  }

  /** ADD under `unshare --pid --fork --mount-proc`: the plugin is pid 1 of its own pid namespace
   *  and sees its own /proc, as in a container. */
  function holderInOwnPidNamespace(network: string, id: string, holdMs: number, ownProc = true): Process {
    const env = cniEnv({ command: 'ADD', config: null, containerID: id, env: { KUBE_DATAPLANE_IPAM_TEST_HOLD_LOCK_MS: String(holdMs) } });
    // stdin of a spawned Process is closed, so a shell feeds the config from a file.
    const cfgFile = join(work, `${id}.json`);
    writeFileSync(cfgFile, config(network));
    // Without its own /proc (ownProc false) the holder reads the host's entry for its pid 1.
    const unshare = ['--pid', '--fork', ...(ownProc ? ['--mount-proc'] : [])];
    return ns.spawn('unshare', [...unshare, 'sh', '-c', `exec "$0" < "$1"`, withHooks, cfgFile], { env, label: `holder ${id}` });
  }

  /** Polls (no fixed sleep) until the holder has recorded its decision, i.e. is inside the lock. */
  async function untilInsideLock(network: string, id: string, holder: Process): Promise<void> {
    const index = join(work, network, 'attachments', `${id}:eth0`);
    for (let i = 0; i < 2000; i++) {
      try {
        readFileSync(index);
        return;
      } catch {
        if (!holder.running) throw new Error(`holder exited ${holder.exitCode}: ${holder.stderr}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    throw new Error(`holder never took the lock: ${holder.stderr}`);
  }

  it('a holder in another pid namespace keeps the lock: a contender waits, then gets its own address', async () => {
    const net = 'pidns';
    const holder = holderInOwnPidNamespace(net, 'holder', 3_000);
    await untilInsideLock(net, 'holder', holder);
    // A contender that gives up after 1 s must find the lock held (the holder stays 3 s).
    const impatient = await call(shipped, 'ADD', net, 'impatient', { lockTimeoutSeconds: 1 });
    expect(impatient.code, impatient.stdout + impatient.stderr).not.toBe(0);
    expect(JSON.parse(impatient.stdout)).toMatchObject({ code: 11 });
    expect(JSON.parse(impatient.stdout).msg).toMatch(/network "pidns": lock .* is held by another process/);
    expect(holder.running).toBe(true);
    // A patient one waits for the holder to finish and gets a different address.
    const patient = await call(shipped, 'ADD', net, 'patient');
    expect(patient.code, patient.stdout + patient.stderr).toBe(0);
    expect(await holder.exited).toBe(0);
    const held = JSON.parse(holder.stdout).ips[0].address;
    expect(JSON.parse(patient.stdout).ips[0].address).not.toBe(held);
  });

  it('GC cannot free an ADD in progress in another pid namespace', async () => {
    const net = 'pidns-gc';
    const holder = holderInOwnPidNamespace(net, 'adding', 3_000);
    await untilInsideLock(net, 'adding', holder);
    // GC that lists no valid attachment would free everything it sees; it must wait instead.
    const gc = await ns.exec(shipped, [], {
      env: cniEnv({ command: 'GC', config: null }),
      input: JSON.stringify({ ...JSON.parse(config(net, 1)), cniVersion: '1.1.0', 'cni.dev/valid-attachments': [] }),
      allowFailure: true,
    });
    expect(JSON.parse(gc.stdout || '{}')).toMatchObject({ code: 11 });
    expect(await holder.exited).toBe(0);
    const list = await call(shipped, 'CHECK', net, 'adding');
    expect(list.code, list.stdout + list.stderr).toBe(0);
  });

  it.each([
    ['with its own /proc', true],
    ['with the host\'s /proc', false],
  ])('the kernel frees the lock of a holder killed in another pid namespace (%s)', async (_, ownProc) => {
    const net = `pidns-kill-${ownProc}`;
    const holder = holderInOwnPidNamespace(net, 'victim', 60_000, ownProc);
    await untilInsideLock(net, 'victim', holder);
    holder.signal('SIGKILL');
    await holder.exited;
    // The lock is free at once: a contender that waits at most 2 s gets it.
    const next = await call(shipped, 'ADD', net, 'after', { lockTimeoutSeconds: 2 });
    expect(next.code, next.stdout + next.stderr).toBe(0);
  });

  it('the shipped plugin ignores the test hook KUBE_DATAPLANE_IPAM_TEST_HOLD_LOCK_MS', async () => {
    expect(readFileSync(shipped, 'utf8')).not.toContain('KUBE_DATAPLANE_IPAM_TEST_HOLD_LOCK_MS');
    // With the hook acting, this call would sit 10 minutes in the lock; the harness kills it at 60 s.
    const r = await call(shipped, 'ADD', 'nohook', 'c1', { env: { KUBE_DATAPLANE_IPAM_TEST_HOLD_LOCK_MS: '600000' } });
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });
});
