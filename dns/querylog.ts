// `log`: one line per answered query in CoreDNS's common log format, so the parsers and
// dashboards people have for CoreDNS's query log read ours:
//   [INFO] 10.244.1.7:40212 - 4242 "A IN web.prod.svc.cluster.local. udp 66 false 1232" NOERROR qr,aa,rd 106 0.000071s
// Written straight to stdout (not through the structured logger): it is CoreDNS's line, not ours.
import { inZone } from './config.js';
import { BlockPlugin, type BlockHandler, type HandlerResult, type Transport } from './handler.js';
import { FLAG_AA, FLAG_AD, FLAG_CD, FLAG_QR, FLAG_RA, FLAG_RD, FLAG_TC, RCODE, RCODE_NAMES, type Query } from './wire.js';

export type ResponseClass = 'success' | 'denial' | 'error';

export interface QueryLogConfig {
  /** Zones whose queries are logged ('' is every name). */
  readonly zones: readonly string[];
  /** The response classes logged (CoreDNS's `class`; default all). */
  readonly classes: ReadonlySet<ResponseClass>;
  /** A CoreDNS format with {placeholders}; default the common log format. */
  readonly format: string;
}

export const COMMON_LOG_FORMAT = '{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} {duration}';

export interface Peer {
  readonly address: string;
  readonly port: number;
}

export const TYPE_NAMES: Record<number, string> = { 1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 13: 'HINFO', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV', 35: 'NAPTR', 41: 'OPT', 43: 'DS', 46: 'RRSIG', 48: 'DNSKEY', 64: 'SVCB', 65: 'HTTPS', 252: 'AXFR', 251: 'IXFR', 255: 'ANY' };
const CLASSES: Record<number, string> = { 1: 'IN', 3: 'CH', 4: 'HS', 254: 'NONE', 255: 'ANY' };
const FLAGS: Array<[number, string]> = [[FLAG_QR, 'qr'], [FLAG_AA, 'aa'], [FLAG_TC, 'tc'], [FLAG_RD, 'rd'], [FLAG_RA, 'ra'], [FLAG_AD, 'ad'], [FLAG_CD, 'cd']];

export function classify(reply: Buffer): ResponseClass {
  const rcode = reply.readUInt16BE(2) & 0xf;
  if (rcode === RCODE.NXDOMAIN || (rcode === RCODE.NOERROR && reply.readUInt16BE(6) === 0)) return 'denial';
  return rcode === RCODE.NOERROR ? 'success' : 'error';
}

export class QueryLog {
  constructor(
    private readonly cfg: QueryLogConfig,
    private readonly write: (line: string) => void = (line) => void process.stdout.write(line),
  ) {}

  /** Logs one exchange when its name and its reply's class are logged. */
  record(q: Query, proto: string, request: number, reply: Buffer, from: Peer | undefined, seconds: number): void {
    if (!this.cfg.zones.some((z) => inZone(q.name, z)) || !this.cfg.classes.has(classify(reply))) return;
    const flags = reply.readUInt16BE(2);
    const values: Record<string, string> = {
      remote: from ? (from.address.includes(':') ? `[${from.address}]` : from.address) : '-',
      port: from ? String(from.port) : '-',
      '>id': String(q.id),
      type: TYPE_NAMES[q.qtype] ?? `TYPE${q.qtype}`,
      class: CLASSES[q.qclass] ?? `CLASS${q.qclass}`,
      name: `${q.name}.`,
      proto,
      size: String(request),
      '>do': String(q.edns?.dnssecOk ?? false),
      '>bufsize': String(q.edns?.udpSize ?? 512),
      rcode: RCODE_NAMES[flags & 0xf] ?? String(flags & 0xf),
      '>rflags': FLAGS.filter(([bit]) => (flags & bit) !== 0).map(([, n]) => n).join(','),
      rsize: String(reply.length),
      duration: `${seconds.toFixed(9).replace(/0+$/, '').replace(/\.$/, '.0')}s`,
    };
    const line = this.cfg.format.replace('{common}', COMMON_LOG_FORMAT).replace(/\{(>?[a-z]+)\}/g, (m, k: string) => values[k] ?? m);
    this.write(`[INFO] ${line}\n`);
  }
}

/** The first of a block's plugins (CoreDNS's order): it sees the client's question and the
 *  final reply, whatever `rewrite` did in between. */
export class LoggingHandler extends BlockPlugin {
  constructor(private readonly log: QueryLog, inner: BlockHandler) {
    super(inner);
  }


  handleQuery(msg: Buffer, q: Query, t: Transport, from?: Peer): HandlerResult {
    const t0 = performance.now();
    const record = (reply: Buffer | undefined) => {
      if (reply) this.log.record(q, t.proto, msg.length, reply, from, (performance.now() - t0) / 1000);
      return reply;
    };
    const r = this.inner.handleQuery(msg, q, t, from);
    return r instanceof Promise ? r.then(record) : record(r);
  }

}
