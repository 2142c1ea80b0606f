// Runs inside a test's namespace (`ip netns exec NS node dist/netns-tests/nft-netlink-driver.js
// SCENARIO ...`): drives proxy/nftables/netlink against that namespace's nf_tables and prints one
// JSON line. nft-netlink.test.ts checks the kernel's state with `nft` afterwards.
import { NftNetlink, NftNetlinkError } from '../proxy/nftables/netlink/client.js';
import { encodeExpressions, reg32, type Expr } from '../proxy/nftables/netlink/expressions.js';
import type { NftFamily, Op, SetElement } from '../proxy/nftables/netlink/messages.js';
import { concat, decodeConcat, formatAddress, ipv4, ipv6, l4proto, port, readPort, u32host } from '../proxy/nftables/netlink/values.js';

const T = 'kdp';
const svc = (a: string, p: 'tcp' | 'udp', n: number) => concat(ipv4(a), l4proto(p), port(n));
const addr = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const ms = (t0: number) => Math.round((performance.now() - t0) * 10) / 10;

function errorFields(err: unknown) {
  if (!(err instanceof NftNetlinkError)) throw err;
  return { message: err.message, errno: err.errno, code: err.code, opIndex: err.opIndex };
}

async function attempt(nl: NftNetlink, ops: Op[]) {
  try {
    await nl.commit(ops);
    return { ok: true };
  } catch (err) {
    return errorFields(err);
  }
}

/** The dnat rule the proxy makes: VIP . proto . port . slot → endpoint address . port. */
function dnatExpressions(family: NftFamily, modulus: number): Expr[] {
  const v6 = family === 'ip6';
  const next = v6 ? 4 : 1; // 4-byte registers after the address
  return [
    { kind: 'payload', base: 'network', offset: v6 ? 24 : 16, len: v6 ? 16 : 4, dreg: reg32(0) },
    { kind: 'meta', key: 'l4proto', dreg: reg32(next) },
    { kind: 'payload', base: 'transport', offset: 2, len: 2, dreg: reg32(next + 1) },
    { kind: 'numgen', type: 'random', modulus, dreg: reg32(next + 2) },
    { kind: 'lookup', set: 'endpoints', sreg: reg32(0), dreg: reg32(0) },
    { kind: 'nat', type: 'dnat', family, regAddrMin: reg32(0), regProtoMin: reg32(next) },
  ];
}

const scenarios: Record<string, (nl: NftNetlink, args: string[]) => Promise<unknown>> = {
  async elements(nl) {
    await nl.commit([
      {
        op: 'newsetelem',
        family: 'ip',
        table: T,
        set: 'service-ips',
        elements: [
          { key: svc('10.96.0.5', 'tcp', 80), verdict: { code: 'goto', chain: 'svc-a' } },
          { key: svc('10.96.0.6', 'udp', 53), verdict: { code: 'jump', chain: 'svc-b' } },
          { key: svc('10.96.0.7', 'tcp', 443), verdict: { code: 'goto', chain: 'svc-b' } },
        ],
      },
      { op: 'newsetelem', family: 'ip', table: T, set: 'endpoints', elements: [{ key: concat(ipv4('10.96.0.5'), l4proto('tcp'), port(80), u32host(0)), data: concat(ipv4('10.244.0.5'), port(8080)) }] },
      { op: 'newsetelem', family: 'ip6', table: T, set: 'endpoints', elements: [{ key: concat(ipv6('fd00:96::5'), l4proto('udp'), port(53), u32host(2)), data: concat(ipv6('fd00:244::5'), port(5353)) }] },
    ]);
    await nl.commit([{ op: 'delsetelem', family: 'ip', table: T, set: 'service-ips', elements: [{ key: svc('10.96.0.7', 'tcp', 443) }] }]);
    const read = await nl.listSetElements('ip', T, 'service-ips');
    const eps = await nl.listSetElements('ip6', T, 'endpoints');
    return {
      serviceIps: read.map((e) => {
        const [a, p, n] = decodeConcat(e.key, [4, 1, 2]);
        return `${formatAddress(a!)} . ${p![0]} . ${readPort(n!)} : ${e.verdict?.code} ${e.verdict && 'chain' in e.verdict ? e.verdict.chain : ''}`.trim();
      }),
      endpoints6: eps.map((e) => {
        const [a, n] = decodeConcat(e.data!, [16, 2]);
        return `${formatAddress(a!)} . ${readPort(n!)}`;
      }),
    };
  },

  async atomic(nl) {
    const gen = await nl.getGeneration();
    const failed = await attempt(nl, [
      { op: 'newchain', family: 'ip', table: T, chain: 'must-not-exist' },
      { op: 'newsetelem', family: 'ip', table: T, set: 'service-ips', elements: [{ key: svc('10.96.9.9', 'tcp', 99), verdict: { code: 'goto', chain: 'svc-a' } }] },
      { op: 'newsetelem', family: 'ip', table: T, set: 'no-such-set', elements: [{ key: svc('10.96.9.9', 'tcp', 99), verdict: { code: 'drop' } }] },
      { op: 'delchain', family: 'ip', table: T, chain: 'svc-b' },
    ]);
    return { failed, generationUnchanged: (await nl.getGeneration()) === gen };
  },

  /** Which refusals the caller meets, and which repeats are not refused. */
  async errors(nl) {
    const key = concat(ipv4('10.96.7.7'), l4proto('tcp'), port(80), u32host(0));
    const ep = (a: string): SetElement => ({ key, data: concat(ipv4(a), port(80)) });
    const add = (e: SetElement): Op => ({ op: 'newsetelem', family: 'ip', table: T, set: 'endpoints', elements: [e] });
    const out: Record<string, unknown> = {};
    out.addTwiceSameData = [await attempt(nl, [add(ep('10.244.0.7'))]), await attempt(nl, [add(ep('10.244.0.7'))])];
    out.addSameKeyOtherData = await attempt(nl, [add(ep('10.244.0.8'))]);
    out.replaceInOneTransaction = await attempt(nl, [{ op: 'delsetelem', family: 'ip', table: T, set: 'endpoints', elements: [{ key }] }, add(ep('10.244.0.8'))]);
    out.deleteMissingElement = await attempt(nl, [{ op: 'delsetelem', family: 'ip', table: T, set: 'endpoints', elements: [{ key: concat(ipv4('10.1.1.1'), l4proto('tcp'), port(1), u32host(0)) }] }]);
    out.keyOfWrongLength = await attempt(nl, [{ op: 'delsetelem', family: 'ip', table: T, set: 'endpoints', elements: [{ key: svc('10.1.1.1', 'tcp', 1) }] }]);
    out.deleteTwiceInOneTransaction = await attempt(nl, [
      { op: 'delsetelem', family: 'ip', table: T, set: 'endpoints', elements: [{ key }] },
      { op: 'delsetelem', family: 'ip', table: T, set: 'endpoints', elements: [{ key }] },
    ]);
    out.verdictToMissingChain = await attempt(nl, [{ op: 'newsetelem', family: 'ip', table: T, set: 'service-ips', elements: [{ key: svc('10.96.8.8', 'tcp', 1), verdict: { code: 'goto', chain: 'nope' } }] }]);
    out.addExistingChain = await attempt(nl, [{ op: 'newchain', family: 'ip', table: T, chain: 'svc-a' }]);
    out.deleteReferencedChain = await attempt(nl, [{ op: 'delchain', family: 'ip', table: T, chain: 'mark-for-masquerade' }]);
    out.deleteChainWithRules = await attempt(nl, [{ op: 'delchain', family: 'ip', table: T, chain: 'doomed' }]);
    out.deleteMissingChain = await attempt(nl, [{ op: 'delchain', family: 'ip', table: T, chain: 'nope' }]);
    out.deleteMissingRule = await attempt(nl, [{ op: 'delrule', family: 'ip', table: T, chain: 'svc-a', handle: 99999n }]);
    out.missingTable = await attempt(nl, [{ op: 'flushset', family: 'ip', table: 'nope', set: 'x' }]);
    out.tableExists = [await nl.tableExists('ip', T), await nl.tableExists('ip', 'nope')];
    out.listMissingSet = await nl.listSetElements('ip', T, 'nope').then(() => 'listed', errorFields);
    return out;
  },

  async bulk(nl, [n = '100000']) {
    const count = Number(n);
    const timings: Record<string, number> = {};
    const elements: SetElement[] = Array.from({ length: count }, (_, i) => ({ key: svc(addr(i), 'tcp', 80), verdict: { code: 'goto', chain: i % 2 ? 'svc-a' : 'svc-b' } }));
    let t0 = performance.now();
    await nl.commit([{ op: 'newsetelem', family: 'ip', table: T, set: 'big', elements: [{ key: svc('10.255.255.1', 'tcp', 1), verdict: { code: 'drop' } }] }]);
    timings.commit1Empty = ms(t0);
    t0 = performance.now();
    await nl.commit([{ op: 'newsetelem', family: 'ip', table: T, set: 'big', elements: elements.slice(0, 10_000) }]);
    timings.commit10k = ms(t0);
    const rest: Op = { op: 'newsetelem', family: 'ip', table: T, set: 'big', elements: elements.slice(10_000) };
    t0 = performance.now();
    const batches = nl.split([rest]);
    for (const b of batches) await nl.commit(b);
    timings.commitRest = ms(t0);
    t0 = performance.now();
    await nl.commit([{ op: 'newsetelem', family: 'ip', table: T, set: 'big', elements: [{ key: svc('10.255.255.2', 'tcp', 1), verdict: { code: 'drop' } }] }]);
    timings.commit1Full = ms(t0);
    t0 = performance.now();
    const read = await nl.listSetElements('ip', T, 'big');
    timings.dump = ms(t0);
    const want = new Set(elements.map((e) => Buffer.from(e.key).toString('hex') + ('chain' in e.verdict! ? e.verdict.chain : '')));
    let matched = 0;
    for (const e of read) if (e.verdict && 'chain' in e.verdict && want.has(Buffer.from(e.key).toString('hex') + e.verdict.chain)) matched++;
    // The whole set again as one op: the bytes it takes, and the time to delete it all.
    const all: Op = { op: 'delsetelem', family: 'ip', table: T, set: 'big', elements };
    t0 = performance.now();
    const delBatches = nl.split([all]);
    for (const b of delBatches) await nl.commit(b);
    timings.deleteAll = ms(t0);
    const left = await nl.listSetElements('ip', T, 'big');
    return { count, read: read.length, matched, batches: batches.length, maxTransactionBytes: nl.maxTransactionBytes, bytes: nl.batchBytes([rest]), left: left.length, timings };
  },

  /** Batches cut for a small send buffer go through; one byte over is refused before sending. */
  async oversize(nl) {
    const small = NftNetlink.open({ sendBufferBytes: 64 << 10 });
    try {
      const elements = Array.from({ length: 6000 }, (_, i): SetElement => ({ key: svc(addr(i), 'udp', 53), verdict: { code: 'drop' } }));
      const op: Op = { op: 'newsetelem', family: 'ip', table: T, set: 'big', elements };
      const tooBig = await small.commit([op]).then(() => 'committed', (e: Error) => e.message);
      const batches = small.split([op]);
      for (const b of batches) await small.commit(b);
      const sizes = batches.map((b) => small.batchBytes(b));
      await nl.commit([{ op: 'flushset', family: 'ip', table: T, set: 'big' }]);
      return { max: small.maxTransactionBytes, tooBig, batches: batches.length, largest: Math.max(...sizes) };
    } finally {
      small.close();
    }
  },

  /** Every rule of the table read back, its chain flushed, the rules replayed from the dump. */
  async replay(nl) {
    const rules = (await nl.listRules('ip', T)).filter((r) => r.chain === 'rules');
    await nl.commit([{ op: 'flushchain', family: 'ip', table: T, chain: 'rules' }, ...rules.map((r): Op => ({ op: 'newrule', family: 'ip', table: T, chain: 'rules', expressions: r.expressions }))]);
    const again = (await nl.listRules('ip', T)).filter((r) => r.chain === 'rules');
    return {
      rules: rules.length,
      sameBytes: again.length === rules.length && again.every((r, i) => r.expressions.equals(rules[i]!.expressions)),
      newHandles: again.every((r, i) => r.handle !== rules[i]!.handle),
      chains: (await nl.listChains('ip', T)).map((c) => `${c.name}${c.hook ? `@${c.hook.hooknum}` : ''}`),
      sets: (await nl.listSets('ip', T)).map((s) => `${s.name}:${s.keyLen}:${s.dataLen ?? '-'}`),
    };
  },

  /** The proxy's dnat rule, built by expressions.ts, plus endpoints for the traffic check. */
  async dnat(nl, [family = 'ip', vip = '10.96.0.1', backend = '10.0.0.1']) {
    const f = family as NftFamily;
    const a = f === 'ip' ? ipv4 : ipv6;
    const slots = [8080, 8081, 8082];
    await nl.commit([
      { op: 'newrule', family: f, table: T, chain: 'svc-dnat', expressions: encodeExpressions(dnatExpressions(f, slots.length)) },
      { op: 'newrule', family: f, table: T, chain: 'svc-nodeport', expressions: encodeExpressions(nodeportExpressions(f, 7)) },
      { op: 'newsetelem', family: f, table: T, set: 'endpoints', elements: slots.map((p, i) => ({ key: concat(a(vip), l4proto('tcp'), port(80), u32host(i)), data: concat(a(backend), port(p)) })) },
    ]);
    return { ok: true };
  },

  /** nft 1.0.6 can write the dnat rule only with a tcp-only map (`: ip daddr . tcp dport`), to
   *  which it adds `meta l4proto tcp`: the same rule built here, for nft to list side by side. */
  async dnatcompare(nl) {
    const rule = (f: NftFamily): Expr[] => [{ kind: 'meta', key: 'l4proto', dreg: 1 }, { kind: 'cmp', op: 'eq', sreg: 1, data: l4proto('tcp') }, ...dnatExpressions(f, 3)];
    await nl.commit([
      { op: 'newrule', family: 'ip', table: 'kdpcmp', chain: 'by-us', expressions: encodeExpressions(rule('ip')) },
      { op: 'newrule', family: 'ip6', table: 'kdpcmp', chain: 'by-us', expressions: encodeExpressions(rule('ip6')) },
    ]);
    const theirs = (await nl.listRules('ip', 'kdpcmp')).filter((r) => r.chain === 'by-nft');
    const ours = (await nl.listRules('ip', 'kdpcmp')).filter((r) => r.chain === 'by-us');
    return { sameDumpBytes: theirs.length === 1 && ours.length === 1 && theirs[0]!.expressions.equals(ours[0]!.expressions) };
  },

  /** One transaction of N messages (chains of a table of its own) over a socket whose receive
   *  buffer holds a few dozen replies: it must get one, not one per message (an ACK per message
   *  overflowed it, and the netlink package aborts the process on that error). */
  async 'many-messages'(_nl, [n = '2000']) {
    const small = NftNetlink.open({ recvBufferBytes: 16 << 10 });
    const ops: Op[] = [{ op: 'newtable', family: 'ip', table: 'kdpmany' }];
    for (let i = 0; i < Number(n); i++) ops.push({ op: 'newchain', family: 'ip', table: 'kdpmany', chain: `c${i}` });
    await small.commit(ops);
    const chains = (await small.listChains('ip', 'kdpmany')).length;
    await small.commit([{ op: 'deltable', family: 'ip', table: 'kdpmany' }]);
    small.close();
    return { chains };
  },

  /** A socket left open must not keep the process alive. */
  async idle(nl) {
    return { generation: await nl.getGeneration() };
  },
};

function nodeportExpressions(family: NftFamily, modulus: number): Expr[] {
  return [
    { kind: 'meta', key: 'l4proto', dreg: reg32(0) },
    { kind: 'payload', base: 'transport', offset: 2, len: 2, dreg: reg32(1) },
    { kind: 'numgen', type: 'random', modulus, dreg: reg32(2) },
    { kind: 'lookup', set: 'nodeport-endpoints', sreg: reg32(0), dreg: reg32(0) },
    { kind: 'nat', type: 'dnat', family, regAddrMin: reg32(0), regProtoMin: reg32(family === 'ip6' ? 4 : 1) },
  ];
}

const [scenario = '', ...args] = process.argv.slice(2);
const run = scenarios[scenario];
if (!run) {
  console.error(`unknown scenario ${JSON.stringify(scenario)}; one of ${Object.keys(scenarios).join(', ')}`);
  process.exit(2);
}
const nl = NftNetlink.open();
const result = await run(nl, args);
process.stdout.write(`${JSON.stringify(result)}\n`);
if (scenario !== 'idle') nl.close();
