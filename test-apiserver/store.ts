// The versioned object store behind the test API server: one global resourceVersion counter
// (like etcd's revision), the current objects per resource type, and per type a log of change
// events, which is what lets a watch resume from any resourceVersion newer than the compaction
// point and a paginated list serve one consistent snapshot. Namespaces are objects too: the usual
// four exist from the start, a write into a namespace that does not exist creates it, and
// deleting one deletes what is in it.
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { NAMESPACE_TYPE, RESOURCE_TYPES, resourceByKind, storeKey, type ResourceType } from './resources.js';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** One stored object version. `json` is its serialization, built once: lists and watch streams
 *  write it as is, so serving 10k objects does not re-encode them. */
export interface StoredObject {
  readonly key: string;
  readonly namespace?: string;
  readonly name: string;
  readonly rv: number;
  readonly object: Readonly<Record<string, unknown>>;
  readonly json: string;
}

export interface ChangeEvent {
  readonly type: EventType;
  readonly rv: number;
  /** For DELETED: the last version, with the resourceVersion of the deletion. */
  readonly current: StoredObject;
  /** The version this event replaced (absent for ADDED): undoing the event restores it. */
  readonly previous?: StoredObject;
}

/** A resourceVersion older than what the store still has: HTTP 410 / reason Expired. */
export class ExpiredError extends Error {}

/** A write the API refuses: 404 NotFound, 409 AlreadyExists or Conflict (stale
 *  resourceVersion), 403 Forbidden (a namespace that may not be deleted). */
export class ConflictError extends Error {
  constructor(
    message: string,
    readonly code: 403 | 404 | 409,
    readonly reason: string = code === 404 ? 'NotFound' : code === 403 ? 'Forbidden' : 'AlreadyExists',
  ) {
    super(message);
  }
}

/** The namespaces a cluster has from the start, as kube-apiserver creates them. */
export const INITIAL_NAMESPACES = ['default', 'kube-node-lease', 'kube-public', 'kube-system'] as const;
/** kube-apiserver refuses to delete these. */
const UNDELETABLE_NAMESPACES = new Set(['default', 'kube-public', 'kube-system']);

export interface WriteOptions {
  /** Only write if the stored object still has this resourceVersion (else 409 Conflict): the
   *  optimistic concurrency of PUT and PATCH when the client names a version. */
  expectResourceVersion?: string;
}

interface Table {
  readonly objects: Map<string, StoredObject>;
  log: ChangeEvent[];
  /** Events with rv <= floor are gone: a watch or a list must start at floor or later. */
  floor: number;
  /** `objects` sorted by key, until the next write: every page of a paginated list needs it. */
  sorted?: StoredObject[];
}

export interface StoreOptions {
  /** Events kept per resource type; older ones are compacted away. */
  historyLimit?: number;
  /** Namespaces created at start (they take the first resourceVersions). Default
   *  INITIAL_NAMESPACES. */
  namespaces?: readonly string[];
}

export type ChangeListener = (type: ResourceType, event: ChangeEvent) => void;

export class ObjectStore {
  private rv = 0;
  private readonly tables = new Map<string, Table>();
  private readonly listeners = new Set<ChangeListener>();
  private readonly historyLimit: number;
  private readonly snapshots = new Map<string, StoredObject[]>();

  constructor(opts: StoreOptions = {}) {
    this.historyLimit = opts.historyLimit ?? 100_000;
    for (const t of RESOURCE_TYPES) this.tables.set(t.plural, { objects: new Map(), log: [], floor: 0 });
    for (const name of opts.namespaces ?? INITIAL_NAMESPACES) this.create(namespaceObject(name));
  }

  get resourceVersion(): number {
    return this.rv;
  }

  onChange(fn: ChangeListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Creates an object (`kind` and `metadata.name` required; namespace defaults to `default`). */
  create(obj: unknown): Record<string, unknown> {
    return this.write(obj, 'create');
  }

  /** Replaces an existing object. An update that changes nothing is no write at all: the same
   *  resourceVersion, no event (kube-apiserver skips such writes too). */
  update(obj: unknown, opts: WriteOptions = {}): Record<string, unknown> {
    return this.write(obj, 'update', opts);
  }

  /** Creates or updates. */
  apply(obj: unknown): Record<string, unknown> {
    return this.write(obj, 'apply');
  }

  /** Deletes an object; a namespace takes everything in it along (each a DELETED event first). */
  delete(kind: string, namespace: string | undefined, name: string): Record<string, unknown> {
    const type = resourceByKind(kind);
    const table = this.table(type);
    const key = storeKey(type, namespace, name);
    const old = table.objects.get(key);
    if (!old) throw new ConflictError(`${type.plural} "${key}" not found`, 404);
    if (type === NAMESPACE_TYPE) {
      if (UNDELETABLE_NAMESPACES.has(name)) {
        throw new ConflictError(`namespaces "${name}" is forbidden: this namespace may not be deleted`, 403);
      }
      for (const t of RESOURCE_TYPES) {
        if (!t.namespaced) continue;
        for (const o of this.list(t).filter((x) => x.namespace === name)) this.delete(t.kind, name, o.name);
      }
    }
    const rv = ++this.rv;
    const object = withResourceVersion(old.object, rv);
    const current: StoredObject = { ...old, rv, object, json: JSON.stringify(object) };
    table.objects.delete(key);
    this.append(type, table, { type: 'DELETED', rv, current, previous: old });
    return object;
  }

  get(type: ResourceType, namespace: string | undefined, name: string): StoredObject | undefined {
    return this.table(type).objects.get(storeKey(type, namespace, name));
  }

  /** The current objects of a type, sorted by key as etcd returns them. */
  list(type: ResourceType): readonly StoredObject[] {
    const table = this.table(type);
    table.sorted ??= sortByKey([...table.objects.values()]);
    return table.sorted;
  }

  /** The objects of `type` as they were at resourceVersion `rv`, sorted by key. */
  listAt(type: ResourceType, rv: number): readonly StoredObject[] {
    if (rv >= this.rv) return this.list(type);
    const table = this.table(type);
    this.checkNotExpired(type, table, rv);
    const id = `${type.plural}@${rv}`;
    const cached = this.snapshots.get(id);
    if (cached) return cached;
    const state = new Map(table.objects);
    for (let i = table.log.length - 1; i >= 0 && table.log[i].rv > rv; i--) {
      const e = table.log[i];
      if (e.previous) state.set(e.current.key, e.previous);
      else state.delete(e.current.key);
    }
    const snapshot = sortByKey([...state.values()]);
    // A paginated list asks for the same snapshot once per page; a few are enough.
    if (this.snapshots.size >= 4) this.snapshots.delete(this.snapshots.keys().next().value!);
    this.snapshots.set(id, snapshot);
    return snapshot;
  }

  /** Every event of `type` after `rv`, oldest first. */
  eventsSince(type: ResourceType, rv: number): ChangeEvent[] {
    const table = this.table(type);
    this.checkNotExpired(type, table, rv);
    const log = table.log;
    let lo = 0;
    let hi = log.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (log[mid].rv > rv) hi = mid;
      else lo = mid + 1;
    }
    return log.slice(lo);
  }

  /** Forgets every event at or before `rv` (default: all of them), as etcd compaction does:
   *  a watch or a consistent list from an older resourceVersion then gets 410 Gone. */
  compact(rv: number = this.rv): void {
    for (const type of RESOURCE_TYPES) {
      const table = this.table(type);
      if (rv <= table.floor) continue;
      table.log = table.log.filter((e) => e.rv > rv);
      table.floor = rv;
    }
    for (const id of [...this.snapshots.keys()]) {
      if (Number(id.slice(id.indexOf('@') + 1)) < rv) this.snapshots.delete(id);
    }
  }

  /** The oldest resourceVersion a watch of `type` may start from. */
  floor(type: ResourceType): number {
    return this.table(type).floor;
  }

  private checkNotExpired(type: ResourceType, table: Table, rv: number): void {
    if (rv < table.floor) throw new ExpiredError(`too old resource version: ${rv} (${table.floor})`);
  }

  private table(type: ResourceType): Table {
    return this.tables.get(type.plural)!;
  }

  private write(input: unknown, mode: 'create' | 'update' | 'apply', opts: WriteOptions = {}): Record<string, unknown> {
    if (!isRecord(input)) throw new TypeError('test-apiserver: an object must be a JSON object');
    const type = resourceByKind(String(input.kind));
    const meta = isRecord(input.metadata) ? input.metadata : {};
    const name = meta.name;
    if (typeof name !== 'string' || name === '') throw new TypeError(`test-apiserver: ${type.kind} has no metadata.name`);
    const namespace = type.namespaced ? (typeof meta.namespace === 'string' && meta.namespace) || 'default' : undefined;
    const table = this.table(type);
    const key = storeKey(type, namespace, name);
    const old = table.objects.get(key);
    if (mode === 'create' && old) throw new ConflictError(`${type.plural} "${key}" already exists`, 409);
    if (mode === 'update' && !old) throw new ConflictError(`${type.plural} "${key}" not found`, 404);
    if (opts.expectResourceVersion !== undefined && old && opts.expectResourceVersion !== String(old.rv)) {
      const message = `Operation cannot be fulfilled on ${type.plural} "${name}": the object has been modified; `
        + 'please apply your changes to the latest version and try again';
      throw new ConflictError(message, 409, 'Conflict');
    }
    if (namespace !== undefined && !this.get(NAMESPACE_TYPE, undefined, namespace)) this.create(namespaceObject(namespace));
    const oldMeta = (old?.object.metadata ?? {}) as Record<string, unknown>;
    // The server owns these fields: a client's stale resourceVersion or uid never wins.
    const object: Record<string, unknown> = {
      ...structuredClone(input),
      kind: type.kind,
      apiVersion: type.apiVersion,
      metadata: {
        ...structuredClone(meta),
        ...(type === NAMESPACE_TYPE ? { labels: { ...(meta.labels as object), 'kubernetes.io/metadata.name': name } } : {}),
        name,
        ...(namespace !== undefined ? { namespace } : {}),
        uid: oldMeta.uid ?? randomUUID(),
        creationTimestamp: oldMeta.creationTimestamp ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        resourceVersion: old ? String(old.rv) : '',
      },
    };
    if (type === NAMESPACE_TYPE) {
      // Its status is the server's (a subresource): Active from creation, whatever a client sent.
      object.spec = { finalizers: ['kubernetes'], ...(isRecord(object.spec) ? object.spec : {}) };
      object.status = old?.object.status ?? { phase: 'Active' };
    }
    if (old && isDeepStrictEqual(object, old.object)) return structuredClone(old.object) as Record<string, unknown>;
    const rv = ++this.rv;
    (object.metadata as Record<string, unknown>).resourceVersion = String(rv);
    const current: StoredObject = { key, namespace, name, rv, object, json: JSON.stringify(object) };
    table.objects.set(key, current);
    this.append(type, table, old ? { type: 'MODIFIED', rv, current, previous: old } : { type: 'ADDED', rv, current });
    return object;
  }

  private append(type: ResourceType, table: Table, event: ChangeEvent): void {
    table.sorted = undefined;
    table.log.push(event);
    if (table.log.length > this.historyLimit) {
      const drop = table.log.length - this.historyLimit;
      table.floor = Math.max(table.floor, table.log[drop - 1].rv);
      table.log = table.log.slice(drop);
    }
    for (const fn of this.listeners) fn(type, event);
  }
}

/** A Namespace as kube-apiserver stores a new one. */
export function namespaceObject(name: string): Record<string, unknown> {
  return {
    apiVersion: 'v1', kind: 'Namespace', metadata: { name }, spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' },
  };
}

function withResourceVersion(obj: Readonly<Record<string, unknown>>, rv: number): Record<string, unknown> {
  return { ...obj, metadata: { ...(obj.metadata as Record<string, unknown>), resourceVersion: String(rv) } };
}

function sortByKey(objs: StoredObject[]): StoredObject[] {
  return objs.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
