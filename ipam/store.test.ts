import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cniErrorOf as code } from './test-helpers.js';
import { ipString, parseIP } from '../common/ip-bigint.js';
import { lockName, SocketLock } from './lock.js';
import { buildRangeSets } from './range.js';
import { ATTACHMENTS_DIR, decodeLegacyState, LEGACY_IMPORTED, LEGACY_LOCK_DIR, LEGACY_STATE_FILE, NetworkStore, README_FILE, TMP_FILE } from './store.js';

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
const add = (s: NetworkStore, id: string, requested: string[] = []) =>
  s.add(sets, who(id), requested.map((r) => parseIP(r)!), 't-' + id).map((a) => ipString(a.ip));
const read = (...p: string[]) => readFileSync(join(...p), 'utf8');


describe('NetworkStore layout (host-local\'s files plus an index by attachment)', () => {
  it('ADD writes one host-local address file per address, last_reserved_ip.N, an index entry and a README', () => {
    const d = tmp();
    const store = new NetworkStore(d, 'net');
    expect(add(store, 'a')).toEqual(['10.0.0.2', 'fd00::2']);
    const net = join(d, 'net');
    expect(readdirSync(net).sort()).toEqual(['10.0.0.2', README_FILE, ATTACHMENTS_DIR, 'fd00::2', 'last_reserved_ip.0', 'last_reserved_ip.1'].sort());
    expect(read(net, '10.0.0.2')).toBe('a\r\neth0');
    expect(read(net, 'last_reserved_ip.1')).toBe('fd00::2');
    expect(JSON.parse(read(net, ATTACHMENTS_DIR, 'a:eth0'))).toEqual({ containerID: 'a', ifname: 'eth0', addresses: ['10.0.0.2', 'fd00::2'], time: 't-a' });
    expect(read(net, README_FILE)).toContain('attachments/<containerID>:<ifname>');
  });

  it('repeated ADD returns the held addresses; DEL removes files and index entry; DEL again is a no-op', () => {
    const d = tmp();
    const store = new NetworkStore(d, 'net');
    add(store, 'a');
    expect(add(store, 'b')).toEqual(['10.0.0.3', 'fd00::3']);
    expect(add(store, 'b')).toEqual(['10.0.0.3', 'fd00::3']);
    expect(store.held(who('b'))).toEqual(['10.0.0.3', 'fd00::3']);
    expect(store.del(who('b'))).toEqual(['10.0.0.3', 'fd00::3']);
    expect(existsSync(join(d, 'net', '10.0.0.3'))).toBe(false);
    expect(readdirSync(join(d, 'net', ATTACHMENTS_DIR))).toEqual(['a:eth0']);
    expect(store.del(who('b'))).toEqual([]);
    // Round-robin: .3 is free again, but the next one is .4.
    expect(add(store, 'c')).toEqual(['10.0.0.4', 'fd00::4']);
  });

  it('ADD, DEL and CHECK never open another attachment\'s files (cost does not grow with allocations)', () => {
    const d = tmp();
    const net = join(d, 'net');
    const store = new NetworkStore(d, 'net');
    add(store, 'first');
    // 250 addresses held by others, as directories: reading one fails (EISDIR). Only a scan
    // reads every file; the calls below must read their own files and only stat candidates.
    for (let i = 3; i <= 252; i++) mkdirSync(join(net, `10.0.0.${i}`));
    mkdirSync(join(net, 'fd00::3'));
    expect(add(store, 'x')).toEqual(['10.0.0.253', 'fd00::4']);
    expect(add(store, 'x')).toEqual(['10.0.0.253', 'fd00::4']);
    expect(store.held(who('x'))).toEqual(['10.0.0.253', 'fd00::4']);
    expect(store.del(who('x'))).toEqual(['10.0.0.253', 'fd00::4']);
    expect(store.del(who('first'))).toEqual(['10.0.0.2', 'fd00::2']);
    expect(store.hasFree(sets[0])).toBe(true);
  });

  it('a requested address that is taken names its holder (code 101); a conflicting repeat is 102', () => {
    const store = new NetworkStore(tmp(), 'net');
    add(store, 'a', ['10.0.0.50']);
    expect(code(() => add(store, 'b', ['10.0.0.50']))).toEqual([101, 'requested IP 10.0.0.50 is already allocated to container a ifname eth0']);
    expect(code(() => add(store, 'a', ['10.0.0.51']))).toEqual([102, 'container a ifname eth0 already holds 10.0.0.50 in range set 0; requested 10.0.0.51 (DEL it first)']);
  });

  it('an exhausted later set claims nothing (the index and files stay as they were)', () => {
    const d = tmp();
    const small = buildRangeSets([[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/126' }]], 'r'); // v6: ::2, ::3
    const store = new NetworkStore(d, 'net');
    store.add(small, who('a'), [], 't');
    store.add(small, who('b'), [], 't');
    expect(code(() => store.add(small, who('c'), [], 't'))[0]).toBe(100);
    expect(store.list().map((a) => a.containerID)).toEqual(['a', 'b', 'a', 'b']);
    expect(readdirSync(join(d, 'net', ATTACHMENTS_DIR)).sort()).toEqual(['a:eth0', 'b:eth0']);
  });
});

describe('what killed calls leave, and GC', () => {
  it('an index entry for an address never claimed is ignored; an unindexed address file is an orphan GC frees', () => {
    const d = tmp();
    const net = join(d, 'net');
    const store = new NetworkStore(d, 'net');
    add(store, 'live');
    // ADD of k1 killed after writing its index entry, before claiming: nothing is held.
    writeFileSync(join(net, ATTACHMENTS_DIR, 'k1:eth0'), JSON.stringify({ containerID: 'k1', ifname: 'eth0', addresses: ['10.0.0.3', 'fd00::3'], time: 't' }));
    expect(store.held(who('k1'))).toEqual([]);
    // An address file no index lists (an old ADD's claim), and one whose holder was never written.
    writeFileSync(join(net, '10.0.0.9'), 'k2\r\neth0');
    writeFileSync(join(net, '10.0.0.10'), '');
    // ADD walks past claimed files whatever they say; k1's retry gets fresh addresses.
    expect(add(store, 'k1')).toEqual(['10.0.0.3', 'fd00::3']);
    expect(store.list().map((a) => [a.address, a.containerID, a.indexed])).toEqual([
      ['10.0.0.2', 'live', true],
      ['10.0.0.3', 'k1', true],
      ['10.0.0.9', 'k2', false],
      ['fd00::2', 'live', true],
      ['fd00::3', 'k1', true],
    ]);
    const dry = store.gc(() => [who('live'), who('k1')], { dryRun: true });
    expect(dry.freed.map((f) => f.address)).toEqual(['10.0.0.9']);
    expect(existsSync(join(net, '10.0.0.9'))).toBe(true);
    const { freed } = store.gc(() => [who('live'), who('k1')]);
    expect(freed.map((f) => `${f.address} ${f.containerID}`)).toEqual(['10.0.0.9 k2']);
    expect(existsSync(join(net, '10.0.0.10'))).toBe(false);
    expect(store.list().map((a) => a.containerID)).toEqual(['live', 'k1', 'live', 'k1']);
  });

  it('GC frees a valid attachment\'s claim its index does not list (superseded by a retry), adopts an unindexed holder, drops stale entries', () => {
    const d = tmp();
    const net = join(d, 'net');
    const store = new NetworkStore(d, 'net');
    add(store, 'a');
    writeFileSync(join(net, '10.0.0.40'), 'a\r\neth0'); // a's, but a's index does not list it
    writeFileSync(join(net, '10.0.0.41'), 'h\r\neth0'); // h has no index entry at all (host-local wrote it)
    writeFileSync(join(net, ATTACHMENTS_DIR, 'gone:eth0'), JSON.stringify({ containerID: 'gone', ifname: 'eth0', addresses: ['10.0.0.77'], time: 't' }));
    const { freed } = store.gc(() => [who('a'), who('h'), who('gone')]);
    expect(freed.map((f) => f.address)).toEqual(['10.0.0.40']);
    expect(readdirSync(join(net, ATTACHMENTS_DIR)).sort()).toEqual(['a:eth0', 'h:eth0']);
    expect(store.held(who('h'))).toEqual(['10.0.0.41']);
    expect(store.del(who('h'))).toEqual(['10.0.0.41']);
  });

  it('DEL after an ADD killed before it wrote a holder removes the empty claim its index lists', () => {
    const d = tmp();
    const net = join(d, 'net');
    const store = new NetworkStore(d, 'net');
    add(store, 'a');
    writeFileSync(join(net, ATTACHMENTS_DIR, 'k:eth0'), JSON.stringify({ containerID: 'k', ifname: 'eth0', addresses: ['10.0.0.3', 'fd00::3'], time: 't' }));
    writeFileSync(join(net, '10.0.0.3'), 'k\r\neth0');
    writeFileSync(join(net, 'fd00::3'), '');
    expect(store.held(who('k'))).toEqual(['10.0.0.3']);
    expect(store.del(who('k'))).toEqual(['10.0.0.3']);
    expect(readdirSync(net).filter((n) => n.startsWith('10.') || n.startsWith('fd00')).sort()).toEqual(['10.0.0.2', 'fd00::2']);
    expect(existsSync(join(net, 'fd00::3'))).toBe(false);
  });
});

describe('first use of a directory', () => {
  it('indexes host-local\'s files where they are, and continues after its last reserved address', () => {
    const d = tmp();
    const net = join(d, 'net');
    mkdirSync(net);
    writeFileSync(join(net, '10.0.0.7'), 'cid1\r\neth0');
    writeFileSync(join(net, 'fd00::7'), 'cid1\r\neth0');
    writeFileSync(join(net, '10.0.0.8'), 'cid-old'); // host-local's oldest format: no ifname
    writeFileSync(join(net, 'last_reserved_ip.0'), '10.0.0.8');
    writeFileSync(join(net, 'lock'), '');
    const logs: string[] = [];
    const store = new NetworkStore(d, 'net', { log: (m) => logs.push(m) });
    expect(add(store, 'new')).toEqual(['10.0.0.9', 'fd00::2']);
    expect(logs).toEqual(['network "net": indexed 2 attachments from address files already here (host-local\'s)']);
    expect(read(net, '10.0.0.7')).toBe('cid1\r\neth0'); // untouched, in place
    expect(add(store, 'cid1')).toEqual(['10.0.0.7', 'fd00::7']); // a repeated ADD finds host-local's allocation
    expect(store.del(who('cid-old'))).toEqual(['10.0.0.8']);
    expect(store.list().map((a) => a.address)).toEqual(['10.0.0.7', '10.0.0.9', 'fd00::2', 'fd00::7']);
  });

  it('converts the JSON state of earlier versions once, keeping it as .imported', () => {
    const d = tmp();
    const net = join(d, 'net');
    mkdirSync(net);
    writeFileSync(
      join(net, LEGACY_STATE_FILE),
      JSON.stringify({ lastReserved: { '0': '10.0.0.3' }, allocations: { '10.0.0.2': { containerID: 'a', ifname: 'eth0', time: 'T0' }, '10.0.0.3': { containerID: 'b', ifname: 'net1', time: 'T1' } } }),
    );
    const store = new NetworkStore(d, 'net');
    expect(add(store, 'c')).toEqual(['10.0.0.4', 'fd00::2']);
    expect(existsSync(join(net, LEGACY_STATE_FILE))).toBe(false);
    expect(existsSync(join(net, LEGACY_IMPORTED))).toBe(true);
    expect(store.list().map((a) => `${a.address} ${a.containerID}/${a.ifname} ${a.time}`)).toEqual([
      '10.0.0.2 a/eth0 T0',
      '10.0.0.3 b/net1 T1',
      '10.0.0.4 c/eth0 t-c',
      'fd00::2 c/eth0 t-c',
    ]);
    expect(store.del({ containerID: 'b', ifname: 'net1' })).toEqual(['10.0.0.3']);
  });

  it('refuses a damaged JSON state instead of starting empty (which would hand addresses out twice)', () => {
    expect(() => decodeLegacyState('{"allocations": {"10.0.0.2": {}}}', '/x/state.json')).toThrow(
      /^state file \/x\/state.json is damaged \(allocation 10.0.0.2 has no containerID\/ifname\)/,
    );
    const d = tmp();
    mkdirSync(join(d, 'net'));
    writeFileSync(join(d, 'net', LEGACY_STATE_FILE), '{');
    expect(code(() => add(new NetworkStore(d, 'net'), 'a'))[0]).toBe(5);
    expect(existsSync(join(d, 'net', ATTACHMENTS_DIR))).toBe(false);
  });
});

// Timeouts of 0 make each wait a single try: no sleeping, no clock in these tests.
describe('the lock (an abstract Unix socket named by the directory)', () => {
  it('times out with code 11 naming the lock while another holder has it', () => {
    const d = tmp();
    mkdirSync(join(d, 'net'));
    const other = new SocketLock(join(d, 'net'));
    other.acquire({ timeoutMs: 0 });
    try {
      const [c, msg] = code(() => add(new NetworkStore(d, 'net', { lockTimeoutMs: 0 }), 'a'));
      expect(c).toBe(11);
      const name = lockName(join(d, 'net'));
      expect(msg).toBe(`network "net": lock @${name} is held by another process (ss -xlp | grep '${name}' names it); gave up after 0 ms`);
    } finally {
      other.release();
    }
    // Released synchronously: the next call gets it at its first try.
    expect(add(new NetworkStore(d, 'net', { lockTimeoutMs: 0 }), 'a')).toHaveLength(2);
  });

  it('is free at once after its holder is killed with SIGKILL', async () => {
    const d = tmp();
    const net = join(d, 'net');
    mkdirSync(net);
    const name = lockName(net);
    // A real process binds the name, as the plugin does, and dies without releasing it.
    const child = spawn(process.execPath, ['-e', `
      const s = require('net').createServer();
      s.listen({ path: '\\0' + ${JSON.stringify(name)}, exclusive: true }, () => console.log('locked'));`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((res, rej) => {
      child.stdout!.on('data', (b: Buffer) => b.toString().includes('locked') && res());
      child.on('exit', (c) => rej(new Error(`lock holder exited ${c}`)));
    });
    expect(code(() => add(new NetworkStore(d, 'net', { lockTimeoutMs: 0 }), 'a'))[0]).toBe(11);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(add(new NetworkStore(d, 'net', { lockTimeoutMs: 0 }), 'a')).toHaveLength(2);
  });

  it('one directory has one lock whatever path reaches it; two directories have two', () => {
    const d = tmp();
    mkdirSync(join(d, 'one'));
    mkdirSync(join(d, 'two'));
    symlinkSync(join(d, 'one'), join(d, 'alias'));
    expect(lockName(join(d, 'alias'))).toBe(lockName(join(d, 'one')));
    expect(lockName(join(d, 'two'))).not.toBe(lockName(join(d, 'one')));
    const a = new SocketLock(join(d, 'one'));
    a.acquire({ timeoutMs: 0 });
    try {
      expect(() => new SocketLock(join(d, 'alias')).acquire({ timeoutMs: 0 })).toThrow(/is held by another process/);
      const b = new SocketLock(join(d, 'two'));
      b.acquire({ timeoutMs: 0 });
      b.release();
    } finally {
      a.release();
    }
  });

  it('GC removes what killed calls and earlier versions left: temp files, staging, the old lock directory', () => {
    const d = tmp();
    const store = new NetworkStore(d, 'net');
    add(store, 'a');
    const net = join(d, 'net');
    const leftovers = [TMP_FILE, 'attachments.tmp', 'kube-dataplane-ipam.tmp-4242', 'attachments.tmp-4242', 'kube-dataplane-ipam.lock.4242'];
    for (const f of leftovers) writeFileSync(join(net, f), 'half');
    mkdirSync(join(net, LEGACY_LOCK_DIR));
    writeFileSync(join(net, LEGACY_LOCK_DIR, 'pid-1.start-1.boot-deadbeef'), '');
    const { freed, removed } = store.gc((all) => all);
    expect(freed).toEqual([]);
    expect(removed.sort()).toEqual([...leftovers, LEGACY_LOCK_DIR].sort());
    expect(readdirSync(net).sort()).toEqual(['10.0.0.2', README_FILE, ATTACHMENTS_DIR, 'fd00::2', 'last_reserved_ip.0', 'last_reserved_ip.1'].sort());
  });
});
