// Raw Kubernetes objects → catalog records. Validation happens here, once, on arrival: a record
// that comes out is correct, so no consumer re-checks it. Every problem names the field
// (`spec.ports[1].port`) so the log line tells the operator exactly what to fix.
import { parseCIDR, parseIP } from '../common/ip.js';
import { own, shared } from '../common/strings.js';
import type {
  Endpoint,
  IPFamily,
  Namespace,
  Node,
  NodeAddress,
  Pod,
  Protocol,
  Service,
  ServiceCIDR,
  ServicePort,
  ServiceType,
  TrafficPolicy,
} from './types.js';
import { objectKey } from './types.js';
import { dns1035Label, dns1123Label, dns1123Subdomain, ianaServiceName, labelValue } from './validate.js';

export interface FieldError {
  readonly field: string;
  readonly reason: string;
}

export type Normalized<T> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

/** One EndpointSlice, validated; the catalog merges the slices of a service. */
export interface SliceRecord {
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  /** `namespace/<kubernetes.io/service-name label>`; undefined for slices no service owns. */
  readonly serviceKey?: string;
  /** FQDN slices are kept but contribute nothing, as in kube-proxy. */
  readonly addressType: IPFamily | 'FQDN';
  readonly ports: readonly { name: string; protocol: Protocol; port: number; appProtocol?: string }[];
  readonly endpoints: readonly Endpoint[];
  readonly lastChangeTriggerTime?: number;
}

type Obj = Record<string, any>;
type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const PROTOCOLS = new Set(['TCP', 'UDP', 'SCTP']);
const SERVICE_TYPES = new Set(['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName']);
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

class Errors {
  readonly list: FieldError[] = [];
  add(field: string, reason: string): void {
    this.list.push({ field, reason });
  }
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function asArray(v: unknown, field: string, errs: Errors): unknown[] {
  if (v == null) return [];
  if (!Array.isArray(v)) {
    errs.add(field, 'must be a list');
    return [];
  }
  return v;
}

/** Each element parsed as an IP; a bad one is reported as `at[i]` and left out. */
function ipList(value: unknown, at: string, errs: Errors): string[] {
  return asArray(value, at, errs).flatMap((raw, i) => {
    const p = parseIP(raw);
    if (p) return [p.ip];
    errs.add(`${at}[${i}]`, `${JSON.stringify(raw)} is not an IP address`);
    return [];
  });
}

/** Each element parsed as a CIDR (canonical, host bits cleared); a bad one is reported. */
function cidrList(value: unknown, at: string, errs: Errors): string[] {
  return asArray(value, at, errs).flatMap((raw, i) => {
    const c = parseCIDR(typeof raw === 'string' ? raw.trim() : raw);
    if (c) return [c.cidr];
    errs.add(`${at}[${i}]`, `${JSON.stringify(raw)} is not a CIDR`);
    return [];
  });
}

function isPort(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535;
}

/** How an object's own name is checked: the rule the API server applies to that kind. */
type NameRule = (v: unknown) => string | undefined;

/** metadata.name, metadata.namespace and metadata.labels, checked with apimachinery's rules;
 *  `namespaced` objects default to "default", as kubectl does. */
function meta(obj: unknown, namespaced: boolean, nameRule: NameRule, errs: Errors): { name: string; namespace: string; rv: string; m: Obj } {
  if (!isObj(obj)) {
    errs.add('(object)', 'is not a map');
    return { name: '', namespace: '', rv: '', m: {} };
  }
  const m = isObj(obj.metadata) ? obj.metadata : {};
  const name = typeof m.name === 'string' ? m.name : '';
  if (!name) errs.add('metadata.name', 'is missing');
  else {
    const bad = nameRule(name);
    if (bad) errs.add('metadata.name', bad);
  }
  let namespace = '';
  if (namespaced) {
    namespace = typeof m.namespace === 'string' && m.namespace ? m.namespace : 'default';
    const bad = dns1123Label(namespace);
    if (bad) errs.add('metadata.namespace', bad);
  }
  // Label values reach rule text and topology decisions (service-proxy-name, zone), so they
  // are held to the API's rule too; keys are only looked up, never written anywhere.
  if (m.labels != null && !isObj(m.labels)) errs.add('metadata.labels', 'is not a map');
  else if (isObj(m.labels)) {
    for (const [k, v] of Object.entries(m.labels)) {
      const bad = labelValue(v);
      if (bad) errs.add(`metadata.labels[${JSON.stringify(k)}]`, bad);
    }
  }
  // What a record keeps: own copies, shared ones for what repeats (common/strings.ts).
  return { name: own(name), namespace: shared(namespace), rv: own(String(m.resourceVersion ?? '')), m };
}

/** The name a problem is reported under: `namespace/name`, or what the object has of it. */
export function describeObject(obj: unknown): string {
  const m = isObj(obj) && isObj(obj.metadata) ? obj.metadata : {};
  const name = typeof m.name === 'string' && m.name ? m.name : '(no name)';
  return typeof m.namespace === 'string' && m.namespace ? `${m.namespace}/${name}` : name;
}

export function normalizeService(obj: unknown): Normalized<Service> {
  const errs = new Errors();
  const { name, namespace, rv, m } = meta(obj, true, dns1035Label, errs);
  const spec: Obj = isObj(obj) && isObj(obj.spec) ? obj.spec : {};
  const status: Obj = isObj(obj) && isObj(obj.status) ? obj.status : {};

  const type = (spec.type ?? 'ClusterIP') as ServiceType;
  if (!SERVICE_TYPES.has(type)) errs.add('spec.type', `${JSON.stringify(spec.type)} is not ClusterIP, NodePort, LoadBalancer or ExternalName`);

  // Cluster IPs: clusterIPs wins; clusterIP alone is the single-stack form; "None" is headless.
  let rawIPs: unknown[] = asArray(spec.clusterIPs, 'spec.clusterIPs', errs);
  if (rawIPs.length === 0 && spec.clusterIP != null && spec.clusterIP !== '') rawIPs = [spec.clusterIP];
  const field = Array.isArray(spec.clusterIPs) && spec.clusterIPs.length ? 'spec.clusterIPs' : 'spec.clusterIP';
  if (spec.clusterIP && rawIPs.length && spec.clusterIP !== rawIPs[0]) {
    errs.add('spec.clusterIP', `${JSON.stringify(spec.clusterIP)} differs from spec.clusterIPs[0] ${JSON.stringify(rawIPs[0])}`);
  }
  const headless = rawIPs[0] === 'None';
  const clusterIPs: string[] = [];
  const ipFamilies: IPFamily[] = [];
  if (!headless && type !== 'ExternalName') {
    rawIPs.forEach((raw, i) => {
      const p = parseIP(raw);
      const at = rawIPs.length > 1 || field === 'spec.clusterIPs' ? `spec.clusterIPs[${i}]` : 'spec.clusterIP';
      if (!p) return errs.add(at, `${JSON.stringify(raw)} is not an IP address`);
      if (ipFamilies.includes(p.family)) return errs.add(at, `a second ${p.family} address (${p.ip}); at most one per family`);
      clusterIPs.push(p.ip);
      ipFamilies.push(p.family);
    });
  } else if (headless && rawIPs.length > 1) {
    errs.add('spec.clusterIPs', 'a headless service ("None") has no other cluster IP');
  }
  const declared = asArray(spec.ipFamilies, 'spec.ipFamilies', errs);
  declared.forEach((f, i) => {
    if (f !== 'IPv4' && f !== 'IPv6') errs.add(`spec.ipFamilies[${i}]`, `${JSON.stringify(f)} is not IPv4 or IPv6`);
    else if (i < ipFamilies.length && ipFamilies[i] !== f) {
      errs.add(`spec.clusterIPs[${i}]`, `${clusterIPs[i]} is not of family ${f} (spec.ipFamilies[${i}])`);
    }
  });
  if (headless) for (const f of declared) if ((f === 'IPv4' || f === 'IPv6') && !ipFamilies.includes(f)) ipFamilies.push(f);

  const ports: ServicePort[] = [];
  const rawPorts = asArray(spec.ports, 'spec.ports', errs);
  const seenNames = new Set<string>();
  const seenPorts = new Set<string>();
  rawPorts.forEach((p, i) => {
    const at = `spec.ports[${i}]`;
    if (!isObj(p)) return errs.add(at, 'is not a map');
    const pname = p.name ?? '';
    // ValidateServicePort holds port names to RFC 1123 labels (IANA_SVC_NAME is for targetPort).
    const badName = pname === '' ? undefined : dns1123Label(pname);
    if (badName) errs.add(`${at}.name`, badName);
    else if (pname === '' && rawPorts.length > 1) errs.add(`${at}.name`, 'is required when a service has more than one port');
    else if (seenNames.has(pname)) errs.add(`${at}.name`, `${JSON.stringify(pname)} is used by another port`);
    seenNames.add(pname);
    const protocol = (p.protocol ?? 'TCP') as Protocol;
    if (!PROTOCOLS.has(protocol)) errs.add(`${at}.protocol`, `${JSON.stringify(p.protocol)} is not TCP, UDP or SCTP`);
    if (!isPort(p.port)) errs.add(`${at}.port`, `${JSON.stringify(p.port)} is not a port number 1-65535`);
    const dup = `${p.port}/${protocol}`;
    if (seenPorts.has(dup)) errs.add(`${at}.port`, `${dup} is used by another port of this service`);
    seenPorts.add(dup);
    let targetPort: number | string = p.port;
    if (p.targetPort != null && p.targetPort !== 0 && p.targetPort !== '') {
      if (isPort(p.targetPort) || (typeof p.targetPort === 'string' && !ianaServiceName(p.targetPort))) targetPort = p.targetPort;
      else if (typeof p.targetPort === 'string' && /^\d+$/.test(p.targetPort) && isPort(Number(p.targetPort))) targetPort = Number(p.targetPort);
      else errs.add(`${at}.targetPort`, `${JSON.stringify(p.targetPort)} is neither a port number nor a port name`);
    }
    const nodePort = p.nodePort ?? 0;
    if (nodePort !== 0 && !isPort(nodePort)) errs.add(`${at}.nodePort`, `${JSON.stringify(p.nodePort)} is not a port number 1-65535`);
    ports.push({
      name: shared(String(pname)),
      protocol: shared(protocol),
      port: p.port,
      targetPort: typeof targetPort === 'string' ? shared(targetPort) : targetPort,
      nodePort,
      ...(typeof p.appProtocol === 'string' ? { appProtocol: shared(p.appProtocol) } : {}),
    });
  });

  const externalIPs = ipList(spec.externalIPs, 'spec.externalIPs', errs);
  const ingress = asArray(status.loadBalancer?.ingress, 'status.loadBalancer.ingress', errs);
  const loadBalancerIPs = ipList(
    ingress.map((x) => (isObj(x) ? x.ip : undefined)).filter((x) => x != null),
    'status.loadBalancer.ingress[].ip',
    errs,
  );
  const loadBalancerSourceRanges = cidrList(spec.loadBalancerSourceRanges, 'spec.loadBalancerSourceRanges', errs);

  const sessionAffinity = spec.sessionAffinity ?? 'None';
  if (sessionAffinity !== 'None' && sessionAffinity !== 'ClientIP') errs.add('spec.sessionAffinity', `${JSON.stringify(sessionAffinity)} is not None or ClientIP`);
  const timeout = spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? 10800;
  if (!Number.isInteger(timeout) || timeout < 1 || timeout > 86400) {
    errs.add('spec.sessionAffinityConfig.clientIP.timeoutSeconds', `${JSON.stringify(timeout)} is not 1-86400`);
  }
  const policy = (v: unknown, at: string): TrafficPolicy => {
    if (v == null) return 'Cluster';
    if (v === 'Cluster' || v === 'Local') return v;
    if (v === 'Global') return 'Cluster'; // the pre-1.21 spelling, still accepted by kube-proxy
    errs.add(at, `${JSON.stringify(v)} is not Cluster or Local`);
    return 'Cluster';
  };
  const externalTrafficPolicy = policy(spec.externalTrafficPolicy, 'spec.externalTrafficPolicy');
  const internalTrafficPolicy = policy(spec.internalTrafficPolicy, 'spec.internalTrafficPolicy');
  const healthCheckNodePort = spec.healthCheckNodePort ?? 0;
  if (healthCheckNodePort !== 0 && !isPort(healthCheckNodePort)) errs.add('spec.healthCheckNodePort', `${JSON.stringify(healthCheckNodePort)} is not a port number`);

  let externalName: string | undefined;
  if (type === 'ExternalName') {
    const raw = typeof spec.externalName === 'string' ? spec.externalName.toLowerCase().replace(/\.$/, '') : '';
    if (!DNS_SUBDOMAIN.test(raw)) errs.add('spec.externalName', `${JSON.stringify(spec.externalName)} is not a DNS name`);
    externalName = own(raw);
  }

  if (errs.list.length) return { ok: false, errors: errs.list };
  const labels: Obj = isObj(m.labels) ? m.labels : {};
  const proxyName = labels['service.kubernetes.io/service-proxy-name'];
  return {
    ok: true,
    value: {
      // Shared: the service's slices name the same key, and the catalog's maps hold it once.
      key: shared(objectKey(namespace, name)),
      namespace,
      name,
      resourceVersion: rv,
      type: shared(type),
      headless,
      // Arrays built by push carry spare room (17 slots for one address); records keep exact copies.
      clusterIPs: clusterIPs.slice(),
      ipFamilies: ipFamilies.slice(),
      ...(externalName !== undefined ? { externalName } : {}),
      externalIPs,
      loadBalancerIPs,
      loadBalancerSourceRanges,
      sessionAffinity,
      sessionAffinityTimeoutSeconds: timeout,
      externalTrafficPolicy,
      internalTrafficPolicy,
      healthCheckNodePort,
      publishNotReadyAddresses: spec.publishNotReadyAddresses === true,
      ...(typeof spec.trafficDistribution === 'string' ? { trafficDistribution: shared(spec.trafficDistribution) } : {}),
      hasSelector: isObj(spec.selector) && Object.keys(spec.selector).length > 0,
      ...(typeof proxyName === 'string' && proxyName ? { serviceProxyName: shared(proxyName) } : {}),
      ports: ports.slice(),
    },
  };
}

function parseTime(v: unknown): number | undefined {
  if (v instanceof Date) return v.getTime();
  if (typeof v !== 'string') return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : t;
}

function names(v: unknown): string[] {
  return Array.isArray(v) ? v.flatMap((x) => (isObj(x) && typeof x.name === 'string' ? [shared(x.name)] : [])) : [];
}

export function normalizeEndpointSlice(obj: unknown): Normalized<SliceRecord> {
  const errs = new Errors();
  const { name, namespace, m } = meta(obj, true, dns1123Subdomain, errs);
  const o: Obj = isObj(obj) ? obj : {};
  const addressType = o.addressType;
  if (addressType !== 'IPv4' && addressType !== 'IPv6' && addressType !== 'FQDN') {
    errs.add('addressType', `${JSON.stringify(addressType)} is not IPv4, IPv6 or FQDN`);
  }
  const labels: Obj = isObj(m.labels) ? m.labels : {};
  const svcName = labels['kubernetes.io/service-name'];

  const ports: SliceRecord['ports'][number][] = [];
  asArray(o.ports, 'ports', errs).forEach((p, i) => {
    const at = `ports[${i}]`;
    if (!isObj(p)) return errs.add(at, 'is not a map');
    // A port without a number means "all ports" in the API; kube-proxy skips it, and so do we.
    if (p.port == null) return;
    if (p.name != null && p.name !== '') {
      const bad = dns1123Label(p.name);
      if (bad) return errs.add(`${at}.name`, bad);
    }
    if (!isPort(p.port)) return errs.add(`${at}.port`, `${JSON.stringify(p.port)} is not a port number 1-65535`);
    const protocol = p.protocol ?? 'TCP';
    if (!PROTOCOLS.has(protocol)) return errs.add(`${at}.protocol`, `${JSON.stringify(p.protocol)} is not TCP, UDP or SCTP`);
    ports.push({
      name: typeof p.name === 'string' ? shared(p.name) : '',
      protocol: shared(protocol),
      port: p.port,
      ...(typeof p.appProtocol === 'string' ? { appProtocol: shared(p.appProtocol) } : {}),
    });
  });

  const endpoints: Endpoint[] = [];
  asArray(o.endpoints, 'endpoints', errs).forEach((e, i) => {
    const at = `endpoints[${i}]`;
    if (!isObj(e)) return errs.add(at, 'is not a map');
    const addrs = asArray(e.addresses, `${at}.addresses`, errs);
    if (addressType === 'FQDN') return;
    // The API allows several addresses but says consumers use only the first (kube-proxy does).
    if (addrs.length === 0) return errs.add(`${at}.addresses`, 'is empty');
    const p = parseIP(addrs[0]);
    if (!p) return errs.add(`${at}.addresses[0]`, `${JSON.stringify(addrs[0])} is not an IP address`);
    if (p.family !== addressType) return errs.add(`${at}.addresses[0]`, `${p.ip} is not of the slice's addressType ${addressType}`);
    const c: Obj = isObj(e.conditions) ? e.conditions : {};
    const ready = c.ready !== false; // unknown means ready
    const hostname = typeof e.hostname === 'string' && e.hostname ? own(e.hostname.toLowerCase()) : undefined;
    if (hostname !== undefined) {
      const bad = dns1123Label(hostname);
      if (bad) return errs.add(`${at}.hostname`, bad);
    }
    if (typeof e.nodeName === 'string' && e.nodeName) {
      const bad = dns1123Subdomain(e.nodeName);
      if (bad) return errs.add(`${at}.nodeName`, bad);
    }
    if (typeof e.zone === 'string' && e.zone) {
      const bad = labelValue(e.zone);
      if (bad) return errs.add(`${at}.zone`, bad);
    }
    const forZones = names(e.hints?.forZones);
    const forNodes = names(e.hints?.forNodes);
    const hintErrors: [string, string | undefined][] = [
      ...forZones.map((z, j): [string, string | undefined] => [`${at}.hints.forZones[${j}].name`, labelValue(z)]),
      ...forNodes.map((n, j): [string, string | undefined] => [`${at}.hints.forNodes[${j}].name`, dns1123Subdomain(n)]),
    ];
    const badHint = hintErrors.find(([, bad]) => bad);
    if (badHint) return errs.add(badHint[0], badHint[1]!);
    const ref: Obj | undefined = isObj(e.targetRef) ? e.targetRef : undefined;
    // One literal with the fields every endpoint has (64 bytes; built from spreads it took 104),
    // the optional ones added only where present. 100k of these is the catalog's bulk.
    const ep: Mutable<Endpoint> = { ip: p.ip, family: p.family, ready, serving: typeof c.serving === 'boolean' ? c.serving : ready, terminating: c.terminating === true };
    if (hostname) ep.hostname = hostname;
    if (typeof e.nodeName === 'string' && e.nodeName) ep.nodeName = shared(e.nodeName);
    if (typeof e.zone === 'string' && e.zone) ep.zone = shared(e.zone);
    if (forZones.length || forNodes.length) ep.hints = { forZones, forNodes };
    if (ref && ref.kind === 'Pod' && typeof ref.name === 'string') {
      ep.podKey = own(objectKey(typeof ref.namespace === 'string' && ref.namespace ? ref.namespace : namespace, ref.name));
    }
    endpoints.push(ep);
  });

  if (errs.list.length) return { ok: false, errors: errs.list };
  const annotations: Obj = isObj(m.annotations) ? m.annotations : {};
  const trigger = parseTime(annotations['endpoints.kubernetes.io/last-change-trigger-time']);
  return {
    ok: true,
    value: {
      key: own(objectKey(namespace, name)),
      namespace,
      name,
      ...(typeof svcName === 'string' && svcName ? { serviceKey: shared(objectKey(namespace, svcName)) } : {}),
      addressType: shared(addressType) as SliceRecord['addressType'], // checked above: one of three literals
      ports: ports.slice(),
      endpoints: endpoints.slice(),
      ...(trigger !== undefined ? { lastChangeTriggerTime: trigger } : {}),
    },
  };
}

export function normalizeNode(obj: unknown): Normalized<Node> {
  const errs = new Errors();
  const { name, m } = meta(obj, false, dns1123Subdomain, errs);
  const o: Obj = isObj(obj) ? obj : {};
  const spec: Obj = isObj(o.spec) ? o.spec : {};
  const podCIDRs = cidrList(Array.isArray(spec.podCIDRs) && spec.podCIDRs.length ? spec.podCIDRs : spec.podCIDR ? [spec.podCIDR] : [], 'spec.podCIDRs', errs);
  const addresses: NodeAddress[] = asArray(o.status?.addresses, 'status.addresses', errs).flatMap((a, i) => {
    if (!isObj(a) || typeof a.type !== 'string') {
      errs.add(`status.addresses[${i}]`, 'needs a type and an address');
      return [];
    }
    if (a.type === 'Hostname' || a.type === 'InternalDNS' || a.type === 'ExternalDNS') return [{ type: a.type, address: String(a.address) }];
    const p = parseIP(a.address);
    if (!p) {
      errs.add(`status.addresses[${i}].address`, `${JSON.stringify(a.address)} is not an IP address`);
      return [];
    }
    return [{ type: a.type, address: p.ip }];
  });
  if (errs.list.length) return { ok: false, errors: errs.list };
  const labels: Record<string, string> = {};
  if (isObj(m.labels)) for (const [k, v] of Object.entries(m.labels)) if (typeof v === 'string') labels[k] = v;
  const zone = labels['topology.kubernetes.io/zone'];
  // For the proxy's node eligibility (kube-proxy's KEP-3836): being deleted, and taint keys.
  const taintKeys = (Array.isArray(spec.taints) ? spec.taints : []).flatMap((t: unknown) => (isObj(t) && typeof t.key === 'string' ? [t.key] : []));
  return {
    ok: true,
    value: {
      key: name, name, podCIDRs, addresses, ...(zone ? { zone: shared(zone) } : {}), labels,
      ...(m.deletionTimestamp ? { deleting: true as const } : {}),
      ...(taintKeys.length ? { taintKeys } : {}),
    },
  };
}

export function normalizeNamespace(obj: unknown): Normalized<Namespace> {
  const errs = new Errors();
  const { name } = meta(obj, false, dns1123Label, errs);
  if (errs.list.length) return { ok: false, errors: errs.list };
  return { ok: true, value: { key: own(name), name } };
}

/** kube-apiserver's rules: one or two CIDRs, of different families. */
export function normalizeServiceCIDR(obj: unknown): Normalized<ServiceCIDR> {
  const errs = new Errors();
  const { name } = meta(obj, false, dns1123Subdomain, errs);
  const o: Obj = isObj(obj) ? obj : {};
  const spec: Obj = isObj(o.spec) ? o.spec : {};
  const cidrs = cidrList(spec.cidrs, 'spec.cidrs', errs);
  if (cidrs.length > 2) errs.add('spec.cidrs', `at most 2 CIDRs (one per family), got ${cidrs.length}`);
  else if (cidrs.length === 2 && cidrs[0].includes(':') === cidrs[1].includes(':')) errs.add('spec.cidrs', 'two CIDRs must be of different families');
  if (errs.list.length) return { ok: false, errors: errs.list };
  const n = own(name);
  return { ok: true, value: { key: n, name: n, cidrs } };
}

export function normalizePod(obj: unknown): Normalized<Pod> {
  const errs = new Errors();
  const { name, namespace } = meta(obj, true, dns1123Subdomain, errs);
  const o: Obj = isObj(obj) ? obj : {};
  const spec: Obj = isObj(o.spec) ? o.spec : {};
  const status: Obj = isObj(o.status) ? o.status : {};
  const rawIPs = asArray(status.podIPs, 'status.podIPs', errs).map((x) => (isObj(x) ? x.ip : x));
  const podIPs = ipList(rawIPs.length ? rawIPs : status.podIP ? [status.podIP] : [], 'status.podIPs', errs);
  if (typeof spec.nodeName === 'string' && spec.nodeName) {
    const bad = dns1123Subdomain(spec.nodeName);
    if (bad) errs.add('spec.nodeName', bad);
  }
  if (errs.list.length) return { ok: false, errors: errs.list };
  return {
    ok: true,
    value: {
      key: own(objectKey(namespace, name)),
      namespace,
      name,
      podIPs: podIPs.slice(),
      ...(typeof spec.nodeName === 'string' && spec.nodeName ? { nodeName: shared(spec.nodeName) } : {}),
      hostNetwork: spec.hostNetwork === true,
      ...(typeof status.phase === 'string' ? { phase: shared(status.phase) } : {}),
    },
  };
}
