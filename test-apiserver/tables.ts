// Server-side printing (meta.k8s.io Table), what `kubectl get` asks for: the columns and cell
// formats of kube-apiserver's printers for the kinds the server holds, so that `kubectl get svc`
// shows TYPE, CLUSTER-IP and PORT(S), and `kubectl get endpointslices` the ENDPOINTS, as on a
// cluster. Lists, single objects and watch events are served as tables when asked.
import { preferredVersion } from './accept.js';
import type { ResourceType } from './resources.js';

type Obj = Record<string, any>;

interface Column {
  readonly name: string;
  readonly type: 'string' | 'integer' | 'date';
  readonly description: string;
  /** 0: shown by default; 1: with `-o wide`. */
  readonly priority?: number;
  readonly cell: (o: Obj, now: number) => string | number;
}

const list = (v: unknown): Obj[] => (Array.isArray(v) ? v : []);
const joinOr = (items: readonly string[], none: string): string => (items.length ? items.join(',') : none);

function col(name: string, description: string, cell: Column['cell'], more: Partial<Column> = {}): Column {
  return { name, type: 'string', description, cell, ...more };
}

const age = col('Age', 'Time since creation', (o, now) => humanAge(o.metadata?.creationTimestamp, now));

/** kubectl's short human durations (k8s.io/apimachinery duration.HumanDuration). */
export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < -1) return '<invalid>';
  if (s < 0) return '0s';
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  if (h < 192) return h % 24 === 0 ? `${Math.floor(h / 24)}d` : `${Math.floor(h / 24)}d${h % 24}h`;
  if (h < 24 * 365 * 2) return `${Math.floor(h / 24)}d`;
  const y = Math.floor(h / 24 / 365);
  if (h < 24 * 365 * 8) return `${y}y${Math.floor(h / 24) % 365}d`;
  return `${y}y`;
}

function humanAge(timestamp: unknown, now: number): string {
  const t = typeof timestamp === 'string' ? Date.parse(timestamp) : NaN;
  return Number.isNaN(t) ? '<unknown>' : humanDuration(now - t);
}

function serviceExternalIP(o: Obj): string {
  const spec = o.spec ?? {};
  const external: string[] = list(spec.externalIPs) as unknown as string[];
  switch (spec.type) {
    case 'ExternalName': return spec.externalName ?? '<none>';
    case 'LoadBalancer': {
      const ingress = list(o.status?.loadBalancer?.ingress).map((i) => i.ip ?? i.hostname).filter(Boolean);
      return joinOr([...ingress, ...external], '<pending>');
    }
    default: return joinOr(external, '<none>');
  }
}

function servicePorts(o: Obj): string {
  const port = (p: Obj) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ''}/${p.protocol ?? 'TCP'}`;
  return joinOr(list(o.spec?.ports).map(port), '<none>');
}

function selector(labels: unknown): string {
  const entries = Object.entries((labels as Record<string, string>) ?? {});
  return joinOr(entries.map(([k, v]) => `${k}=${v}`), '<none>');
}

function sliceEndpoints(o: Obj): string {
  const addresses = list(o.endpoints).flatMap((e) => list(e.addresses) as unknown as string[]);
  if (addresses.length === 0) return '<unset>';
  if (addresses.length <= 3) return addresses.join(',');
  return `${addresses.slice(0, 3).join(',')} + ${addresses.length - 3} more...`;
}

function nodeStatus(o: Obj): string {
  const ready = list(o.status?.conditions).find((c) => c.type === 'Ready');
  const status = !ready ? 'Unknown' : ready.status === 'True' ? 'Ready' : 'NotReady';
  return o.spec?.unschedulable ? `${status},SchedulingDisabled` : status;
}

function nodeRoles(o: Obj): string {
  const prefix = 'node-role.kubernetes.io/';
  const roles = Object.keys(o.metadata?.labels ?? {}).filter((k) => k.startsWith(prefix));
  return joinOr(roles.map((k) => k.slice(prefix.length)).sort(), '<none>');
}

function podReady(o: Obj): string {
  const statuses = list(o.status?.containerStatuses);
  return `${statuses.filter((c) => c.ready).length}/${list(o.spec?.containers).length}`;
}

const restarts = (o: Obj): number =>
  list(o.status?.containerStatuses).reduce((n, c) => n + (c.restartCount ?? 0), 0);

const COLUMNS: Record<string, readonly Column[]> = {
  Service: [
    col('Type', 'The type of the service', (o) => o.spec?.type ?? 'ClusterIP'),
    // kube-apiserver fills clusterIP from clusterIPs[0]; this server stores objects as given.
    col('Cluster-IP', 'The cluster IP of the service', (o) => o.spec?.clusterIP || o.spec?.clusterIPs?.[0] || '<none>'),
    col('External-IP', 'The external IPs of the service', serviceExternalIP),
    col('Port(s)', 'The ports of the service', servicePorts),
    age,
    col('Selector', 'The pods the service selects', (o) => selector(o.spec?.selector), { priority: 1 }),
  ],
  EndpointSlice: [
    col('AddressType', 'The type of the addresses', (o) => o.addressType ?? ''),
    col('Ports', 'The ports of the slice', (o) => joinOr(list(o.ports).map((p) => String(p.port ?? '')), '<unset>')),
    col('Endpoints', 'The endpoint addresses (the first three)', sliceEndpoints),
    age,
  ],
  Node: [
    col('Status', 'The Ready condition', nodeStatus),
    col('Roles', 'The node-role labels', nodeRoles),
    age,
    col('Version', 'The kubelet version', (o) => o.status?.nodeInfo?.kubeletVersion ?? ''),
  ],
  Pod: [
    col('Ready', 'Ready containers / containers', podReady),
    col('Status', 'The pod phase', (o) => o.status?.reason ?? o.status?.phase ?? 'Unknown'),
    col('Restarts', 'Container restarts', restarts, { type: 'integer' }),
    age,
    col('IP', 'The pod IP', (o) => o.status?.podIP ?? '<none>', { priority: 1 }),
    col('Node', 'The node the pod runs on', (o) => o.spec?.nodeName ?? '<none>', { priority: 1 }),
  ],
  Namespace: [col('Status', 'The namespace phase', (o) => o.status?.phase ?? ''), age],
};

export const TABLE_VERSIONS = ['v1', 'v1beta1'] as const;

/** How a client asked for a table: the meta.k8s.io version and `includeObject`. */
export interface TableRequest {
  readonly version: (typeof TABLE_VERSIONS)[number];
  readonly includeObject: 'None' | 'Metadata' | 'Object';
}

const INCLUDE_OBJECT = ['None', 'Metadata', 'Object'] as const;

export function tableRequest(accept: string | undefined, includeObject: string | undefined): TableRequest | undefined {
  const version = preferredVersion(accept, 'meta.k8s.io', 'Table', TABLE_VERSIONS);
  if (!version) return undefined;
  const include = INCLUDE_OBJECT.find((x) => x === (includeObject ?? 'Metadata'));
  if (!include) {
    throw new TypeError(`includeObject ${JSON.stringify(includeObject)}: not one of ${INCLUDE_OBJECT.join(', ')}`);
  }
  return { version, includeObject: include };
}

/** A Table of `objects`; `columns: false` leaves the column definitions out (watch events after
 *  the first carry rows only, as kube-apiserver sends them). */
export function table(
  type: ResourceType, req: TableRequest, objects: readonly Obj[], metadata: Obj, now: number, columns = true,
): Record<string, unknown> {
  const cols = [col('Name', "The object's name", (o) => o.metadata?.name ?? ''), ...COLUMNS[type.kind]];
  const definitions = cols.map((c) => ({
    name: c.name, type: c.type, format: c.name === 'Name' ? 'name' : '',
    description: c.description, priority: c.priority ?? 0,
  }));
  const apiVersion = `meta.k8s.io/${req.version}`;
  const partial = (o: Obj) => ({ kind: 'PartialObjectMetadata', apiVersion, metadata: o.metadata });
  const rowObject = (o: Obj) => (req.includeObject === 'Object' ? o : partial(o));
  return {
    kind: 'Table',
    apiVersion,
    metadata,
    ...(columns ? { columnDefinitions: definitions } : {}),
    rows: objects.map((o) => ({
      cells: cols.map((c) => c.cell(o, now)),
      ...(req.includeObject === 'None' ? {} : { object: rowObject(o) }),
    })),
  };
}
