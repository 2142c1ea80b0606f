// `loadbalance`: the address records of an answer in a random order, so clients that take the
// first address spread over all of them (CoreDNS's round_robin). Done on the reply's bytes: only
// runs of consecutive A/AAAA records whose owner is a compression pointer are reordered. Such
// a run holds no name bytes (a pointer owner, address data), so nothing in the message points
// into it and reordering it moves nothing a pointer names; CNAMEs stay in front of the
// addresses they lead to.
import { randomInt } from 'node:crypto';
import { QTYPE, skipName } from './wire.js';

export function shuffleAddressRecords(reply: Buffer, questionEnd: number): void {
  const count = reply.readUInt16BE(6);
  if (count < 2) return;
  let off = questionEnd;
  let run: Array<[number, number]> = [];
  for (let i = 0; i < count; i++) {
    const start = off;
    const pointerOwner = reply[off] >= 0xc0;
    off = skipName(reply, off);
    if (off + 10 > reply.length) return;
    const type = reply.readUInt16BE(off);
    const end = off + 10 + reply.readUInt16BE(off + 8);
    if (end > reply.length) return;
    if (pointerOwner && (type === QTYPE.A || type === QTYPE.AAAA)) run.push([start, end]);
    else {
      shuffleRun(reply, run);
      run = [];
    }
    off = end;
  }
  shuffleRun(reply, run);
}

/** Fisher–Yates over the records of a contiguous run, written back in their new order. */
function shuffleRun(buf: Buffer, run: ReadonlyArray<[number, number]>): void {
  if (run.length < 2) return;
  const records = run.map(([s, e]) => Buffer.from(buf.subarray(s, e)));
  for (let i = records.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [records[i], records[j]] = [records[j], records[i]];
  }
  let at = run[0][0];
  for (const r of records) {
    r.copy(buf, at);
    at += r.length;
  }
}
