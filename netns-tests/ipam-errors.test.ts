// Every error path of the real kube-dataplane-ipam binary: the spec's error object on stdout
// (cniVersion, code, msg), a non-zero exit, and nothing allocated. One row per case.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callPlugin as callAny, snapshotPlugin, type PluginCall } from '../ipam/plugin-runner.js';
import { lockName, SocketLock } from '../ipam/lock.js';

const work = mkdtempSync(join(tmpdir(), 'kdp-ipam-errors-'));
const bin = snapshotPlugin(join(work, 'bin'));
const callPlugin = (c: PluginCall) => callAny({ ...c, argv: [bin] });
const dataDir = join(work, 'data');
afterAll(() => rmSync(work, { recursive: true, force: true }));

type Json = Record<string, unknown>;
const ipam = (extra: Json = {}) => ({ type: 'kube-dataplane-ipam', dataDir, ranges: [[{ subnet: '10.30.0.0/24' }], [{ subnet: 'fd30::/64' }]], ...extra });
const conf = (extra: Json = {}, ipamExtra: Json = {}) => ({ cniVersion: '1.0.0', name: 'errnet', ipam: ipam(ipamExtra), ...extra });
const jsonError = (text: string) => {
  try {
    JSON.parse(text);
  } catch (e) {
    return (e as Error).message;
  }
  return '';
};

interface Case {
  name: string;
  call: Partial<PluginCall> & { config: unknown };
  code: number;
  msg: string;
  cniVersion?: string;
}

const CASES: Case[] = [
  { name: 'no CNI_COMMAND', call: { config: conf(), env: { CNI_COMMAND: undefined } }, code: 4, msg: 'CNI_COMMAND is not set (want one of ADD, DEL, CHECK, GC, STATUS, VERSION)', cniVersion: '1.1.0' },
  { name: 'unknown CNI_COMMAND', call: { command: 'UPDATE', config: conf() }, code: 4, msg: 'CNI_COMMAND "UPDATE" is not one of ADD, DEL, CHECK, GC, STATUS, VERSION', cniVersion: '1.1.0' },
  { name: 'ADD without CNI_CONTAINERID', call: { config: conf(), env: { CNI_CONTAINERID: undefined } }, code: 4, msg: 'CNI_CONTAINERID is not set (required for ADD)', cniVersion: '1.1.0' },
  { name: 'ADD without CNI_NETNS', call: { config: conf(), env: { CNI_NETNS: undefined } }, code: 4, msg: 'CNI_NETNS is not set (required for ADD)', cniVersion: '1.1.0' },
  { name: 'ADD without CNI_IFNAME', call: { config: conf(), env: { CNI_IFNAME: undefined } }, code: 4, msg: 'CNI_IFNAME is not set (required for ADD)', cniVersion: '1.1.0' },
  { name: 'DEL without CNI_PATH', call: { command: 'DEL', config: conf(), env: { CNI_PATH: undefined } }, code: 4, msg: 'CNI_PATH is not set (required for DEL)', cniVersion: '1.1.0' },
  { name: 'bad container ID', call: { config: conf(), containerID: '../x' }, code: 4, msg: 'CNI_CONTAINERID "../x": want letters, digits, "_", "." or "-", starting with a letter or digit' },
  { name: 'bad interface name', call: { config: conf(), ifname: 'a-very-long-ifname0' }, code: 4, msg: 'CNI_IFNAME "a-very-long-ifname0": not a valid interface name (at most 15 bytes, no "/", ":" or spaces)' },
  { name: 'bad CNI_ARGS IP', call: { config: conf(), cniArgs: 'IgnoreUnknown=1;IP=10.30.0.300' }, code: 4, msg: 'CNI_ARGS: IP="10.30.0.300" is not an IP address' },
  { name: 'bad JSON', call: { config: '{"cniVersion": "1.0.0",' }, code: 6, msg: `cannot decode network config from stdin: ${jsonError('{"cniVersion": "1.0.0",')}`, cniVersion: '1.1.0' },
  { name: 'empty stdin', call: { config: '' }, code: 6, msg: `cannot decode network config from stdin: ${jsonError('')}`, cniVersion: '1.1.0' },
  { name: 'config not an object', call: { config: '[1]' }, code: 6, msg: 'cannot decode network config from stdin: want a JSON object, got [1]', cniVersion: '1.1.0' },
  { name: 'no cniVersion', call: { config: { name: 'errnet', ipam: ipam() } }, code: 7, msg: 'network config: "cniVersion" is missing; supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0', cniVersion: '1.1.0' },
  { name: 'old version 0.2.0', call: { config: conf({ cniVersion: '0.2.0' }) }, code: 1, msg: 'incompatible CNI version "0.2.0": kube-dataplane-ipam supports 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0', cniVersion: '1.1.0' },
  { name: 'future version 2.0.0', call: { config: conf({ cniVersion: '2.0.0' }) }, code: 1, msg: 'incompatible CNI version "2.0.0": kube-dataplane-ipam supports 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0', cniVersion: '1.1.0' },
  { name: 'bad network name', call: { config: conf({ name: '../etc' }) }, code: 7, msg: 'network config "name": want letters, digits, "_", "." or "-" (it names the store directory), got "../etc"' },
  { name: 'no ipam section', call: { config: { cniVersion: '1.0.0', name: 'errnet' } }, code: 7, msg: 'network config "ipam": want an object, got undefined' },
  { name: 'no ranges', call: { config: conf({}, { ranges: undefined }) }, code: 7, msg: 'ipam: no addresses to hand out: set "ranges" (a list of range sets) or "podCIDRsFrom": "node"' },
  { name: '/31', call: { config: conf({}, { ranges: [[{ subnet: '10.30.0.0/31' }]] }) }, code: 7, msg: 'ipam.ranges[0][0].subnet: 10.30.0.0/31 is too small to allocate from (a /31 or /32 leaves no address for pods)' },
  { name: '/32', call: { config: conf({}, { ranges: [[{ subnet: '10.30.0.7/32' }]] }) }, code: 7, msg: 'ipam.ranges[0][0].subnet: 10.30.0.7/32 is too small to allocate from (a /31 or /32 leaves no address for pods)' },
  { name: '/128', call: { config: conf({}, { ranges: [[{ subnet: 'fd30::1/128' }]] }) }, code: 7, msg: 'ipam.ranges[0][0].subnet: fd30::1/128 is too small to allocate from (a /127 or /128 leaves no address for pods)' },
  {
    name: 'overlapping range sets',
    call: { config: conf({}, { ranges: [[{ subnet: '10.30.0.0/16' }], [{ subnet: '10.30.5.0/24' }]] }) },
    code: 7,
    msg: 'ipam.ranges[1][0]: 10.30.5.0/24 (10.30.5.1-10.30.5.254) overlaps ipam.ranges[0][0] 10.30.0.0/16 (10.30.0.1-10.30.255.254)',
  },
  { name: 'two families in one set', call: { config: conf({}, { ranges: [[{ subnet: '10.30.0.0/24' }, { subnet: 'fd30::/64' }]] }) }, code: 7, msg: 'ipam.ranges[0][1]: IPv6 range in a set of IPv4 ranges (one family per range set)' },
  { name: 'gateway outside the subnet', call: { config: conf({}, { ranges: [[{ subnet: '10.30.0.0/24', gateway: '10.31.0.1' }]] }) }, code: 7, msg: 'ipam.ranges[0][0].gateway: 10.31.0.1 is not in subnet 10.30.0.0/24' },
  { name: 'bad route', call: { config: conf({}, { routes: [{ dst: 'default' }] }) }, code: 7, msg: 'ipam.routes[0].dst: want a CIDR, got "default"' },
  { name: 'podCIDRsFrom with ranges', call: { config: conf({}, { podCIDRsFrom: 'node' }) }, code: 7, msg: 'ipam: "podCIDRsFrom" and "ranges" both set; the node\'s pod CIDRs are the ranges' },
  { name: 'unknown podCIDRsFrom', call: { config: conf({}, { podCIDRsFrom: 'cluster', ranges: undefined }) }, code: 7, msg: 'ipam.podCIDRsFrom: the only source is "node", got "cluster"' },
  {
    name: 'podCIDRsFrom node before the agent wrote the file',
    call: { config: conf({}, { podCIDRsFrom: 'node', ranges: undefined, nodePodCIDRsFile: '/nonexistent/node-pod-cidrs.json' }) },
    code: 11,
    msg: 'ipam.podCIDRsFrom "node": node pod CIDRs file /nonexistent/node-pod-cidrs.json does not exist yet (the kube-dataplane agent writes it once the Node has spec.podCIDRs)',
  },
  { name: 'GC without valid attachments', call: { command: 'GC', config: conf({ cniVersion: '1.1.0' }) }, code: 7, msg: 'GC: the config has no "cni.dev/valid-attachments"; refusing to guess which addresses are in use', cniVersion: '1.1.0' },
  { name: 'CHECK of an unknown attachment', call: { command: 'CHECK', config: conf(), containerID: 'nobody' }, code: 103, msg: 'network "errnet": no address is allocated to container nobody ifname eth0' },
];

describe('kube-dataplane-ipam error paths (real binary)', () => {
  beforeAll(() => mkdirSync(dataDir, { recursive: true }));

  it.each(CASES)('$name → code $code', async (c) => {
    const r = await callPlugin({ command: 'ADD', ...c.call } as PluginCall);
    expect(r.exitCode).toBe(1);
    expect(r.json).toEqual({ cniVersion: c.cniVersion ?? (c.call.config as Json)?.cniVersion ?? '1.1.0', code: c.code, msg: c.msg });
    expect(readdirSync(dataDir)).toEqual([]); // nothing was allocated or created
  });

  it('an exhausted range set → code 100 naming the range; a taken requested IP → 101; a conflicting repeat → 102', async () => {
    const small = conf({ name: 'small' }, { ranges: [[{ subnet: '10.31.0.0/24', rangeStart: '10.31.0.10', rangeEnd: '10.31.0.11' }]] });
    for (const id of ['a', 'b']) expect((await callPlugin({ command: 'ADD', config: small, containerID: id })).exitCode).toBe(0);
    const full = await callPlugin({ command: 'ADD', config: small, containerID: 'c' });
    expect([full.exitCode, full.json]).toEqual([
      1,
      { cniVersion: '1.0.0', code: 100, msg: 'no free IPv4 address in range set 0 (10.31.0.0/24 (10.31.0.10-10.31.0.11)): all 2 addresses are allocated' },
    ]);
    const taken = await callPlugin({ command: 'ADD', config: small, containerID: 'c', cniArgs: 'IP=10.31.0.10' });
    expect(taken.json).toEqual({ cniVersion: '1.0.0', code: 101, msg: 'requested IP 10.31.0.10 is already allocated to container a ifname eth0' });
    const outside = await callPlugin({ command: 'ADD', config: small, containerID: 'c', cniArgs: 'IP=10.31.0.50' });
    expect(outside.json).toEqual({ cniVersion: '1.0.0', code: 101, msg: 'requested IP 10.31.0.50 is not in any range set ([0] 10.31.0.0/24 (10.31.0.10-10.31.0.11))' });
    const conflict = await callPlugin({ command: 'ADD', config: small, containerID: 'a', cniArgs: 'IP=10.31.0.11' });
    expect(conflict.json).toEqual({ cniVersion: '1.0.0', code: 102, msg: 'container a ifname eth0 already holds 10.31.0.10 in range set 0; requested 10.31.0.11 (DEL it first)' });
  });

  it('a lock held by a live process past lockTimeoutSeconds → code 11 naming the lock', async () => {
    const net = join(dataDir, 'locked');
    mkdirSync(net, { recursive: true });
    // This test process holds the network's lock, as another plugin call would.
    const held = new SocketLock(net);
    held.acquire({ timeoutMs: 0 });
    try {
      const r = await callPlugin({ command: 'ADD', config: conf({ name: 'locked' }, { lockTimeoutSeconds: 0.3 }) });
      expect(r.exitCode).toBe(1);
      expect(r.json.code).toBe(11);
      const name = lockName(net).replace(/[/]/g, '\\/');
      expect(r.json.msg).toMatch(new RegExp(`^network "locked": lock @${name} is held by another process \\(ss -xlp \\| grep '${name}' names it\\); gave up after \\d+ ms$`));
    } finally {
      held.release();
    }
  });

  it('a damaged JSON state of an earlier version → code 5, and the plugin refuses to allocate from it', async () => {
    const net = join(dataDir, 'damaged');
    mkdirSync(net, { recursive: true });
    writeFileSync(join(net, 'kube-dataplane-ipam.json'), '{"allocations": ');
    const r = await callPlugin({ command: 'ADD', config: conf({ name: 'damaged' }) });
    expect(r.exitCode).toBe(1);
    expect(r.json).toEqual({
      cniVersion: '1.0.0',
      code: 5,
      msg: `state file ${net}/kube-dataplane-ipam.json is damaged (${jsonError('{"allocations": ')}); refusing to use it, so that no address in use is handed out again; repair it, or remove it once no pod of this network holds an address`,
    });
  });
});
