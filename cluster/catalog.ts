// The catalog: the one normalized, indexed view of the cluster that every consumer reads.
// Sources feed it raw objects (ObjectSink); it validates each alone, merges the EndpointSlices of
// a service, keeps the indexes (by key, by IP) and tells listeners which services changed, so
// consumers do work proportional to the change. Work here is proportional to the change too:
// an update touches only its service's slices and index entries, and an update that changes
// nothing the data plane uses (a status-only write, a relist of the same state) is no change.
import { Counter, Gauge } from 'prom-client';
import { logger, type Logger } from '../common/log.js';
import { metricOnce, registry } from '../common/metrics.js';
import {
  describeObject,
  normalizeEndpointSlice,
  normalizeNamespace,
  normalizeServiceCIDR,
  normalizeNode,
  normalizePod,
  normalizeService,
  type Normalized,
  type SliceRecord,
} from './normalize.js';
import { MultiMap } from './multimap.js';
import { isClusterScoped, type Kind, type ObjectSink } from './sink.js';
import type {
  CatalogChange,
  CatalogView,
  Endpoint,
  EndpointPort,
  IPOwner,
  Namespace,
  Node,
  ObjectKey,
  Pod,
  Service,
  ServiceCIDR,
  ServiceEndpoints,
} from './types.js';
import { objectKey } from './types.js';

const rejectedTotal = metricOnce(
  'kubedataplane_catalog_rejected_objects_total',
  () => new Counter({ name: 'kubedataplane_catalog_rejected_objects_total', help: 'Objects refused by validation, by kind.', labelNames: ['kind'], registers: [registry] }),
) as Counter<'kind'>;
const objectsGauge = metricOnce(
  'kubedataplane_catalog_objects',
  () => new Gauge({ name: 'kubedataplane_catalog_objects', help: 'Objects held in the catalog, by kind.', labelNames: ['kind'], registers: [registry] }),
) as Gauge<'kind'>;
const changesTotal = metricOnce(
  'kubedataplane_catalog_changes_total',
  () => new Counter({ name: 'kubedataplane_catalog_changes_total', help: 'Change batches delivered to consumers.', registers: [registry] }),
) as Counter;

export interface CatalogOptions {
  /** The kinds whose first list makes the catalog synced (default: Service, EndpointSlice, Node). */
  kinds?: readonly Kind[];
  log?: Logger;
}

/** Merges the slices of one service, in slice-name order so the result never depends on the
 *  order events arrived in. A duplicate address keeps its first ready occurrence, as kube-proxy
 *  prefers a ready duplicate. */
export function mergeSlices(serviceKey: ObjectKey, slices: readonly SliceRecord[]): ServiceEndpoints {
  const ordered = [...slices].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const all = new Map<string, Endpoint>();
  const groups = new Map<string, { name: string; protocol: EndpointPort['protocol']; port: number; appProtocol?: string; eps: Map<string, Endpoint> }>();
  let trigger: number | undefined;
  const keep = (into: Map<string, Endpoint>, ep: Endpoint) => {
    const had = into.get(ep.ip);
    if (!had || (ep.ready && !had.ready)) into.set(ep.ip, ep);
  };
  for (const s of ordered) {
    if (s.addressType === 'FQDN') continue;
    if (s.lastChangeTriggerTime !== undefined && (trigger === undefined || s.lastChangeTriggerTime > trigger)) trigger = s.lastChangeTriggerTime;
    for (const ep of s.endpoints) keep(all, ep);
    for (const p of s.ports) {
      const gk = `${p.name}/${p.protocol}/${p.port}`;
      let g = groups.get(gk);
      if (!g) groups.set(gk, (g = { ...p, eps: new Map() }));
      for (const ep of s.endpoints) keep(g.eps, ep);
    }
  }
  const sorted = (m: Map<string, Endpoint>) => [...m.values()].sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));
  // Most services have one slice whose endpoints all serve every port: then the merged lists
  // equal the slice's own, and share its array instead of holding three copies (100k endpoints
  // make that megabytes).
  const sameList = (a: readonly Endpoint[], b: readonly Endpoint[]) => a.length === b.length && a.every((e, i) => e === b[i]);
  let endpoints: readonly Endpoint[] = sorted(all);
  if (ordered.length === 1 && sameList(endpoints, ordered[0].endpoints)) endpoints = ordered[0].endpoints;
  const ports: EndpointPort[] = [...groups.values()]
    .map(({ eps, ...p }) => {
      const list = sorted(eps);
      return { ...p, endpoints: sameList(list, endpoints) ? endpoints : list };
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.port - b.port));
  return { serviceKey, endpoints, ports, ...(trigger !== undefined ? { lastChangeTriggerTime: trigger } : {}) };
}

interface ServiceState {
  readonly svc?: Service;
  readonly eps?: ServiceEndpoints;
}

/** The addresses a service's state puts into the IP index. Endpoints count only while their
 *  service exists: a slice without a service is inert. */
function addressesOf(state: ServiceState): string[] {
  if (!state.svc) return [];
  return [...state.svc.clusterIPs, ...(state.eps?.endpoints ?? []).map((e) => e.ip)];
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export class Catalog implements ObjectSink, CatalogView {
  private readonly log: Logger;
  private readonly expected: Set<Kind>;
  private readonly listed = new Set<Kind>();
  private _synced = false;
  private _generation = 0;

  private readonly servicesByKey = new Map<ObjectKey, Service>();
  private readonly slices = new Map<ObjectKey, SliceRecord>();
  private readonly slicesByService = new MultiMap<ObjectKey, ObjectKey>();
  private readonly endpointsByService = new Map<ObjectKey, ServiceEndpoints>();
  private readonly nodesByName = new Map<string, Node>();
  private readonly podsByKey = new Map<ObjectKey, Pod>();
  private readonly namespacesByName = new Map<string, Namespace>();
  private readonly serviceCIDRsByName = new Map<string, ServiceCIDR>();
  private readonly podIndex = new MultiMap<string, Pod>();
  /** Pods with an address, per namespace: `<ns>.pod.<zone>` has names below it while any. */
  private readonly addressedPods = new Map<string, number>();
  /** Who owns an address (service cluster IP, endpoint, pod), for PTR answers. */
  private readonly ipOwners = new MultiMap<string, IPOwner>();

  private readonly listeners = new Set<(c: CatalogChange) => void>();
  private depth = 0;
  private pending = this.nothingPending();

  constructor(opts: CatalogOptions = {}) {
    this.log = opts.log ?? logger('catalog');
    this.expected = new Set(opts.kinds ?? ['Service', 'EndpointSlice', 'Node']);
  }

  // ---- CatalogView ----
  get synced(): boolean {
    return this._synced;
  }
  get generation(): number {
    return this._generation;
  }
  service(key: ObjectKey): Service | undefined {
    return this.servicesByKey.get(key);
  }
  endpoints(serviceKey: ObjectKey): ServiceEndpoints | undefined {
    return this.endpointsByService.get(serviceKey);
  }
  services(): IterableIterator<Service> {
    return this.servicesByKey.values();
  }
  node(name: string): Node | undefined {
    return this.nodesByName.get(name);
  }
  nodes(): IterableIterator<Node> {
    return this.nodesByName.values();
  }
  pod(key: ObjectKey): Pod | undefined {
    return this.podsByKey.get(key);
  }
  podsByIP(ip: string): readonly Pod[] {
    return this.podIndex.get(ip);
  }
  hasAddressedPods(namespace: string): boolean {
    return this.addressedPods.has(namespace);
  }
  ownersOfIP(ip: string): readonly IPOwner[] {
    return this.ipOwners.get(ip);
  }
  namespace(name: string): Namespace | undefined {
    return this.namespacesByName.get(name);
  }
  serviceCIDRs(): IterableIterator<ServiceCIDR> {
    return this.serviceCIDRsByName.values();
  }
  onChange(fn: (change: CatalogChange) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  // ---- ObjectSink ----
  batch(fn: () => void): void {
    this.depth++;
    try {
      fn();
    } finally {
      this.depth--;
      if (this.depth === 0) this.flush();
    }
  }

  apply(kind: Kind, obj: unknown): void {
    this.batch(() => {
      switch (kind) {
        case 'Service':
          return this.applyService(obj);
        case 'EndpointSlice':
          return this.applySlice(obj);
        case 'Node':
          return this.applyNamed('Node', obj, normalizeNode, this.nodesByName, this.pending.nodes);
        case 'Pod':
          return this.applyPod(obj);
        case 'Namespace':
          return this.applyNamed('Namespace', obj, normalizeNamespace, this.namespacesByName, this.pending.namespaces);
        case 'ServiceCIDR':
          return this.applyNamed('ServiceCIDR', obj, normalizeServiceCIDR, this.serviceCIDRsByName, this.pending.serviceCIDRs);
      }
    });
  }

  delete(kind: Kind, namespace: string, name: string): void {
    this.batch(() => {
      const key = isClusterScoped(kind) ? name : objectKey(namespace, name);
      switch (kind) {
        case 'Service': {
          const before = this.stateOf(key);
          if (this.servicesByKey.delete(key)) this.serviceChanged(key, before);
          return;
        }
        case 'EndpointSlice':
          return this.removeSlice(key);
        case 'Node':
          if (this.nodesByName.delete(key)) this.pending.nodes.add(key);
          return;
        case 'Pod':
          return this.removePod(key);
        case 'Namespace':
          if (this.namespacesByName.delete(key)) this.pending.namespaces.add(key);
          return;
        case 'ServiceCIDR':
          if (this.serviceCIDRsByName.delete(key)) this.pending.serviceCIDRs.add(key);
          return;
      }
    });
  }

  replace(kind: Kind, objs: readonly unknown[]): void {
    this.batch(() => {
      const keep = new Set<ObjectKey>();
      for (const obj of objs) {
        const key = this.keyOf(kind, obj);
        if (key) keep.add(key);
        this.apply(kind, obj);
      }
      const existing = this.keysOf(kind);
      for (const key of existing) {
        if (keep.has(key)) continue;
        const [ns, name] = isClusterScoped(kind) ? ['', key] : key.split('/');
        this.delete(kind, ns, name);
      }
    });
  }

  markSynced(kind: Kind): void {
    this.batch(() => {
      this.listed.add(kind);
      if (!this._synced && [...this.expected].every((k) => this.listed.has(k))) {
        this._synced = true;
        this.pending.synced = true;
        this.log.info('synced', { services: this.servicesByKey.size, endpointSlices: this.slices.size, nodes: this.nodesByName.size });
      }
    });
  }

  // ---- internals ----
  private keyOf(kind: Kind, obj: unknown): ObjectKey | undefined {
    const m = (obj as { metadata?: { name?: unknown; namespace?: unknown } } | null)?.metadata;
    if (!m || typeof m.name !== 'string') return undefined;
    if (isClusterScoped(kind)) return m.name;
    return objectKey(typeof m.namespace === 'string' && m.namespace ? m.namespace : 'default', m.name);
  }

  private keysOf(kind: Kind): ObjectKey[] {
    switch (kind) {
      case 'Service':
        return [...this.servicesByKey.keys()];
      case 'EndpointSlice':
        return [...this.slices.keys()];
      case 'Node':
        return [...this.nodesByName.keys()];
      case 'Pod':
        return [...this.podsByKey.keys()];
      case 'Namespace':
        return [...this.namespacesByName.keys()];
      case 'ServiceCIDR':
        return [...this.serviceCIDRsByName.keys()];
    }
  }

  /** Logs and counts a refused object; the last good version (if any) stays in force. */
  private accept<T>(kind: Kind, obj: unknown, result: Normalized<T>, hadPrevious: boolean): T | undefined {
    if (result.ok) return result.value;
    rejectedTotal.inc({ kind });
    this.log.warn('rejected object', {
      kind,
      object: describeObject(obj),
      errors: result.errors.map((e) => `${e.field}: ${e.reason}`).join('; '),
      action: hadPrevious ? 'kept the last good version' : 'ignored',
    });
    return undefined;
  }

  private applyService(obj: unknown): void {
    const key = this.keyOf('Service', obj);
    const svc = this.accept('Service', obj, normalizeService(obj), key !== undefined && this.servicesByKey.has(key));
    if (!svc) return;
    const before = this.stateOf(svc.key);
    const old = before.svc;
    // resourceVersion changes on every write, including status-only ones; compare without it.
    if (old && same({ ...old, resourceVersion: '' }, { ...svc, resourceVersion: '' })) {
      this.servicesByKey.set(svc.key, svc);
      return;
    }
    this.servicesByKey.set(svc.key, svc);
    this.serviceChanged(svc.key, before);
  }

  private applySlice(obj: unknown): void {
    const key = this.keyOf('EndpointSlice', obj);
    const slice = this.accept('EndpointSlice', obj, normalizeEndpointSlice(obj), key !== undefined && this.slices.has(key));
    if (!slice) return;
    const old = this.slices.get(slice.key);
    if (old && same(old, slice)) return;
    if (old?.serviceKey && old.serviceKey !== slice.serviceKey) this.unlinkSlice(old);
    this.slices.set(slice.key, slice);
    if (slice.serviceKey) {
      if (!this.slicesByService.has(slice.serviceKey, slice.key)) this.slicesByService.add(slice.serviceKey, slice.key);
      this.recomputeEndpoints(slice.serviceKey);
    }
  }

  private removeSlice(key: ObjectKey): void {
    const old = this.slices.get(key);
    if (!old) return;
    this.slices.delete(key);
    this.unlinkSlice(old);
  }

  private unlinkSlice(slice: SliceRecord): void {
    if (!slice.serviceKey) return;
    this.slicesByService.remove(slice.serviceKey, (k) => k === slice.key);
    this.recomputeEndpoints(slice.serviceKey);
  }

  private recomputeEndpoints(serviceKey: ObjectKey): void {
    const keys = this.slicesByService.get(serviceKey);
    const before = this.stateOf(serviceKey);
    const old = before.eps;
    if (keys.length === 0) {
      if (!old) return;
      this.endpointsByService.delete(serviceKey);
    } else {
      const merged = mergeSlices(serviceKey, keys.map((k) => this.slices.get(k)!));
      if (old && same(old, merged)) return;
      this.endpointsByService.set(serviceKey, merged);
    }
    this.serviceChanged(serviceKey, before);
  }

  /** A service's records as they are now; taken before a change to know what to un-index. */
  private stateOf(key: ObjectKey): ServiceState {
    return { svc: this.servicesByKey.get(key), eps: this.endpointsByService.get(key) };
  }

  /** Marks a service changed and re-indexes its addresses: those of its state `before` the
   *  change go, those of its state now come (no list of them is kept per service). */
  private serviceChanged(key: ObjectKey, before: ServiceState): void {
    this.pending.services.add(key);
    const mine = (o: IPOwner) => o.kind !== 'pod' && o.serviceKey === key;
    for (const ip of addressesOf(before)) this.ipOwners.remove(ip, mine);
    const now = this.stateOf(key);
    if (!now.svc) return;
    const asService: IPOwner = { kind: 'service', serviceKey: key };
    for (const ip of now.svc.clusterIPs) this.ipOwners.add(ip, asService);
    // One shared owner record for the endpoints without a hostname: 100k endpoints, 1 object.
    const asEndpoint: IPOwner = { kind: 'endpoint', serviceKey: key };
    for (const ep of now.eps?.endpoints ?? []) {
      this.ipOwners.add(ep.ip, ep.hostname ? { kind: 'endpoint', serviceKey: key, hostname: ep.hostname } : asEndpoint);
    }
  }

  /** A kind kept whole by name (Node, Namespace, ServiceCIDR): stored, and named as changed
   *  unless it equals what was there. */
  private applyNamed<T extends { readonly key: ObjectKey }>(kind: Kind, obj: unknown, normalize: (obj: unknown) => Normalized<T>, byName: Map<ObjectKey, T>, changed: Set<ObjectKey>): void {
    const key = this.keyOf(kind, obj);
    const value = this.accept(kind, obj, normalize(obj), key !== undefined && byName.has(key));
    if (!value) return;
    const old = byName.get(value.key);
    byName.set(value.key, value);
    if (!old || !same(old, value)) changed.add(value.key);
  }

  private applyPod(obj: unknown): void {
    const key = this.keyOf('Pod', obj);
    const pod = this.accept('Pod', obj, normalizePod(obj), key !== undefined && this.podsByKey.has(key));
    if (!pod) return;
    const old = this.podsByKey.get(pod.key);
    if (old && same(old, pod)) return;
    if (old) this.unindexPod(old);
    this.podsByKey.set(pod.key, pod);
    for (const ip of pod.podIPs) {
      this.podIndex.add(ip, pod);
      this.ipOwners.add(ip, { kind: 'pod', podKey: pod.key });
    }
    if (pod.podIPs.length > 0) this.addressedPods.set(pod.namespace, (this.addressedPods.get(pod.namespace) ?? 0) + 1);
    this.pending.pods.add(pod.key);
  }

  private removePod(key: ObjectKey): void {
    const old = this.podsByKey.get(key);
    if (!old) return;
    this.podsByKey.delete(key);
    this.unindexPod(old);
    this.pending.pods.add(key);
  }

  private unindexPod(pod: Pod): void {
    for (const ip of pod.podIPs) {
      this.podIndex.remove(ip, (p) => p.key === pod.key);
      this.ipOwners.remove(ip, (o) => o.kind === 'pod' && o.podKey === pod.key);
    }
    if (pod.podIPs.length === 0) return;
    const left = (this.addressedPods.get(pod.namespace) ?? 1) - 1;
    if (left > 0) this.addressedPods.set(pod.namespace, left);
    else this.addressedPods.delete(pod.namespace);
  }

  private nothingPending() {
    return { services: new Set<ObjectKey>(), nodes: new Set<ObjectKey>(), pods: new Set<ObjectKey>(), namespaces: new Set<ObjectKey>(), serviceCIDRs: new Set<ObjectKey>(), synced: false };
  }

  private flush(): void {
    const p = this.pending;
    if (!p.synced && p.services.size === 0 && p.nodes.size === 0 && p.pods.size === 0 && p.namespaces.size === 0 && p.serviceCIDRs.size === 0) return;
    this.pending = this.nothingPending();
    const change: CatalogChange = { generation: ++this._generation, ...p };
    changesTotal.inc();
    objectsGauge.set({ kind: 'Service' }, this.servicesByKey.size);
    objectsGauge.set({ kind: 'EndpointSlice' }, this.slices.size);
    objectsGauge.set({ kind: 'Node' }, this.nodesByName.size);
    objectsGauge.set({ kind: 'Pod' }, this.podsByKey.size);
    objectsGauge.set({ kind: 'Namespace' }, this.namespacesByName.size);
    objectsGauge.set({ kind: 'ServiceCIDR' }, this.serviceCIDRsByName.size);
    for (const fn of this.listeners) {
      try {
        fn(change);
      } catch (err) {
        // One consumer's bug must not starve the others of changes.
        this.log.error('change listener failed', { generation: change.generation, error: (err as Error).stack ?? String(err) });
      }
    }
  }
}
