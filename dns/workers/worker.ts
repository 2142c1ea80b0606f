// A DNS worker thread: UDP sockets of its own on every listen address (SO_REUSEPORT, so the
// kernel spreads clients over the threads), answers from the shared table, and every question
// the table does not hold handed to the main thread, which answers it and publishes the answer.
// It loads no catalog and no zone: the wire parser, the table and the metric cells.
import { parentPort, workerData } from 'node:worker_threads';
import { configureLogging, logger } from '../../common/log.js';
import { buildAcl } from '../acl.js';
import type { HandlerResult, QueryHandler, Transport } from '../handler.js';
import { shuffleAddressRecords } from '../loadbalance.js';
import { PLUGIN, QueryMetrics } from '../query-metrics.js';
import type { Peer } from '../querylog.js';
import { DnsListener } from '../server.js';
import { FLAG_QR, HEADER_LEN, QTYPE, RCODE, emptyReply, parseQuery, udpLimit, WireError } from '../wire.js';
import { AnswerTable, ENTRY_CLUSTER, ENTRY_DENIAL, ENTRY_LOADBALANCE, MAX_KEY, questionKey } from './answer-table.js';
import { ownBytes, type FromWorker, type ToWorker, type WorkerInit, type WorkerRoute } from './protocol.js';

const init = workerData as WorkerInit;
const port = parentPort!;
configureLogging({ level: init.logLevel, format: init.logFormat });
const log = logger('dns').child({ worker: init.index });
const table = AnswerTable.attach(init.table);
const metrics = new QueryMetrics(init.clusterZone);
let cacheEvents = metrics.cacheEvents(init.cacheServer);
const answered = metrics.workerCells(init.index);
const acl = buildAcl(init.acl);
const aclTimer = setInterval(() => acl.refresh(), 2000);
aclTimer.unref();

/** Questions handed to the main thread, by id; the client retries one that is never answered. */
const pending = new Map<number, { resolve: (b: Buffer | undefined) => void; at: number }>();
let nextId = 1;
const PENDING_MS = 5000;
const sweep = setInterval(() => {
  const old = Date.now() - PENDING_MS;
  for (const [id, p] of pending) if (p.at < old) {
    pending.delete(id);
    p.resolve(undefined);
  }
}, 1000);
sweep.unref();

function post(m: FromWorker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(m, transfer);
}

function relay(route: number, msg: Buffer, from: Peer | undefined, refuse: boolean): Promise<Buffer | undefined> {
  const id = nextId++;
  answered.main.value++;
  const bytes = ownBytes(msg);
  return new Promise((resolve) => {
    pending.set(id, { resolve, at: Date.now() });
    post({ t: 'query', id, route, msg: bytes, address: from?.address ?? '', port: from?.port ?? 0, refuse }, [bytes.buffer as ArrayBuffer]);
  });
}

const key = new Uint8Array(MAX_KEY);

/** One route's queries: the table first, the main thread for the rest. */
class TableHandler implements QueryHandler {
  constructor(private readonly route: number) {}

  handle(msg: Buffer, t: Transport, from?: Peer): HandlerResult {
    const t0 = performance.now();
    // Runts and responses get silence, as on the main thread.
    if (msg.length < HEADER_LEN || (msg.readUInt16BE(2) & FLAG_QR) !== 0) return undefined;
    if (from && !acl.allows(from.address)) return relay(this.route, msg, from, true);
    let q;
    try {
      q = parseQuery(msg);
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      // FORMERR here, as the main thread answers it: a flood of garbage handed over would queue
      // behind it and delay the real questions.
      const reply = emptyReply(msg, undefined, RCODE.FORMERR);
      metrics.observe(t, false, PLUGIN.none, 0, RCODE.FORMERR, msg.length, reply.length, (performance.now() - t0) / 1000);
      return reply;
    }
    // What the table holds is an answer to a plain query; the rest is the main thread's.
    if (q.opcode !== 0 || (q.edns && q.edns.version > 0) || q.qtype === QTYPE.AXFR || q.qtype === QTYPE.IXFR) return relay(this.route, msg, from, false);
    const n = questionKey(msg, q, this.route, key);
    const s = table.serve(msg, q, key, n, udpLimit(q), Date.now());
    if (!s) return relay(this.route, msg, from, false);
    const reply = s.reply;
    answered.table.value++;
    if (s.flags & ENTRY_LOADBALANCE) shuffleAddressRecords(reply, q.questionEnd);
    if (s.plugin === PLUGIN.cache) cacheEvents.hit(s.flags & ENTRY_DENIAL ? 'denial' : 'success');
    metrics.observe(t, (s.flags & ENTRY_CLUSTER) !== 0, s.plugin, q.qtype, reply.readUInt16BE(2) & 0xf, msg.length, reply.length, (performance.now() - t0) / 1000);
    return reply;
  }

  /** Not called: this listener has no ACL of its own; `handle` applies it. */
  refuse(): Buffer | undefined {
    return undefined;
  }
}

const listeners = new Map<number, { route: WorkerRoute; listener: DnsListener }>();

/** Binds the routes not bound yet, closes the ones gone; returns the addresses that failed. */
async function applyRoutes(routes: readonly WorkerRoute[]): Promise<string[]> {
  const failed: string[] = [];
  const wanted = new Map(routes.map((r) => [r.id, r]));
  for (const [id, { route, listener }] of [...listeners]) {
    const now = wanted.get(id);
    if (now && now.host === route.host && now.port === route.port) continue;
    listeners.delete(id);
    await listener.stop();
  }
  for (const r of routes) {
    if (listeners.has(r.id)) continue;
    const listener = new DnsListener({ host: r.host, port: r.port }, new TableHandler(r.id), log, { reusePort: true, udpOnly: true });
    try {
      await listener.start();
      listeners.set(r.id, { route: r, listener });
    } catch (err) {
      failed.push(`${r.host}:${r.port}: ${(err as Error).message}`);
    }
  }
  return failed;
}

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'reply': {
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      p.resolve(m.reply ? Buffer.from(m.reply.buffer, m.reply.byteOffset, m.reply.length) : undefined);
      return;
    }
    case 'routes':
      cacheEvents = metrics.cacheEvents(m.cacheServer);
      void applyRoutes(m.routes).then((failed) => post({ t: 'routed', id: m.id, failed }));
      return;
    case 'metrics':
      post({ t: 'metrics', id: m.id, snapshot: metrics.snapshot() });
      return;
    case 'stop':
      clearInterval(aclTimer);
      clearInterval(sweep);
      void Promise.all([...listeners.values()].map((l) => l.listener.stop())).then(() => port.close());
      return;
  }
});

void applyRoutes(init.routes).then((failed) => post({ t: 'ready', failed }));
