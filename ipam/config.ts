// The network configuration a CNI runtime hands the plugin on stdin: host-local's `ipam` section
// (ranges, routes, dataDir, resolvConf, the old single-range form), the `ips` conventions, and
// `podCIDRsFrom: "node"`.
import { cniError, CniError, ErrorCode } from './errors.js';
import { parseCIDR, parseIP, ipString, type IP } from '../common/ip-bigint.js';
import { DEFAULT_NODE_POD_CIDRS_FILE } from './node-pod-cidrs.js';
import type { Attachment } from './allocator.js';
import { DEFAULT_DATA_DIR } from './store.js';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export const LATEST_VERSION = '1.1.0';

export interface Route {
  dst: string;
  gw?: string;
}

export interface IpamConfig {
  cniVersion: string;
  network: string;
  /** Range set specs, as written (validated by buildRangeSets); absent with podCIDRsFrom. */
  ranges?: unknown;
  rangesField: string;
  podCIDRsFrom?: 'node';
  nodePodCIDRsFile: string;
  nodeName?: string;
  kubeconfig?: string;
  routes: Route[];
  dataDir: string;
  resolvConf?: string;
  lockTimeoutMs: number;
  /** From the `ips` capability (runtimeConfig.ips) and args.cni.ips. */
  requestedIPs: IP[];
  validAttachments?: Attachment[];
  prevResult?: unknown;
}

type Obj = Record<string, unknown>;

function invalid(msg: string): never {
  throw cniError(ErrorCode.invalidConfig, msg);
}

function isObject(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function optString(o: Obj, key: string, field: string): string | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '') invalid(`${field}: want a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

/** Decodes stdin. Bad JSON is code 6; a version we do not speak is code 1. */
export function decodeConfig(text: string): Obj {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw cniError(ErrorCode.decodeFailure, `cannot decode network config from stdin: ${(err as Error).message}`);
  }
  if (!isObject(doc)) throw cniError(ErrorCode.decodeFailure, `cannot decode network config from stdin: want a JSON object, got ${text.trim().slice(0, 40) || 'nothing'}`);
  return doc;
}

export function checkVersion(doc: Obj): string {
  const v = doc.cniVersion;
  if (typeof v !== 'string' || v === '') {
    throw cniError(ErrorCode.invalidConfig, `network config: "cniVersion" is missing; supported: ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(v)) {
    throw cniError(ErrorCode.incompatibleVersion, `incompatible CNI version "${v}": kube-dataplane-ipam supports ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  return v;
}

function parseIPList(list: unknown, field: string, code: number): IP[] {
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw cniError(code, `${field}: want a list of IP addresses, got ${JSON.stringify(list)}`);
  return list.map((s: unknown, i: number) => {
    // The ips convention allows "10.0.0.5/24"; the prefix comes from the range, as in host-local.
    const ip = typeof s === 'string' ? (parseIP(s) ?? parseCIDR(s)?.address ?? null) : null;
    if (!ip) throw cniError(code, `${field}[${i}]: ${JSON.stringify(s)} is not an IP address`);
    return ip;
  });
}

/** `IP=a,b` from CNI_ARGS ("K=V;K=V"); other keys belong to other plugins and are ignored. */
export function requestedFromCniArgs(cniArgs: string | undefined): IP[] {
  if (!cniArgs) return [];
  const out: IP[] = [];
  for (const pair of cniArgs.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0) {
      if (pair.trim()) throw cniError(ErrorCode.invalidEnvironment, `CNI_ARGS: ${JSON.stringify(pair)} is not KEY=VALUE`);
      continue;
    }
    if (pair.slice(0, eq) !== 'IP') continue;
    for (const s of pair.slice(eq + 1).split(',')) {
      const ip = parseIP(s.trim());
      if (!ip) throw cniError(ErrorCode.invalidEnvironment, `CNI_ARGS: IP=${JSON.stringify(s)} is not an IP address`);
      out.push(ip);
    }
  }
  return out;
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function parseIpamConfig(doc: Obj, cniVersion: string): IpamConfig {
  const network = doc.name;
  if (typeof network !== 'string' || !NAME_RE.test(network) || network === '.' || network === '..') {
    invalid(`network config "name": want letters, digits, "_", "." or "-" (it names the store directory), got ${JSON.stringify(network)}`);
  }
  const ipam = doc.ipam;
  if (!isObject(ipam)) invalid(`network config "ipam": want an object, got ${JSON.stringify(ipam)}`);
  const runtime = isObject(doc.runtimeConfig) ? doc.runtimeConfig : {};

  let ranges: unknown;
  let rangesField = 'ipam.ranges';
  if (runtime.ipRanges !== undefined) {
    ranges = runtime.ipRanges;
    rangesField = 'runtimeConfig.ipRanges';
  } else if (ipam.ranges !== undefined) {
    ranges = ipam.ranges;
  } else if (ipam.subnet !== undefined) {
    // host-local's older single-range form.
    ranges = [[{ subnet: ipam.subnet, rangeStart: ipam.rangeStart, rangeEnd: ipam.rangeEnd, gateway: ipam.gateway }]];
    rangesField = 'ipam';
  }
  const from = ipam.podCIDRsFrom;
  if (from !== undefined && from !== 'node') invalid(`ipam.podCIDRsFrom: the only source is "node", got ${JSON.stringify(from)}`);
  if (from === 'node' && ranges !== undefined && rangesField !== 'runtimeConfig.ipRanges') {
    invalid(`ipam: "podCIDRsFrom" and "${rangesField === 'ipam' ? 'subnet' : 'ranges'}" both set; the node's pod CIDRs are the ranges`);
  }
  if (from === undefined && ranges === undefined) {
    invalid('ipam: no addresses to hand out: set "ranges" (a list of range sets) or "podCIDRsFrom": "node"');
  }

  const routes: Route[] = [];
  if (ipam.routes !== undefined) {
    if (!Array.isArray(ipam.routes)) invalid(`ipam.routes: want a list, got ${JSON.stringify(ipam.routes)}`);
    ipam.routes.forEach((r: unknown, i: number) => {
      const field = `ipam.routes[${i}]`;
      if (!isObject(r) || typeof r.dst !== 'string' || !parseCIDR(r.dst)) invalid(`${field}.dst: want a CIDR, got ${JSON.stringify(isObject(r) ? r.dst : r)}`);
      const route: Route = { dst: r.dst };
      if (r.gw !== undefined) {
        const gw = typeof r.gw === 'string' ? parseIP(r.gw) : null;
        if (!gw) invalid(`${field}.gw: want an IP address, got ${JSON.stringify(r.gw)}`);
        route.gw = ipString(gw);
      }
      routes.push(route);
    });
  }

  const requestedIPs = [
    ...parseIPList(isObject(doc.args) && isObject(doc.args.cni) ? doc.args.cni.ips : undefined, 'args.cni.ips', ErrorCode.invalidConfig),
    ...parseIPList(runtime.ips, 'runtimeConfig.ips', ErrorCode.invalidConfig),
  ];

  let validAttachments: Attachment[] | undefined;
  const va = doc['cni.dev/valid-attachments'];
  if (va !== undefined) {
    if (!Array.isArray(va)) invalid(`"cni.dev/valid-attachments": want a list, got ${JSON.stringify(va)}`);
    validAttachments = va.map((a: unknown, i: number) => {
      if (!isObject(a) || typeof a.containerID !== 'string' || typeof a.ifname !== 'string') {
        invalid(`"cni.dev/valid-attachments"[${i}]: want {"containerID": …, "ifname": …}, got ${JSON.stringify(a)}`);
      }
      return { containerID: a.containerID, ifname: a.ifname };
    });
  }

  let lockTimeoutMs = 30_000;
  if (ipam.lockTimeoutSeconds !== undefined) {
    const s = ipam.lockTimeoutSeconds;
    if (typeof s !== 'number' || !(s > 0)) invalid(`ipam.lockTimeoutSeconds: want a positive number, got ${JSON.stringify(s)}`);
    lockTimeoutMs = s * 1000;
  }

  return {
    cniVersion,
    network,
    ranges,
    rangesField,
    podCIDRsFrom: from === 'node' ? 'node' : undefined,
    nodePodCIDRsFile: optString(ipam, 'nodePodCIDRsFile', 'ipam.nodePodCIDRsFile') ?? DEFAULT_NODE_POD_CIDRS_FILE,
    nodeName: optString(ipam, 'nodeName', 'ipam.nodeName'),
    kubeconfig: optString(ipam, 'kubeconfig', 'ipam.kubeconfig'),
    routes,
    dataDir: optString(ipam, 'dataDir', 'ipam.dataDir') ?? DEFAULT_DATA_DIR,
    resolvConf: optString(ipam, 'resolvConf', 'ipam.resolvConf'),
    lockTimeoutMs,
    requestedIPs,
    validAttachments,
    prevResult: doc.prevResult,
  };
}

export { CniError };
