// The command line of DESIGN.md, in one table: every flag, its type, default, and the commands
// that take it. Other tests drive exactly this interface, so names follow kube-proxy's and
// CoreDNS's where they have one. `--config FILE` (YAML, keys are flag names) fills what the
// command line leaves unset; flags win.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import yaml from 'js-yaml';

export class UsageError extends Error {}

type Kind = 'string' | 'bool' | 'list' | 'duration' | 'int';
export type Command = 'agent' | 'proxy' | 'dns' | 'catalog';

interface FlagSpec {
  kind: Kind;
  help: string;
  default?: string | boolean | string[] | number;
  /** Which commands take it; absent means all. */
  for?: readonly Command[];
  choices?: readonly string[];
}

const PROXY: Command[] = ['agent', 'proxy'];
const DNS: Command[] = ['agent', 'dns'];

export const FLAGS: Record<string, FlagSpec> = {
  // common
  kubeconfig: { kind: 'string', help: 'kubeconfig file of the API server to watch' },
  manifests: { kind: 'string', help: 'directory of Kubernetes YAML to serve instead of an API server' },
  config: { kind: 'string', help: 'YAML file of flag values (flags win)' },
  'node-name': { kind: 'string', help: 'this node\'s name (default: the hostname)' },
  'log-level': { kind: 'string', default: 'info', choices: ['debug', 'info', 'warn', 'error'], help: 'least severe level logged' },
  'log-format': { kind: 'string', default: 'text', choices: ['text', 'json'], help: 'log line format' },
  // proxy
  'proxy-mode': { kind: 'string', default: 'iptables', choices: ['iptables', 'userspace', 'nftables'], for: PROXY, help: 'how service VIPs are implemented' },
  'iptables-backend': { kind: 'string', default: 'auto', choices: ['auto', 'legacy', 'nft'], for: PROXY, help: 'iptables flavour; auto picks the one the host already uses' },
  'cluster-cidr': { kind: 'list', default: [], for: [...PROXY, 'dns'], help: 'pod CIDRs of the cluster, both families (comma list); DNS allows them by default (--allow-from)' },
  'service-cidr': { kind: 'list', default: [], for: PROXY, help: 'service CIDRs, both families (comma list; kube-apiserver\'s --service-cluster-ip-range): nftables mode drops traffic to their addresses no service has' },
  'detect-local-mode': { kind: 'string', default: 'ClusterCIDR', choices: ['ClusterCIDR', 'NodeCIDR', 'BridgeInterface', 'InterfaceNamePrefix'], for: PROXY, help: 'what makes traffic cluster-local (not masqueraded on its way to a cluster IP): a source in --cluster-cidr, in the Node\'s spec.podCIDRs, arriving on --pod-bridge-interface, or on an interface named --pod-interface-name-prefix*' },
  'pod-bridge-interface': { kind: 'string', default: '', for: PROXY, help: 'with --detect-local-mode BridgeInterface: the bridge the node\'s pods are on' },
  'pod-interface-name-prefix': { kind: 'string', default: '', for: PROXY, help: 'with --detect-local-mode InterfaceNamePrefix: the prefix of the node\'s pod interfaces' },
  'iptables-localhost-nodeports': { kind: 'bool', default: true, for: PROXY, help: 'iptables mode: node ports answer on 127.0.0.1 too (sets net.ipv4.conf.all.route_localnet=1); false leaves loopback out' },
  'masquerade-all': { kind: 'bool', default: false, for: PROXY, help: 'SNAT all traffic sent to service VIPs' },
  'min-sync-period': { kind: 'duration', default: '1s', for: PROXY, help: 'at most one rule sync per this period' },
  'sync-period': { kind: 'duration', default: '30s', for: PROXY, help: 'the periodic tick: at least once per this period the rules are read back from the kernel and what differs is repaired (full rewrites only at start, after a failure, when the node changes, and hourly)' },
  'healthz-bind-address': { kind: 'string', default: '0.0.0.0:10256', for: PROXY, help: '/healthz and /livez address' },
  'metrics-bind-address': { kind: 'string', default: '127.0.0.1:10249', for: PROXY, help: 'proxy /metrics address' },
  'nodeport-addresses': { kind: 'list', default: [], for: PROXY, help: 'CIDRs whose node addresses accept node ports (default: all)' },
  'userspace-udp-max-sessions': { kind: 'int', default: 1000, for: PROXY, help: 'userspace mode: UDP sessions (one socket each) a service may hold at once; new ones past it are dropped' },
  cleanup: { kind: 'bool', default: false, for: ['proxy'], help: 'remove every rule kube-dataplane created, then exit' },
  // ipam
  'node-pod-cidrs-file': { kind: 'string', default: '/run/kube-dataplane/node-pod-cidrs.json', for: ['agent', 'proxy'], help: 'where the agent (or the proxy, when DNS runs apart) keeps this node\'s spec.podCIDRs for the IPAM plugin (podCIDRsFrom: node); "" turns it off' },
  // dns
  corefile: { kind: 'string', default: '', for: DNS, help: 'serve this CoreDNS Corefile (dns/README.md: the plugins served); it replaces --listen, --cluster-domain, --upstream, --resolv-conf, --pods, --ttl and the --*-listen flags' },
  workers: { kind: 'int', default: 0, for: DNS, help: 'threads answering UDP, each with its own socket on every DNS address (SO_REUSEPORT); 0: one per CPU the process may use (affinity and cgroup CPU limit), at most 4' },
  listen: { kind: 'list', default: ['169.254.20.10:53'], for: DNS, help: 'DNS HOST:PORT, UDP and TCP (repeatable); an IPv4 link-local host no interface has goes on --listen-interface' },
  'listen-interface': { kind: 'string', default: 'kdp-dns0', for: DNS, help: 'interface (created if missing) that carries the link-local --listen addresses' },
  'allow-from': { kind: 'list', default: [], for: DNS, help: 'networks whose queries are answered, others get REFUSED (default: --cluster-cidr, the node\'s addresses, loopback)' },
  'cluster-domain': { kind: 'string', default: 'cluster.local', for: DNS, help: 'the cluster zone' },
  upstream: { kind: 'list', default: [], for: DNS, help: 'upstream resolver HOST[:PORT] (repeatable; default: the nameservers of --resolv-conf)' },
  'resolv-conf': { kind: 'string', default: '/etc/resolv.conf', for: DNS, help: 'resolv.conf whose nameservers are the upstreams when --upstream is not given' },
  'systemd-resolv-conf': { kind: 'string', default: '/run/systemd/resolve/resolv.conf', for: DNS, help: 'read instead when --resolv-conf names only systemd-resolved\'s stub 127.0.0.53 (as kubeadm sets kubelet up); "" turns it off' },
  pods: { kind: 'string', default: 'insecure', choices: ['insecure', 'verified', 'disabled'], for: DNS, help: 'pod A records mode' },
  ttl: { kind: 'int', default: 5, for: DNS, help: 'TTL of cluster-zone answers (seconds)' },
  'health-listen': { kind: 'string', default: '127.0.0.1:8080', for: DNS, help: 'DNS /health address' },
  'ready-listen': { kind: 'string', default: '127.0.0.1:8181', for: DNS, help: 'DNS /ready address' },
  'metrics-listen': { kind: 'string', default: '127.0.0.1:9153', for: DNS, help: 'DNS /metrics address' },
};

export interface Options {
  command: Command;
  kubeconfig?: string;
  manifests?: string;
  config?: string;
  nodeName: string;
  logLevel: string;
  logFormat: string;
  proxyMode: string;
  iptablesBackend: string;
  clusterCIDR: string[];
  serviceCIDR: string[];
  detectLocalMode: string;
  podBridgeInterface: string;
  podInterfaceNamePrefix: string;
  iptablesLocalhostNodeports: boolean;
  masqueradeAll: boolean;
  minSyncPeriodMs: number;
  syncPeriodMs: number;
  healthzBindAddress: string;
  metricsBindAddress: string;
  nodePortAddresses: string[];
  userspaceUdpMaxSessions: number;
  cleanup: boolean;
  nodePodCIDRsFile: string;
  listen: string[];
  listenInterface: string;
  allowFrom: string[];
  clusterDomain: string;
  upstream: string[];
  resolvConf: string;
  systemdResolvConf: string;
  pods: 'insecure' | 'verified' | 'disabled';
  ttl: number;
  corefile: string;
  workers: number;
  healthListen: string;
  readyListen: string;
  metricsListen: string;
}

/** '1s', '500ms', '2m', '1h30m' → milliseconds. */
export function parseDuration(s: string): number {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(s))) {
    total += Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
    end = re.lastIndex;
  }
  if (end !== s.length || s.length === 0) throw new UsageError(`${JSON.stringify(s)} is not a duration (e.g. 500ms, 1s, 2m)`);
  return total;
}

function coerce(name: string, spec: FlagSpec, raw: unknown, prev: unknown): unknown {
  const where = `--${name}`;
  switch (spec.kind) {
    case 'bool':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '') return true;
      if (raw === 'false') return false;
      throw new UsageError(`${where} takes true or false, not ${JSON.stringify(raw)}`);
    case 'list': {
      const items = (Array.isArray(raw) ? raw.map(String) : String(raw).split(',')).map((x) => x.trim()).filter(Boolean);
      return [...((prev as string[] | undefined) ?? []), ...items];
    }
    case 'int': {
      const n = Number(raw);
      if (!Number.isInteger(n) || n < 0) throw new UsageError(`${where} takes a whole number, not ${JSON.stringify(raw)}`);
      return n;
    }
    case 'duration':
      try {
        return parseDuration(String(raw));
      } catch (err) {
        throw new UsageError(`${where}: ${(err as Error).message}`);
      }
    default: {
      const v = String(raw);
      if (spec.choices && !spec.choices.includes(v)) throw new UsageError(`${where} must be one of ${spec.choices.join('|')}, not ${JSON.stringify(v)}`);
      return v;
    }
  }
}

/** Parses `argv` (after the command word) for `command`. Throws UsageError on anything wrong. */
export function parseFlags(command: Command, argv: readonly string[]): Options {
  const given: Record<string, unknown> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const m = /^--([a-z0-9-]+)(?:=(.*))?$/s.exec(arg);
    if (!m) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`);
    const name = m[1];
    const spec = FLAGS[name];
    if (!spec || (spec.for && !spec.for.includes(command))) throw new UsageError(`unknown flag --${name} for ${command}`);
    let raw: string | boolean;
    if (m[2] !== undefined) raw = m[2];
    else if (spec.kind === 'bool') raw = true;
    else if (i + 1 < argv.length) raw = argv[++i];
    else throw new UsageError(`--${name} needs a value`);
    given[name] = coerce(name, spec, raw, given[name]);
  }

  // --config fills what the command line did not set.
  const fromFile: Record<string, unknown> = {};
  if (typeof given.config === 'string') {
    let doc: unknown;
    try {
      doc = yaml.load(readFileSync(given.config, 'utf8'));
    } catch (err) {
      throw new UsageError(`--config ${given.config}: ${(err as Error).message.split('\n')[0]}`);
    }
    if (doc != null && (typeof doc !== 'object' || Array.isArray(doc))) throw new UsageError(`--config ${given.config}: expected a map of flag names to values`);
    for (const [name, value] of Object.entries((doc ?? {}) as Record<string, unknown>)) {
      const spec = FLAGS[name];
      if (!spec || name === 'config') throw new UsageError(`--config ${given.config}: unknown key ${JSON.stringify(name)}`);
      if (spec.for && !spec.for.includes(command)) continue; // a shared config file may hold other commands' keys
      fromFile[name] = coerce(name, spec, value, undefined);
    }
  }

  const value = (name: string): any => {
    if (name in given) return given[name];
    if (name in fromFile) return fromFile[name];
    const spec = FLAGS[name];
    return spec.default === undefined ? undefined : coerce(name, spec, spec.default, undefined);
  };

  const opts: Options = {
    command,
    kubeconfig: value('kubeconfig'),
    manifests: value('manifests'),
    config: value('config'),
    nodeName: value('node-name') ?? hostname(),
    logLevel: value('log-level'),
    logFormat: value('log-format'),
    proxyMode: value('proxy-mode'),
    iptablesBackend: value('iptables-backend'),
    clusterCIDR: value('cluster-cidr'),
    serviceCIDR: value('service-cidr'),
    detectLocalMode: value('detect-local-mode'),
    podBridgeInterface: value('pod-bridge-interface') ?? '',
    podInterfaceNamePrefix: value('pod-interface-name-prefix') ?? '',
    iptablesLocalhostNodeports: value('iptables-localhost-nodeports'),
    masqueradeAll: value('masquerade-all'),
    minSyncPeriodMs: value('min-sync-period'),
    syncPeriodMs: value('sync-period'),
    healthzBindAddress: value('healthz-bind-address'),
    metricsBindAddress: value('metrics-bind-address'),
    nodePortAddresses: value('nodeport-addresses'),
    userspaceUdpMaxSessions: value('userspace-udp-max-sessions'),
    cleanup: value('cleanup'),
    nodePodCIDRsFile: value('node-pod-cidrs-file') ?? '',
    listen: value('listen'),
    listenInterface: value('listen-interface'),
    allowFrom: value('allow-from'),
    clusterDomain: String(value('cluster-domain')).replace(/\.$/, '').toLowerCase(),
    upstream: value('upstream'),
    resolvConf: value('resolv-conf'),
    systemdResolvConf: value('systemd-resolv-conf'),
    pods: value('pods'),
    ttl: value('ttl'),
    corefile: value('corefile'),
    workers: value('workers'),
    healthListen: value('health-listen'),
    readyListen: value('ready-listen'),
    metricsListen: value('metrics-listen'),
  };
  if (opts.kubeconfig && opts.manifests) throw new UsageError('--kubeconfig and --manifests are exclusive: pick one source');
  // In a pod, the in-cluster config is the source; --cleanup needs none.
  if (!opts.cleanup && !opts.kubeconfig && !opts.manifests && !process.env.KUBERNETES_SERVICE_HOST) {
    throw new UsageError('no source: give --kubeconfig FILE or --manifests DIR (or run in a pod)');
  }
  return opts;
}

export function usage(command?: Command): string {
  const lines: string[] = [];
  if (!command) {
    lines.push(
      'usage: kube-dataplane COMMAND [flags]',
      '',
      'commands:',
      '  agent     service proxy and cluster DNS in one process (the DaemonSet)',
      '  proxy     service proxy only',
      '  dns       cluster DNS only',
      '  catalog   print the normalized catalog the agent sees, as JSON, and exit',
      '  ipam      IPAM tools: node-cidrs, gc (see kube-dataplane ipam --help)',
      '',
      'kube-dataplane COMMAND --help lists its flags; --version prints the version.',
    );
    return lines.join('\n');
  }
  lines.push(`usage: kube-dataplane ${command} [flags]`, '', 'flags:');
  for (const [name, spec] of Object.entries(FLAGS)) {
    if (spec.for && !spec.for.includes(command)) continue;
    const arg = spec.kind === 'bool' ? '' : ` ${spec.kind === 'list' ? 'LIST' : spec.kind.toUpperCase()}`;
    const def = spec.default !== undefined && !(Array.isArray(spec.default) && spec.default.length === 0) && spec.default !== false
      ? ` (default ${Array.isArray(spec.default) ? spec.default.join(',') : spec.default})`
      : '';
    lines.push(`  --${name}${arg}`.padEnd(33) + ' ' + spec.help + def);
  }
  return lines.join('\n');
}
