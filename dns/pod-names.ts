// Pod names of the cluster zone (`a-b-c-d.<ns>.pod.<zone>`, `fd00--1.<ns>.pod.<zone>`), per the
// `pods` mode: `insecure` answers any spelled address, `verified` only one a Pod of that
// namespace has (the catalog watches Pods then), `disabled` none. These answers follow the
// Pods, so they are built per question and not kept.
import type { CatalogView } from '../cluster/types.js';
import { ipFromDashed } from './names.js';
import { addressRec, buildTemplate, type OwnedRec, type Template } from './records.js';
import { QTYPE, RCODE, type Query } from './wire.js';
import type { PodsMode } from './zone.js';

export class PodNames {
  private readonly suffix: string;

  constructor(
    private readonly domain: string,
    private readonly mode: PodsMode,
    private readonly ttl: number,
    private readonly catalog: CatalogView,
    /** The zone's SOA, for the authority section of NODATA. */
    private readonly soa: () => OwnedRec,
  ) {
    this.suffix = `.pod.${domain}`;
  }

  /** The reply for a pod's name; undefined when the name is no pod's. */
  answer(query: Buffer, q: Query): Template | undefined {
    if (this.mode === 'disabled' || !q.name.endsWith(this.suffix)) return undefined;
    const labels = q.name.slice(0, -this.suffix.length).split('.');
    if (labels.length !== 2) return undefined;
    const [label, ns] = labels;
    const addr = ipFromDashed(label);
    if (!addr) return undefined;
    if (this.mode === 'verified' && !this.catalog.podsByIP(addr.ip).some((p) => p.namespace === ns)) return undefined;
    const rec = addressRec(addr.ip);
    const matches = q.qtype === rec.type || q.qtype === QTYPE.ANY;
    return buildTemplate(query, q, {
      rcode: RCODE.NOERROR,
      authoritative: true,
      answer: matches ? [{ owner: q.name, ttl: this.ttl, rec }] : [],
      authority: matches ? [] : [this.soa()],
    });
  }

  /**
   * `pod.<zone>` and `<ns>.pod.<zone>` are empty non-terminals unless pods are off: with
   * `verified`, `<ns>.pod.<zone>` exists while a pod of that namespace has an address, since its
   * name is below it, and a name with names below it is never NXDOMAIN (RFC 8020).
   */
  exists(name: string): boolean {
    if (this.mode === 'disabled') return false;
    if (name === `pod.${this.domain}`) return true;
    if (!name.endsWith(this.suffix)) return false;
    const ns = name.slice(0, -this.suffix.length);
    if (ns.includes('.')) return false;
    return this.mode === 'insecure' || this.catalog.hasAddressedPods(ns);
  }
}
