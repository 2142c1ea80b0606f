// What a proxy mode implements: render and apply what the core decided.
import type { IPFamily, ObjectKey } from '../../cluster/types.js';
import type { ServicePlan } from './model.js';

/** Per-family node facts the rules depend on; a change forces a full sync. */
export interface NodeFacts {
  /** This node's addresses by family (from the Node object and the local interfaces). */
  readonly nodeIPs: Readonly<Record<IPFamily, readonly string[]>>;
  /** Addresses accepting node ports, by family, or 'all' local addresses. */
  readonly nodePortAddresses: Readonly<Record<IPFamily, 'all' | readonly string[]>>;
  /** The Node object's spec.podCIDRs by family (--detect-local-mode NodeCIDR). */
  readonly podCIDRs?: Readonly<Record<IPFamily, readonly string[]>>;
  /** The service CIDRs the cluster's ServiceCIDR objects declare, both families, sorted (the
   *  nftables mode drops their addresses no service has, with --service-cidr's). Not the node's
   *  own, but like its facts they shape base rules, and a change is rare: a full sync. */
  readonly serviceCIDRs?: readonly string[];
}

export interface SyncRequest {
  /** Every service with rules, after this sync. */
  readonly plans: ReadonlyMap<ObjectKey, ServicePlan>;
  /** Services whose plan changed since the last successful sync (added, updated or removed). */
  readonly changed: ReadonlySet<ObjectKey>;
  /** Rewrite everything (start, after a failure, node facts changed, hourly). */
  readonly full: boolean;
  /**
   * Read back what the kernel holds of ours and repair only what differs from what the backend
   * last applied (someone flushed a table, deleted an element, edited a chain). Asked once per
   * --sync-period, on a partial sync; a full sync rewrites everything anyway.
   */
  readonly reconcile: boolean;
  readonly node: NodeFacts;
}

export interface SyncResult {
  /** Rules now owned, by table (summed over families). */
  readonly rules: Readonly<Record<string, number>>;
  /** Rules written by this sync, by table. */
  readonly written: Readonly<Record<string, number>>;
  /** What a reconcile found changed behind our back and put back, by kind of object. */
  readonly repaired?: Readonly<Record<string, number>>;
  /** The backend rewrote everything although the sync was not a full one (a reconcile found
   *  damage it could not repair piecemeal): counted as a full sync. */
  readonly rewrote?: boolean;
  /** Tables a reconcile read back whole (a quiet tick reads nothing). */
  readonly readBacks?: number;
}

/**
 * A proxy mode. The command builds it with its own options and drives its lifecycle:
 * `prepare` once (after the other modes' leftovers went, see `cleanup`), then `sync` from the
 * core's runner, `close` when the process stops.
 */
export interface Backend {
  readonly name: string;
  /** An interface this mode owns whose addresses are not the node's (the userspace VIPs). */
  readonly ownedInterface?: string;
  /** Whether service traffic is NATed by the kernel, so stale UDP conntrack flows must go. */
  readonly natFlows: boolean;
  /** Makes what the first sync needs (interfaces); throws when the mode cannot run here. */
  prepare(): Promise<void>;
  /** Throws on failure; the core then retries with a full sync. */
  sync(req: SyncRequest): Promise<SyncResult>;
  /** Ends what runs in this process (listeners, sockets); kernel state stays for the next start. */
  close(): void;
  /** Removes everything this mode ever creates in the kernel (used for the other modes at start, and by --cleanup). */
  cleanup(): Promise<void>;
}
