// An HTTP server speaking the Kubernetes API for Services, EndpointSlices, Nodes, Pods and
// Namespaces over a versioned in-memory store: discovery, list/watch, get, create, update, patch
// and delete, enough for @kubernetes/client-node and kubectl. Tests and benchmarks drive it
// through this class: they write objects, compact the history, drop watch connections or take the
// server down, and point clients at it through a kubeconfig file.
import http from 'node:http';
import type { Socket } from 'node:net';
import { writeFile } from 'node:fs/promises';
import yaml from 'js-yaml';
import { Logger, logger as makeLogger } from '../common/log.js';
import { discover } from './discovery.js';
import { checkFields, parseFieldValidation } from './field-validation.js';
import { openapiV2, openapiV3 } from './openapi.js';
import { decodeProtobufBody } from './protobuf-body.js';
import { PatchError, type Json } from './patch/errors.js';
import { UnsupportedPatchType, applyPatch, patchTypeOf } from './patch/patch.js';
import { parseResourcePath, type ResourcePath, type ResourceType } from './resources.js';
import { ConflictError, ExpiredError, ObjectStore, type ChangeEvent, type StoredObject } from './store.js';
import { fieldSelector, labelSelector } from './selectors.js';
import { table, tableRequest, type TableRequest } from './tables.js';
import { InvalidError, fieldMessage, validate } from './validate.js';

export interface TestApiServerOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1: the server is for loopback only. */
  host?: string;
  /** How often a watch that allows bookmarks gets one. Default 60 s, as kube-apiserver. */
  bookmarkIntervalMs?: number;
  /** Events kept per resource type before the oldest are compacted. */
  historyLimit?: number;
  /** When set, every request must carry `Authorization: Bearer <token>`. */
  token?: string;
  /** `legacy`: answer /api and /apis with plain JSON only, as servers before aggregated
   *  discovery did (clients must fall back to the per-group-version documents). */
  discovery?: 'aggregated' | 'legacy';
  /** Resources (plurals) answered 404 as by an older cluster that lacks them (`servicecidrs`
   *  before Kubernetes 1.33); discovery still lists them. */
  unserved?: readonly string[];
  log?: Logger;
}

/** One request the server answered, for tests that check what the client did. */
export interface RequestRecord {
  readonly method: string;
  readonly path: string;
  readonly accept?: string;
  readonly verb: 'list' | 'watch' | 'get' | 'create' | 'update' | 'patch' | 'delete' | 'other';
  readonly resource?: string;
  readonly query: Readonly<Record<string, string>>;
  /** The HTTP status answered; 0 until the response is complete (an open watch stays at 0). */
  readonly status: number;
}

interface Watcher {
  readonly type: ResourceType;
  /** The URL's namespace and the query's selectors. */
  readonly match: (o: StoredObject) => boolean;
  /** Events as one-row Tables (kubectl get -w); the first carries the column definitions. */
  readonly table?: TableRequest;
  columnsSent: boolean;
  readonly res: http.ServerResponse;
  frozen: boolean;
  readonly timers: NodeJS.Timeout[];
}

const JSON_TYPE = 'application/json';
const VERSION = {
  major: '1', minor: '32', gitVersion: 'v1.32.0-kube-dataplane-test', gitCommit: '', gitTreeState: 'clean',
  buildDate: '2026-12-03T00:00:00Z', goVersion: '', compiler: 'node',
  platform: `${process.platform}/${process.arch === 'x64' ? 'amd64' : process.arch}`,
};

export class TestApiServer {
  readonly store: ObjectStore;
  readonly requests: RequestRecord[] = [];
  private server: http.Server;
  private readonly sockets = new Set<Socket>();
  private readonly watchers = new Set<Watcher>();
  private readonly bookmarkIntervalMs: number;
  private readonly log: Logger;
  private host: string;
  private port: number;
  private down = false;

  private constructor(private readonly opts: TestApiServerOptions) {
    this.store = new ObjectStore({ historyLimit: opts.historyLimit });
    this.bookmarkIntervalMs = opts.bookmarkIntervalMs ?? 60_000;
    this.log = opts.log ?? makeLogger('test-apiserver');
    this.host = opts.host ?? '127.0.0.1';
    this.port = opts.port ?? 0;
    this.server = this.makeServer();
    this.store.onChange((type, event) => this.notify(type, event));
  }

  static async start(opts: TestApiServerOptions = {}): Promise<TestApiServer> {
    const s = new TestApiServer(opts);
    await s.listen();
    return s;
  }

  get url(): string {
    const host = this.host.includes(':') ? `[${this.host}]` : this.host;
    return `http://${host}:${this.port}`;
  }

  get resourceVersion(): number {
    return this.store.resourceVersion;
  }

  create(obj: unknown): Record<string, unknown> { return this.store.create(obj); }
  update(obj: unknown): Record<string, unknown> { return this.store.update(obj); }
  apply(obj: unknown): Record<string, unknown> { return this.store.apply(obj); }
  delete(kind: string, namespace: string | undefined, name: string): Record<string, unknown> {
    return this.store.delete(kind, namespace, name);
  }
  /** Forgets history up to `rv` (default: now): older resourceVersions get 410 Gone. */
  compact(rv?: number): void { this.store.compact(rv); }

  /** Number of answered requests of one verb (and resource, e.g. `services`). */
  count(verb: RequestRecord['verb'], resource?: string): number {
    return this.requests.filter((r) => r.verb === verb && (resource === undefined || r.resource === resource)).length;
  }

  /** Open watch streams (frozen ones included). */
  get watchCount(): number {
    return this.watchers.size;
  }

  /** Destroys the socket of every open watch, as a network cut or a restarting apiserver would. */
  dropConnections(): void {
    for (const w of [...this.watchers]) w.res.socket?.destroy();
  }

  /** Every open watch goes silent but stays connected (a half-dead TCP connection): no more
   *  events or bookmarks on it. New requests are served normally. */
  freezeWatches(): void {
    for (const w of this.watchers) {
      w.frozen = true;
      for (const t of w.timers) clearTimeout(t);
    }
  }

  /** Writes one raw line to every open, unfrozen watch of `kind` (e.g. a malformed event), to
   *  test what a client does with what a real server should never send. */
  injectWatchLine(kind: string, line: string): void {
    for (const w of this.watchers) if (!w.frozen && w.type.kind === kind) w.res.write(line.endsWith('\n') ? line : line + '\n');
  }

  /** Down: the port refuses connections and every open one is cut. Up: listens on the same port. */
  async setDown(down: boolean): Promise<void> {
    if (down === this.down) return;
    this.down = down;
    if (down) {
      await this.close();
    } else {
      this.server = this.makeServer();
      await this.listen();
    }
  }

  /** Writes a kubeconfig whose current context is this server. Plain http:// needs
   *  `insecure-skip-tls-verify` with @kubernetes/client-node (1.4 and 2.0 refuse http otherwise). */
  async writeKubeconfig(path: string): Promise<void> {
    const config = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server: this.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'test', user: { token: this.opts.token ?? 'test-token' } }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: 'test' } }],
      'current-context': 'test',
    };
    await writeFile(path, yaml.dump(config));
  }

  async stop(): Promise<void> {
    this.down = true;
    await this.close();
  }

  private makeServer(): http.Server {
    const server = http.createServer((req, res) => this.handle(req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    return server;
  }

  private listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, this.host, () => {
        this.server.off('error', reject);
        const addr = this.server.address();
        if (addr && typeof addr === 'object') this.port = addr.port;
        resolve();
      });
    });
  }

  private close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      for (const w of this.watchers) for (const t of w.timers) clearTimeout(t);
      this.watchers.clear();
      for (const s of this.sockets) s.destroy();
    });
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const query = Object.fromEntries(url.searchParams);
    const method = req.method ?? 'GET';
    const parsed = parseResourcePath(url.pathname);
    const target = parsed && !this.opts.unserved?.includes(parsed.type.plural) ? parsed : undefined;
    const watch = query.watch === '1' || query.watch === 'true';
    const verb: RequestRecord['verb'] = !target ? 'other'
      : method === 'GET' ? (target.name ? 'get' : watch ? 'watch' : 'list')
      : method === 'POST' && !target.name ? 'create'
      : method === 'PUT' && target.name ? 'update'
      : method === 'PATCH' && target.name ? 'patch'
      : method === 'DELETE' && target.name ? 'delete' : 'other';
    const record = {
      method, path: url.pathname, accept: req.headers.accept, verb, resource: target?.type.plural, query, status: 0,
    };
    this.requests.push(record);
    res.on('finish', () => (record.status = res.statusCode));
    this.log.debug('request', { method, path: url.pathname, query: url.search });

    if (this.opts.token !== undefined && req.headers.authorization !== `Bearer ${this.opts.token}`) {
      return sendStatus(res, 401, 'Unauthorized', 'Unauthorized');
    }
    // The Kubernetes version whose API this server imitates (discovery, tables, fieldValidation); a
    // kubectl that picks its version by the server's (gcloud's dispatcher) takes 1.32 then.
    if (url.pathname === '/version') return sendJson(res, 200, VERSION);
    if (url.pathname === '/healthz' || url.pathname === '/readyz' || url.pathname === '/livez') {
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok');
      return;
    }
    const discoveryAccept = this.opts.discovery === 'legacy' ? undefined : req.headers.accept;
    const discovery = method === 'GET' ? discover(url.pathname, discoveryAccept, `${this.host}:${this.port}`) : undefined;
    if (discovery) {
      res.writeHead(200, { 'Content-Type': discovery.contentType, Vary: 'Accept' }).end(JSON.stringify(discovery.body));
      return;
    }
    const openapi = method === 'GET' ? openapiV3(url.pathname) : undefined;
    if (openapi !== undefined) {
      res.writeHead(200, { 'Content-Type': JSON_TYPE }).end(openapi);
      return;
    }
    const openapi2 = method === 'GET' ? openapiV2(url.pathname, req.headers.accept) : undefined;
    if (openapi2) {
      res.writeHead(200, { 'Content-Type': openapi2.contentType }).end(openapi2.body);
      return;
    }
    if (!target) return sendStatus(res, 404, 'NotFound', `the server could not find the requested resource (${url.pathname})`);

    try {
      switch (verb) {
        case 'list': return this.list(res, target, query, tableRequest(req.headers.accept, query.includeObject));
        case 'watch': return this.watch(req, res, target, query, tableRequest(req.headers.accept, query.includeObject));
        case 'get': return this.get(res, target, tableRequest(req.headers.accept, query.includeObject));
        case 'create':
        case 'update':
        case 'patch':
        case 'delete': return this.write(req, res, target, verb, query);
        default: return sendStatus(res, 405, 'MethodNotAllowed', `${method} is not supported on ${url.pathname}`);
      }
    } catch (err) {
      if (err instanceof ExpiredError) return sendStatus(res, 410, 'Expired', err.message);
      return sendError(res, err);
    }
  }

  private get(res: http.ServerResponse, target: ResourcePath, asTable: TableRequest | undefined): void {
    const obj = this.store.get(target.type, target.namespace, target.name!);
    if (!obj) return sendStatus(res, 404, 'NotFound', `${target.type.plural} "${target.name}" not found`);
    if (asTable) {
      return sendJson(res, 200, table(target.type, asTable, [obj.object], { resourceVersion: String(obj.rv) }, Date.now()));
    }
    res.writeHead(200, { 'Content-Type': JSON_TYPE }).end(obj.json);
  }

  private list(
    res: http.ServerResponse, target: ResourcePath, query: Record<string, string>, asTable: TableRequest | undefined,
  ): void {
    const { type } = target;
    const limit = query.limit ? Number(query.limit) : 0;
    if (!Number.isInteger(limit) || limit < 0) return sendStatus(res, 400, 'BadRequest', `limit ${JSON.stringify(query.limit)} is not a non-negative integer`);
    let rv = this.store.resourceVersion;
    let start = 0;
    let all: readonly StoredObject[];
    if (query.continue) {
      const token = decodeContinue(query.continue);
      if (!token) return sendStatus(res, 400, 'BadRequest', 'continue token is not valid');
      rv = token.rv;
      start = token.start;
      try {
        all = this.store.listAt(type, rv);
      } catch (err) {
        if (!(err instanceof ExpiredError)) throw err;
        return sendStatus(res, 410, 'Expired', 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.');
      }
    } else if (query.resourceVersionMatch === 'Exact' && query.resourceVersion) {
      rv = Number(query.resourceVersion);
      if (!Number.isInteger(rv)) return sendStatus(res, 400, 'BadRequest', `resourceVersion ${JSON.stringify(query.resourceVersion)} is not valid`);
      all = this.store.listAt(type, rv); // ExpiredError → 410, as for a compacted etcd revision
    } else {
      // No resourceVersion, "0" or NotOlderThan: the current state satisfies all of them.
      all = this.store.list(type);
    }
    const selected = all.filter(matcher(target, query));
    const page = limit > 0 ? selected.slice(start, start + limit) : selected.slice(start);
    const next = limit > 0 && start + limit < selected.length ? encodeContinue({ rv, start: start + limit }) : undefined;
    const metadata = { resourceVersion: String(rv), ...(next ? { continue: next } : {}) };
    if (asTable) return sendJson(res, 200, table(type, asTable, page.map((o) => o.object), metadata, Date.now()));
    const meta = JSON.stringify(metadata);
    res.writeHead(200, { 'Content-Type': JSON_TYPE });
    res.end(`{"kind":"${type.listKind}","apiVersion":"${type.apiVersion}","metadata":${meta},"items":[${page.map((o) => o.json).join(',')}]}`);
  }

  private watch(
    req: http.IncomingMessage, res: http.ServerResponse, target: ResourcePath, query: Record<string, string>,
    asTable: TableRequest | undefined,
  ): void {
    const { type } = target;
    const fromRaw = query.resourceVersion ?? '';
    const from = fromRaw === '' || fromRaw === '0' ? undefined : Number(fromRaw);
    if (from !== undefined && !Number.isInteger(from)) return sendStatus(res, 400, 'BadRequest', `resourceVersion ${JSON.stringify(fromRaw)} is not valid`);
    const match = matcher(target, query); // a bad selector: 400, before the stream starts
    res.writeHead(200, { 'Content-Type': JSON_TYPE, 'Cache-Control': 'no-cache' });
    res.flushHeaders();
    let backlog: readonly ChangeEvent[] | readonly StoredObject[];
    try {
      // No resourceVersion: the current state as ADDED events, then the changes.
      backlog = from === undefined ? this.store.list(type) : this.store.eventsSince(type, from);
    } catch (err) {
      if (!(err instanceof ExpiredError)) throw err;
      // kube-apiserver answers 200 and puts the 410 in the stream as an ERROR event, then ends it.
      res.end(JSON.stringify({ type: 'ERROR', object: statusObject(410, 'Expired', err.message) }) + '\n');
      return;
    }
    const w: Watcher = { type, match, table: asTable, columnsSent: false, res, frozen: false, timers: [] };
    for (const item of backlog) {
      const seen = 'type' in item ? seenAs(match, item) : match(item) ? 'ADDED' : undefined;
      if (seen) res.write(this.eventLineFor(w, seen, 'type' in item ? item.current : item));
    }
    this.watchers.add(w);
    const end = (): void => {
      for (const t of w.timers) clearTimeout(t);
      this.watchers.delete(w);
    };
    res.on('close', end);
    if (query.allowWatchBookmarks === 'true' || query.allowWatchBookmarks === '1') {
      const tick = (): void => {
        if (w.frozen || !this.watchers.has(w)) return;
        res.write(this.bookmarkLine(type));
        w.timers[0] = setTimeout(tick, this.bookmarkIntervalMs);
      };
      w.timers[0] = setTimeout(tick, this.bookmarkIntervalMs);
    }
    const timeout = Number(query.timeoutSeconds);
    if (timeout > 0) {
      w.timers[1] = setTimeout(() => {
        end();
        if (!w.frozen) res.end();
      }, timeout * 1000);
    }
    req.on('close', end);
  }

  private bookmarkLine(type: ResourceType): string {
    return JSON.stringify({ type: 'BOOKMARK', object: { kind: type.kind, apiVersion: type.apiVersion, metadata: { resourceVersion: String(this.store.resourceVersion) } } }) + '\n';
  }

  private notify(type: ResourceType, event: ChangeEvent): void {
    let line: string | undefined;
    for (const w of this.watchers) {
      if (w.frozen || w.type !== type) continue;
      const seen = seenAs(w.match, event);
      if (seen === undefined) continue;
      if (w.table || seen !== event.type) {
        w.res.write(this.eventLineFor(w, seen, event.current));
        continue;
      }
      line ??= eventLine(event.type, event.current);
      w.res.write(line);
    }
  }

  private eventLineFor(w: Watcher, type: string, obj: StoredObject): string {
    if (!w.table) return eventLine(type, obj);
    const rows = table(w.type, w.table, [obj.object], { resourceVersion: String(obj.rv) }, Date.now(), !w.columnsSent);
    w.columnsSent = true;
    return `${JSON.stringify({ type, object: rows })}
`;
  }

  private write(
    req: http.IncomingMessage, res: http.ServerResponse, target: ResourcePath, verb: 'create' | 'update' | 'patch' | 'delete',
    query: Record<string, string>,
  ): void {
    if (verb === 'delete') {
      const obj = this.store.delete(target.type.kind, target.namespace, target.name!);
      return sendJson(res, 200, obj);
    }
    const { type } = target;
    readBody(req).then((raw) => {
      const input = this.writtenObject(target, verb, req.headers['content-type'], raw);
      // As kube-apiserver: strict decoding first (400), then validation (422).
      const warnings = checkFields(type.kind, type.version, input, parseFieldValidation(query.fieldValidation));
      const meta = input.metadata as Record<string, unknown>;
      const invalid = validate(type.kind, input);
      if (invalid.length) throw new InvalidError(type.kind, type.group, String(meta.name), invalid);
      if (warnings.length) res.setHeader('Warning', warnings);
      // A client that names a resourceVersion (a PUT of what it read, a patch that sets it)
      // writes only over that version: optimistic concurrency, 409 Conflict otherwise.
      const rv = meta.resourceVersion;
      const expectResourceVersion = typeof rv === 'string' && rv !== '' ? rv : undefined;
      const obj = verb === 'create' ? this.store.create(input) : this.store.update(input, { expectResourceVersion });
      sendJson(res, verb === 'create' ? 201 : 200, obj);
    }).catch((err: unknown) => {
      sendError(res, err instanceof SyntaxError ? new TypeError(`the body is not JSON: ${err.message}`) : err);
    });
  }

  /** The object a POST or PUT carries, or the stored object with a PATCH applied; its name and
   *  namespace must be the URL's. */
  private writtenObject(
    target: ResourcePath, verb: 'create' | 'update' | 'patch', contentType: string | undefined, raw: Buffer,
  ): Record<string, unknown> {
    const { type } = target;
    let body: Record<string, unknown>;
    if (verb === 'patch') {
      const patchType = patchTypeOf(contentType);
      const stored = this.store.get(type, target.namespace, target.name!);
      if (!stored) throw new ConflictError(`${type.plural} "${target.name}" not found`, 404);
      const patched = applyPatch(patchType, type.kind, stored.object as Json, raw.toString('utf8'));
      if (!isRecord(patched)) throw new PatchError('the patched object is not a JSON object', 400);
      body = patched;
    } else {
      body = decodeBody(contentType, raw);
    }
    const meta = isRecord(body.metadata) ? body.metadata : {};
    if (target.name !== undefined && meta.name !== target.name) {
      throw new TypeError(`metadata.name ${JSON.stringify(meta.name)} does not match the URL (${target.name})`);
    }
    if (target.namespace !== undefined && meta.namespace !== undefined && meta.namespace !== target.namespace) {
      throw new TypeError(`metadata.namespace ${JSON.stringify(meta.namespace)} does not match the URL (${target.namespace})`);
    }
    const namespace = target.namespace ? { namespace: target.namespace } : {};
    return { ...body, kind: type.kind, metadata: { ...meta, ...namespace } };
  }
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Starts a test API server; `stop()` closes it and every connection. */
export function startTestApiServer(opts: TestApiServerOptions = {}): Promise<TestApiServer> {
  return TestApiServer.start(opts);
}

function eventLine(type: string, obj: StoredObject): string {
  return `{"type":"${type}","object":${obj.json}}\n`;
}

/** How a watch with `match` sees an event: an object that starts or stops matching a selector is
 *  ADDED or DELETED for it, as kube-apiserver's watch cache reports it; undefined: not at all. */
function seenAs(match: (o: StoredObject) => boolean, event: ChangeEvent): ChangeEvent['type'] | undefined {
  const now = match(event.current);
  const before = event.previous !== undefined && event.type === 'MODIFIED' ? match(event.previous) : now;
  return now && before ? event.type : now ? 'ADDED' : before ? 'DELETED' : undefined;
}

/** The URL's namespace and the query's selectors; a bad selector throws TypeError (400). */
function matcher(target: ResourcePath, query: Record<string, string>): (o: StoredObject) => boolean {
  const labels = labelSelector(query.labelSelector);
  const fields = fieldSelector(query.fieldSelector);
  const inNamespace = (o: StoredObject) => target.namespace === undefined || o.namespace === target.namespace;
  return (o) => inNamespace(o) && fields(o.object) && labels(o.object);
}

/** A POST or PUT body: YAML, the protobuf of a Namespace (protobuf-body.ts says why), else JSON
 *  whatever the Content-Type says (curl's and fetch's defaults are form and text types). */
function decodeBody(contentType: string | undefined, raw: Buffer): Record<string, unknown> {
  const type = (contentType ?? '').split(';')[0].trim().toLowerCase();
  const body: unknown = type === 'application/yaml' ? yaml.load(raw.toString('utf8'))
    : type === 'application/vnd.kubernetes.protobuf' ? decodeProtobufBody(raw)
    : JSON.parse(raw.toString('utf8'));
  if (!isRecord(body)) throw new TypeError('the body is not an object');
  return body;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An error as the Status kube-apiserver would answer with. */
function sendError(res: http.ServerResponse, err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof ExpiredError) return sendStatus(res, 410, 'Expired', message);
  if (err instanceof ConflictError) return sendStatus(res, err.code, err.reason, message);
  if (err instanceof UnsupportedPatchType) return sendStatus(res, 415, 'UnsupportedMediaType', message);
  if (err instanceof InvalidError) return sendInvalid(res, err);
  if (err instanceof PatchError) return sendStatus(res, err.code, err.code === 400 ? 'BadRequest' : 'Invalid', message);
  if (err instanceof TypeError || err instanceof SyntaxError) return sendStatus(res, 400, 'BadRequest', message);
  sendStatus(res, 500, 'InternalError', message);
}

/** 422 Invalid with one cause per field, as kube-apiserver reports failed validation. */
function sendInvalid(res: http.ServerResponse, err: InvalidError): void {
  const status = statusObject(422, 'Invalid', err.message);
  const causes = err.errors.map((e) => ({ reason: 'FieldValueInvalid', message: fieldMessage(e), field: e.field }));
  status.details = { name: err.objectName, group: err.group, kind: err.kind, causes };
  sendJson(res, 422, status);
}

function statusObject(code: number, reason: string, message: string): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

function sendStatus(res: http.ServerResponse, code: number, reason: string, message: string): void {
  sendJson(res, code, statusObject(code, reason, message));
}

function sendJson(res: http.ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'Content-Type': JSON_TYPE }).end(JSON.stringify(body));
}

interface ContinueToken { rv: number; start: number }

function encodeContinue(t: ContinueToken): string {
  return Buffer.from(JSON.stringify(t)).toString('base64url');
}

function decodeContinue(s: string): ContinueToken | undefined {
  try {
    const t = JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as Partial<ContinueToken>;
    if (Number.isInteger(t.rv) && Number.isInteger(t.start) && t.start! >= 0) return t as ContinueToken;
  } catch {
    // fall through: not ours
  }
  return undefined;
}
