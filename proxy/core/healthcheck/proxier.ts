// The proxy's own health (/healthz, /livez), with kube-proxy's semantics: healthy unless a change
// has been waiting for rules longer than the health timeout (2 × --sync-period), i.e. the
// proxy is stuck. Before the first change arrives it is healthy (starting up).
import type { Reply } from '../../../common/http-server.js';

export class ProxierHealth {
  private lastUpdated = 0;
  /** When the oldest change not yet in the rules was queued; 0 when nothing is pending. */
  private oldestPending = 0;

  constructor(private readonly timeoutMs: number, private readonly now: () => number = Date.now) {}

  /** A change was queued for the next sync. */
  queued(): void {
    if (this.oldestPending === 0) this.oldestPending = this.now();
  }

  /** A sync succeeded: everything queued before it is in the rules. */
  updated(): void {
    this.lastUpdated = this.now();
    this.oldestPending = 0;
  }

  healthy(): boolean {
    return this.oldestPending === 0 || this.now() - this.oldestPending < this.timeoutMs;
  }

  private body(withEligibility: boolean): string {
    const iso = (ms: number) => new Date(ms).toISOString();
    const rec: Record<string, unknown> = { lastUpdated: this.lastUpdated ? iso(this.lastUpdated) : '', currentTime: iso(this.now()) };
    // Node eligibility (a node being deleted fails /healthz so load balancers drain it): the
    // catalog does not carry deletion or taints yet, so a node is always eligible.
    if (withEligibility) rec.nodeEligible = true;
    return JSON.stringify(rec);
  }

  healthz(): Reply {
    return { status: this.healthy() ? 200 : 503, body: this.body(true), contentType: 'application/json' };
  }

  livez(): Reply {
    return { status: this.healthy() ? 200 : 503, body: this.body(false), contentType: 'application/json' };
  }
}
