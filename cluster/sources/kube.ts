// Source A: the Kubernetes API, through @kubernetes/client-node 2.0.1 (pinned; 1.4.0 held
// ~13 MB more RSS at 10k services, cluster/README "Memory") — its KubeConfig (files, in-cluster
// config, tokens, client certificates, exec plugins, proxies), its generated list calls and its
// `Watch` — with one Reflector per kind (kube-reflector.ts says why not its informers).
import {
  CoreV1Api, DiscoveryV1Api, KubeConfig, NetworkingV1Api, Observable, ResponseContext, Watch,
  type ConfigurationOptions, type ObservableMiddleware,
} from '@kubernetes/client-node';
import { Counter } from 'prom-client';
import { logger as makeLogger, type Logger } from '../../common/log.js';
import { metricOnce, registry } from '../../common/metrics.js';
import type { Kind, ObjectSink, Source } from '../sink.js';
import { Reflector, type KindClient, type ListResult, type ReflectorOptions } from './kube-reflector.js';

export interface KubeSourceOptions {
  /** kubeconfig file; without it, the in-cluster config of the pod we run in. */
  kubeconfig?: string;
  kinds: readonly Kind[];
  log?: Logger;
  /** Restart a watch that received nothing (no event, no bookmark) for this long. Default 3 min:
   *  kube-apiserver sends a bookmark about every minute. */
  resyncInactivityMs?: number;
  /** Reconnect backoff: doubles per failure from `initialMs` up to `maxMs`, with jitter. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Objects per list page. Default 500, as client-go. */
  pageSize?: number;
  /** Server-side watch timeout range in seconds. Default [300, 600], as client-go. */
  watchTimeoutSeconds?: readonly [number, number];
  /** A list (all pages) that takes longer is abandoned and retried. Default 60 s. */
  listTimeoutMs?: number;
}

interface ListPage {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: unknown;
}
type ListCall = (param: { limit?: number; _continue?: string }, options?: ConfigurationOptions) => Promise<unknown>;

const API_PATHS: Record<Kind, string> = {
  Service: '/api/v1/services',
  EndpointSlice: '/apis/discovery.k8s.io/v1/endpointslices',
  Node: '/api/v1/nodes',
  Pod: '/api/v1/pods',
  Namespace: '/api/v1/namespaces',
  ServiceCIDR: '/apis/networking.k8s.io/v1/servicecidrs',
};

/** Kinds a cluster may not serve yet: ServiceCIDR is networking.k8s.io/v1 from Kubernetes 1.33. */
const OPTIONAL_KINDS: ReadonlySet<Kind> = new Set(['ServiceCIDR']);

function metrics(): { events: Counter<'kind' | 'type'>; restarts: Counter<'kind' | 'reason'>; lists: Counter<'kind' | 'result'> } {
  return {
    events: metricOnce('kubedataplane_watch_events_total', () => new Counter({
      name: 'kubedataplane_watch_events_total', help: 'Watch events received from the API server, by kind and event type.',
      labelNames: ['kind', 'type'] as const, registers: [registry],
    })),
    restarts: metricOnce('kubedataplane_watch_restarts_total', () => new Counter({
      name: 'kubedataplane_watch_restarts_total', help: 'Watches re-established, by kind and reason (closed, error, expired, inactive).',
      labelNames: ['kind', 'reason'] as const, registers: [registry],
    })),
    lists: metricOnce('kubedataplane_watch_lists_total', () => new Counter({
      name: 'kubedataplane_watch_lists_total', help: 'Complete lists of a kind (initial and relists), by result.',
      labelNames: ['kind', 'result'] as const, registers: [registry],
    })),
  };
}

/** Loads the kubeconfig file, or the in-cluster config; throws a one-line reason when neither works. */
export function loadKubeConfig(file?: string): KubeConfig {
  const kc = new KubeConfig();
  if (file) {
    try {
      kc.loadFromFile(file);
    } catch (err) {
      throw new Error(`kubeconfig ${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (!kc.getCurrentCluster()) throw new Error(`kubeconfig ${file}: the current context names no cluster`);
  } else {
    if (!process.env.KUBERNETES_SERVICE_HOST || !process.env.KUBERNETES_SERVICE_PORT) {
      throw new Error('no --kubeconfig given and not running in a pod (KUBERNETES_SERVICE_HOST/PORT unset); give --kubeconfig FILE or --manifests DIR');
    }
    kc.loadFromCluster();
  }
  return kc;
}

export class KubeSource implements Source {
  private readonly log: Logger;
  private readonly reflectors: Reflector[] = [];
  private readonly stopController = new AbortController();

  constructor(private readonly opts: KubeSourceOptions) {
    this.log = (opts.log ?? makeLogger('cluster')).child({ source: 'kube' });
  }

  /** Resolves when every kind has been listed once. */
  get synced(): Promise<void> {
    return Promise.all(this.reflectors.map((r) => r.synced)).then(() => undefined);
  }

  /** Starts one reflector per kind and returns; the catalog learns of the first complete view
   *  through `markSynced`. Rejects only on a configuration error. */
  async start(sink: ObjectSink): Promise<void> {
    if (this.reflectors.length > 0) throw new Error('KubeSource already started');
    const kc = loadKubeConfig(this.opts.kubeconfig);
    const server = kc.getCurrentCluster()?.server;
    const core = kc.makeApiClient(CoreV1Api);
    const discovery = kc.makeApiClient(DiscoveryV1Api);
    const networking = kc.makeApiClient(NetworkingV1Api);
    const lists: Record<Kind, ListCall> = {
      Service: (p, o) => core.listServiceForAllNamespaces(p, o),
      EndpointSlice: (p, o) => discovery.listEndpointSliceForAllNamespaces(p, o),
      Node: (p, o) => core.listNode(p, o),
      Pod: (p, o) => core.listPodForAllNamespaces(p, o),
      Namespace: (p, o) => core.listNamespace(p, o),
      ServiceCIDR: (p, o) => networking.listServiceCIDR(p, o),
    };
    const m = metrics();
    const ropts: ReflectorOptions = {
      inactivityMs: this.opts.resyncInactivityMs ?? 180_000,
      backoffInitialMs: this.opts.backoff?.initialMs ?? 500,
      backoffMaxMs: this.opts.backoff?.maxMs ?? 30_000,
      watchTimeoutSeconds: this.opts.watchTimeoutSeconds ?? [300, 600],
      listTimeoutMs: this.opts.listTimeoutMs ?? 60_000,
    };
    const watch = new Watch(kc);
    // client-node's Watch aborts a watch that sent nothing for 30 s, less than kube-apiserver's
    // bookmark period (about a minute): every quiet watch failed, warned and backed off twice a
    // minute. The reflector's inactivity timeout is the one that decides; the library's is set
    // past it. (Private in its types, so set through a cast; kube.test keeps a quiet watch.)
    (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = ropts.inactivityMs + 60_000;
    for (const kind of new Set(this.opts.kinds)) {
      const client = kindClient(kind, watch, lists[kind], this.opts.pageSize ?? 500, this.stopController.signal);
      const log = this.log.child({ kind });
      this.reflectors.push(new Reflector(kind, client, sink, OPTIONAL_KINDS.has(kind) ? { ...ropts, optional: true } : ropts, log, {
        onEvent: (type) => m.events.inc({ kind, type }),
        onRestart: (reason) => m.restarts.inc({ kind, reason }),
        onList: (result) => m.lists.inc({ kind, result }),
      }));
    }
    this.log.info('watching the API server', { server, kinds: this.opts.kinds.join(',') });
    for (const r of this.reflectors) r.start();
  }

  async stop(): Promise<void> {
    this.stopController.abort();
    await Promise.all(this.reflectors.map((r) => r.stop()));
  }
}

function kindClient(kind: Kind, watch: Watch, list: ListCall, pageSize: number, stopSignal: AbortSignal): KindClient {
  return {
    async list(signal) {
      const aborted = AbortSignal.any([signal, stopSignal]);
      // A continue token that expired (410) means the snapshot is gone: start over, once,
      // without pages, as client-go does.
      try {
        return await listAll(list, pageSize, aborted);
      } catch (err) {
        if ((err as { code?: unknown }).code !== 410) throw err;
        return await listAll(list, 0, aborted);
      }
    },
    async watch(resourceVersion, timeoutSeconds, onEvent, onDone) {
      const params = { resourceVersion, allowWatchBookmarks: true, timeoutSeconds };
      return watch.watch(API_PATHS[kind], params, (type: string, obj: unknown) => onEvent(type, obj), onDone);
    },
  };
}

async function listAll(list: ListCall, pageSize: number, signal: AbortSignal): Promise<ListResult> {
  const items: unknown[] = [];
  let cont: string | undefined;
  let resourceVersion = '';
  do {
    const page = await listPage(list, { ...(pageSize > 0 ? { limit: pageSize } : {}), ...(cont ? { _continue: cont } : {}) }, signal);
    if (!Array.isArray(page.items)) throw new Error('list answer has no items array');
    for (const item of page.items) items.push(item);
    resourceVersion = page.metadata?.resourceVersion ?? '';
    cont = page.metadata?.continue || undefined;
  } while (cont);
  if (!resourceVersion) throw new Error('list answer has no metadata.resourceVersion');
  return { items, resourceVersion };
}

/** One list call through the client. The middleware keeps the page exactly as the server sent
 *  it: the client's model deserializer drops fields it does not know (a newer API's) and turns
 *  one malformed item into a failed list, while the catalog must see every field and reject
 *  bad objects one by one. The client still does the request, the auth and the error mapping
 *  (a non-200 answer passes through untouched and becomes its ApiException). */
async function listPage(list: ListCall, param: { limit?: number; _continue?: string }, signal: AbortSignal): Promise<ListPage> {
  let raw: ListPage | undefined;
  const middleware: ObservableMiddleware = {
    pre: (ctx) => {
      ctx.setSignal(signal);
      return new Observable(Promise.resolve(ctx));
    },
    post: (ctx) => new Observable((async () => {
      if (ctx.httpStatusCode !== 200) return ctx;
      const parsed = JSON.parse(await ctx.body.text()) as ListPage;
      raw = parsed;
      const stub = JSON.stringify({ metadata: parsed.metadata ?? {}, items: [] });
      return new ResponseContext(ctx.httpStatusCode, ctx.headers, {
        text: async () => stub,
        binary: async () => Buffer.from(stub),
        stream: () => null,
      });
    })()),
  };
  await list(param, { middleware: [middleware], middlewareMergeStrategy: 'append' });
  if (!raw) throw new Error('list answer was empty');
  return raw;
}
