// The proxy's own health (/healthz, /livez), with kube-proxy's semantics: healthy unless a change
// has been waiting for rules longer than the health timeout (2 × --sync-period), i.e. the
// proxy is stuck. Before the first change arrives it is healthy (starting up).
//
// /healthz also reports whether this node should still receive load-balancer traffic, as
// kube-proxy does since KEP-3836 (pkg/proxy/healthcheck): not when the Node is being deleted
// (deletionTimestamp) or carries the cluster autoscaler's ToBeDeletedByClusterAutoscaler taint.
// Then /healthz answers 503 so that load balancers drain the node, while /livez, which a
// liveness probe uses, ignores it: the proxy is fine and must keep serving until the end.
import type { Node } from '../../../cluster/types.js';
import type { Reply } from '../../../common/http-server.js';

/** The cluster autoscaler's taint on a node it is about to delete (kube-proxy's ToBeDeletedTaint). */
export const TO_BE_DELETED_TAINT = 'ToBeDeletedByClusterAutoscaler';

/** kube-proxy's SyncNode: eligible unless being deleted or tainted for deletion. */
export function nodeEligible(node: Node): boolean {
  return !node.deleting && !(node.taintKeys ?? []).includes(TO_BE_DELETED_TAINT);
}

export class ProxierHealth {
  private lastUpdated = 0;
  /** When the oldest change not yet in the rules was queued; 0 when nothing is pending. */
  private oldestPending = 0;
  /** Eligible while starting up and until a Node object says otherwise, as kube-proxy. */
  private eligible = true;

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

  /**
   * This node's Node object changed. A Node that left the catalog keeps the last judgment:
   * kube-proxy judges the last state a delete event carries.
   */
  syncNode(node: Node | undefined): void {
    if (node) this.eligible = nodeEligible(node);
  }

  get nodeEligible(): boolean {
    return this.eligible;
  }

  healthy(): boolean {
    return this.oldestPending === 0 || this.now() - this.oldestPending < this.timeoutMs;
  }

  private body(withEligibility: boolean): string {
    const iso = (ms: number) => new Date(ms).toISOString();
    const rec: Record<string, unknown> = { lastUpdated: this.lastUpdated ? iso(this.lastUpdated) : '', currentTime: iso(this.now()) };
    if (withEligibility) rec.nodeEligible = this.eligible;
    return JSON.stringify(rec);
  }

  healthz(): Reply {
    return { status: this.healthy() && this.eligible ? 200 : 503, body: this.body(true), contentType: 'application/json' };
  }

  livez(): Reply {
    return { status: this.healthy() ? 200 : 503, body: this.body(false), contentType: 'application/json' };
  }
}
