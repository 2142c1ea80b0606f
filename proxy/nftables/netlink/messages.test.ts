// Fixtures: the messages `nft` 1.0.6 sent for the same commands, captured in a scratch namespace
// with `strace -e sendmsg -e write=all nft -f FILE` (the bytes `nft --debug=mnl` prints, plus the
// flags it leaves out) on the table
//   table ip kdp {
//     map endpoints { typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport ; }
//     map service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }
//     map aff { type ipv4_addr : verdict ; flags timeout ; }
//     set cluster-cidrs { type ipv4_addr ; flags interval ; }
//     chain mark-for-masquerade { … }  chain svc-a { }
//   }
// (and `table ip6 kdp` with the same endpoints map on ip6 daddr). Sequence numbers and port ids
// are zeroed on both sides. Two differences are normalized, both nft's: it asks for no ACK (it
// reads errors only; we ask on a batch's last message), and it adds NFTA_SET_ELEM_LIST_SET_ID
// (the set's id in its own transaction; the kernel looks the set up by name first).
import { describe, expect, it } from 'vitest';
import { affinitySetSpec } from '../netlink-sets.js';
import { concat, ipv4, ipv6, l4proto, port, u32host } from './values.js';
import {
  decodeChain,
  decodeRule,
  decodeSet,
  decodeSetElems,
  describeOp,
  encodeBatch,
  ElementListBuilder,
  type EncodedElementList,
  encodeDump,
  encodedSize,
  encodeGetGen,
  messageCount,
  splitOps,
  BATCH_OVERHEAD,
  type Op,
  type SetElement,
} from './messages.js';
import { NFT_DATA_VERDICT, NFT_SET_ELEM_INTERVAL_END, NFT_SET_FLAGS, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, parseAttrList, parseMessages } from './wire.js';

/** Our messages with seq, pid and NLM_F_ACK cleared, as hex, one per message. */
function ours(ops: readonly Op[]): string[] {
  return parseMessages(encodeBatch(ops, 1000).buffer).map((m) => {
    const b = Buffer.alloc(16 + m.payload.length);
    b.writeUInt32LE(b.length, 0);
    b.writeUInt16LE(m.type, 4);
    b.writeUInt16LE(m.flags & ~NLM_F_ACK, 6);
    m.payload.copy(b, 16);
    return b.toString('hex');
  });
}

/** An nft message without one top-level attribute (after nfgenmsg), length fixed. */
function without(hexMsg: string, attrType: number): string {
  const b = Buffer.from(hexMsg, 'hex');
  const kept = [b.subarray(0, 20)];
  let off = 20;
  while (off < b.length) {
    const len = b.readUInt16LE(off);
    const padded = (len + 3) & ~3;
    if ((b.readUInt16LE(off + 2) & 0x3fff) !== attrType) kept.push(b.subarray(off, off + padded));
    off += padded;
  }
  const out = Buffer.concat(kept);
  out.writeUInt32LE(out.length, 0);
  return out.toString('hex');
}

const SET_ID = 4; // NFTA_SET_ELEM_LIST_SET_ID
const BEGIN = '140000001000010000000000000000000000000a';
const END = '140000001100010000000000000000000000000a';
const svc = (a: string, p: 'tcp' | 'udp', n: number) => concat(ipv4(a), l4proto(p), port(n));
const el = (family: 'ip' | 'ip6', set: string, elements: SetElement[]): Op => ({ op: 'newsetelem', family, table: 'kdp', set, elements });

describe('encodeBatch matches nft byte for byte', () => {
  it('delete element: the whole datagram, BATCH_BEGIN/END with res_id NFNL_SUBSYS_NFTABLES', () => {
    // delete element ip kdp service-ips { 10.96.0.2 . udp . 53 }
    const nft = [BEGIN, '480000000e0a0100000000000000000002000000080001006b64700010000200736572766963652d697073001c0003801800018014000180100001000a6000021100000000350000', END];
    expect(ours([{ op: 'delsetelem', family: 'ip', table: 'kdp', set: 'service-ips', elements: [{ key: svc('10.96.0.2', 'udp', 53) }] }])).toEqual(nft);
  });

  it('map element with concatenated key and data (NLM_F_CREATE, no EXCL)', () => {
    // add element ip kdp endpoints { 10.96.0.1 . tcp . 80 . 1 : 10.0.0.1 . 8080 }
    const nft = '640000000c0a0104000000000000000002000000080001006b6470000e000200656e64706f696e74730000000800040000000001300003802c00018018000180140001000a600001060000000050000001000000100002800c0001000a0000011f900000';
    const op = el('ip', 'endpoints', [{ key: concat(ipv4('10.96.0.1'), l4proto('tcp'), port(80), u32host(1)), data: concat(ipv4('10.0.0.1'), port(8080)) }]);
    expect(ours([op])[1]).toBe(without(nft, SET_ID));
  });

  it('ip6 map element', () => {
    // add element ip6 kdp endpoints { fd00::1 . tcp . 80 . 1 : fd00::2 . 8080 }
    const nft = '7c0000000c0a010400000000000000000a000000080001006b6470000e000200656e64706f696e7473000000080004000000000548000380440001802400018020000100fd0000000000000000000000000000010600000000500000010000001c00028018000100fd0000000000000000000000000000021f900000';
    const op = el('ip6', 'endpoints', [{ key: concat(ipv6('fd00::1'), l4proto('tcp'), port(80), u32host(1)), data: concat(ipv6('fd00::2'), port(8080)) }]);
    expect(ours([op])[1]).toBe(without(nft, SET_ID));
  });

  it('verdict map elements: goto, jump, drop (list entries numbered 1, 2, 3 as nft does)', () => {
    // add element ip kdp service-ips { 10.96.0.1 . tcp . 80 : goto svc-a, 10.96.0.2 . udp . 53 : jump svc-a, 10.96.0.3 . tcp . 443 : drop }
    const nft =
      'c80000000c0a0104000000000000000002000000080001006b64700010000200736572766963652d697073000800040000000003940003803400018014000180100001000a60000106000000005000001c0002801800028008000100fffffffc0a0002007376632d610000003400028014000180100001000a60000211000000003500001c0002801800028008000100fffffffd0a0002007376632d610000002800038014000180100001000a6000030600000001bb0000100002800c0002800800010000000000';
    const op = el('ip', 'service-ips', [
      { key: svc('10.96.0.1', 'tcp', 80), verdict: { code: 'goto', chain: 'svc-a' } },
      { key: svc('10.96.0.2', 'udp', 53), verdict: { code: 'jump', chain: 'svc-a' } },
      { key: svc('10.96.0.3', 'tcp', 443), verdict: { code: 'drop' } },
    ]);
    expect(ours([op])[1]).toBe(without(nft, SET_ID));
  });

  it('verdicts accept, continue, return', () => {
    // add element ip kdp service-ips { 10.96.0.1 . tcp . 80 : accept, 10.96.0.1 . tcp . 81 : continue, 10.96.0.1 . tcp . 82 : return }
    const nft =
      'b00000000c0a0104000000000000000002000000080001006b64700010000200736572766963652d6970730008000400000000037c0003802800018014000180100001000a6000010600000000500000100002800c00028008000100000000012800028014000180100001000a6000010600000000510000100002800c00028008000100ffffffff2800038014000180100001000a6000010600000000520000100002800c00028008000100fffffffb';
    const op = el('ip', 'service-ips', [
      { key: svc('10.96.0.1', 'tcp', 80), verdict: { code: 'accept' } },
      { key: svc('10.96.0.1', 'tcp', 81), verdict: { code: 'continue' } },
      { key: svc('10.96.0.1', 'tcp', 82), verdict: { code: 'return' } },
    ]);
    expect(ours([op])[1]).toBe(without(nft, SET_ID));
  });

  it('element with a timeout (u64 milliseconds, before the key)', () => {
    // add element ip kdp aff { 10.1.1.1 timeout 30s : jump svc-a }
    const nft = '680000000c0a0104000000000000000002000000080001006b647000080002006166660008000400000000053c000380380001800c00040000000000000075300c000180080001000a0101011c0002801800028008000100fffffffd0a0002007376632d61000000';
    expect(ours([el('ip', 'aff', [{ key: ipv4('10.1.1.1'), timeoutMs: 30_000, verdict: { code: 'jump', chain: 'svc-a' } }])])[1]).toBe(without(nft, SET_ID));
  });

  it('interval elements carry their flags first', () => {
    // add element ip kdp cluster-cidrs { 10.244.0.0/16 } — nft sends the interval as a closing
    // 0.0.0.0, the start, and the end (10.245.0.0, INTERVAL_END).
    const nft = '7c0000000c0a0104000000000000000002000000080001006b64700012000200636c75737465722d63696472730000000800040000000004440003801800018008000300000000010c0001800800010000000000100002800c000180080001000af400001800038008000300000000010c000180080001000af50000';
    const op = el('ip', 'cluster-cidrs', [
      { key: ipv4('0.0.0.0'), flags: NFT_SET_ELEM_INTERVAL_END },
      { key: ipv4('10.244.0.0') },
      { key: ipv4('10.245.0.0'), flags: NFT_SET_ELEM_INTERVAL_END },
    ]);
    expect(ours([op])[1]).toBe(without(nft, SET_ID));
  });

  it('flush map (DELSETELEM without elements; nft puts the set before the table)', () => {
    // flush map ip kdp service-ips
    expect(ours([{ op: 'flushset', family: 'ip', table: 'kdp', set: 'service-ips' }])[1]).toBe('2c0000000e0a010000000000000000000200000010000200736572766963652d69707300080001006b647000');
  });

  it('chains: add (CREATE), flush (DELRULE with the chain only), delete', () => {
    // add chain ip kdp svc-b / flush chain ip kdp svc-b / delete chain ip kdp svc-b
    const ops: Op[] = [
      { op: 'newchain', family: 'ip', table: 'kdp', chain: 'svc-b' },
      { op: 'flushchain', family: 'ip', table: 'kdp', chain: 'svc-b' },
      { op: 'delchain', family: 'ip', table: 'kdp', chain: 'svc-b' },
    ];
    expect(ours(ops)).toEqual([
      BEGIN,
      '28000000030a0104000000000000000002000000080001006b6470000a0003007376632d62000000',
      '28000000080a0100000000000000000002000000080001006b6470000a0002007376632d62000000',
      '28000000050a0100000000000000000002000000080001006b6470000a0003007376632d62000000',
      END,
    ]);
  });

  it('an affinity set, as nft declares it: no size, so the kernel grows its hash as clients come', () => {
    // nft add set ip kdp aff-a { type ipv4_addr ; flags dynamic,timeout ; timeout 600s ; }
    // With NFTA_SET_DESC_SIZE 65535 the kernel allocated the whole table up front: 2 MB of kernel
    // memory per set, one set per endpoint of every ClientIP service (and seconds to load 1000).
    const nft = '60000000090a0104000000000000000002000000080001006b6470000a0002006166662d6100000008000300000000300800040000000007080005000000000408000a00000000010c000b0000000000000927c00a000d000004020000000000';
    expect(ours([{ op: 'newset', family: 'ip', table: 'kdp', set: { ...affinitySetSpec('IPv4', 'aff-a', 600), id: 1 } }])[1]).toBe(nft);
  });

  it('flush table (DELRULE with the table only: every chain\'s rules, no set\'s elements)', () => {
    // flush table ip kdp
    expect(ours([{ op: 'flushrules', family: 'ip', table: 'kdp' }])[1]).toBe('1c000000080a0100000000000000000002000000080001006b647000');
  });

  it('rules: add (CREATE|APPEND) with raw expressions, delete by handle', () => {
    // add rule ip kdp svc-a jump mark-for-masquerade / delete rule ip kdp svc-a handle 10
    const jump = '480001800e000100696d6d656469617465000000340002800800010000000000280002802400028008000100fffffffd180002006d61726b2d666f722d6d61737175657261646500';
    expect(ours([{ op: 'newrule', family: 'ip', table: 'kdp', chain: 'svc-a', expressions: Buffer.from(jump, 'hex') }])[1]).toBe(
      `74000000060a010c000000000000000002000000080001006b6470000a0002007376632d610000004c000480${jump}`,
    );
    expect(ours([{ op: 'delrule', family: 'ip', table: 'kdp', chain: 'svc-a', handle: 10n }])[1]).toBe(
      '34000000080a0100000000000000000002000000080001006b6470000a0002007376632d610000000c000300000000000000000a',
    );
  });
});

describe('encodeBatch framing', () => {
  const big = (n: number): Op =>
    el('ip', 'service-ips', Array.from({ length: n }, (_, i) => ({ key: svc(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 'tcp', 80), verdict: { code: 'goto', chain: 'svc-a' } })));

  it('only the last message asks for an ACK; seqs name the first message of each op', () => {
    const ops: Op[] = [{ op: 'newchain', family: 'ip', table: 'kdp', chain: 'a' }, big(5000), { op: 'flushset', family: 'ip', table: 'kdp', set: 's' }];
    const b = encodeBatch(ops, 100);
    const msgs = parseMessages(b.buffer);
    expect(msgs.map((m) => m.seq)).toEqual(Array.from({ length: msgs.length }, (_, i) => 100 + i));
    expect(b.beginSeq).toBe(100);
    expect(b.endSeq).toBe(100 + msgs.length - 1);
    const n = messageCount(ops[1]!);
    expect(n).toBeGreaterThan(1); // 5,000 elements do not fit in one 64 KiB attribute
    expect(b.seqs).toEqual([101, 102, 102 + n]);
    const opMessages = msgs.slice(1, -1);
    for (const m of opMessages.slice(0, -1)) expect(m.flags & (NLM_F_REQUEST | NLM_F_ACK)).toBe(NLM_F_REQUEST);
    expect(opMessages.at(-1)!.flags & (NLM_F_REQUEST | NLM_F_ACK)).toBe(NLM_F_REQUEST | NLM_F_ACK);
    expect(msgs[0]!.flags).toBe(NLM_F_REQUEST);
    expect(b.buffer.length).toBe(BATCH_OVERHEAD + ops.reduce((k, op) => k + encodedSize(op), 0));
  });

  it('splits a large element list like nft: each message’s list under 64 KiB, numbering restarts', () => {
    // nft 1.0.6 sent 5,000 such elements as messages of 65576, 65576, 65576 and 63496 bytes.
    const msgs = parseMessages(encodeBatch([big(5000)], 1).buffer).slice(1, -1);
    expect(msgs.map((m) => m.payload.length + 16 + 8 /* nft's SET_ID */)).toEqual([65576, 65576, 65576, 63496]);
    const firstList = parseAttrList(msgs[1]!.payload.subarray(4)).find((a) => a.type === 3)!;
    expect(parseAttrList(firstList.value)[0]!.type).toBe(1);
    expect(decodeSetElems(msgs[1]!).elements).toHaveLength(1260); // 65,520 bytes of 52-byte elements
  });

  it('splitOps cuts batches under a byte budget, op order kept, every element once', () => {
    const ops: Op[] = [{ op: 'newchain', family: 'ip', table: 'kdp', chain: 'a' }, big(20_000), { op: 'newchain', family: 'ip', table: 'kdp', chain: 'b' }];
    const batches = splitOps(ops, 200_000);
    expect(batches.length).toBeGreaterThan(3);
    for (const b of batches) expect(encodeBatch(b, 1).buffer.length).toBeLessThanOrEqual(200_000);
    const flat = batches.flat();
    expect(flat[0]).toBe(ops[0]);
    expect(flat[flat.length - 1]).toBe(ops[2]);
    expect(flat.slice(1, -1).reduce((n, op) => n + (op.op === 'newsetelem' ? op.elements.length : 0), 0)).toBe(20_000);
    expect(splitOps(ops, 10_000_000)).toHaveLength(1);
  });

  it('refuses what cannot be sent, naming the op', () => {
    expect(() => encodeBatch([el('ip', 's', [])], 1)).toThrow(/add element ip kdp s \(0 elements\): no elements/);
    expect(() => encodeBatch([el('ip', 's', [{ key: ipv4('1.1.1.1'), data: ipv4('1.1.1.1'), verdict: { code: 'drop' } }])], 1)).toThrow(/data or a verdict/);
  });

  it('describeOp', () => {
    expect(describeOp(el('ip', 'service-ips', [{ key: ipv4('1.1.1.1') }, { key: ipv4('1.1.1.2') }, { key: ipv4('1.1.1.3') }]))).toBe('add element ip kdp service-ips (3 elements)');
    expect(describeOp({ op: 'delrule', family: 'ip6', table: 'kdp', chain: 'svc-a', handle: 7n })).toBe('delete rule ip6 kdp svc-a handle 7');
    expect(describeOp({ op: 'flushchain', family: 'ip', table: 'kdp', chain: 'x' })).toBe('flush chain ip kdp x');
  });
});

describe('requests and replies', () => {
  it('GETGEN and dumps', () => {
    // nft sends GETGEN as `14000000 100a 0100 …` (REQUEST only); we also ask for the ACK.
    expect(encodeGetGen(0).toString('hex')).toBe('14000000100a0500000000000000000000000000');
    const [d] = parseMessages(encodeDump({ kind: 'elements', family: 'ip', table: 'kdp', set: 'service-ips' }, 5));
    expect(d).toMatchObject({ type: 0x0a0d, flags: NLM_F_REQUEST | NLM_F_DUMP, seq: 5 });
  });

  // `nft list map ip kdp …` under `strace -e recvmsg -e read=all`: the kernel's NEWSETELEM dump
  // parts (no NLA_F_NESTED in dumps; res_id is the generation's low 16 bits).
  it('decodes a verdict map dump part', () => {
    const part =
      '8c0000000c0a0200000000000000000002000026080001006b64700010000200736572766963652d69707300600003002800010014000100100001000a6000021100000000350000100002000c00020008000100000000003400010014000100100001000a60000106000000005000001c0002001800020008000100fffffffc0a0002007376632d61000000';
    const r = decodeSetElems(parseMessages(Buffer.from(part, 'hex'))[0]!);
    expect(r.table).toBe('kdp');
    expect(r.set).toBe('service-ips');
    expect(r.elements).toEqual([
      { key: svc('10.96.0.2', 'udp', 53), verdict: { code: 'drop' } },
      { key: svc('10.96.0.1', 'tcp', 80), verdict: { code: 'goto', chain: 'svc-a' } },
    ]);
  });

  it('decodes map data and element timeouts', () => {
    const endpoints =
      '5c0000000c0a0200000000000000000002000026080001006b6470000e000200656e64706f696e7473000000300003002c00010018000100140001000a600001060000000050000000000000100002000c0001000a0000011f900000';
    expect(decodeSetElems(parseMessages(Buffer.from(endpoints, 'hex'))[0]!).elements).toEqual([
      { key: concat(ipv4('10.96.0.1'), l4proto('tcp'), port(80), u32host(0)), data: concat(ipv4('10.0.0.1'), port(8080)) },
    ]);
    // { 10.1.1.1 timeout 1h : jump svc-a }, read a few seconds later
    const aff =
      '6c0000000c0a0200000000000000000002000027080001006b647000080002006166660048000300440001000c000100080001000a0101011c0002001800020008000100fffffffd0a0002007376632d610000000c000400000000000036ee800c000500000000000036eda8';
    expect(decodeSetElems(parseMessages(Buffer.from(aff, 'hex'))[0]!).elements).toEqual([
      { key: ipv4('10.1.1.1'), verdict: { code: 'jump', chain: 'svc-a' }, timeoutMs: 3_600_000, expirationMs: 3_599_784 },
    ]);
  });

  it('decodes chain, set and rule dump parts', () => {
    // `nft list table ip kdp`: a regular chain, a base chain, the endpoints map, a rule.
    const chain = decodeChain(parseMessages(Buffer.from('3c000000030a0200000000000000000002000031080001006b6470000a0003007376632d610000000c00020000000000000000020800060000000004', 'hex'))[0]!);
    expect(chain).toEqual({ family: 'ip', table: 'kdp', name: 'svc-a', handle: 2n });
    const base = decodeChain(
      parseMessages(Buffer.from('68000000030a0200000000000000000002000031080001006b6470000c0003006e61742d707265000c000200000000000000002514000400080001000000000008000200ffffff9c0800050000000001080007006e61740008000a00000000010800060000000000', 'hex'))[0]!,
    );
    expect(base).toMatchObject({ name: 'nat-pre', hook: { hooknum: 0, priority: -100 }, type: 'nat' });
    const set = decodeSet(
      parseMessages(
        Buffer.from(
          'a4000000090a0200000000000000000002000031080001006b64700010000200736572766963652d697073000c00100000000000000000050800030000000008080004000000730d080005000000000c08000600ffffff00080007000000001020000d00000400000000010400000000030800040d0000000100060400000000040009001700130030786666666666666666383235303837343000000800140000000003',
          'hex',
        ),
      )[0]!,
    );
    expect(set).toMatchObject({ name: 'service-ips', flags: NFT_SET_FLAGS.MAP, keyLen: 12, dataType: NFT_DATA_VERDICT, dataLen: 16, handle: 5n });
    const rule = decodeRule(
      parseMessages(
        Buffer.from(
          '80000000060a0208000000000000000002000031080001006b6470000a0002007376632d610000000c00030000000000000000244c000400480001000e000100696d6d656469617465000000340002000800010000000000280002002400020008000100fffffffd180002006d61726b2d666f722d6d61737175657261646500',
          'hex',
        ),
      )[0]!,
    );
    expect(rule).toMatchObject({ family: 'ip', table: 'kdp', chain: 'svc-a', handle: 0x24n });
    // What the kernel dumps is what nft sent, except that it leaves NLA_F_NESTED off.
    expect(rule.expressions.toString('hex')).toBe('480001000e000100696d6d656469617465000000340002000800010000000000280002002400020008000100fffffffd180002006d61726b2d666f722d6d61737175657261646500');
  });
});

describe('element lists built as the elements come', () => {
  it('are the messages of the same elements as one op, byte for byte, one element object reused throughout', () => {
    const key = (i: number) => concat(ipv4(`10.96.${i >> 8}.${i & 255}`), l4proto('tcp'), port(80), u32host(i % 3));
    const data = (i: number) => concat(ipv4(`10.244.${i >> 8}.${i & 255}`), port(8080));
    const n = 5000; // several messages' worth
    const whole: Op = { op: 'newsetelem', family: 'ip', table: 'kdp', set: 'endpoints', elements: Array.from({ length: n }, (_, i) => ({ key: key(i), data: data(i) })) };
    const builder = new ElementListBuilder();
    const lists: EncodedElementList[] = [];
    const scratch = { key: new Uint8Array(16), data: new Uint8Array(8) };
    for (let i = 0; i < n; i++) {
      scratch.key.set(key(i));
      scratch.data.set(data(i));
      const full = builder.add(scratch);
      if (full) lists.push(full);
    }
    lists.push(builder.finish()!);
    expect(builder.finish()).toBeUndefined();
    expect(lists.length).toBe(messageCount(whole));
    expect(lists.reduce((k, l) => k + l.count, 0)).toBe(n);
    const ops: Op[] = lists.map((list) => ({ op: 'newsetelem-list', family: 'ip', table: 'kdp', set: 'endpoints', list }));
    expect(encodeBatch(ops, 1).buffer.equals(encodeBatch([whole], 1).buffer)).toBe(true);
    expect(describeOp(ops[0])).toMatch(/^add element ip kdp endpoints \(\d+ elements\)$/);
  });

  it('a list bounded below one attribute cuts sooner, and an element larger than the bound is refused', () => {
    const builder = new ElementListBuilder(200);
    const e = { key: new Uint8Array(16), data: new Uint8Array(8) };
    // 44 bytes an element (list entry, key nest 24, data nest 16): four fit in 200 with the header.
    const counts: number[] = [];
    for (let i = 0; i < 10; i++) {
      const full = builder.add(e);
      if (full) counts.push(full.count);
    }
    counts.push(builder.finish()!.count);
    expect(counts).toEqual([4, 4, 2]);
    expect(() => new ElementListBuilder(20).add(e)).toThrow(/more than a list of 20/);
  });
});
