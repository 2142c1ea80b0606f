// proxy/nftables/netlink against a real kernel: in a namespace of its own, tables loaded with
// `nft -f`, then changed and read by nft-netlink-driver.ts (the compiled module, run with
// `ip netns exec`), and checked with `nft list`. Needs `npx tsc -p tsconfig.json` first.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Topology, type Namespace } from './harness/netns.js';

const DRIVER = resolve(import.meta.dirname, '..', 'dist/netns-tests/nft-netlink-driver.js');

const TABLES = `
table ip kdp {
  map endpoints { typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport ; }
  map nodeport-endpoints { typeof meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport ; }
  map service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }
  map big { type ipv4_addr . inet_proto . inet_service : verdict ; }
  set cluster-cidrs { type ipv4_addr ; flags interval ; elements = { 10.244.0.0/16 } ; }
  chain mark-for-masquerade { meta mark set meta mark or 0x4000 ; }
  chain svc-a { }
  chain svc-b { }
  chain svc-dnat { }
  chain svc-nodeport { }
  chain doomed { meta l4proto udp drop ; }
  chain rules {
    ip saddr != @cluster-cidrs jump mark-for-masquerade
    ip daddr . meta l4proto . th dport vmap @service-ips
    fib daddr type local jump mark-for-masquerade
    ct state established,related accept
    meta mark set 0x4000
    ip daddr 10.96.0.10 tcp dport 80 counter goto svc-a
    meta l4proto udp drop
  }
  chain nat-output { type nat hook output priority -100 ; policy accept ; ip daddr 10.96.0.1 jump svc-dnat ; }
}
table ip6 kdp {
  map endpoints { typeof ip6 daddr . meta l4proto . th dport . numgen random mod 1 : ip6 daddr . th dport ; }
  map nodeport-endpoints { typeof meta l4proto . th dport . numgen random mod 1 : ip6 daddr . th dport ; }
  chain svc-dnat { }
  chain svc-nodeport { }
  chain nat-output { type nat hook output priority -100 ; policy accept ; ip6 daddr fd00:96::1 jump svc-dnat ; }
}
table ip kdpcmp {
  map endpoints { typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . tcp dport ; }
  chain by-nft { }
  chain by-us { }
}
table ip6 kdpcmp {
  map endpoints { typeof ip6 daddr . meta l4proto . th dport . numgen random mod 1 : ip6 daddr . tcp dport ; }
  chain by-nft { }
  chain by-us { }
}
`;

/** Answers every connection on 8080–8082 with its port. */
const SERVER = `
for (const p of [8080, 8081, 8082]) require('node:net').createServer((s) => s.end(p + '\\n')).listen({ port: p, host: '::', ipv6Only: false });
console.log('listening');
`;
/** N connections to HOST:PORT; prints {answer: count}. */
const CLIENT = `
const [host, port, n] = process.argv.slice(1);
const one = () => new Promise((resolve) => {
  const s = require('node:net').connect({ host, port: Number(port), timeout: 2000 });
  let out = '';
  s.on('data', (d) => (out += d)).on('end', () => resolve(out.trim())).on('error', (e) => resolve('ERR ' + e.code)).on('timeout', () => s.destroy(new Error('timeout')));
});
(async () => { const c = {}; for (let i = 0; i < Number(n); i++) { const a = await one(); c[a] = (c[a] || 0) + 1; } console.log(JSON.stringify(c)); })();
`;

describe('nf_tables over nfnetlink (proxy/nftables/netlink)', () => {
  let topo: Topology;
  let ns: Namespace;
  const dir = mkdtempSync(join(tmpdir(), 'kdp-nftnl-'));

  const nft = async (...args: string[]) => (await ns.exec('nft', args)).stdout;
  const drive = async (...args: string[]) => {
    const r = await ns.exec('node', [DRIVER, ...args], { timeoutMs: 120_000 });
    return JSON.parse(r.stdout) as Record<string, any>;
  };
  /** A chain's rules as nft lists them (without its name line). */
  const body = async (family: string, table: string, chain: string) => (await nft('list', 'chain', family, table, chain)).split('\n').filter((l) => /^\t\t/.test(l)).map((l) => l.trim());

  beforeAll(async () => {
    if (!existsSync(DRIVER)) throw new Error(`${DRIVER} is missing: build first (npx tsc -p tsconfig.json)`);
    topo = await Topology.create();
    ns = await topo.namespace('nft');
    writeFileSync(join(dir, 'tables.nft'), TABLES);
    await ns.exec('nft', ['-f', join(dir, 'tables.nft')]);
  });

  afterAll(async () => {
    await topo?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('adds and deletes elements, verdict goto/jump included; nft lists what was written', async () => {
    const r = await drive('elements');
    expect(r.serviceIps.sort()).toEqual(['10.96.0.5 . 6 . 80 : goto svc-a', '10.96.0.6 . 17 . 53 : jump svc-b']);
    expect(r.endpoints6).toEqual(['fd00:244::5 . 5353']);
    const vmap = await nft('list', 'map', 'ip', 'kdp', 'service-ips');
    expect(vmap).toContain('10.96.0.5 . tcp . 80 : goto svc-a');
    expect(vmap).toContain('10.96.0.6 . udp . 53 : jump svc-b');
    expect(vmap).not.toContain('10.96.0.7');
    expect(await nft('list', 'map', 'ip', 'kdp', 'endpoints')).toContain('10.96.0.5 . tcp . 80 . 0 : 10.244.0.5 . 8080');
    expect(await nft('list', 'map', 'ip6', 'kdp', 'endpoints')).toContain('fd00:96::5 . udp . 53 . 2 : fd00:244::5 . 5353');
  });

  it('a batch whose third op fails applies nothing, and the error names that op', async () => {
    const before = await nft('list', 'ruleset');
    const r = await drive('atomic');
    expect(r.failed).toMatchObject({ errno: 2, code: 'ENOENT', opIndex: 2 });
    expect(r.failed.message).toBe('add element ip kdp no-such-set (1 element): ENOENT (op 3 of 4; nothing applied)');
    expect(r.generationUnchanged).toBe(true);
    const after = await nft('list', 'ruleset');
    expect(after).toBe(before);
    expect(after).not.toContain('must-not-exist');
    expect(after).not.toContain('10.96.9.9');
  });

  it('refusals the caller meets (and repeats that are not refused)', async () => {
    const r = await drive('errors');
    const code = (k: string) => r[k].code ?? 'ok';
    expect(r.addTwiceSameData).toEqual([{ ok: true }, { ok: true }]); // CREATE without EXCL
    expect(code('addSameKeyOtherData')).toBe('EEXIST'); // a changed map value: delete + add
    expect(code('replaceInOneTransaction')).toBe('ok');
    expect(code('deleteMissingElement')).toBe('ENOENT');
    expect(code('keyOfWrongLength')).toBe('EINVAL');
    expect(r.deleteTwiceInOneTransaction).toMatchObject({ code: 'ENOENT', opIndex: 1 });
    expect(code('verdictToMissingChain')).toBe('ENOENT');
    expect(code('addExistingChain')).toBe('ok');
    expect(code('deleteReferencedChain')).toBe('EBUSY');
    expect(code('deleteChainWithRules')).toBe('ok'); // the kernel deletes its rules with it
    expect(code('deleteMissingChain')).toBe('ENOENT');
    expect(code('deleteMissingRule')).toBe('ENOENT');
    expect(r.missingTable.message).toBe('flush set ip nope x: ENOENT (op 1 of 1; nothing applied)');
    expect(r.tableExists).toEqual([true, false]);
    expect(r.listMissingSet).toMatchObject({ code: 'ENOENT', message: 'list set ip kdp nope: ENOENT' });
    expect(await nft('list', 'map', 'ip', 'kdp', 'endpoints')).toContain('10.96.7.7 . tcp . 80 . 0 : 10.244.0.8 . 80');
    expect(await nft('list', 'table', 'ip', 'kdp')).not.toContain('chain doomed');
  });

  it('rules read back with listRules and replayed with newrule into the flushed chain list the same', async () => {
    const before = await body('ip', 'kdp', 'rules');
    expect(before).toHaveLength(7);
    const r = await drive('replay');
    expect(r).toMatchObject({ rules: 7, sameBytes: true, newHandles: true });
    expect(await body('ip', 'kdp', 'rules')).toEqual(before);
    expect(r.chains).toContain('nat-output@3'); // NF_INET_LOCAL_OUT
    expect(r.chains).toContain('svc-a');
    expect(r.sets).toEqual(expect.arrayContaining(['endpoints:16:8', 'service-ips:12:16', 'cluster-cidrs:4:-']));
  });

  it('the dnat numgen map rule from expressions.ts lists as nft lists its own, and balances traffic', async () => {
    // nft 1.0.6 cannot write this rule itself for a `… : ip daddr . th dport` map ("conflicting
    // protocols specified"); with a `tcp dport` map it writes the same rule plus `meta l4proto
    // tcp`. That one, built both ways, must list the same and dump the same bytes.
    for (const f of ['ip', 'ip6']) {
      await ns.exec('nft', ['add', 'rule', f, 'kdpcmp', 'by-nft', 'dnat', f, 'addr', '.', 'port', 'to', `${f} daddr . meta l4proto . th dport . numgen random mod 3 map @endpoints`]);
    }
    expect((await drive('dnatcompare')).sameDumpBytes).toBe(true);
    for (const f of ['ip', 'ip6']) expect(await body(f, 'kdpcmp', 'by-us')).toEqual(await body(f, 'kdpcmp', 'by-nft'));
    expect(await body('ip', 'kdpcmp', 'by-us')).toEqual(['dnat ip to ip daddr . meta l4proto . tcp dport . numgen random mod 3 map @endpoints']);

    // The proxy's own map (data `th dport`), no protocol test; nft 1.0.6 leaves `addr . port`
    // out of its listing of any such rule.
    expect(await drive('dnat', 'ip', '10.96.0.1', '10.0.0.1')).toEqual({ ok: true });
    expect(await drive('dnat', 'ip6', 'fd00:96::1', 'fd00::1')).toEqual({ ok: true });
    expect(await body('ip', 'kdp', 'svc-dnat')).toEqual(['dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 3 map @endpoints']);
    expect(await body('ip6', 'kdp', 'svc-dnat')).toEqual(['dnat ip6 to ip6 daddr . meta l4proto . th dport . numgen random mod 3 map @endpoints']);
    expect(await body('ip', 'kdp', 'svc-nodeport')).toEqual(['dnat ip to meta l4proto . th dport . numgen random mod 7 map @nodeport-endpoints']);
    expect(await body('ip6', 'kdp', 'svc-nodeport')).toEqual(['dnat ip6 to meta l4proto . th dport . numgen random mod 7 map @nodeport-endpoints']);

    // Local traffic to the VIPs (nat output hook) reaches all three endpoint ports.
    for (const a of ['10.0.0.1/32', '10.96.0.1/32']) await ns.ip('addr', 'add', a, 'dev', 'lo');
    for (const a of ['fd00::1/128', 'fd00:96::1/128']) await ns.ip('addr', 'add', a, 'dev', 'lo', 'nodad');
    const server = ns.spawn('node', ['-e', SERVER], { label: 'endpoints' });
    await server.waitForOutput('listening');
    for (const vip of ['10.96.0.1', 'fd00:96::1']) {
      const counts = JSON.parse((await ns.exec('node', ['-e', CLIENT, vip, '80', '40'])).stdout) as Record<string, number>;
      expect(Object.keys(counts).sort()).toEqual(['8080', '8081', '8082']);
    }
    await server.stop();
  });

  it('100k elements in several transactions, read back with listSetElements, deleted again', async () => {
    const r = await drive('bulk', '100000');
    expect(r).toMatchObject({ count: 100_000, read: 100_002, matched: 100_000, left: 2 });
    expect(r.bytes).toBeGreaterThan(4_000_000);
    console.log(`nft-netlink timings (ms): ${JSON.stringify(r.timings)}; ${r.bytes} bytes for 90k elements, ${r.batches} batch(es) of at most ${r.maxTransactionBytes}`);
    const left = await nft('list', 'map', 'ip', 'kdp', 'big');
    expect(left).toContain('10.255.255.1 . tcp . 1 : drop');
    expect(left).not.toContain('10.0.0.1 . tcp . 80');
  });

  it('a batch larger than the socket can send is refused before sending; split batches fit', async () => {
    const r = await drive('oversize');
    expect(r.max).toBe(2 * (64 << 10) - 32); // SO_SNDBUF doubled, less netlink_sendmsg's 32
    expect(r.tooBig).toMatch(/^nf_tables transaction of 1 ops is \d+ bytes, more than the 131040 the socket can send; split it/);
    expect(r.batches).toBeGreaterThan(1);
    expect(r.largest).toBeLessThanOrEqual(r.max);
  });

  it('a transaction of 2,000 messages gets one answer: a receive buffer of a few dozen replies does not overflow', async () => {
    expect(await drive('many-messages', '2000')).toEqual({ chains: 2000 });
  });

  it('an idle socket does not keep the process alive', async () => {
    const t0 = Date.now();
    const r = await drive('idle');
    expect(typeof r.generation).toBe('number');
    expect(Date.now() - t0).toBeLessThan(5_000);
  });
});
