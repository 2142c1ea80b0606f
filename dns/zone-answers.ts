// The replies the cluster zone keeps, encoded, by name and then question type: a question asked
// before costs two map lookups. Each map is emptied when its names' sources change (zone.ts).
import type { OwnedRec, Template } from './records.js';
import { QTYPE, type Query } from './wire.js';

/** What the server does with a question. */
export type ZoneAnswer =
  | { readonly kind: 'forward' }
  | { readonly kind: 'refused' }
  | { readonly kind: 'reply'; readonly tpl: Template }
  /** An ExternalName: the CNAME reply, to be completed with the target's records. */
  | { readonly kind: 'external'; readonly cname: OwnedRec; readonly target: string };

/** Answers of one name by question type. The common types have a slot each: a Map per name
 *  would cost three times as much and a little more time. */
export class Answers {
  a: ZoneAnswer | undefined = undefined;
  aaaa: ZoneAnswer | undefined = undefined;
  srv: ZoneAnswer | undefined = undefined;
  ptr: ZoneAnswer | undefined = undefined;
  other: Map<number, ZoneAnswer> | undefined = undefined;

  get(qtype: number): ZoneAnswer | undefined {
    return qtype === QTYPE.A ? this.a : qtype === QTYPE.AAAA ? this.aaaa : qtype === QTYPE.SRV ? this.srv : qtype === QTYPE.PTR ? this.ptr : this.other?.get(qtype);
  }

  set(qtype: number, answer: ZoneAnswer): void {
    if (qtype === QTYPE.A) this.a = answer;
    else if (qtype === QTYPE.AAAA) this.aaaa = answer;
    else if (qtype === QTYPE.SRV) this.srv = answer;
    else if (qtype === QTYPE.PTR) this.ptr = answer;
    else (this.other ??= new Map()).set(qtype, answer);
  }
}

/** Keeps `answer` for the question's name and type in a map bounded to `max` names (emptied
 *  when full: these are answers for names without an entry of their own), and returns it. */
export function keepAnswer(cache: Map<string, Answers>, max: number, q: Query, answer: ZoneAnswer): ZoneAnswer {
  let byType = cache.get(q.name);
  if (!byType) {
    if (cache.size >= max) cache.clear();
    cache.set(q.name, (byType = new Answers()));
  }
  byType.set(q.qtype, answer);
  return answer;
}
