// `autopath @kubernetes`: a pod with `ndots:5` asks `www.example.com.<ns>.svc.<zone>` first, then
// each search domain in turn, and only then `www.example.com`: four or five round trips for every
// external name. When a question is the first step of that walk (its name ends in the asking
// pod's first search domain), the server walks the rest of the search path itself and answers at
// once with a CNAME from the asked name to the first one that exists, followed by that name's
// records, as CoreDNS's autopath does. The pod is found by its address (the Pods the catalog
// watches: `pods verified`); a question from anything else is answered as usual.
import dnsPacket from 'dns-packet';
import type { CatalogView } from '../cluster/types.js';
import { inZone } from './config.js';
import type { BlockHandler, HandlerResult, Transport } from './handler.js';
import type { Peer } from './querylog.js';
import { FLAG_QR, HEADER_LEN, RCODE, WireError, parseQuery, queryWithName, type Query } from './wire.js';

export interface AutopathConfig {
  /** The cluster zone whose search path pods have (`<ns>.svc.<zone> svc.<zone> <zone>`). */
  readonly domain: string;
  /** The zones whose names may be the first step of a walk ('' is every name). */
  readonly zones: readonly string[];
  /** Search domains after the cluster's (the node's resolv.conf `search`, as kubelet gives pods). */
  readonly extraSearch: readonly string[];
}

export class AutopathHandler implements BlockHandler {
  constructor(
    private readonly cfg: AutopathConfig,
    private readonly catalog: CatalogView,
    private readonly inner: BlockHandler,
  ) {}

  handle(msg: Buffer, t: Transport, from?: Peer): HandlerResult {
    if (msg.length < HEADER_LEN || (msg.readUInt16BE(2) & FLAG_QR) !== 0) return undefined;
    let q: Query;
    try {
      q = parseQuery(msg);
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      return this.inner.handle(msg, t, from);
    }
    return this.handleQuery(msg, q, t, from);
  }

  handleQuery(msg: Buffer, q: Query, t: Transport, from?: Peer): HandlerResult {
    const search = from ? this.searchPath(from.address) : undefined;
    const first = search?.[0];
    if (!search || !first || !q.name.endsWith(`.${first}`) || !this.cfg.zones.some((z) => inZone(q.name, z))) return this.inner.handleQuery(msg, q, t, from);
    const base = q.name.slice(0, -first.length - 1);
    // The asked name itself first: when it exists, the answer is the usual one.
    const direct = this.inner.handleQuery(msg, q, t, from);
    const walk = async (reply: Buffer | undefined): Promise<Buffer | undefined> => {
      if (!reply || answered(reply)) return reply;
      for (const domain of [...search.slice(1), '']) {
        const name = domain ? `${base}.${domain}` : base;
        const sub = queryWithName(msg, q, name);
        const r = await this.inner.handleQuery(sub, parseQuery(sub), t, from);
        // Only the last step (the bare name) is taken whatever it says, as the client would.
        if (r && (answered(r) || domain === '')) return withCname(r, msg, name);
      }
      return reply;
    };
    return direct instanceof Promise ? direct.then(walk) : answered(direct) ? direct : walk(direct);
  }

  refuse(msg: Buffer, t: Transport): Buffer | undefined {
    return this.inner.refuse(msg, t);
  }

  /** The asking pod's search path, or undefined when the address is no pod's. */
  private searchPath(address: string): string[] | undefined {
    const ip = address.replace(/^::ffff:/, '').replace(/%.*$/, '');
    const pod = this.catalog.podsByIP(ip).find((p) => !p.hostNetwork);
    if (!pod) return undefined;
    const d = this.cfg.domain;
    return [`${pod.namespace}.svc.${d}`, `svc.${d}`, d, ...this.cfg.extraSearch];
  }
}

/** NOERROR with at least one answer: the walk stops there. */
function answered(reply: Buffer | undefined): boolean {
  return reply !== undefined && (reply.readUInt16BE(2) & 0xf) === RCODE.NOERROR && reply.readUInt16BE(6) > 0;
}

/** The reply for the asked name: a CNAME to the name found, then that name's records. */
function withCname(found: Buffer, msg: Buffer, target: string): Buffer {
  let p: dnsPacket.Packet;
  let asked: dnsPacket.Question | undefined;
  try {
    p = dnsPacket.decode(found);
    asked = dnsPacket.decode(msg).questions?.[0];
  } catch {
    return found;
  }
  if (!asked) return found;
  const ttl = Math.min(5, ...(p.answers ?? []).map((a) => ('ttl' in a && a.ttl !== undefined ? a.ttl : 5)));
  const out = dnsPacket.encode({
    ...p,
    questions: [asked],
    answers: [{ type: 'CNAME', name: asked.name, ttl, data: target }, ...(p.answers ?? [])],
  });
  out.writeUInt16BE(found.readUInt16BE(2), 2); // flags and rcode as the found name's
  return out;
}
