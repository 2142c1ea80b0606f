import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { allocate, emptyState } from './allocator.js';
import { CniError } from './errors.js';
import { DirLock, holderName, selfHolder } from './lock.js';
import { buildRangeSets } from './range.js';
import { decodeState, encodeState, LOCK_DIR, NetworkStore, STATE_FILE } from './store.js';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'ipam-store-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const sets = buildRangeSets([[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/64' }]], 'ipam.ranges');
const who = (id: string) => ({ containerID: id, ifname: 'eth0' });

describe('state file', () => {
  it('round-trips and reads as one allocation per line', () => {
    const s = emptyState();
    allocate(s, sets, who('a'), [], 't1');
    allocate(s, sets, who('b'), [], 't2');
    const text = encodeState('net', s, 'now');
    expect(text).toContain('\n    "10.0.0.3": {"containerID": "b", "ifname": "eth0", "time": "t2"}');
    const back = decodeState(text, 'f');
    expect([...back.allocations]).toEqual([...s.allocations]);
    expect([...back.lastReserved]).toEqual([...s.lastReserved]);
    expect(decodeState(encodeState('net', emptyState(), 'now'), 'f').allocations.size).toBe(0);
  });

  it('refuses a damaged file instead of starting empty (which would hand addresses out twice)', () => {
    expect(() => decodeState('{"allocations": {"10.0.0.2": {}}}', '/x/state.json')).toThrow(
      /^state file \/x\/state.json is damaged \(allocation 10.0.0.2 has no containerID\/ifname\)/,
    );
    try {
      decodeState('{', '/x')
    } catch (e) {
      expect((e as CniError).code).toBe(5);
    }
  });
});

describe('NetworkStore', () => {
  it('persists under dataDir/network and leaves the lock free', () => {
    const d = tmp();
    const store = new NetworkStore(d, 'net');
    store.update((s) => ({ result: allocate(s, sets, who('a'), [], 't'), changed: true }));
    expect(readdirSync(join(d, 'net')).sort()).toEqual([STATE_FILE, LOCK_DIR]);
    expect(readdirSync(join(d, 'net', LOCK_DIR))).toEqual([]);
    expect(new NetworkStore(d, 'net').read().allocations.size).toBe(2);
  });

  it('writes nothing when the update throws', () => {
    const d = tmp();
    const store = new NetworkStore(d, 'net');
    expect(() =>
      store.update((s) => {
        allocate(s, sets, who('a'), [], 't');
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(existsSync(join(d, 'net', STATE_FILE))).toBe(false);
    expect(readdirSync(join(d, 'net', LOCK_DIR))).toEqual([]);
  });

  it('imports host-local files on first use and moves them aside', () => {
    const d = tmp();
    const net = join(d, 'net');
    mkdirSync(net);
    writeFileSync(join(net, '10.0.0.7'), 'cid1\r\neth0');
    writeFileSync(join(net, 'fd00::7'), 'cid1\r\neth0');
    writeFileSync(join(net, '10.0.0.8'), 'cid-old');
    writeFileSync(join(net, 'last_reserved_ip.0'), '10.0.0.8');
    writeFileSync(join(net, 'lock'), '');
    const store = new NetworkStore(d, 'net');
    const got = store.update((s) => ({ result: allocate(s, sets, who('new'), [], 't'), changed: true }));
    expect(got.map((a) => a.ip.value)).toEqual([9n + (10n << 24n), 2n + (0xfd00n << 112n)]);
    const state = store.read();
    expect(state.allocations.get('10.0.0.7')).toMatchObject({ containerID: 'cid1', ifname: 'eth0' });
    expect(state.allocations.get('10.0.0.8')).toMatchObject({ containerID: 'cid-old', ifname: 'eth0' });
    expect(readdirSync(join(net, 'host-local-imported')).sort()).toEqual(['10.0.0.7', '10.0.0.8', 'fd00::7', 'last_reserved_ip.0']);
  });

  it('times out with code 11 naming the holder while a live process holds the lock', () => {
    const d = tmp();
    const lockPath = join(d, 'net', LOCK_DIR);
    mkdirSync(lockPath, { recursive: true });
    // A live holder: this test process itself, by its real identity.
    writeFileSync(join(lockPath, holderName(selfHolder())), '');
    const store = new NetworkStore(d, 'net', { lockTimeoutMs: 200 });
    try {
      store.update(() => ({ result: 0, changed: false }));
      expect.unreachable();
    } catch (e) {
      expect((e as CniError).code).toBe(11);
      expect((e as CniError).message).toMatch(new RegExp(`^network "net": lock .*${LOCK_DIR} is held by pid ${process.pid}; gave up after \\d+ ms$`));
    }
  });

  it('takes over a lock whose holder was killed (SIGKILL), and removes its temp file', async () => {
    const d = tmp();
    const net = join(d, 'net');
    mkdirSync(net);
    // A real process takes the lock by the documented protocol (holder file named by its pid,
    // start time and boot id, renamed into place), then dies by SIGKILL without releasing it.
    const lockPath = join(net, LOCK_DIR);
    const child = spawn(process.execPath, ['-e', `
      const fs = require('fs');
      const stat = fs.readFileSync('/proc/self/stat', 'utf8');
      const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
      const boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim().slice(0, 8);
      const staging = ${JSON.stringify(lockPath)} + '.' + process.pid;
      fs.mkdirSync(staging);
      fs.writeFileSync(staging + '/pid-' + process.pid + '.start-' + start + '.boot-' + boot, '');
      fs.renameSync(staging, ${JSON.stringify(lockPath)});
      fs.writeFileSync(${JSON.stringify(join(net, STATE_FILE))} + '.tmp-' + process.pid, 'half');
      console.log('locked');
      setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((res, rej) => {
      child.stdout!.on('data', (b: Buffer) => b.toString().includes('locked') && res());
      child.on('exit', (c) => rej(new Error(`lock holder exited ${c}`)));
    });
    // While it lives, the lock is really held.
    expect(() => new NetworkStore(d, 'net', { lockTimeoutMs: 100 }).update(() => ({ result: 0, changed: false }))).toThrow(/is held by pid/);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(readdirSync(join(net, LOCK_DIR))).toHaveLength(1);
    const stale: number[] = [];
    const store = new NetworkStore(d, 'net', { lockTimeoutMs: 2000, log: (m) => stale.push(m.length) });
    store.update((s) => ({ result: allocate(s, sets, who('a'), [], 't'), changed: true }));
    expect(stale).toHaveLength(1);
    expect(readdirSync(net).filter((n) => n.includes('.tmp-'))).toEqual([]);
    expect(JSON.parse(readFileSync(join(net, STATE_FILE), 'utf8')).count).toBe(2);
  });

  it('a second stealer cannot remove the new holder (identity is in the file name)', () => {
    const d = tmp();
    const lockPath = join(d, LOCK_DIR);
    const dead = 'pid-999999.start-1.boot-deadbeef';
    mkdirSync(lockPath);
    writeFileSync(join(lockPath, dead), '');
    const a = new DirLock(lockPath);
    a.acquire({ timeoutMs: 1000 });
    // A slow contender that saw the dead holder now removes it by name: nothing happens to ours.
    rmSync(join(lockPath, dead), { force: true });
    expect(readdirSync(lockPath)).toEqual([holderName(selfHolder())]);
    a.release();
    expect(readdirSync(lockPath)).toEqual([]);
  });
});
