// The main thread's side of `--workers N`: N-1 worker threads beside the main thread, which
// keeps serving its own share. The main thread owns the catalog, the zone, the cache and the
// forwarders; a worker answers from the shared answer table and hands every other question
// here, where the route's handler answers it and the answer is published (publisher.ts) for
// the next asker on any thread. Workers that die are started again. TCP stays on the main thread.
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { ListenAddress } from '../../common/http-server.js';
import type { LogFormat, LogLevel, Logger } from '../../common/log.js';
import type { CatalogView } from '../../cluster/types.js';
import type { AclOptions } from '../acl.js';
import type { AnswerSink, AnswerTarget, HandlerResult, QueryHandler, Transport } from '../handler.js';
import type { QuerySnapshot } from '../query-metrics.js';
import { serverLabel } from '../server.js';
import type { Query } from '../wire.js';
import { AnswerTable } from './answer-table.js';
import { TablePublisher } from './publisher.js';
import { ownBytes, type FromWorker, type ToWorker, type WorkerInit, type WorkerRoute } from './protocol.js';

/** A listen address as the pool serves it: bound by the main thread, with its handler. */
export interface PoolRoute {
  readonly key: string;
  readonly addr: ListenAddress;
  readonly handler: QueryHandler;
}

export interface PoolOptions {
  /** Worker threads to start (the main thread is one more). */
  readonly threads: number;
  readonly acl: AclOptions;
  readonly clusterZone: string;
  readonly cacheServer: string;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
  readonly tableBytes?: number;
}

const METRICS_TIMEOUT_MS = 1000;

/** The worker's script: beside this module once compiled. Run from the TypeScript sources (an
 *  in-process test under vitest), this module is a .ts file and the worker is the compiled one
 *  in dist/: a thread cannot load the sources. */
function workerScript(): URL {
  if (!import.meta.url.endsWith('.ts')) return new URL('./worker.js', import.meta.url);
  const compiled = new URL('../../dist/dns/workers/worker.js', import.meta.url);
  if (!existsSync(compiled)) throw new Error(`${compiled.pathname} is missing: build first (make build)`);
  return compiled;
}
const RESTART_MS = 1000;

interface Thread {
  worker: Worker;
  /** Its counts at the last scrape (kept when it dies, so counters never go back). */
  last?: QuerySnapshot;
}

interface Served {
  readonly route: number;
  readonly handler: QueryHandler;
  readonly transport: Transport;
}

export class WorkerPool implements AnswerSink {
  private readonly publisher: TablePublisher;
  private readonly threads: Thread[] = [];
  /** Counts of threads that died, summed into every scrape. */
  private readonly retired: QuerySnapshot[] = [];
  private readonly ids = new Map<string, number>();
  private served = new Map<number, Served>();
  private routes: WorkerRoute[] = [];
  private cacheServer: string;
  private readonly asks = new Map<number, (s: QuerySnapshot | undefined) => void>();
  private nextAsk = 1;
  private stopping = false;

  private constructor(private readonly opts: PoolOptions, catalog: CatalogView, private readonly log: Logger) {
    this.publisher = new TablePublisher(AnswerTable.create(opts.tableBytes), catalog);
    this.cacheServer = opts.cacheServer;
  }

  /** Where the route handlers publish (the chain's AnswerSink). */
  target(msg: Buffer, q: Query): AnswerTarget | undefined {
    return this.publisher.target(msg, q);
  }

  /** Starts `opts.threads` workers serving `routes` (already bound by the main thread, with
   *  SO_REUSEPORT) and waits until each has bound them too. */
  static async start(opts: PoolOptions, routes: readonly PoolRoute[], catalog: CatalogView, log: Logger): Promise<WorkerPool> {
    const pool = new WorkerPool(opts, catalog, log);
    pool.setRoutes(routes, opts.cacheServer);
    try {
      await Promise.all(Array.from({ length: opts.threads }, (_, i) => pool.spawn(i + 1)));
    } catch (err) {
      await pool.stop();
      throw err;
    }
    return pool;
  }

  /** A reload: the table is emptied, and the workers follow the new addresses. */
  async reroute(routes: readonly PoolRoute[], cacheServer: string): Promise<void> {
    this.setRoutes(routes, cacheServer);
    await Promise.all(this.threads.map((t) => this.request(t.worker, (id) => ({ t: 'routes', id, routes: this.routes, cacheServer }))));
  }

  /** Every worker's per-query counts (and the dead ones'), for /metrics. */
  async snapshots(): Promise<QuerySnapshot[]> {
    const live = await Promise.all(this.threads.map(async (t) => {
      const s = await this.ask(t.worker);
      if (s) t.last = s;
      return t.last;
    }));
    return [...this.retired, ...live.filter((s): s is QuerySnapshot => s !== undefined)];
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.publisher.close();
    await Promise.all(this.threads.map(async (t) => {
      const gone = new Promise<void>((resolve) => t.worker.once('exit', () => resolve()));
      t.worker.postMessage({ t: 'stop' } satisfies ToWorker);
      const timer = setTimeout(() => void t.worker.terminate(), 2000);
      await gone;
      clearTimeout(timer);
    }));
  }

  private setRoutes(routes: readonly PoolRoute[], cacheServer: string): void {
    this.publisher.clear();
    this.cacheServer = cacheServer;
    const served = new Map<number, Served>();
    for (const r of routes) {
      let id = this.ids.get(r.key);
      if (id === undefined) this.ids.set(r.key, (id = this.ids.size + 1));
      const transport: Transport = { proto: 'udp', family: r.addr.host.includes(':') ? '2' : '1', server: serverLabel(r.addr) };
      served.set(id, { route: id, handler: r.handler, transport });
    }
    this.served = served;
    this.routes = routes.map((r) => ({ id: this.ids.get(r.key)!, host: r.addr.host, port: r.addr.port }));
  }

  private spawn(index: number): Promise<void> {
    const init: WorkerInit = {
      index, table: this.publisher.table.sab, routes: this.routes, acl: this.opts.acl, cacheServer: this.cacheServer,
      clusterZone: this.opts.clusterZone, logLevel: this.opts.logLevel, logFormat: this.opts.logFormat,
    };
    const worker = new Worker(workerScript(), { workerData: init });
    const thread: Thread = { worker };
    this.threads.push(thread);
    return new Promise((resolve, reject) => {
      let ready = false;
      worker.on('message', (m: FromWorker) => {
        if (m.t === 'ready') {
          ready = true;
          if (m.failed.length > 0) {
            reject(new Error(`dns worker ${index} cannot listen: ${m.failed.join('; ')}`));
            return;
          }
          resolve();
          return;
        }
        this.onMessage(worker, m);
      });
      worker.on('error', (err) => this.log.error('dns worker failed', { worker: index, error: err.stack ?? String(err) }));
      worker.on('exit', (code) => {
        const i = this.threads.indexOf(thread);
        if (i >= 0) this.threads.splice(i, 1);
        if (thread.last) this.retired.push(thread.last);
        if (!ready) return reject(new Error(`dns worker ${index} exited (code ${code}) before it served`));
        if (this.stopping) return;
        // The kernel gives its share of clients to the other sockets at once; a new worker
        // takes it back.
        this.log.error('dns worker exited: starting another', { worker: index, code });
        setTimeout(() => !this.stopping && this.spawn(index).catch((err: Error) => this.log.error('dns worker not restarted', { worker: index, error: err.message })), RESTART_MS).unref();
      });
    });
  }

  /** What a worker says once it serves (its start's 'ready' is spawn's). */
  private onMessage(worker: Worker, m: Exclude<FromWorker, { t: 'ready' }>): void {
    switch (m.t) {
      case 'query':
        return this.answer(worker, m);
      case 'routed':
        if (m.failed.length > 0) this.log.error('dns worker cannot listen', { addresses: m.failed.join('; ') });
        this.asks.get(m.id)?.(undefined);
        this.asks.delete(m.id);
        return;
      case 'metrics':
        this.asks.get(m.id)?.(m.snapshot);
        this.asks.delete(m.id);
        return;
    }
  }

  /** A handed-over question, answered by its route's handler as if it had come to our socket. */
  private answer(worker: Worker, m: Extract<FromWorker, { t: 'query' }>): void {
    const s = this.served.get(m.route);
    const send = (reply: Buffer | undefined) => {
      const bytes = reply ? ownBytes(reply) : undefined;
      worker.postMessage({ t: 'reply', id: m.id, ...(bytes ? { reply: bytes } : {}) } satisfies ToWorker, bytes ? [bytes.buffer as ArrayBuffer] : []);
    };
    if (!s) return send(undefined);
    const msg = Buffer.from(m.msg.buffer, m.msg.byteOffset, m.msg.length);
    let r: HandlerResult;
    try {
      r = m.refuse ? s.handler.refuse(msg, s.transport) : this.publisher.armedFor(s.route, () => s.handler.handle(msg, s.transport, { address: m.address, port: m.port }));
    } catch (err) {
      this.log.error('udp query failed', { error: (err as Error).stack ?? String(err) });
      r = undefined;
    }
    if (r === undefined || Buffer.isBuffer(r)) send(r);
    else r.then(send, (err) => {
      this.log.error('udp query failed', { error: String(err) });
      send(undefined);
    });
  }

  /** Sends `make(id)` and waits for the worker's answer with that id (or a timeout). */
  private request(worker: Worker, make: (id: number) => ToWorker, timeoutMs = 10_000): Promise<QuerySnapshot | undefined> {
    const id = this.nextAsk++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.asks.delete(id);
        resolve(undefined);
      }, timeoutMs);
      this.asks.set(id, (s) => {
        clearTimeout(timer);
        resolve(s);
      });
      worker.postMessage(make(id));
    });
  }

  private ask(worker: Worker): Promise<QuerySnapshot | undefined> {
    return this.request(worker, (id) => ({ t: 'metrics', id }), METRICS_TIMEOUT_MS);
  }
}
