// `hosts`: names from a hosts file (`/etc/hosts` by default) and from lines in the Corefile,
// answered before the cluster zone, as CoreDNS's plugin order has it. A name in the table answers
// its A/AAAA records (NODATA for other types); an address's reverse name answers PTR to its names
// unless `no_reverse`. Any other name in the plugin's zones (reverse ones too) is NXDOMAIN, or
// goes on to the next plugin with `fallthrough`, which is why Corefiles give it. The file is read again when its modification time changes,
// looked at every `reload` (5 s by default; 0 turns it off).
import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import type { Logger } from '../common/log.js';
import { inZone } from './config.js';
import { reverseName } from './names.js';
import { addressRec, buildTemplate, type OwnedRec } from './records.js';
import { QCLASS_ANY, QCLASS_IN, QTYPE, RCODE, type Query } from './wire.js';
import type { ZoneAnswer } from './zone.js';

export interface HostsConfig {
  /** The hosts file; '' for inline entries only. */
  readonly file: string;
  /** `IP NAME…` lines written in the Corefile. */
  readonly inline: readonly string[];
  /** The zones it answers (default: the block's). */
  readonly zones: readonly string[];
  readonly ttl: number;
  readonly noReverse: boolean;
  readonly reloadMs: number;
  /** Zones whose missing names go on to the next plugin ('' is every zone). */
  readonly fallthrough?: readonly string[];
}

interface Table {
  readonly byName: ReadonlyMap<string, readonly string[]>;
  readonly byReverse: ReadonlyMap<string, readonly string[]>;
}

/** Reads hosts lines (`IP NAME [ALIAS…]`, `#` comments); lines that are not that are skipped. */
export function parseHosts(text: string): Table {
  const byName = new Map<string, string[]>();
  const byReverse = new Map<string, string[]>();
  for (const raw of text.split('\n')) {
    const fields = raw.replace(/#.*/, '').trim().split(/\s+/).filter(Boolean);
    if (fields.length < 2) continue;
    const ip = fields[0].replace(/%.*$/, '');
    if (isIP(ip) === 0) continue;
    for (const n of fields.slice(1)) {
      const name = n.toLowerCase().replace(/\.$/, '');
      const list = byName.get(name) ?? [];
      if (!list.includes(ip)) list.push(ip);
      byName.set(name, list);
      const rev = reverseName(ip);
      const names = byReverse.get(rev) ?? [];
      if (!names.includes(name)) names.push(name);
      byReverse.set(rev, names);
    }
  }
  return { byName, byReverse };
}

export class HostsPlugin {
  private table: Table;
  private inline: Table;
  private mtimeMs = -1;
  private checkedAt = 0;

  constructor(private readonly cfg: HostsConfig, private readonly log: Logger) {
    this.inline = parseHosts(cfg.inline.join('\n'));
    this.table = this.inline;
    this.refresh(Date.now());
  }

  /** The answer for a name it holds, NXDOMAIN for a missing one in its zones, or undefined: the
   *  question goes on to the next plugin. */
  lookup(query: Buffer, q: Query, now = Date.now()): ZoneAnswer | undefined {
    if (q.qclass !== QCLASS_IN && q.qclass !== QCLASS_ANY) return undefined;
    if (!this.cfg.zones.some((z) => inZone(q.name, z))) return undefined;
    if (this.cfg.reloadMs > 0 && now - this.checkedAt >= this.cfg.reloadMs) this.refresh(now);
    const ttl = this.cfg.ttl;
    const reverse = q.name.endsWith('.in-addr.arpa') || q.name.endsWith('.ip6.arpa');
    let answer: OwnedRec[] | undefined;
    if (reverse) {
      const names = this.cfg.noReverse ? undefined : this.table.byReverse.get(q.name);
      if (names) answer = q.qtype === QTYPE.PTR || q.qtype === QTYPE.ANY ? names.map((target): OwnedRec => ({ owner: q.name, ttl, rec: { type: QTYPE.PTR, target } })) : [];
    } else {
      const ips = this.table.byName.get(q.name);
      if (ips) answer = ips.map(addressRec).filter((r) => q.qtype === r.type || q.qtype === QTYPE.ANY).map((rec): OwnedRec => ({ owner: q.name, ttl, rec }));
    }
    if (answer) return { kind: 'reply', tpl: buildTemplate(query, q, { rcode: RCODE.NOERROR, authoritative: true, answer }) };
    if (this.cfg.fallthrough?.some((z) => inZone(q.name, z))) return undefined;
    return { kind: 'reply', tpl: buildTemplate(query, q, { rcode: RCODE.NXDOMAIN, authoritative: true, answer: [] }) };
  }

  /** Reads the file again when its modification time changed; a missing file counts as empty. */
  private refresh(now: number): void {
    this.checkedAt = now;
    if (!this.cfg.file) return;
    let mtimeMs = 0;
    let text = '';
    try {
      mtimeMs = statSync(this.cfg.file).mtimeMs;
      if (mtimeMs === this.mtimeMs) return;
      text = readFileSync(this.cfg.file, 'utf8');
    } catch (err) {
      if (this.mtimeMs !== 0) this.log.warn('hosts file unreadable: only the inline entries answer', { file: this.cfg.file, error: (err as Error).message });
    }
    this.mtimeMs = mtimeMs;
    const fromFile = parseHosts(text);
    this.table = { byName: merge(this.inline.byName, fromFile.byName), byReverse: merge(this.inline.byReverse, fromFile.byReverse) };
  }
}

/** Inline entries first, then the file's (CoreDNS answers both). */
function merge(a: ReadonlyMap<string, readonly string[]>, b: ReadonlyMap<string, readonly string[]>): Map<string, readonly string[]> {
  const out = new Map<string, readonly string[]>(a);
  for (const [k, v] of b) out.set(k, [...new Set([...(out.get(k) ?? []), ...v])]);
  return out;
}
