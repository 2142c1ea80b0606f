// The reflector of one kind: list, then watch from the list's resourceVersion, forever.
//
// Why our own loop around the client's `Watch` and list calls instead of its informers
// (@kubernetes/client-node 1.4.0, measured — see DESIGN.md; 2.0.1's cache.ts is the same here):
// its ListWatch stops for good on any error that is not a 410, so one refused connection while
// the API server restarts ends the watch; it has no inactivity timeout, so a half-dead
// connection hangs forever; it cannot ask for bookmarks or a server-side timeout; an event line
// without `object` throws inside it; and it keeps a second copy of every object, which the
// catalog already holds. Wrapping it would mean re-creating it after every error and relisting
// each time (it forgets its resourceVersion on restart). Here one loop owns the resourceVersion: errors and dropped connections resume the
// watch from it (no relist, no event lost), only 410 Gone relists, and a relist goes through
// `sink.replace`, which delivers only the difference — no phantom and no lost objects.
import type { Kind, ObjectSink } from '../sink.js';
import type { Logger } from '../../common/log.js';

export interface ListResult {
  readonly items: readonly unknown[];
  readonly resourceVersion: string;
}

/** How the reflector talks to the API server, for one kind. */
export interface KindClient {
  /** A complete list (every page); rejects with `.code` or `.statusCode` 410 when expired. */
  list(signal: AbortSignal): Promise<ListResult>;
  /** Starts a watch; `onDone` is called once when it ends (null: closed by the server). */
  watch(resourceVersion: string, timeoutSeconds: number,
    onEvent: (type: string, object: unknown) => void,
    onDone: (err: unknown) => void): Promise<{ abort(): void }>;
}

export interface ReflectorOptions {
  /** No event and no bookmark for this long: the connection is presumed dead and restarted. */
  inactivityMs: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** Server-side watch timeout, drawn at random in [min, max] per watch so that many agents do
   *  not reconnect in step. */
  watchTimeoutSeconds: readonly [number, number];
  listTimeoutMs: number;
  /** The API server may not serve this kind (a resource newer than the cluster), or the
   *  ClusterRole may predate it: a list answered 404 or 403 then means none, synced, and the
   *  reflector ends (the 403 with a warning naming the rule). Otherwise both are retried as any
   *  failure. */
  optional?: boolean;
}

export interface ReflectorHooks {
  onEvent(type: string): void;
  onRestart(reason: RestartReason): void;
  onList(result: 'ok' | 'error'): void;
}

export type RestartReason = 'closed' | 'error' | 'expired' | 'inactive';

type Outcome =
  | { kind: 'closed'; events: number }
  | { kind: 'error'; err: unknown }
  | { kind: 'expired'; message: string; events: number }
  | { kind: 'inactive' }
  | { kind: 'stopped' };

type Pending = { del: false; obj: unknown } | { del: true; namespace: string; name: string };

/** A healthy watch that lasted this long resets the backoff, even if it ended in an error. */
const HEALTHY_WATCH_MS = 30_000;

export class Reflector {
  private resourceVersion = '';
  private stopped = false;
  private failures = 0;
  private abortCurrent?: () => void;
  private wakeSleep?: () => void;
  private pending: Pending[] = [];
  private flushScheduled = false;
  private syncedOnce = false;
  private lastWatchEvents = 0;
  private resolveSynced!: () => void;
  private loop?: Promise<void>;
  readonly synced: Promise<void>;

  constructor(
    readonly kind: Kind,
    private readonly client: KindClient,
    private readonly sink: ObjectSink,
    private readonly opts: ReflectorOptions,
    private readonly log: Logger,
    private readonly hooks: ReflectorHooks,
  ) {
    this.synced = new Promise((resolve) => { this.resolveSynced = resolve; });
  }

  /** The resourceVersion the next watch starts from ('' = the next step is a list). */
  get lastResourceVersion(): string {
    return this.resourceVersion;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abortCurrent?.();
    this.wakeSleep?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const fresh = this.resourceVersion === '';
      if (fresh) {
        const listed = await this.relist();
        if (listed === 'not served') break;
        if (listed === 'failed') {
          await this.backoff();
          continue;
        }
      }
      const started = Date.now();
      const outcome = await this.watchOnce();
      const lasted = Date.now() - started;
      if (outcome.kind === 'stopped' || this.stopped) break;
      this.hooks.onRestart(outcome.kind);
      switch (outcome.kind) {
        case 'expired':
          // The history we would resume from is gone: only a new list is consistent.
          this.log.warn('watch expired, relisting', { resourceVersion: this.resourceVersion, reason: outcome.message });
          this.resourceVersion = '';
          // Expired right after a list: the server's history is broken; do not hammer it.
          if (fresh && outcome.events <= 1) await this.backoff();
          break;
        case 'closed':
          this.log.debug('watch closed by the server, resuming', { resourceVersion: this.resourceVersion, events: outcome.events });
          // A server that closes every watch at once must not make us spin.
          if (outcome.events === 0 && lasted < 1000) await this.backoff();
          else this.failures = 0;
          break;
        case 'inactive':
          this.log.warn('watch silent too long, reconnecting', { resourceVersion: this.resourceVersion, silentMs: this.opts.inactivityMs });
          break;
        case 'error':
          // A watch that worked for a while (events or bookmarks arrived) was healthy: this is
          // a new first failure, not the next of a series.
          if (lasted >= HEALTHY_WATCH_MS || this.lastWatchEvents > 0) this.failures = 0;
          this.log.warn('watch failed, resuming after backoff', { resourceVersion: this.resourceVersion, error: describe(outcome.err) });
          await this.backoff();
          break;
      }
    }
    this.flush();
  }

  /** Lists every object and replaces the kind's contents with them. */
  private async relist(): Promise<'ok' | 'failed' | 'not served'> {
    const controller = new AbortController();
    this.abortCurrent = () => controller.abort();
    const timer = setTimeout(() => controller.abort(), this.opts.listTimeoutMs);
    const started = Date.now();
    try {
      const list = await this.client.list(controller.signal);
      if (this.stopped) return 'failed';
      this.replaceAll(list.items);
      this.resourceVersion = list.resourceVersion;
      this.hooks.onList('ok');
      this.log.info('listed', { objects: list.items.length, resourceVersion: list.resourceVersion, ms: Date.now() - started });
      return 'ok';
    } catch (err) {
      if (this.stopped) return 'failed';
      if (this.opts.optional && (isStatus(err, 404) || isStatus(err, 403))) {
        this.replaceAll([]);
        if (isStatus(err, 404)) this.log.info('not served by this API server: none, and not watched', { error: describe(err) });
        else this.log.warn('not allowed to list: none, and not watched; give the ClusterRole list and watch on it (manifests/deploy/rbac.yaml)', { error: describe(err) });
        return 'not served';
      }
      this.hooks.onList('error');
      this.log.warn('list failed, retrying after backoff', { error: controller.signal.aborted ? `no answer in ${this.opts.listTimeoutMs} ms` : describe(err) });
      return 'failed';
    } finally {
      clearTimeout(timer);
      this.abortCurrent = undefined;
    }
  }

  private replaceAll(items: readonly unknown[]): void {
    this.sink.replace(this.kind, items);
    if (!this.syncedOnce) {
      this.syncedOnce = true;
      this.sink.markSynced(this.kind);
      this.resolveSynced();
    }
  }

  private watchOnce(): Promise<Outcome> {
    return new Promise<Outcome>((resolve) => {
      let settled = false;
      let events = 0;
      let handle: { abort(): void } | undefined;
      const finish = (o: Outcome): void => {
        if (settled) return;
        settled = true;
        this.lastWatchEvents = events;
        clearTimeout(idle);
        this.abortCurrent = undefined;
        this.flush();
        handle?.abort();
        resolve(o);
      };
      // Also covers a server that accepts the connection but never answers.
      const idle = setTimeout(() => finish({ kind: 'inactive' }), this.opts.inactivityMs);
      this.abortCurrent = () => finish({ kind: 'stopped' });
      const [lo, hi] = this.opts.watchTimeoutSeconds;
      const timeoutSeconds = Math.round(lo + Math.random() * (hi - lo));
      this.log.debug('watching', { resourceVersion: this.resourceVersion, timeoutSeconds });
      const onEvent = (type: string, obj: unknown): void => {
        if (settled) return;
        idle.refresh();
        events++;
        const stop = this.handleEvent(type, obj, events);
        if (stop) finish(stop);
      };
      const onDone = (err: unknown): void => {
        if (err == null) finish({ kind: 'closed', events });
        else if (isStatus(err, 410)) finish({ kind: 'expired', message: describe(err), events });
        else finish({ kind: 'error', err });
      };
      this.client.watch(this.resourceVersion, timeoutSeconds, onEvent, onDone).then(
        (h) => { handle = h; if (settled) h.abort(); },
        (err: unknown) => onDone(err ?? new Error('watch failed')),
      );
    });
  }

  /** Applies one watch event; returns an outcome when the event ends this watch. */
  private handleEvent(type: string, obj: unknown, events: number): Outcome | undefined {
    this.hooks.onEvent(type);
    if (type === 'ERROR') {
      const status = isRecord(obj) ? obj : {};
      const message = `${String(status.reason ?? 'error')}: ${String(status.message ?? JSON.stringify(obj))}`;
      if (status.code === 410) return { kind: 'expired', message, events };
      return { kind: 'error', err: new Error(`watch ERROR event ${String(status.code ?? '')} ${message}`) };
    }
    const meta = isRecord(obj) && isRecord(obj.metadata) ? obj.metadata : undefined;
    const rv = meta && typeof meta.resourceVersion === 'string' ? meta.resourceVersion : undefined;
    if (!meta || rv === undefined) {
      // The client hands us lines without `object` (or a non-object) as they are.
      this.log.warn('watch event without an object or resourceVersion, ignored', { type });
      return undefined;
    }
    switch (type) {
      case 'ADDED':
      case 'MODIFIED':
        this.enqueue({ del: false, obj });
        break;
      case 'DELETED': {
        const name = typeof meta.name === 'string' ? meta.name : '';
        if (!name) {
          this.log.warn('DELETED event without metadata.name, ignored', { resourceVersion: rv });
          return undefined;
        }
        this.enqueue({ del: true, namespace: typeof meta.namespace === 'string' ? meta.namespace : '', name });
        break;
      }
      case 'BOOKMARK':
        break;
      default:
        this.log.warn('unknown watch event type, ignored', { type, resourceVersion: rv });
        return undefined;
    }
    if (this.log.enabled('debug') && type !== 'BOOKMARK') {
      this.log.debug('event', { type, namespace: meta.namespace, name: meta.name, resourceVersion: rv });
    }
    this.resourceVersion = rv;
    return undefined;
  }

  /** Events that arrive together (a burst, the backlog after a reconnect) reach the sink as
   *  one batch, so consumers see one change for them instead of one each. */
  private enqueue(p: Pending): void {
    this.pending.push(p);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    try {
      this.sink.batch(() => {
        for (const p of batch) {
          if (p.del) this.sink.delete(this.kind, p.namespace, p.name);
          else this.sink.apply(this.kind, p.obj);
        }
      });
    } catch (err) {
      // The catalog rejects bad objects itself; reaching here is a bug there, not a reason to
      // stop watching.
      this.log.error('the catalog failed to apply watch events', { events: batch.length, error: describe(err) });
    }
  }

  private backoff(): Promise<void> {
    this.failures++;
    const cap = Math.min(this.opts.backoffMaxMs, this.opts.backoffInitialMs * 2 ** (this.failures - 1));
    // Jitter keeps the agents of a whole cluster from hitting a recovering API server together.
    const delay = cap / 2 + Math.random() * (cap / 2);
    return new Promise((resolve) => {
      if (this.stopped) return resolve();
      const t = setTimeout(done, delay);
      function done(): void { clearTimeout(t); resolve(); }
      this.wakeSleep = () => { this.wakeSleep = undefined; done(); };
    });
  }
}

function isStatus(err: unknown, code: number): boolean {
  return isRecord(err) && (err.statusCode === code || err.code === code);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

export function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown; statusCode?: unknown }).statusCode ?? (err as { code?: unknown }).code;
    const first = err.message.split('\n')[0];
    return code !== undefined && !first.includes(String(code)) ? `${String(code)} ${first}` : first;
  }
  return String(err);
}
