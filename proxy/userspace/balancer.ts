// Endpoint choice for one service port: round-robin over the endpoints the core chose, and
// ClientIP affinity that keeps a client on its endpoint until the affinity timeout passes with
// no new connection or session from it (kube-proxy refreshes the timer on use, too).
import { targetKey, type Target } from '../core/model.js';

interface Sticky {
  target: Target;
  expires: number;
}

export class Balancer {
  private targets: readonly Target[] = [];
  private keys = new Set<string>();
  private next = 0;
  private affinityMs = 0;
  private readonly sticky = new Map<string, Sticky>();

  constructor(private readonly now: () => number = Date.now) {}

  /** New endpoints or timeout; clients stuck to an endpoint that is gone choose again. */
  update(targets: readonly Target[], affinitySeconds: number): void {
    this.targets = targets;
    this.keys = new Set(targets.map(targetKey));
    this.affinityMs = affinitySeconds * 1000;
    if (this.next >= targets.length) this.next = 0;
    if (this.affinityMs === 0) this.sticky.clear();
    const now = this.now();
    for (const [client, s] of this.sticky) if (s.expires <= now || !this.keys.has(targetKey(s.target))) this.sticky.delete(client);
  }

  get size(): number {
    return this.targets.length;
  }

  has(t: Target): boolean {
    return this.keys.has(targetKey(t));
  }

  /**
   * The endpoint for a new connection or session from `clientIP`, or undefined when there is
   * none. `avoid` holds endpoints that just failed to connect: they are skipped while others
   * remain, and a sticky client is moved off them.
   */
  pick(clientIP: string, avoid?: ReadonlySet<string>): Target | undefined {
    const n = this.targets.length;
    if (n === 0) return undefined;
    const now = this.now();
    if (this.affinityMs > 0) {
      const s = this.sticky.get(clientIP);
      if (s && s.expires > now && this.keys.has(targetKey(s.target)) && !avoid?.has(targetKey(s.target))) {
        s.expires = now + this.affinityMs;
        return s.target;
      }
    }
    let chosen: Target | undefined;
    for (let i = 0; i < n; i++) {
      const t = this.targets[(this.next + i) % n];
      if (avoid?.has(targetKey(t))) continue;
      chosen = t;
      this.next = (this.next + i + 1) % n;
      break;
    }
    if (!chosen) return undefined;
    if (this.affinityMs > 0) this.sticky.set(clientIP, { target: chosen, expires: now + this.affinityMs });
    return chosen;
  }

  /** Forgets expired affinities (called at each full sync so the map never outgrows its use). */
  expire(): void {
    const now = this.now();
    for (const [client, s] of this.sticky) if (s.expires <= now) this.sticky.delete(client);
  }
}
