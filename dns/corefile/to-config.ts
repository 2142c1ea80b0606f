// A parsed Corefile → the DNS model (config.ts), plugin by plugin, with CoreDNS's defaults where
// a directive leaves something out. A plugin or an option we do not implement is an error naming
// the file, line and plugin: a drop-in that silently ignored `rewrite` would answer differently
// from what the operator wrote. The few plugins that never change an answer (profiling, tracing,
// debug output) are SAFE_TO_IGNORE: accepted, and logged at start (dns/README.md lists them).
import { isIP, isIPv6 } from 'node:net';
import { aclNetwork, type AclPolicy, type AclRule } from '../acl-plugin.js';
import { TYPE_NAMES } from '../querylog.js';
import { parseDuration } from '../../cli/flags.js';
import type { ListenAddress } from '../../common/http-server.js';
import { parseUpstream, type Upstream } from '../forwarder.js';
import { RCODE_NAMES } from '../wire.js';
import {
  DEFAULT_FORWARD, type CacheConfig, type DnsConfig, type ForwardConfig, type ForwardPolicy, type KubernetesConfig,
  type ServerConfig,
} from '../config.js';
import type { HostsConfig } from '../hosts.js';
import type { NameMatch, RewriteRule } from '../rewrite.js';
import { COMMON_LOG_FORMAT, type QueryLogConfig, type ResponseClass } from '../querylog.js';
import type { NamingOptions } from '../service-records.js';
import type { PodsMode } from '../zone.js';
import { CorefileError, type Directive, type ServerBlockSyntax, type Where } from './parse.js';

/** Plugins that change no answer, accepted without their effect. */
export const SAFE_TO_IGNORE: ReadonlySet<string> = new Set(['debug', 'pprof', 'trace', 'metadata']);

type ProcessWide = { -readonly [K in 'health' | 'ready' | 'metrics' | 'reload']?: DnsConfig[K] };

export interface CorefileConfig {
  readonly config: DnsConfig;
  /** Plugins accepted without their effect (SAFE_TO_IGNORE), for the start-up warning. */
  readonly ignored: ReadonlyArray<{ readonly plugin: string; readonly at: Where }>;
}

export function configFromCorefile(blocks: readonly ServerBlockSyntax[], origin: string): CorefileConfig {
  if (blocks.length === 0) throw new CorefileError({ file: origin, line: 1 }, 'no server block');
  const servers: ServerConfig[] = [];
  const ignored: Array<{ plugin: string; at: Where }> = [];
  const process: ProcessWide = {};
  const seen = new Map<string, Where>();
  for (const block of blocks) {
    for (const [port, zones] of keysByPort(block)) {
      const s = serverBlock(block, port, zones, process, ignored);
      for (const z of zones) {
        for (const l of s.listens) {
          const key = `${l.host}|${l.port}|${z}`;
          const before = seen.get(key);
          if (before) throw new CorefileError(block.at, `zone ${z || '.'} on port ${port} is already served by the block at line ${before.line}`);
          seen.set(key, block.at);
        }
      }
      servers.push(s);
    }
  }
  return { config: { origin, servers, ...process }, ignored };
}

/** `[dns://]ZONE[:PORT]` keys, grouped by port (CoreDNS runs a block once per port). */
function keysByPort(block: ServerBlockSyntax): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const raw of block.keys) {
    let key = raw;
    const scheme = /^([a-z]+):\/\//.exec(key);
    if (scheme) {
      if (scheme[1] !== 'dns') throw new CorefileError(block.at, `server ${raw}: only dns:// is served (no ${scheme[1]}://)`);
      key = key.slice(scheme[0].length);
    }
    const m = /^(.*?)(?::(\d{1,5}))?$/.exec(key)!;
    const port = m[2] === undefined ? 53 : Number(m[2]);
    if (!(port > 0 && port < 65536)) throw new CorefileError(block.at, `server ${raw}: bad port`);
    const zone = normalizeZone(m[1], block.at, `server ${raw}`);
    out.set(port, [...(out.get(port) ?? []), zone]);
  }
  return out;
}

function normalizeZone(z: string, at: Where, what: string): string {
  const name = z.toLowerCase().replace(/\.$/, '');
  if (z === '' || !/^[a-z0-9_.-]*$/.test(name) || name.includes('..') || name.startsWith('.')) {
    throw new CorefileError(at, `${what}: ${JSON.stringify(z)} is not a zone`);
  }
  return name;
}

function serverBlock(
  block: ServerBlockSyntax,
  port: number,
  zones: string[],
  process: ProcessWide,
  ignored: Array<{ plugin: string; at: Where }>,
): ServerConfig {
  let binds: string[] | undefined;
  let kubernetes: KubernetesConfig | undefined;
  const forwards: ForwardConfig[] = [];
  let cache: CacheConfig | undefined;
  let errors = false;
  let loadbalance = false;
  let loop = false;
  let hosts: HostsConfig | undefined;
  let queryLog: QueryLogConfig | undefined;
  const rewrite: RewriteRule[] = [];
  const acl: AclPolicy[] = [];
  let autopath: { zones: string[]; at: Where } | undefined;
  const once = new Map<string, Where>();
  for (const d of block.directives) {
    const before = once.get(d.name);
    if (before && d.name !== 'bind' && d.name !== 'rewrite' && d.name !== 'acl' && d.name !== 'forward') throw new CorefileError(d.at, `${d.name} is already given at line ${before.line}`);
    once.set(d.name, d.at);
    switch (d.name) {
      case 'bind':
        binds = [...(binds ?? []), ...bindAddresses(d)];
        break;
      case 'kubernetes':
        kubernetes = kubernetesPlugin(d, zones);
        break;
      case 'forward':
        // Several, each for its zone, are asked in their order (CoreDNS: the first whose zone
        // has the name; `next` hands a reply on).
        forwards.push(forwardPlugin(d));
        break;
      case 'cache':
        cache = cachePlugin(d, () => kubernetes);
        break;
      case 'errors':
        noBlockArgs(d, 0);
        errors = true;
        break;
      case 'hosts':
        hosts = hostsPlugin(d, zones);
        break;
      case 'log':
        queryLog = logPlugin(d);
        break;
      case 'rewrite':
        rewrite.push(rewritePlugin(d));
        break;
      case 'acl':
        acl.push(aclPlugin(d, zones));
        break;
      case 'autopath': {
        const source = d.args[d.args.length - 1];
        if (source !== '@kubernetes') throw new CorefileError(d.at, `autopath: only @kubernetes is implemented as the search path's source (not ${source ?? 'nothing'})`);
        noBlockArgs(d, d.args.length);
        autopath = { zones: d.args.length > 1 ? d.args.slice(0, -1).map((z) => normalizeZone(z, d.at, 'autopath')) : [...zones], at: d.at };
        break;
      }
      case 'loop':
        noBlockArgs(d, 0);
        loop = true;
        break;
      case 'loadbalance':
        if (d.args.length > 0 && d.args[0] !== 'round_robin') throw new CorefileError(d.at, `loadbalance: only round_robin is implemented (not ${d.args[0]})`);
        noBlockArgs(d, 1);
        loadbalance = true;
        break;
      case 'health': {
        const listen = httpAddress(d, ':8080');
        let lameduckMs = 0;
        for (const o of d.block ?? []) {
          if (o.name !== 'lameduck') throw unknownOption(d, o);
          lameduckMs = duration(o, o.args[0]);
        }
        process.health ??= { listen, lameduckMs };
        break;
      }
      case 'ready':
        noBlockArgs(d, 1);
        process.ready ??= { listen: httpAddress(d, ':8181') };
        break;
      case 'reload': {
        // CoreDNS's defaults and bounds: every 30 s ± 15 s; at least 2 s ± 1 s; the jitter at
        // most half the interval.
        if (d.args.length > 2) throw new CorefileError(d.at, `reload: unexpected ${d.args.slice(2).join(' ')}`);
        const intervalMs = d.args[0] === undefined ? 30_000 : duration(d, d.args[0]);
        const jitterMs = d.args[1] === undefined ? 15_000 : duration(d, d.args[1]);
        if (intervalMs < 2000 || jitterMs < 1000) throw new CorefileError(d.at, 'reload: the interval is at least 2s and the jitter at least 1s');
        noBlockArgs(d, 2);
        process.reload ??= { intervalMs, jitterMs: Math.min(jitterMs, intervalMs / 2) };
        break;
      }
      case 'prometheus':
        noBlockArgs(d, 1);
        process.metrics ??= { listen: httpAddress(d, 'localhost:9153') };
        break;
      default:
        if (SAFE_TO_IGNORE.has(d.name)) {
          ignored.push({ plugin: d.name, at: d.at });
          break;
        }
        throw new CorefileError(d.at, `plugin ${d.name} is not implemented by kube-dataplane (dns/README.md lists the plugins it serves)`);
    }
  }
  // CoreDNS's rule: the pod's namespace comes from the Pods the kubernetes plugin watches.
  if (autopath && kubernetes?.pods !== 'verified') throw new CorefileError(autopath.at, 'autopath @kubernetes needs kubernetes with pods verified in the same block');
  const addresses = binds ?? ['0.0.0.0', '::'];
  return { zones, listens: addresses.map((host) => ({ host, port })), ...(kubernetes ? { kubernetes } : {}), forwards, ...(cache ? { cache } : {}), errors, loadbalance, loop, ...(hosts ? { hosts } : {}), ...(queryLog ? { log: queryLog } : {}), ...(acl.length ? { acl } : {}), ...(rewrite.length ? { rewrite } : {}), ...(autopath ? { autopath: { zones: autopath.zones } } : {}), at: block.at };
}

function bindAddresses(d: Directive): string[] {
  if (d.args.length === 0) throw new CorefileError(d.at, 'bind needs an address');
  if (d.block) throw new CorefileError(d.at, 'bind: except blocks are not implemented');
  for (const a of d.args) if (isIP(a) === 0) throw new CorefileError(d.at, `bind ${a}: only IP addresses are implemented (no interface names)`);
  return [...d.args];
}

const NAME_MATCHES: readonly NameMatch[] = ['exact', 'prefix', 'suffix', 'substring', 'regex'];

/**
 * `rewrite [continue|stop] name [MATCH] FROM TO [answer auto | answer name|value FROM TO …]`, or
 * the block form `rewrite [continue|stop] { name … ; answer … }`. Only `name` rules are served.
 */
function rewritePlugin(d: Directive): RewriteRule {
  let args = [...d.args];
  let next: 'stop' | 'continue' = 'stop';
  if (args[0] === 'continue' || args[0] === 'stop') next = args.shift() as 'stop' | 'continue';
  const lines: Array<{ args: string[]; at: Where }> = d.block ? d.block.map((o) => ({ args: [o.name, ...o.args], at: o.at })) : [{ args, at: d.at }];
  const nameLine = lines.find((l) => l.args[0] === 'name');
  if (!nameLine) throw new CorefileError(d.at, `rewrite: only name rules are implemented (not ${args[0] ?? lines[0]?.args[0] ?? 'nothing'})`);
  args = nameLine.args.slice(1);
  let match: NameMatch = 'exact';
  if ((NAME_MATCHES as readonly string[]).includes(args[0]) && args.length >= 3) match = args.shift() as NameMatch;
  const [rawFrom, rawTo, ...rest] = args;
  if (rawFrom === undefined || rawTo === undefined) throw new CorefileError(nameLine.at, 'rewrite name needs FROM and TO');
  if (match === 'regex') {
    try {
      new RegExp(rawFrom);
    } catch (err) {
      throw new CorefileError(nameLine.at, `rewrite name regex ${rawFrom}: ${(err as Error).message}`);
    }
  }
  const plain = (s: string) => (match === 'regex' ? s : s.toLowerCase().replace(/\.$/, ''));
  const answers = [...rest, ...lines.filter((l) => l !== nameLine).flatMap((l) => l.args)];
  let answerAuto = false;
  const answerNames: Array<{ from: string; to: string }> = [];
  const answerValues: Array<{ from: string; to: string }> = [];
  for (let i = 0; i < answers.length; ) {
    if (answers[i] !== 'answer') throw new CorefileError(nameLine.at, `rewrite: unexpected ${answers[i]} (answer auto | answer name|value FROM TO)`);
    const kind = answers[i + 1];
    if (kind === 'auto') {
      answerAuto = true;
      i += 2;
    } else if ((kind === 'name' || kind === 'value') && answers[i + 3] !== undefined) {
      (kind === 'name' ? answerNames : answerValues).push({ from: answers[i + 2], to: answers[i + 3] });
      i += 4;
    } else throw new CorefileError(nameLine.at, `rewrite: answer ${kind ?? ''} is not auto, name FROM TO or value FROM TO`);
  }
  return { match, from: plain(rawFrom), to: plain(rawTo), next, answerAuto, answerNames, answerValues };
}

/** `log [NAMES…] [FORMAT] { class success|denial|error|all… }` */
function logPlugin(d: Directive): QueryLogConfig {
  const args = [...d.args];
  let format = COMMON_LOG_FORMAT;
  const last = args[args.length - 1];
  if (last !== undefined && (last.includes('{') || last === '{common}')) format = args.pop()!;
  if (format === '{combined}') throw new CorefileError(d.at, 'log: the {combined} format is not implemented');
  const zones = args.length > 0 ? args.map((z) => normalizeZone(z, d.at, 'log')) : [''];
  const classes = new Set<ResponseClass>();
  for (const o of d.block ?? []) {
    if (o.name !== 'class') throw unknownOption(d, o);
    for (const c of o.args) {
      if (c === 'all') for (const k of ['success', 'denial', 'error'] as const) classes.add(k);
      else if (c === 'success' || c === 'denial' || c === 'error') classes.add(c);
      else throw new CorefileError(o.at, `log: class ${c} is not one of all, success, denial, error`);
    }
  }
  return { zones, format, classes: classes.size > 0 ? classes : new Set(['success', 'denial', 'error']) };
}

/** `hosts [FILE [ZONES…]] { IP NAME…; ttl; no_reverse; reload; fallthrough }` */
function hostsPlugin(d: Directive, blockZones: readonly string[]): HostsConfig {
  const file = d.args[0] ?? '/etc/hosts';
  const zones = d.args.length > 1 ? d.args.slice(1).map((z) => normalizeZone(z, d.at, 'hosts')) : [...blockZones];
  const inline: string[] = [];
  let ttl = 3600;
  let noReverse = false;
  let reloadMs = 5000;
  let fallthrough: string[] | undefined;
  for (const o of d.block ?? []) {
    if (isIP(o.name.replace(/%.*$/, '')) !== 0) {
      if (o.args.length === 0) throw new CorefileError(o.at, `hosts: ${o.name} needs a name`);
      inline.push([o.name, ...o.args].join(' '));
      continue;
    }
    switch (o.name) {
      case 'ttl': {
        const n = Number(o.args[0]);
        if (o.args.length !== 1 || !Number.isInteger(n) || n < 0 || n > 65535) throw new CorefileError(o.at, 'hosts: ttl is whole seconds from 0 to 65535');
        ttl = n;
        break;
      }
      case 'no_reverse':
        noReverse = true;
        break;
      case 'reload':
        reloadMs = duration(o, o.args[0]);
        break;
      case 'fallthrough':
        fallthrough = o.args.length === 0 ? [''] : o.args.map((z) => normalizeZone(z, o.at, 'hosts fallthrough'));
        break;
      default:
        throw new CorefileError(o.at, `hosts: ${o.name} is neither an address line nor an option (ttl, no_reverse, reload, fallthrough)`);
    }
  }
  return { file, inline, zones, ttl, noReverse, reloadMs, ...(fallthrough ? { fallthrough } : {}) };
}

function kubernetesPlugin(d: Directive, blockZones: readonly string[]): KubernetesConfig {
  const zones = (d.args.length > 0 ? d.args.map((z) => normalizeZone(z, d.at, 'kubernetes')) : [...blockZones]);
  const reverseZones = zones.filter((z) => z.endsWith('in-addr.arpa') || z.endsWith('ip6.arpa'));
  const forwardZones = zones.filter((z) => !reverseZones.includes(z));
  if (forwardZones.length !== 1 || forwardZones[0] === '') {
    throw new CorefileError(d.at, `kubernetes: exactly one cluster zone is implemented (got ${forwardZones.map((z) => z || '.').join(' ') || 'none'})`);
  }
  // CoreDNS's defaults: pods disabled, TTL 5 s, no fallthrough.
  let pods: PodsMode = 'disabled';
  let ttl = 5;
  let fallthrough: string[] | undefined;
  const naming: { -readonly [K in keyof NamingOptions]: NamingOptions[K] } = {};
  let namespaces: string[] | undefined;
  for (const o of d.block ?? []) {
    switch (o.name) {
      case 'endpoint_pod_names':
        naming.endpointPodNames = true;
        break;
      case 'noendpoints':
        naming.noEndpoints = true;
        break;
      case 'ignore':
        if (o.args.length !== 1 || o.args[0] !== 'empty_service') throw new CorefileError(o.at, 'kubernetes: ignore takes empty_service');
        naming.ignoreEmptyService = true;
        break;
      case 'namespaces':
        if (o.args.length === 0) throw new CorefileError(o.at, 'kubernetes: namespaces needs at least one namespace');
        namespaces = o.args.map((n) => n.toLowerCase());
        break;
      case 'pods':
        if (o.args.length !== 1 || !['insecure', 'verified', 'disabled'].includes(o.args[0])) throw new CorefileError(o.at, 'kubernetes: pods is one of insecure, verified, disabled');
        pods = o.args[0] as PodsMode;
        break;
      case 'ttl': {
        const n = Number(o.args[0]);
        if (o.args.length !== 1 || !Number.isInteger(n) || n < 0 || n > 3600) throw new CorefileError(o.at, 'kubernetes: ttl is whole seconds from 0 to 3600');
        ttl = n;
        break;
      }
      case 'fallthrough':
        fallthrough = o.args.length === 0 ? [''] : o.args.map((z) => normalizeZone(z, o.at, 'kubernetes fallthrough'));
        break;
      default:
        throw unknownOption(d, o);
    }
  }
  return {
    domain: forwardZones[0], reverseZones, pods, ttl, ...(fallthrough ? { fallthrough } : {}),
    ...(Object.keys(naming).length ? { naming } : {}), ...(namespaces ? { namespaces } : {}),
  };
}

function forwardPlugin(d: Directive): ForwardConfig {
  if (d.args.length < 2) throw new CorefileError(d.at, 'forward needs a zone and at least one upstream');
  const from = normalizeZone(d.args[0], d.at, 'forward');
  const to: Upstream[] = [];
  const resolvConfs: string[] = [];
  for (const a of d.args.slice(1)) {
    if (a.startsWith('/') || a.startsWith('.')) {
      resolvConfs.push(a);
      continue;
    }
    if (/^[a-z]+:\/\//.test(a) && !/^(dns|tls|https):\/\//.test(a)) throw new CorefileError(d.at, `forward ${a}: only plain DNS, DNS over TLS and DNS over HTTPS upstreams are implemented (no ${a.split(':')[0]}://)`);
    try {
      if (a.startsWith('tls://')) to.push(tlsUpstream(a.slice(6), 853));
      else if (a.startsWith('https://')) to.push(httpsUpstream(a.slice(8)));
      else to.push(parseUpstream(a.replace(/^dns:\/\//, '')));
    } catch (err) {
      throw new CorefileError(d.at, `forward: ${(err as Error).message.replace(/^--upstream /, '')}`);
    }
  }
  const f = { ...DEFAULT_FORWARD, from, to, resolvConfs } as { -readonly [K in keyof ForwardConfig]: ForwardConfig[K] };
  for (const o of d.block ?? []) {
    switch (o.name) {
      case 'except':
        f.except = o.args.map((z) => normalizeZone(z, o.at, 'forward except'));
        break;
      case 'policy':
        if (!['random', 'round_robin', 'sequential'].includes(o.args[0] ?? '')) throw new CorefileError(o.at, 'forward: policy is one of random, round_robin, sequential');
        f.policy = o.args[0] as ForwardPolicy;
        break;
      case 'max_concurrent':
        f.maxConcurrent = positiveInt(o);
        break;
      case 'max_fails':
        f.maxFails = positiveInt(o, 0);
        break;
      case 'health_check':
        f.healthCheckMs = duration(o, o.args[0]);
        if (o.block) throw unknownOption(d, o.block[0]);
        break;
      case 'tls': {
        // `tls`, `tls CA`, `tls CERT KEY`, `tls CERT KEY CA`, as CoreDNS reads them.
        if (o.args.length > 3) throw new CorefileError(o.at, 'tls: at most CERT KEY CA');
        const [x, y, z] = o.args;
        f.tls = { ...f.tls, ...(o.args.length === 1 ? { caFile: x } : {}), ...(o.args.length >= 2 ? { certFile: x, keyFile: y } : {}), ...(z ? { caFile: z } : {}) };
        break;
      }
      case 'max_connect_attempts':
        f.maxAttempts = positiveInt(o, 0);
        break;
      case 'doh_method':
        if (o.args.length !== 1 || !['GET', 'POST'].includes(o.args[0].toUpperCase())) throw new CorefileError(o.at, 'doh_method: GET or POST');
        f.dohMethod = o.args[0].toUpperCase() as 'GET' | 'POST';
        break;
      case 'tls_servername':
        if (o.args.length !== 1) throw new CorefileError(o.at, 'tls_servername: one name');
        f.tls = { ...f.tls, servername: o.args[0] };
        break;
      case 'force_tcp':
        noBlockArgs(o, 0);
        f.forceTcp = true;
        break;
      case 'prefer_udp':
        // What every exchange here does unless force_tcp (which CoreDNS lets win too).
        noBlockArgs(o, 0);
        break;
      case 'expire':
        // Connections are not kept between exchanges (a socket per exchange), so there is
        // nothing to expire.
        duration(o, o.args[0]);
        break;
      case 'max_idle_conns':
        positiveInt(o, 0); // likewise: no idle connections are kept
        break;
      case 'next':
        f.next = rcodes(o, false);
        break;
      case 'next_on_nodata':
        noBlockArgs(o, 0);
        f.nextOnNodata = true;
        break;
      case 'failover':
        f.failover = rcodes(o, true);
        break;
      case 'failfast_all_unhealthy_upstreams':
        noBlockArgs(o, 0);
        f.failfastAllDown = true;
        break;
      default:
        throw unknownOption(d, o);
    }
  }
  return f;
}

/** `acl [ZONES…] { ACTION [type QTYPE…] [net SOURCE…] }`, CoreDNS's syntax. */
function aclPlugin(d: Directive, blockZones: readonly string[]): AclPolicy {
  const zones = d.args.length > 0 ? d.args.map((z) => normalizeZone(z, d.at, 'acl')) : [...blockZones];
  const byName = new Map(Object.entries(TYPE_NAMES).map(([n, name]) => [name, Number(n)]));
  const rules: AclRule[] = (d.block ?? []).map((o) => {
    if (o.name !== 'allow' && o.name !== 'block' && o.name !== 'filter' && o.name !== 'drop') throw new CorefileError(o.at, `acl: ${o.name} is not an action (allow, block, filter, drop)`);
    let types: string[] | undefined;
    let nets: string[] | undefined;
    let list: string[] | undefined;
    for (const a of o.args) {
      if (a === 'type') list = types = [];
      else if (a === 'net') list = nets = [];
      else if (!list) throw new CorefileError(o.at, `acl: ${a}: expected type or net`);
      else list.push(a);
    }
    const anyType = types?.includes('*') || (types && types.length === 0);
    const anySource = nets?.includes('*') || (nets && nets.length === 0);
    const typeNumbers = anyType || !types ? undefined : types.map((t) => {
      const n = byName.get(t.toUpperCase()) ?? (/^TYPE\d+$/i.test(t) ? Number(t.slice(4)) : undefined);
      if (n === undefined) throw new CorefileError(o.at, `acl: ${t} is not a question type`);
      return n;
    });
    if (!anySource) for (const n of nets ?? []) {
      try {
        aclNetwork(n);
      } catch (err) {
        throw new CorefileError(o.at, `acl: net ${(err as Error).message}`);
      }
    }
    return { action: o.name, ...(typeNumbers ? { types: typeNumbers } : {}), ...(!anySource && nets ? { nets } : {}) };
  });
  return { zones, rules };
}

/** `https://HOST[%SERVERNAME][:PORT][/PATH]`: port 443 and `/dns-query` by default, as CoreDNS. */
function httpsUpstream(s: string): Upstream {
  const slash = s.indexOf('/');
  const path = slash >= 0 ? s.slice(slash) : '/dns-query';
  return { ...tlsUpstream(slash >= 0 ? s.slice(0, slash) : s, 443), doh: { path } };
}

/** `tls://HOST[%SERVERNAME][:PORT]` (port 853 by default), as CoreDNS writes a DoT upstream. */
function tlsUpstream(s: string, defaultPort: number): Upstream {
  let hostPort = s;
  let servername: string | undefined;
  const pct = s.indexOf('%');
  if (pct >= 0) {
    const [name, port] = s.slice(pct + 1).split(':');
    servername = name;
    hostPort = s.slice(0, pct) + (port ? `:${port}` : '');
  }
  // `[fd00::1]` has no port; `[fd00::1]:853` and `1.1.1.1:853` have one.
  const hasPort = hostPort.startsWith('[') ? /\]:\d+$/.test(hostPort) : !isIPv6(hostPort) && hostPort.includes(':');
  const u = parseUpstream(hostPort);
  return { host: u.host, port: hasPort ? u.port : defaultPort, tls: servername ? { servername } : {} };
}

function cachePlugin(d: Directive, kubernetes: () => KubernetesConfig | undefined): CacheConfig {
  // `cache [TTL] [ZONES…]`; CoreDNS's defaults: 3600 s positive, 1800 s negative, 9984 each.
  let maxTtl = 3600;
  let maxNegativeTtl = 1800;
  let success = 9984;
  let denial = 9984;
  let serveStale: CacheConfig['serveStale'];
  let prefetch: CacheConfig['prefetch'];
  if (d.args.length > 0) {
    const n = Number(d.args[0]);
    if (!Number.isInteger(n) || n <= 0) throw new CorefileError(d.at, `cache: ${d.args[0]} is not a TTL in seconds`);
    maxTtl = n;
    maxNegativeTtl = Math.min(maxNegativeTtl, n);
    if (d.args.length > 1) throw new CorefileError(d.at, 'cache: caching only some zones is not implemented');
  }
  for (const o of d.block ?? []) {
    switch (o.name) {
      case 'success':
      case 'denial': {
        const cap = positiveInt(o);
        const ttl = o.args[1] === undefined ? undefined : Number(o.args[1]);
        if (ttl !== undefined && !(Number.isInteger(ttl) && ttl > 0)) throw new CorefileError(o.at, `cache: ${o.name} TTL ${o.args[1]} is not seconds`);
        if (o.args.length > 2) throw new CorefileError(o.at, `cache: ${o.name} MINTTL is not implemented`);
        if (o.name === 'success') {
          success = cap;
          if (ttl) maxTtl = ttl;
        } else {
          denial = cap;
          if (ttl) maxNegativeTtl = ttl;
        }
        break;
      }
      case 'serve_stale': {
        if (o.args.length > 2 || (o.args[1] !== undefined && !['immediate', 'verify'].includes(o.args[1]))) throw new CorefileError(o.at, 'cache: serve_stale [DURATION] [immediate|verify]');
        serveStale = { ms: o.args[0] === undefined ? 3_600_000 : duration(o, o.args[0]), verify: o.args[1] === 'verify' };
        break;
      }
      case 'prefetch': {
        const amount = positiveInt(o);
        const windowMs = o.args[1] === undefined ? 60_000 : duration(o, o.args[1]);
        const pct = o.args[2] === undefined ? 10 : Number(/^(\d+)%$/.exec(o.args[2])?.[1] ?? NaN);
        if (!(pct >= 10 && pct <= 90) || o.args.length > 3) throw new CorefileError(o.at, 'cache: prefetch AMOUNT [DURATION] [PERCENTAGE%], the percentage from 10% to 90%');
        prefetch = { amount, windowMs, percentage: pct };
        break;
      }
      case 'disable': {
        // The cluster zone's answers are never in this cache (they are built from the catalog
        // and follow it at once), so disabling the cache there is what happens anyway.
        const k = kubernetes();
        const zones = o.args.slice(1).map((z) => normalizeZone(z, o.at, 'cache disable'));
        const covered = k !== undefined && zones.length > 0 && zones.every((z) => z === k.domain || z.endsWith(`.${k.domain}`));
        if (!['success', 'denial'].includes(o.args[0] ?? '') || !covered) {
          throw new CorefileError(o.at, 'cache: disable is implemented only for the kubernetes zone (given after kubernetes), whose answers are never cached');
        }
        break;
      }
      default:
        throw unknownOption(d, o);
    }
  }
  return { maxTtl, maxNegativeTtl, capacity: success + denial, ...(serveStale ? { serveStale } : {}), ...(prefetch ? { prefetch } : {}) };
}

function httpAddress(d: Directive, fallback: string): ListenAddress {
  const s = d.args[0] ?? fallback;
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port < 65536)) throw new CorefileError(d.at, `${d.name}: ${JSON.stringify(s)} is not [HOST]:PORT`);
  const host = m[1] ?? m[2];
  // `:8080` is every address, as in CoreDNS; `localhost` is loopback.
  return { host: host === '' ? '0.0.0.0' : host === 'localhost' ? '127.0.0.1' : host, port };
}

function noBlockArgs(d: Directive, maxArgs: number): void {
  if (d.args.length > maxArgs) throw new CorefileError(d.at, `${d.name}: unexpected ${d.args.slice(maxArgs).join(' ')}`);
  if (d.block && d.block.length > 0) throw unknownOption(d, d.block[0]);
}

function unknownOption(d: Directive, o: Directive): CorefileError {
  return new CorefileError(o.at, `${d.name}: option ${o.name} is not implemented`);
}

/** `RCODE…` of `next` and `failover`, by name (NXDOMAIN, SERVFAIL, REFUSED, …); `failover`
 *  cannot take NOERROR, as CoreDNS says. */
function rcodes(o: Directive, noNoerror: boolean): number[] {
  if (o.args.length === 0) throw new CorefileError(o.at, `${o.name}: at least one RCODE`);
  return o.args.map((a) => {
    const n = RCODE_NAMES.indexOf(a.toUpperCase());
    if (n < 0) throw new CorefileError(o.at, `${o.name}: ${a} is not an RCODE (${RCODE_NAMES.join(', ')})`);
    if (n === 0 && noNoerror) throw new CorefileError(o.at, `${o.name}: NOERROR cannot be used`);
    return n;
  });
}

function positiveInt(o: Directive, min = 1): number {
  const n = Number(o.args[0]);
  if (!Number.isInteger(n) || n < min) throw new CorefileError(o.at, `${o.name}: ${o.args[0] ?? '(nothing)'} is not a whole number ≥ ${min}`);
  return n;
}

function duration(o: Directive, s: string | undefined): number {
  try {
    return parseDuration(s ?? '');
  } catch {
    throw new CorefileError(o.at, `${o.name}: ${JSON.stringify(s ?? '')} is not a duration (5s, 500ms, 1m)`);
  }
}

