// Several server blocks on one address (`example.com:53 { … }` beside `.:53 { … }`): each query
// goes to the block with the longest zone that holds its name, as CoreDNS routes them; a name
// no block holds is REFUSED. One block needs no router, so the common case pays nothing.
import { inZone } from './config.js';
import { MALFORMED, questionOf, type BlockHandler, type HandlerResult, type QueryHandler, type Transport } from './handler.js';
import type { Peer } from './querylog.js';
import { RCODE, emptyReply } from './wire.js';

export interface RoutedBlock {
  readonly zones: readonly string[];
  readonly handler: BlockHandler;
}

export class ZoneRouter implements QueryHandler {
  /** Every (zone, handler), the longest zone first. */
  private readonly routes: ReadonlyArray<{ zone: string; handler: BlockHandler }>;

  constructor(blocks: readonly RoutedBlock[]) {
    this.routes = blocks.flatMap((b) => b.zones.map((zone) => ({ zone, handler: b.handler }))).sort((a, b) => b.zone.length - a.zone.length);
  }

  handle(msg: Buffer, t: Transport, from?: Peer): HandlerResult {
    const q = questionOf(msg);
    if (q === MALFORMED) return this.routes[0].handler.handle(msg, t, from); // its FORMERR, counted as usual
    if (!q) return undefined;
    const route = this.routes.find((r) => inZone(q.name, r.zone));
    return route ? route.handler.handleQuery(msg, q, t, from) : emptyReply(msg, q, RCODE.REFUSED);
  }

  refuse(msg: Buffer, t: Transport): Buffer | undefined {
    return this.routes[0].handler.refuse(msg, t);
  }
}
