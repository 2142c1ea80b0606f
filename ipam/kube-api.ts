// Just enough of the Kubernetes API for IPAM: read a kubeconfig and GET a Node or list a node's
// Pods with node:http(s). Loaded lazily (only when a kubeconfig is configured), so the plugin's
// usual path never pays for it; no API client library, which would cost a pod ~100 ms of start.
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { dirname, resolve } from 'node:path';

interface KubeTarget {
  server: URL;
  headers: Record<string, string>;
  tls: Pick<RequestOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized'>;
}

type Obj = Record<string, any>;

function named(list: unknown, name: string, what: string, path: string): Obj {
  const found = Array.isArray(list) ? list.find((e: Obj) => e?.name === name) : undefined;
  if (!found) throw new Error(`kubeconfig ${path}: no ${what} named ${JSON.stringify(name)}`);
  return found as Obj;
}

function fileOrData(base: string, obj: Obj, key: string): Buffer | undefined {
  if (typeof obj[`${key}-data`] === 'string') return Buffer.from(obj[`${key}-data`], 'base64');
  if (typeof obj[key] === 'string') return readFileSync(resolve(base, obj[key]));
  return undefined;
}

export async function loadKubeconfig(path: string): Promise<KubeTarget> {
  const text = readFileSync(path, 'utf8');
  let doc: Obj;
  try {
    doc = JSON.parse(text) as Obj;
  } catch {
    const { default: yaml } = await import('js-yaml');
    doc = yaml.load(text) as Obj;
  }
  if (!doc || typeof doc !== 'object') throw new Error(`kubeconfig ${path}: not a mapping`);
  const ctxName = doc['current-context'];
  const ctx = (ctxName ? named(doc.contexts, ctxName, 'context', path) : doc.contexts?.[0])?.context as Obj | undefined;
  if (!ctx) throw new Error(`kubeconfig ${path}: no current context`);
  const cluster = named(doc.clusters, ctx.cluster, 'cluster', path).cluster as Obj;
  const user = (ctx.user ? named(doc.users, ctx.user, 'user', path).user : {}) as Obj;
  if (!cluster?.server) throw new Error(`kubeconfig ${path}: cluster ${ctx.cluster} has no server`);
  const base = dirname(path);
  const headers: Record<string, string> = { Accept: 'application/json' };
  const token = user.token ?? (user.tokenFile ? readFileSync(resolve(base, user.tokenFile), 'utf8').trim() : undefined);
  if (token) headers.Authorization = `Bearer ${token}`;
  return {
    server: new URL(cluster.server),
    headers,
    tls: {
      ca: fileOrData(base, cluster, 'certificate-authority'),
      cert: fileOrData(base, user, 'client-certificate'),
      key: fileOrData(base, user, 'client-key'),
      rejectUnauthorized: cluster['insecure-skip-tls-verify'] !== true,
    },
  };
}

export function getJSON(target: KubeTarget, path: string, timeoutMs = 5_000): Promise<Obj> {
  const url = new URL(path, target.server);
  return new Promise((resolvePromise, reject) => {
    const opts: RequestOptions = { method: 'GET', headers: target.headers, timeout: timeoutMs, ...(url.protocol === 'https:' ? target.tls : {}) };
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, opts, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => {
        if (res.statusCode !== 200) {
          reject(new Error(`GET ${url.pathname}${url.search}: HTTP ${res.statusCode}: ${body.slice(0, 200)}`));
          return;
        }
        try {
          resolvePromise(JSON.parse(body) as Obj);
        } catch (err) {
          reject(new Error(`GET ${url.pathname}: response is not JSON: ${(err as Error).message}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url.pathname}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** spec.podCIDRs of a Node (falling back to the single spec.podCIDR of older clusters). */
export async function getNodePodCIDRs(kubeconfig: string, nodeName: string): Promise<string[]> {
  const target = await loadKubeconfig(kubeconfig);
  const node = await getJSON(target, `/api/v1/nodes/${encodeURIComponent(nodeName)}`);
  const cidrs: unknown = node.spec?.podCIDRs ?? (node.spec?.podCIDR ? [node.spec.podCIDR] : []);
  if (!Array.isArray(cidrs) || cidrs.length === 0) throw new Error(`node ${nodeName} has no spec.podCIDRs yet`);
  return cidrs as string[];
}

export interface PodAddresses {
  namespace: string;
  name: string;
  ips: string[];
}

/** The pods bound to a node, with the addresses their status reports. */
export async function listNodePods(kubeconfig: string, nodeName: string): Promise<PodAddresses[]> {
  const target = await loadKubeconfig(kubeconfig);
  const list = await getJSON(target, `/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${nodeName}`)}`, 30_000);
  return ((list.items ?? []) as Obj[]).map((p) => ({
    namespace: p.metadata?.namespace ?? '',
    name: p.metadata?.name ?? '',
    ips: ((p.status?.podIPs ?? []) as Obj[]).map((x) => x.ip).filter((x): x is string => typeof x === 'string'),
  }));
}
