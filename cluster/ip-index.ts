// Who owns an address (service cluster IP, endpoint, pod), for PTR answers. Sized for 100k+
// endpoints: most addresses have exactly one owner, so an entry holds the owner itself and only
// becomes a list when a second owner appears.
import type { IPOwner } from './types.js';

export class IPIndex {
  private readonly byIP = new Map<string, IPOwner | IPOwner[]>();

  get size(): number {
    return this.byIP.size;
  }

  get(ip: string): readonly IPOwner[] {
    const e = this.byIP.get(ip);
    return e === undefined ? [] : Array.isArray(e) ? e : [e];
  }

  add(ip: string, owner: IPOwner): void {
    const e = this.byIP.get(ip);
    if (e === undefined) this.byIP.set(ip, owner);
    else if (Array.isArray(e)) e.push(owner);
    else this.byIP.set(ip, [e, owner]);
  }

  /** Removes the owners of `ip` that `drop` selects. */
  remove(ip: string, drop: (o: IPOwner) => boolean): void {
    const e = this.byIP.get(ip);
    if (e === undefined) return;
    const kept = (Array.isArray(e) ? e : [e]).filter((o) => !drop(o));
    if (kept.length === 0) this.byIP.delete(ip);
    else this.byIP.set(ip, kept.length === 1 ? kept[0] : kept);
  }
}
