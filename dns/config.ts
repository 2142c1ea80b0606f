// What the DNS server is told to serve, whichever way it was told: the command line's flags and
// a CoreDNS Corefile (`--corefile`, corefile.ts) both produce this model, and the server is built
// from it alone. Its shape is CoreDNS's: server blocks (zones on a port) with their plugins,
// because that is what operators already write.
import type { AclPolicy } from './acl-plugin.js';
import type { ListenAddress } from '../common/http-server.js';
import type { Options } from '../cli/flags.js';
import type { Upstream } from './forwarder.js';
import type { Where } from './corefile/parse.js';
import type { PrefetchOptions } from './cache.js';
import type { HostsConfig } from './hosts.js';
import type { QueryLogConfig } from './querylog.js';
import type { RewriteRule } from './rewrite.js';
import type { NamingOptions } from './service-records.js';
import type { PodsMode } from './zone.js';

export interface DnsConfig {
  /** Where it came from, for logs and errors: `flags`, or the Corefile's path. */
  readonly origin: string;
  readonly servers: readonly ServerConfig[];
  /** `/health` (`health`), `/ready` (`ready`), `/metrics` (`prometheus`): process-wide, as in
   *  CoreDNS, where the first server block to name one sets it. Absent: not served. */
  readonly health?: { readonly listen: ListenAddress; readonly lameduckMs: number };
  readonly ready?: { readonly listen: ListenAddress };
  readonly metrics?: { readonly listen: ListenAddress };
  /** `reload`: the Corefile is looked at every interval (± jitter) and applied when it changed. */
  readonly reload?: { readonly intervalMs: number; readonly jitterMs: number };
}

export interface ServerConfig {
  /** The zones this block answers, lower case without the final dot; `.` (the root) is ''. */
  readonly zones: readonly string[];
  /** Where it listens: its port on each `bind` address, or on the wildcards without `bind`. */
  readonly listens: readonly ListenAddress[];
  readonly kubernetes?: KubernetesConfig;
  /** The `forward` plugins, in their order: a name goes to the first whose zone has it. */
  readonly forwards: readonly ForwardConfig[];
  /** Absent: forwarded answers are not cached (a Corefile block without `cache`). */
  readonly cache?: CacheConfig;
  /** `errors`: failed exchanges are logged (the default of the flags' server). */
  readonly errors: boolean;
  /** `loadbalance`: address records in a random order in every reply. */
  readonly loadbalance?: boolean;
  /** `loop`: at start, a forwarding loop back to this block stops the server. */
  readonly loop?: boolean;
  readonly hosts?: HostsConfig;
  /** `log`: the query log. */
  readonly log?: QueryLogConfig;
  /** `acl` policies, in their order (acl-plugin.ts). */
  readonly acl?: readonly AclPolicy[];
  /** `rewrite name` rules, in their order. */
  readonly rewrite?: readonly RewriteRule[];
  /** `autopath @kubernetes`: the zones whose names may be search-path walks. */
  readonly autopath?: { readonly zones: readonly string[] };
  readonly at?: Where;
}

export interface KubernetesConfig {
  /** The cluster zone (`cluster.local`). */
  readonly domain: string;
  /** The reverse zones it answers PTRs in (`in-addr.arpa`, `ip6.arpa`, or narrower ones). */
  readonly reverseZones: readonly string[];
  readonly pods: PodsMode;
  readonly ttl: number;
  /** Zones whose names it does not own go on to `forward` instead of NXDOMAIN; [''] is every
   *  zone. Absent: no fallthrough. */
  readonly fallthrough?: readonly string[];
  /** `endpoint_pod_names`, `noendpoints`, `ignore empty_service`. */
  readonly naming?: NamingOptions;
  /** `namespaces`: only these namespaces are in the zone. */
  readonly namespaces?: readonly string[];
}

export type ForwardPolicy = 'random' | 'round_robin' | 'sequential';

export interface ForwardConfig {
  /** The zone forwarded (`.`: everything the block does not answer itself), lower case. */
  readonly from: string;
  /** Upstream addresses, and resolv.conf files whose nameservers are upstreams too. */
  readonly to: readonly Upstream[];
  readonly resolvConfs: readonly string[];
  /** Names under these zones are not forwarded (SERVFAIL… in CoreDNS: the next plugin). */
  readonly except: readonly string[];
  readonly policy: ForwardPolicy;
  readonly maxConcurrent: number;
  readonly healthCheckMs: number;
  readonly maxFails: number;
  /** `force_tcp`: every exchange (and health probe) over TCP. Otherwise UDP first, TCP when the
   *  reply is truncated, whatever the client used (CoreDNS's `prefer_udp`). */
  readonly forceTcp?: boolean;
  /** `tls [CERT KEY] [CA]` and `tls_servername`, for the `tls://` upstreams (files read when
   *  the forwarder starts). */
  readonly tls?: { readonly certFile?: string; readonly keyFile?: string; readonly caFile?: string; readonly servername?: string };
  /** `next RCODE…`: a reply with one of these codes goes on to the next `forward` of the
   *  block whose zone has the name (the reply stands when there is none). */
  readonly next?: readonly number[];
  /** `next_on_nodata`: likewise for NOERROR without answers. */
  readonly nextOnNodata?: boolean;
  /** `failover RCODE…`: such a reply is asked again of the next upstream (forwarder.ts). */
  readonly failover?: readonly number[];
  /** `failfast_all_unhealthy_upstreams`. */
  readonly failfastAllDown?: boolean;
  /** `max_connect_attempts`: upstream attempts per question at most (0: no cap). */
  readonly maxAttempts?: number;
  /** `doh_method GET|POST` for the `https://` upstreams. */
  readonly dohMethod?: 'GET' | 'POST';
}

export interface CacheConfig {
  /** The longest a positive answer is kept (s): `cache TTL`. */
  readonly maxTtl: number;
  readonly maxNegativeTtl: number;
  readonly capacity: number;
  /** `serve_stale [DURATION] [immediate|verify]`. */
  readonly serveStale?: { readonly ms: number; readonly verify: boolean };
  readonly prefetch?: PrefetchOptions;
}

export const DEFAULT_FORWARD: Omit<ForwardConfig, 'to' | 'resolvConfs'> = {
  from: '',
  except: [],
  policy: 'random',
  maxConcurrent: 1000,
  healthCheckMs: 500,
  maxFails: 2,
};

export const REVERSE_ZONES = ['in-addr.arpa', 'ip6.arpa'] as const;

/**
 * The flags' server: one block for the root zone on every `--listen` address, the cluster
 * zone with CoreDNS's usual `fallthrough in-addr.arpa ip6.arpa`, everything else forwarded to
 * `--upstream` (or `--resolv-conf`'s nameservers) through a cache.
 */
export function configFromFlags(opts: Options, listens: readonly ListenAddress[], upstreams: readonly Upstream[], parseAddr: (s: string, what: string) => ListenAddress): DnsConfig {
  const http = (s: string, what: string) => (s ? { listen: parseAddr(s, what) } : undefined);
  const health = http(opts.healthListen, '--health-listen');
  return {
    origin: 'flags',
    servers: [{
      zones: [''],
      listens,
      kubernetes: { domain: opts.clusterDomain, reverseZones: [...REVERSE_ZONES], pods: opts.pods, ttl: opts.ttl, fallthrough: [...REVERSE_ZONES] },
      forwards: [{ ...DEFAULT_FORWARD, to: upstreams, resolvConfs: upstreams.length > 0 ? [] : [opts.resolvConf] }],
      cache: { maxTtl: 3600, maxNegativeTtl: 1800, capacity: 10_000 },
      errors: true,
    }],
    ...(health ? { health: { ...health, lameduckMs: 0 } } : {}),
    ...(opts.readyListen ? { ready: http(opts.readyListen, '--ready-listen')! } : {}),
    ...(opts.metricsListen ? { metrics: http(opts.metricsListen, '--metrics-listen')! } : {}),
  };
}

/** Whether `name` is `zone` or below it ('' is the root: everything). */
export function inZone(name: string, zone: string): boolean {
  return zone === '' || name === zone || (name.endsWith(zone) && name[name.length - zone.length - 1] === '.');
}
