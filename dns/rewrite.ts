// `rewrite name`: the question's name is rewritten before the block answers it (exact, prefix,
// suffix, substring or regex with {1}-style groups), and the reply is turned back so the client
// sees its own question: the question section restored, and with `answer auto` (or explicit
// `answer name`/`answer value` rules) the answer's owner names and record targets mapped back.
// Rewritten queries take a slower path (the reply is decoded and re-encoded); queries no rule
// matches cost one check per rule.
import dnsPacket from 'dns-packet';
import { BlockPlugin, type BlockHandler, type HandlerResult, type Transport } from './handler.js';
import type { Peer } from './querylog.js';
import { parseQuery, queryWithName, type Query } from './wire.js';

export type NameMatch = 'exact' | 'prefix' | 'suffix' | 'substring' | 'regex';

export interface RewriteRule {
  readonly match: NameMatch;
  readonly from: string;
  readonly to: string;
  /** `continue`: later rules apply to the rewritten name too; `stop` (default): done. */
  readonly next: 'stop' | 'continue';
  /** `answer auto`: names in the reply equal to the rewritten name become the asked one. */
  readonly answerAuto: boolean;
  /** `answer name FROM TO` (owners) and `answer value FROM TO` (targets), regex. */
  readonly answerNames: ReadonlyArray<{ readonly from: string; readonly to: string }>;
  readonly answerValues: ReadonlyArray<{ readonly from: string; readonly to: string }>;
}

/** The name after one rule, or undefined when it does not match. */
export function applyRule(rule: RewriteRule, name: string): string | undefined {
  switch (rule.match) {
    case 'exact':
      return name === rule.from ? rule.to : undefined;
    case 'prefix':
      return name.startsWith(rule.from) ? rule.to + name.slice(rule.from.length) : undefined;
    case 'suffix':
      return name.endsWith(rule.from) ? name.slice(0, name.length - rule.from.length) + rule.to : undefined;
    case 'substring':
      return name.includes(rule.from) ? name.replace(rule.from, rule.to) : undefined;
    case 'regex': {
      // Against the name with its final dot, as CoreDNS matches (`^(.*)\.corp\.example\.$`).
      const m = new RegExp(rule.from).exec(`${name}.`);
      return m ? rule.to.replace(/\{(\d+)\}/g, (_x, i: string) => m[Number(i)] ?? '') : undefined;
    }
  }
}

export class RewritingHandler extends BlockPlugin {
  constructor(private readonly rules: readonly RewriteRule[], inner: BlockHandler) {
    super(inner);
  }


  handleQuery(msg: Buffer, q: Query, t: Transport, from?: Peer): HandlerResult {
    let name = q.name;
    const applied: RewriteRule[] = [];
    for (const rule of this.rules) {
      const next = applyRule(rule, name);
      if (next === undefined) continue;
      name = next.toLowerCase().replace(/\.$/, '');
      applied.push(rule);
      if (rule.next === 'stop') break;
    }
    if (applied.length === 0 || name === q.name) return this.inner.handleQuery(msg, q, t, from);
    const rewritten = queryWithName(msg, q, name);
    const r = this.inner.handleQuery(rewritten, parseQuery(rewritten), t, from);
    const back = (reply: Buffer | undefined) => (reply ? restore(reply, msg, q, name, applied) : reply);
    return r instanceof Promise ? r.then(back) : back(r);
  }

}

/** An `answer name|value` regex rule on a name with its final dot; `{1}` is a group. */
function mapName(name: string, a: { from: string; to: string }): string {
  const m = new RegExp(a.from).exec(`${name}.`);
  return m ? a.to.replace(/\{(\d+)\}/g, (_x, i: string) => m[Number(i)] ?? '').replace(/\.$/, '') : name;
}

/** The reply as the client must see it: its own question, and names mapped back. */
function restore(reply: Buffer, msg: Buffer, q: Query, rewritten: string, rules: readonly RewriteRule[]): Buffer {
  let p: dnsPacket.Packet;
  try {
    p = dnsPacket.decode(reply);
  } catch {
    return reply;
  }
  const asked = dnsPacket.decode(msg).questions?.[0]?.name ?? q.name;
  const owner = (n: string) => {
    let out = n;
    for (const r of rules) {
      if (r.answerAuto && out.toLowerCase() === rewritten) out = asked;
      for (const a of r.answerNames) out = mapName(out, a);
    }
    return out;
  };
  const value = (v: string) => {
    let out = v;
    for (const r of rules) for (const a of r.answerValues) out = mapName(out, a);
    return out;
  };
  const mapRecord = (a: dnsPacket.Answer): dnsPacket.Answer => {
    const rec = { ...a, name: owner(a.name) } as dnsPacket.Answer;
    if ((rec.type === 'CNAME' || rec.type === 'PTR' || rec.type === 'NS') && typeof rec.data === 'string') return { ...rec, data: value(rec.data) };
    if (rec.type === 'SRV') return { ...rec, data: { ...rec.data, target: value(rec.data.target) } };
    return rec;
  };
  const out = dnsPacket.encode({
    ...p,
    questions: (p.questions ?? []).map((x) => ({ ...x, name: asked })),
    answers: (p.answers ?? []).map(mapRecord),
    authorities: (p.authorities ?? []).map(mapRecord),
    additionals: (p.additionals ?? []).map((a) => (a.type === 'OPT' ? a : mapRecord(a))),
  });
  out.writeUInt16BE(reply.readUInt16BE(2), 2); // flags and rcode exactly as answered
  return out;
}
