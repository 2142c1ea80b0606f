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
import { BlockPlugin, type BlockHandler, type HandlerResult, type Transport } from './handler.js';
import type { Peer } from './querylog.js';
import { HEADER_LEN, RCODE, parseQuery, queryWithName, type Query } from './wire.js';

export interface AutopathConfig {
  /** The cluster zone whose search path pods have (`<ns>.svc.<zone> svc.<zone> <zone>`). */
  readonly domain: string;
  /** The zones whose names may be the first step of a walk ('' is every name). */
  readonly zones: readonly string[];
  /** Search domains after the cluster's (the node's resolv.conf `search`, as kubelet gives pods). */
  readonly extraSearch: readonly string[];
}

/** How long a walk's reply is served again (its records' TTL, at most this), and how many. */
const WALK_CACHE_MS = 5000;
const WALK_CACHE_MAX = 10_000;

/** A pod's search path, with what every one of its questions tests against. */
interface SearchPath {
  readonly domains: readonly string[];
  /** The first domain with its leading dot: a walk's first step ends in it. */
  readonly firstSuffix: string;
  /** Whether every name under the first domain is in autopath's zones (no per-question test). */
  readonly firstInZones: boolean;
}

/** A walk's question beyond its name: type, class, and what the reply's size and DO bit depend on. */
function variantOf(q: Query): number {
  return ((q.qclass * 65536 + q.qtype) * 65536 + (q.edns ? q.edns.udpSize : 0)) * 2 + (q.edns?.dnssecOk ? 1 : 0);
}

export class AutopathHandler extends BlockPlugin {
  /**
   * Replies of finished walks, by asked name and then `variantOf` the question. The asked name
   * fixes the walk (it ends in the pod's namespace's search domain, which is what the walk starts
   * from), so pods of a namespace share them; without this the walk costs three lookups and a
   * re-encoding per question, and the round trips it saves the pod come back as server CPU.
   * Emptied on every catalog change.
   */
  private readonly walks = new Map<string, Map<number, { readonly reply: Buffer; readonly expires: number }>>();
  private walkCount = 0;
  /** Search paths by source address (null: no pod's), so a question builds no strings to find
   *  its walk. Emptied on every catalog change, as a pod's address or namespace may change. */
  private readonly paths = new Map<string, SearchPath | null>();
  private readonly unsubscribe: () => void;

  constructor(
    private readonly cfg: AutopathConfig,
    private readonly catalog: CatalogView,
    inner: BlockHandler,
  ) {
    super(inner);
    this.unsubscribe = catalog.onChange(() => this.forget());
  }

  /** Stops following the catalog (a reload retires the chain). */
  detach(): void {
    this.unsubscribe();
    this.forget();
  }

  private forget(): void {
    this.walks.clear();
    this.walkCount = 0;
    this.paths.clear();
  }

  handleQuery(msg: Buffer, q: Query, t: Transport, from?: Peer): HandlerResult {
    const path = from ? this.searchPath(from.address) : undefined;
    if (!path || !q.name.endsWith(path.firstSuffix) || (!path.firstInZones && !this.cfg.zones.some((z) => inZone(q.name, z)))) return this.inner.handleQuery(msg, q, t, from);
    const variant = variantOf(q);
    const hit = this.walks.get(q.name)?.get(variant);
    if (hit && hit.expires > Date.now()) {
      // The same question but for its ID and the case of its name (same length on the wire).
      const out = Buffer.from(hit.reply);
      out.writeUInt16BE(q.id, 0);
      msg.copy(out, HEADER_LEN, HEADER_LEN, q.questionEnd);
      return out;
    }
    const search = path.domains;
    const base = q.name.slice(0, -path.firstSuffix.length);
    // The asked name itself first: when it exists, the answer is the usual one.
    const direct = this.inner.handleQuery(msg, q, t, from);
    const walk = async (reply: Buffer | undefined): Promise<Buffer | undefined> => {
      if (!reply || answered(reply)) return reply;
      for (const domain of [...search.slice(1), '']) {
        const name = domain ? `${base}.${domain}` : base;
        const sub = queryWithName(msg, q, name);
        const r = await this.inner.handleQuery(sub, parseQuery(sub), t, from);
        // Only the last step (the bare name) is taken whatever it says, as the client would.
        if (r && (answered(r) || domain === '')) {
          const { reply: out, ttl } = withCname(r, msg, name);
          this.remember(q.name, variant, out, Date.now() + Math.min(WALK_CACHE_MS, ttl * 1000));
          return out;
        }
      }
      return reply;
    };
    return direct instanceof Promise ? direct.then(walk) : answered(direct) ? direct : walk(direct);
  }

  private remember(name: string, variant: number, reply: Buffer, expires: number): void {
    if (this.walkCount >= WALK_CACHE_MAX) {
      this.walks.clear();
      this.walkCount = 0;
    }
    let byVariant = this.walks.get(name);
    if (!byVariant) this.walks.set(name, (byVariant = new Map()));
    if (!byVariant.has(variant)) this.walkCount++;
    byVariant.set(variant, { reply, expires });
  }

  /** The asking pod's search path, or undefined when the address is no pod's. */
  private searchPath(address: string): SearchPath | undefined {
    let path = this.paths.get(address);
    if (path === undefined) {
      if (this.paths.size >= WALK_CACHE_MAX) this.paths.clear();
      path = this.podSearchPath(address);
      this.paths.set(address, path);
    }
    return path ?? undefined;
  }

  private podSearchPath(address: string): SearchPath | null {
    const ip = address.replace(/^::ffff:/, '').replace(/%.*$/, '');
    const pod = this.catalog.podsByIP(ip).find((p) => !p.hostNetwork);
    if (!pod) return null;
    const d = this.cfg.domain;
    const first = `${pod.namespace}.svc.${d}`;
    return { domains: [first, `svc.${d}`, d, ...this.cfg.extraSearch], firstSuffix: `.${first}`, firstInZones: this.cfg.zones.some((z) => inZone(first, z)) };
  }
}

/** NOERROR with at least one answer: the walk stops there. */
function answered(reply: Buffer | undefined): boolean {
  return reply !== undefined && (reply.readUInt16BE(2) & 0xf) === RCODE.NOERROR && reply.readUInt16BE(6) > 0;
}

/** The reply for the asked name: a CNAME to the name found, then that name's records. */
function withCname(found: Buffer, msg: Buffer, target: string): { reply: Buffer; ttl: number } {
  let p: dnsPacket.Packet;
  let asked: dnsPacket.Question | undefined;
  try {
    p = dnsPacket.decode(found);
    asked = dnsPacket.decode(msg).questions?.[0];
  } catch {
    return { reply: found, ttl: 0 };
  }
  if (!asked) return { reply: found, ttl: 0 };
  const ttl = Math.min(5, ...(p.answers ?? []).map((a) => ('ttl' in a && a.ttl !== undefined ? a.ttl : 5)));
  const out = dnsPacket.encode({
    ...p,
    questions: [asked],
    answers: [{ type: 'CNAME', name: asked.name, ttl, data: target }, ...(p.answers ?? [])],
  });
  out.writeUInt16BE(found.readUInt16BE(2), 2); // flags and rcode as the found name's
  return { reply: out, ttl };
}
