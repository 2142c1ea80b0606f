import { describe, expect, it } from 'vitest';
import { allocate, MemoryLedger, release, releaseAllExcept } from './allocator.js';
import { cniErrorOf as code } from './test-helpers.js';
import { ipString, parseIP } from '../common/ip-bigint.js';
import { buildRangeSets } from './range.js';

const T = '2026-01-01T00:00:00.000Z';
const dual = () => buildRangeSets([[{ subnet: '10.0.0.0/29' }], [{ subnet: 'fd00::/125' }]], 'ipam.ranges');
const who = (id: string) => ({ containerID: id, ifname: 'eth0' });
const addrs = (a: ReturnType<typeof allocate>) => a.map((x) => ipString(x.ip));
const ip = (s: string) => parseIP(s)!;


describe('allocate', () => {
  it('gives one address per range set, skipping the gateway, round-robin', () => {
    const s = new MemoryLedger();
    const sets = dual();
    expect(addrs(allocate(s, sets, who('a'), [], T))).toEqual(['10.0.0.2', 'fd00::2']);
    expect(addrs(allocate(s, sets, who('b'), [], T))).toEqual(['10.0.0.3', 'fd00::3']);
    release(s, who('a'));
    // .2 is free again, but the search resumes after the last one handed out.
    expect(addrs(allocate(s, sets, who('c'), [], T))).toEqual(['10.0.0.4', 'fd00::4']);
  });

  it('returns the same addresses on a repeated ADD and allocates nothing new', () => {
    const s = new MemoryLedger();
    const sets = dual();
    const first = addrs(allocate(s, sets, who('a'), [], T));
    expect(addrs(allocate(s, sets, who('a'), [], T))).toEqual(first);
    expect(s.allocations.size).toBe(2);
  });

  it('wraps around and reuses freed addresses once the range is used up; then reports exhaustion', () => {
    const s = new MemoryLedger();
    const sets = buildRangeSets([[{ subnet: '10.0.0.0/29' }]], 'ipam.ranges'); // .2-.6: 5 addresses
    for (const id of ['a', 'b', 'c', 'd', 'e']) allocate(s, sets, who(id), [], T);
    expect(code(() => allocate(s, sets, who('f'), [], T))).toEqual([
      100,
      'no free IPv4 address in range set 0 (10.0.0.0/29 (10.0.0.1-10.0.0.6)): all 5 addresses are allocated',
    ]);
    release(s, who('c'));
    expect(addrs(allocate(s, sets, who('f'), [], T))).toEqual(['10.0.0.4']);
  });

  it('does not leave a half allocation when a later set is exhausted', () => {
    const s = new MemoryLedger();
    const sets = buildRangeSets([[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/126' }]], 'ipam.ranges'); // v6: ::2, ::3
    allocate(s, sets, who('a'), [], T);
    allocate(s, sets, who('b'), [], T);
    expect(code(() => allocate(s, sets, who('c'), [], T))[0]).toBe(100);
    expect(s.heldBy(who('c'))).toEqual([]);
    expect(s.allocations.size).toBe(4);
  });

  it('honours requested addresses and refuses taken, gateway and foreign ones', () => {
    const s = new MemoryLedger();
    const sets = dual();
    expect(addrs(allocate(s, sets, who('a'), [ip('10.0.0.5')], T))).toEqual(['10.0.0.5', 'fd00::2']);
    expect(code(() => allocate(s, sets, who('b'), [ip('10.0.0.5')], T))).toEqual([101, 'requested IP 10.0.0.5 is already allocated to container a ifname eth0']);
    expect(code(() => allocate(s, sets, who('b'), [ip('10.0.0.1')], T))).toEqual([101, 'requested IP 10.0.0.1 is the gateway of ipam.ranges[0][0]']);
    expect(code(() => allocate(s, sets, who('b'), [ip('192.168.0.1')], T))[1]).toMatch(/^requested IP 192.168.0.1 is not in any range set \(\[0\] 10.0.0.0\/29/);
    expect(code(() => allocate(s, sets, who('a'), [ip('10.0.0.6')], T))).toEqual([
      102,
      'container a ifname eth0 already holds 10.0.0.5 in range set 0; requested 10.0.0.6 (DEL it first)',
    ]);
  });

  it('keys by container ID and ifname', () => {
    const s = new MemoryLedger();
    const sets = dual();
    allocate(s, sets, { containerID: 'a', ifname: 'eth0' }, [], T);
    allocate(s, sets, { containerID: 'a', ifname: 'net1' }, [], T);
    expect(s.allocations.size).toBe(4);
    expect(release(s, { containerID: 'a', ifname: 'net1' })).toEqual(['10.0.0.3', 'fd00::3']);
    expect(s.heldBy(who('a'))).toEqual(['10.0.0.2', 'fd00::2']);
    expect(release(s, who('zzz'))).toEqual([]);
  });

  it('GC releases what the valid list does not name', () => {
    const s = new MemoryLedger();
    const sets = dual();
    for (const id of ['a', 'b', 'c']) allocate(s, sets, who(id), [], T);
    const freed = releaseAllExcept(s, [who('b')]);
    expect(freed.map((f) => f.owner.containerID).sort()).toEqual(['a', 'a', 'c', 'c']);
    expect([...s.allocations.values()].every((o) => o.containerID === 'b')).toBe(true);
  });

  it('finds a free address quickly in a huge IPv6 range', () => {
    const s = new MemoryLedger();
    const sets = buildRangeSets([[{ subnet: 'fd00::/64' }]], 'r');
    for (let i = 0; i < 300; i++) allocate(s, sets, who(`c${i}`), [], T);
    expect(s.allocations.size).toBe(300);
    expect(new Set(s.allocations.keys()).size).toBe(300);
  });
});
