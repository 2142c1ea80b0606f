// What a proxy mode implements: render and apply what the core decided.
import type { IPFamily, ObjectKey } from '../../cluster/types.js';
import type { ServicePlan } from './model.js';

/** Per-family node facts the rules depend on; a change forces a full sync. */
export interface NodeFacts {
  /** This node's addresses by family (from the Node object and the local interfaces). */
  readonly nodeIPs: Readonly<Record<IPFamily, readonly string[]>>;
  /** Addresses accepting node ports, by family, or 'all' local addresses. */
  readonly nodePortAddresses: Readonly<Record<IPFamily, 'all' | readonly string[]>>;
}

export interface SyncRequest {
  /** Every service with rules, after this sync. */
  readonly plans: ReadonlyMap<ObjectKey, ServicePlan>;
  /** Services whose plan changed since the last successful sync (added, updated or removed). */
  readonly changed: ReadonlySet<ObjectKey>;
  /** Rewrite everything and reconcile with the kernel's state. */
  readonly full: boolean;
  readonly node: NodeFacts;
}

export interface SyncResult {
  /** Rules now owned, by table (summed over families). */
  readonly rules: Readonly<Record<string, number>>;
  /** Rules written by this sync, by table. */
  readonly written: Readonly<Record<string, number>>;
}

export interface Backend {
  readonly name: string;
  /** Throws on failure; the core then retries with a full sync. */
  sync(req: SyncRequest): Promise<SyncResult>;
  /** Removes everything this backend ever creates. */
  cleanup(): Promise<void>;
}
