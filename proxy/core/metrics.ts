// The proxy's metrics under kube-proxy's names, on a registry of the proxy's own (served at
// --metrics-bind-address), so existing kube-proxy dashboards and alerts keep working.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

// kube-proxy's buckets: exponential from 1 ms, ×2, 15 buckets (up to ~16 s).
const SYNC_BUCKETS = Array.from({ length: 15 }, (_, i) => 0.001 * 2 ** i);
// Network programming, as kube-proxy: 0.25 s, 0.5 s, 1…59 s, 60…115 s by 5, 2…5 min by 30 s.
const linear = (start: number, width: number, n: number) => Array.from({ length: n }, (_, i) => start + i * width);
const NETPROG_BUCKETS = [...linear(0.25, 0.25, 2), ...linear(1, 1, 59), ...linear(60, 5, 12), ...linear(120, 30, 7)];

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly syncDuration: Histogram;
  readonly syncFullDuration: Histogram;
  readonly syncPartialDuration: Histogram;
  readonly lastSync: Gauge;
  readonly lastQueued: Gauge;
  readonly networkProgramming: Histogram;
  readonly restoreFailures: Counter;
  readonly partialRestoreFailures: Counter;
  readonly rulesTotal: Gauge<'table'>;
  readonly rulesLastSync: Gauge<'table'>;
  readonly endpointChanges: Counter;
  readonly endpointChangesPending: Gauge;
  readonly serviceChanges: Counter;
  readonly serviceChangesPending: Gauge;
  readonly noLocalEndpoints: Gauge<'traffic_policy'>;
  readonly conntrackDeletions: Counter<'result'>;
  readonly reconciles: Counter;
  readonly reconcileRepairs: Counter<'kind'>;
  readonly reconcileReadBacks: Counter;

  constructor(opts: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry });
    this.syncDuration = new Histogram({ name: 'kubeproxy_sync_proxy_rules_duration_seconds', help: 'SyncProxyRules latency in seconds', buckets: SYNC_BUCKETS, registers });
    this.syncFullDuration = new Histogram({ name: 'kubeproxy_sync_full_proxy_rules_duration_seconds', help: 'SyncProxyRules latency in seconds for full resyncs', buckets: SYNC_BUCKETS, registers });
    this.syncPartialDuration = new Histogram({ name: 'kubeproxy_sync_partial_proxy_rules_duration_seconds', help: 'SyncProxyRules latency in seconds for partial resyncs', buckets: SYNC_BUCKETS, registers });
    this.lastSync = new Gauge({ name: 'kubeproxy_sync_proxy_rules_last_timestamp_seconds', help: 'The last time proxy rules were successfully synced', registers });
    this.lastQueued = new Gauge({ name: 'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds', help: 'The last time a sync of proxy rules was queued', registers });
    this.networkProgramming = new Histogram({ name: 'kubeproxy_network_programming_duration_seconds', help: 'In Network Programming Latency in seconds', buckets: NETPROG_BUCKETS, registers });
    this.restoreFailures = new Counter({ name: 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total', help: 'Cumulative proxy iptables restore failures', registers });
    this.partialRestoreFailures = new Counter({ name: 'kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total', help: 'Cumulative proxy iptables partial restore failures', registers });
    this.rulesTotal = new Gauge({ name: 'kubeproxy_sync_proxy_rules_iptables_total', help: 'Total number of iptables rules owned by kube-proxy', labelNames: ['table'], registers });
    this.rulesLastSync = new Gauge({ name: 'kubeproxy_sync_proxy_rules_iptables_last', help: 'Number of iptables rules written by kube-proxy in last sync', labelNames: ['table'], registers });
    this.endpointChanges = new Counter({ name: 'kubeproxy_sync_proxy_rules_endpoint_changes_total', help: 'Cumulative proxy rules Endpoint changes', registers });
    this.endpointChangesPending = new Gauge({ name: 'kubeproxy_sync_proxy_rules_endpoint_changes_pending', help: 'Pending proxy rules Endpoint changes', registers });
    this.serviceChanges = new Counter({ name: 'kubeproxy_sync_proxy_rules_service_changes_total', help: 'Cumulative proxy rules Service changes', registers });
    this.serviceChangesPending = new Gauge({ name: 'kubeproxy_sync_proxy_rules_service_changes_pending', help: 'Pending proxy rules Service changes', registers });
    this.noLocalEndpoints = new Gauge({
      name: 'kubeproxy_sync_proxy_rules_no_local_endpoints_total',
      help: 'Number of services with a Local traffic policy and no endpoints',
      labelNames: ['traffic_policy'],
      registers,
    });
    this.conntrackDeletions = new Counter({
      name: 'kubedataplane_proxy_conntrack_deletions_total',
      help: 'Stale UDP conntrack entries sent for deletion (one conntrack -R batch per sync), by result',
      labelNames: ['result'],
      registers,
    });
    this.reconciles = new Counter({ name: 'kubedataplane_proxy_reconciles_total', help: 'Periodic reconciles: the kernel state read back and compared with what was applied', registers });
    this.reconcileReadBacks = new Counter({
      name: 'kubedataplane_proxy_reconcile_read_backs_total',
      help: 'Tables a reconcile read back whole, one per family (nftables: someone else committed to our table, or its change notifications were lost); a quiet tick reads nothing back',
      registers,
    });
    this.reconcileRepairs = new Counter({
      name: 'kubedataplane_proxy_reconcile_repairs_total',
      help: 'Objects found changed or missing in the kernel by a reconcile and put back, by kind',
      labelNames: ['kind'],
      registers,
    });
  }
}
