// The shared core of every proxy mode: follows the catalog, keeps the plans of the services
// that changed, and hands them to the backend through the bounded-frequency runner. After a
// successful sync it clears stale UDP flows, updates health-check ports and health, and records
// metrics.
//
// The sync policy is kube-proxy's, made cheaper: work per sync is proportional to the changed
// services. Full rewrites happen only at start, after a failure, when this node's facts change,
// and at most once per full-sync period (an hour, kube-proxy's fixed value). The periodic
// --sync-period tick runs a reconcile instead: the backend reads back what the kernel holds of
// ours and repairs only what differs, so a quiet tick costs a read, not a rewrite.
import type { CatalogChange, CatalogView, ObjectKey, Service, ServiceEndpoints } from '../../cluster/types.js';
import type { Logger } from '../../common/log.js';
import type { Backend, NodeFacts } from './backend.js';
import type { ProxierHealth } from './healthcheck/proxier.js';
import type { ServiceHealthServers } from './healthcheck/services.js';
import type { ProxyMetrics } from './metrics.js';
import type { ServicePlan } from './model.js';
import { planService, skipReason } from './plan.js';
import { BoundedFrequencyRunner } from './runner.js';

export interface ProxierOptions {
  nodeName: string;
  minSyncPeriodMs: number;
  /** The periodic tick: a reconcile at least this often. */
  syncPeriodMs: number;
  /** A full rewrite at least this often (default: an hour, as kube-proxy). */
  fullSyncPeriodMs?: number;
  /** Learns this node's addresses (catalog Node object, local interfaces). */
  nodeFacts: () => Promise<NodeFacts>;
  /** Deletes the stale UDP conntrack entries given every plan (conntrack-cleaner.ts). */
  cleanStaleFlows?: (plans: Iterable<ServicePlan>, endpointsOf: (key: ObjectKey) => ServiceEndpoints | undefined) => Promise<unknown>;
}

/** kube-proxy's fullSyncPeriod. */
export const FULL_SYNC_PERIOD_MS = 3_600_000;

export interface SyncReport {
  full: boolean;
  /** Whether the kernel's state was read back and repaired. */
  reconcile: boolean;
  /** What the reconcile repaired, by kind (empty when nothing differed). */
  repaired: Readonly<Record<string, number>>;
  changed: number;
  /** Wall time of the whole sync, ms. */
  totalMs: number;
  /** Planning (catalog → plans), ms. */
  planMs: number;
}

export class Proxier {
  private readonly plans = new Map<ObjectKey, ServicePlan>();
  private readonly pending = new Set<ObjectKey>();
  private readonly seenService = new Map<ObjectKey, Service | undefined>();
  private readonly seenEndpoints = new Map<ObjectKey, ServiceEndpoints | undefined>();
  private readonly observedTrigger = new Map<ObjectKey, number>();
  private readonly noLocal = { internal: new Set<ObjectKey>(), external: new Set<ObjectKey>() };
  private readonly runner: BoundedFrequencyRunner;
  private needFull = true;
  private replanAll = true;
  /** The node's facts must be read again before the next sync (a ServiceCIDR changed). */
  private factsStale = false;
  private lastFull = 0;
  private lastReconcile = 0;
  private nodeFactsKey = '';
  private node?: NodeFacts;
  private unsubscribe?: () => void;
  private pendingEndpointChanges = new Set<ObjectKey>();
  private pendingServiceChanges = new Set<ObjectKey>();
  private started = false;
  /** The last sync's figures, for benchmarks and logs. */
  lastReport?: SyncReport;
  /** Resolves after each sync attempt; tests and benchmarks wait on it. */
  private waiters: { gen: number; resolve: () => void }[] = [];
  private syncCount = 0;

  constructor(
    private readonly view: CatalogView,
    private readonly backend: Backend,
    private readonly opts: ProxierOptions,
    private readonly log: Logger,
    private readonly metrics?: ProxyMetrics,
    private readonly health?: ProxierHealth,
    private readonly hcServers?: ServiceHealthServers,
  ) {
    this.runner = new BoundedFrequencyRunner(() => this.syncOnce(), {
      minIntervalMs: opts.minSyncPeriodMs,
      maxIntervalMs: opts.syncPeriodMs,
      onError: (err, retry) => this.log.warn('sync failed; retrying', { error: (err as Error).message, retryInMs: retry }),
    });
  }

  /** Subscribes to the catalog; the first sync runs once the catalog is synced. */
  start(): void {
    this.unsubscribe = this.view.onChange((c) => this.onChange(c));
    if (this.view.synced) this.begin();
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    await this.runner.stop();
    await this.hcServers?.closeAll();
  }

  /** Resolves after the next sync attempt that starts after this call. */
  nextSync(): Promise<void> {
    return new Promise((resolve) => this.waiters.push({ gen: this.syncCount + 1, resolve }));
  }

  /** Requests a full sync at the next run. */
  requestFull(): void {
    this.needFull = true;
    this.runner.run();
  }

  private begin(): void {
    if (this.started) return;
    this.started = true;
    this.runner.start();
  }

  private onChange(c: CatalogChange): void {
    for (const key of c.services) {
      const svc = this.view.service(key);
      const eps = this.view.endpoints(key);
      // Records are immutable: a new object means that part changed.
      if (this.seenService.get(key) !== svc) {
        this.pendingServiceChanges.add(key);
        this.metrics?.serviceChanges.inc();
      }
      if (this.seenEndpoints.get(key) !== eps) {
        this.pendingEndpointChanges.add(key);
        this.metrics?.endpointChanges.inc();
      }
      if (svc) this.seenService.set(key, svc);
      else this.seenService.delete(key);
      if (eps) this.seenEndpoints.set(key, eps);
      else this.seenEndpoints.delete(key);
      this.pending.add(key);
    }
    // This node's zone and addresses shape every plan and the node-port rules.
    if (c.nodes.has(this.opts.nodeName)) this.replanAll = true;
    // ServiceCIDRs are read with the node's facts: a new set of them is a full sync, no plan changes.
    if (c.serviceCIDRs.size) this.factsStale = true;
    this.metrics?.serviceChangesPending.set(this.pendingServiceChanges.size);
    this.metrics?.endpointChangesPending.set(this.pendingEndpointChanges.size);
    if (c.services.size || c.nodes.has(this.opts.nodeName) || c.serviceCIDRs.size) {
      this.health?.queued();
      this.metrics?.lastQueued.set(Date.now() / 1000);
    }
    if (c.synced || this.view.synced) this.begin();
    if (this.started) this.runner.run();
  }

  private plan(key: ObjectKey): ServicePlan | undefined {
    const svc = this.view.service(key);
    if (!svc) return undefined;
    const zone = this.view.node(this.opts.nodeName)?.zone;
    return planService(svc, this.view.endpoints(key), { nodeName: this.opts.nodeName, zone });
  }

  private async syncOnce(): Promise<void> {
    const t0 = performance.now();
    const gen = ++this.syncCount;
    try {
      await this.sync(t0);
    } finally {
      const ready = this.waiters.filter((w) => w.gen <= gen);
      this.waiters = this.waiters.filter((w) => w.gen > gen);
      for (const w of ready) w.resolve();
    }
  }

  private async sync(t0: number): Promise<void> {
    const now = Date.now();
    let full = this.needFull || now - this.lastFull >= (this.opts.fullSyncPeriodMs ?? FULL_SYNC_PERIOD_MS);
    // Measured from the start of the last reconcile, as the runner's ticks are; a timer may fire a
    // little early, so the tick that is due is never taken for an extra one.
    const reconcile = !full && now - this.lastReconcile >= this.opts.syncPeriodMs - Math.min(100, this.opts.syncPeriodMs / 10);
    // Node facts are read at every tick too: a new local address must reach the node-port rules
    // within one --sync-period, not at the hourly full sync.
    if (full || reconcile || this.replanAll || this.factsStale || !this.node) {
      this.factsStale = false;
      const node = await this.opts.nodeFacts();
      const k = JSON.stringify(node);
      if (k !== this.nodeFactsKey) full = true;
      this.node = node;
      this.nodeFactsKey = k;
    }
    const replanAll = full || this.replanAll;
    const keys = replanAll ? new Set<ObjectKey>([...this.plans.keys(), ...[...this.view.services()].map((s) => s.key)]) : new Set(this.pending);
    this.pending.clear();
    this.replanAll = false;

    const next = new Map<ObjectKey, ServicePlan | undefined>();
    const changed = new Set<ObjectKey>();
    for (const key of keys) {
      const p = this.plan(key);
      next.set(key, p);
      const old = this.plans.get(key);
      if (full || JSON.stringify(old) !== JSON.stringify(p)) changed.add(key);
      const svc = this.view.service(key);
      if (svc && !p && !old) {
        const why = skipReason(svc);
        if (why) this.log.debug('service has no rules', { service: key, reason: why });
      }
    }
    const planMs = performance.now() - t0;

    const before = new Map<ObjectKey, ServicePlan | undefined>();
    for (const key of changed) {
      before.set(key, this.plans.get(key));
      const p = next.get(key);
      if (p) this.plans.set(key, p);
      else this.plans.delete(key);
    }
    let repaired: Readonly<Record<string, number>> = {};
    let rewrote = false;
    try {
      const result = await this.backend.sync({ plans: this.plans, changed, full, reconcile, node: this.node! });
      for (const [table, n] of Object.entries(result.rules)) this.metrics?.rulesTotal.set({ table }, n);
      for (const [table, n] of Object.entries(result.written)) this.metrics?.rulesLastSync.set({ table }, n);
      repaired = result.repaired ?? {};
      rewrote = !!result.rewrote;
      if (result.readBacks) this.metrics?.reconcileReadBacks.inc(result.readBacks);
    } catch (err) {
      // Put the old plans back so the retry (a full sync) diffs against what the kernel had.
      for (const [key, p] of before) {
        if (p) this.plans.set(key, p);
        else this.plans.delete(key);
      }
      for (const key of changed) this.pending.add(key);
      this.needFull = true;
      throw err;
    }
    if (full) {
      this.needFull = false;
      this.lastFull = Date.now();
    }
    if (full || reconcile) this.lastReconcile = now;
    if (reconcile) this.metrics?.reconciles.inc();
    const repairs = Object.entries(repaired).filter(([, n]) => n > 0);
    if (repairs.length) {
      for (const [kind, n] of repairs) this.metrics?.reconcileRepairs.inc({ kind }, n);
      this.log.warn('rules changed outside the proxy were repaired', Object.fromEntries(repairs));
    }

    // After the rules, at every sync as kube-proxy: flows cleared now can only be re-created
    // towards live endpoints. It compares the table with every plan, not with the changes, so it
    // also catches what a failed clean-up or a restart left.
    await this.opts.cleanStaleFlows?.(this.plans.values(), (k) => this.view.endpoints(k));

    for (const key of changed) {
      const p = this.plans.get(key);
      this.trackNoLocal(key, p);
      await this.hcServers?.set(key, p && p.healthCheckNodePort > 0
        ? { namespace: p.namespace, name: p.name, port: p.healthCheckNodePort, localEndpoints: p.localReadyEndpoints }
        : undefined);
      this.observeProgramming(key, p);
    }
    await this.hcServers?.retry();

    const totalMs = performance.now() - t0;
    this.metrics?.syncDuration.observe(totalMs / 1000);
    (full || rewrote ? this.metrics?.syncFullDuration : this.metrics?.syncPartialDuration)?.observe(totalMs / 1000);
    this.metrics?.lastSync.set(Date.now() / 1000);
    this.metrics?.noLocalEndpoints.set({ traffic_policy: 'internal' }, this.noLocal.internal.size);
    this.metrics?.noLocalEndpoints.set({ traffic_policy: 'external' }, this.noLocal.external.size);
    this.pendingEndpointChanges.clear();
    this.pendingServiceChanges.clear();
    this.metrics?.serviceChangesPending.set(0);
    this.metrics?.endpointChangesPending.set(0);
    this.health?.updated();
    this.lastReport = { full, reconcile, repaired, changed: changed.size, totalMs, planMs };
    this.log[full ? 'info' : 'debug']('rules synced', { sync: full ? 'full' : reconcile ? 'reconcile' : 'partial', services: this.plans.size, changed: changed.size, ms: Math.round(totalMs) });
  }

  private trackNoLocal(key: ObjectKey, p: ServicePlan | undefined): void {
    const internal = !!p?.ports.some((x) => x.internalLocal && x.hasAnyEndpoints && x.localEndpoints.length === 0);
    const external = !!p?.ports.some((x) => x.externalLocal && x.hasAnyEndpoints && x.localEndpoints.length === 0);
    if (internal) this.noLocal.internal.add(key);
    else this.noLocal.internal.delete(key);
    if (external) this.noLocal.external.add(key);
    else this.noLocal.external.delete(key);
  }

  private observeProgramming(key: ObjectKey, p: ServicePlan | undefined): void {
    const t = p?.lastChangeTriggerTime;
    if (!p) this.observedTrigger.delete(key);
    if (t === undefined) return;
    if ((this.observedTrigger.get(key) ?? 0) >= t) return;
    this.observedTrigger.set(key, t);
    const seconds = (Date.now() - t) / 1000;
    if (seconds >= 0) this.metrics?.networkProgramming.observe(seconds);
  }
}
