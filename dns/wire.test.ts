import { describe, expect, it } from 'vitest';
import { MessageWriter, WireError, nameWireLength, parseQuery } from './wire.js';
import { canonicalIPv6, dashedIP, ipFromDashed, reverseName } from './names.js';
import { ipBytes } from './wire.js';

function query(labels: Array<string | Buffer>, extra: Buffer = Buffer.from([0, 1, 0, 1])): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(0x1234, 0);
  h.writeUInt16BE(1, 4);
  const parts: Buffer[] = [h];
  for (const l of labels) {
    const b = typeof l === 'string' ? Buffer.from(l, 'latin1') : l;
    parts.push(Buffer.from([b.length]), b);
  }
  return Buffer.concat([...parts, Buffer.from([0]), extra]);
}

describe('question parsing', () => {
  it('lower-cases ASCII only and measures the wire name', () => {
    const q = parseQuery(query(['WeB', 'Prod', 'SVC', 'cluster', 'local']));
    expect(q.name).toBe('web.prod.svc.cluster.local');
    expect(q.nameWireLen).toBe(28);
    expect(q.qtype).toBe(1);
    expect(parseQuery(query([Buffer.from([0xc0, 0x41])])).name).toBe('\u00c0a');
  });

  it('escapes dots and backslashes inside labels so names never alias', () => {
    expect(parseQuery(query(['web.prod', 'svc'])).name).toBe('web\\.prod.svc');
    expect(parseQuery(query(['a\\b'])).name).toBe('a\\\\b');
    expect(parseQuery(query([])).name).toBe('');
  });

  it('rejects compression, long labels, long names, truncation and wrong counts', () => {
    const ptr = Buffer.concat([Buffer.from(query([]).subarray(0, 12)), Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
    expect(() => parseQuery(ptr)).toThrow(WireError);
    expect(() => parseQuery(query(['x'.repeat(64)]))).toThrow(WireError);
    expect(() => parseQuery(query(Array.from({ length: 5 }, () => 'y'.repeat(63))))).toThrow(/255/);
    expect(parseQuery(query(Array.from({ length: 4 }, () => 'y'.repeat(62)))).nameWireLen).toBe(253);
    expect(() => parseQuery(query(['a']).subarray(0, 16))).toThrow(WireError);
    const two = query(['a']);
    two.writeUInt16BE(2, 4);
    expect(() => parseQuery(two)).toThrow(/QDCOUNT/);
  });

  it('reads the client EDNS size, version and DO bit', () => {
    const opt = Buffer.from([0, 1, 0, 1, 0, 0, 41, 0x10, 0, 0, 1, 0x80, 0, 0, 0]);
    const b = query(['a'], opt);
    b.writeUInt16BE(1, 10);
    expect(parseQuery(b).edns).toEqual({ udpSize: 4096, version: 1, dnssecOk: true });
  });
});

describe('writer and names', () => {
  it('compresses names against the question, whatever their case', () => {
    const w = new MessageWriter(16);
    w.off = 12;
    w.knowName('web.prod.svc.cluster.local', 12);
    w.name('db.prod.svc.cluster.local');
    expect([...w.done().subarray(12)]).toEqual([2, 100, 98, 0xc0, 16]);
    expect(nameWireLength('web.prod.svc.cluster.local')).toBe(28);
  });

  it('spells addresses the way the specification does', () => {
    expect(reverseName('10.0.96.1')).toBe('1.96.0.10.in-addr.arpa');
    expect(reverseName('fd00::1')).toBe('1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa');
    expect(dashedIP('fd00:244::8')).toBe('fd00-244--8');
    expect(ipFromDashed('010-0-0-1')).toBeUndefined();
    expect(ipFromDashed('10-0-0-1')).toEqual({ ip: '10.0.0.1', family: 'IPv4' });
    expect(ipFromDashed('fd00-0-0-0-0-0-0-1')).toEqual({ ip: 'fd00::1', family: 'IPv6' });
    expect(canonicalIPv6(ipBytes('2001:db8:0:0:1:0:0:1'))).toBe('2001:db8::1:0:0:1');
    expect([...ipBytes('::ffff:1.2.3.4')].slice(12)).toEqual([1, 2, 3, 4]);
  });
});
