// The proxy tests' world: a node namespace running `kube-dataplane proxy` on a manifest
// directory, pods behind its bridge running proxy-backend.mjs, and a client namespace outside
// the node (a stand-in for the rest of the network). Everything lives in namespaces of one
// Topology and dies with it.
import { expect } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Topology, type Namespace, type Process } from './harness/netns.js';

const ROOT = resolve(import.meta.dirname, '..');
export const BIN = join(ROOT, 'dist/cmd/kube-dataplane.js');
export const BACKEND = join(ROOT, 'netns-tests/proxy-backend.mjs');
export const CLIENT = join(ROOT, 'netns-tests/proxy-client.mjs');

export const NODE = 'node-a';
export const NODE_IP4 = '192.168.50.1';
export const NODE_IP6 = 'fd00:50::1';
export const CLIENT_IP4 = '192.168.50.2';
export const CLIENT_IP6 = 'fd00:50::2';
export const CLUSTER_CIDRS = '10.244.0.0/16,fd00:244::/48';

export interface Pod {
  name: string;
  ns: Namespace;
  ip4: string;
  ip6: string;
  server?: Process;
}

export interface ProxyEnvOptions {
  pods: readonly string[];
  /** Extra proxy flags. */
  flags?: readonly string[];
  /** Environment of the proxy process (e.g. PATH with a failing tool first). */
  env?: NodeJS.ProcessEnv;
  /** --cluster-cidr (default CLUSTER_CIDRS; '' leaves the flag out). */
  clusterCIDRs?: string;
  /** A command the proxy runs under (its argv is appended), e.g. to change its mounts. */
  wrap?: readonly string[];
}

export class ProxyEnv {
  topo!: Topology;
  node!: Namespace;
  client!: Namespace;
  upstream!: Namespace;
  pods: Pod[] = [];
  proxy?: Process;
  readonly dir = mkdtempSync(join(tmpdir(), 'kdp-proxy-'));

  static async create(opts: ProxyEnvOptions): Promise<ProxyEnv> {
    const env = new ProxyEnv();
    await env.build(opts);
    return env;
  }

  private async build(opts: ProxyEnvOptions): Promise<void> {
    this.topo = await Topology.create();
    this.node = await this.topo.namespace('node');
    this.client = await this.topo.namespace('client');
    for (const [k, v] of [['net.ipv4.ip_forward', 1], ['net.ipv6.conf.all.forwarding', 1]] as const) await this.node.sysctl(k, v);
    await this.topo.bridge(this.node, 'cbr0', ['10.244.0.1/24', 'fd00:244::1/64']);
    await this.topo.veth(
      { ns: this.node, ifname: 'eth0', addresses: [`${NODE_IP4}/24`, `${NODE_IP6}/64`] },
      { ns: this.client, ifname: 'eth0', addresses: [`${CLIENT_IP4}/24`, `${CLIENT_IP6}/64`] },
    );
    await this.client.addRoute('default', 'via', NODE_IP4);
    await this.client.addRoute('default', 'via', NODE_IP6);
    // The node's default route leads to an upstream router namespace on another link, as a
    // real node's does: a service address that is not DNATed is forwarded there (and meets the
    // filter rules first). On the client's own link, the kernel would answer with an ICMP
    // redirect first, which spends the per-peer ICMP token the REJECT's error needs.
    this.upstream = await this.topo.namespace('upstream');
    await this.topo.veth(
      { ns: this.node, ifname: 'eth1', addresses: ['192.168.60.1/24', 'fd00:60::1/64'] },
      { ns: this.upstream, ifname: 'eth0', addresses: ['192.168.60.2/24', 'fd00:60::2/64'] },
    );
    await this.node.addRoute('default', 'via', '192.168.60.2');
    await this.node.addRoute('default', 'via', 'fd00:60::2');
    for (const [i, name] of opts.pods.entries()) {
      const ns = await this.topo.namespace(name);
      const ip4 = `10.244.0.${11 + i}`;
      const ip6 = `fd00:244::${(11 + i).toString(16)}`;
      await this.topo.plugIntoBridge({ ns, ifname: 'eth0', addresses: [`${ip4}/24`, `${ip6}/64`] }, this.node, `veth-${name}`.slice(0, 15), 'cbr0');
      // Hairpin: a pod reaching itself through a service comes back out of its own bridge port.
      await this.node.exec('bridge', ['link', 'set', 'dev', `veth-${name}`.slice(0, 15), 'hairpin', 'on']);
      await ns.addRoute('default', 'via', '10.244.0.1');
      await ns.addRoute('default', 'via', 'fd00:244::1');
      this.pods.push({ name, ns, ip4, ip6 });
    }
    await Promise.all(this.pods.map(async (p) => {
      p.server = p.ns.spawn('node', [BACKEND, '--name', p.name, '--port', '8080,5353', '--echo-port', '9090'], { label: `backend ${p.name}` });
      await p.server.waitForOutput('listening');
    }));
  }

  /** Writes (atomically) one manifest file of the directory the proxy watches. */
  write(file: string, yaml: string): void {
    const tmp = join(this.dir, `.${file}.tmp`);
    writeFileSync(tmp, yaml);
    renameSync(tmp, join(this.dir, file));
  }

  async startProxy(opts: ProxyEnvOptions): Promise<Process> {
    const args = [
      BIN, 'proxy',
      '--manifests', this.dir,
      '--node-name', NODE,
      ...(opts.clusterCIDRs === '' ? [] : ['--cluster-cidr', opts.clusterCIDRs ?? CLUSTER_CIDRS]),
      '--healthz-bind-address', '127.0.0.1:10256',
      '--metrics-bind-address', '127.0.0.1:10249',
      '--min-sync-period', '200ms',
      '--log-level', 'debug',
      ...(opts.flags ?? []),
    ];
    const [cmd, ...rest] = [...(opts.wrap ?? []), 'node', ...args];
    this.proxy = this.node.spawn(cmd, rest, { label: 'proxy', env: opts.env });
    await this.proxy.waitForOutput(/rules synced sync=full/, 30_000);
    return this.proxy;
  }

  /** Runs proxy-client.mjs in `from` and returns its lines. */
  async connect(from: Namespace, mode: 'tcp' | 'udp', host: string, port: number, count: number, timeoutMs = 2000): Promise<string[]> {
    const r = await from.exec('node', [CLIENT, mode, host, String(port), String(count), String(timeoutMs)], { timeoutMs: count * timeoutMs + 10_000 });
    return r.stdout.trim().split('\n');
  }

  /** Polls until `check` passes (it throws until then), for changes that take a sync to land. */
  async eventually<T>(what: string, fn: () => Promise<T>, check: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
    const until = Date.now() + timeoutMs;
    let last: T | undefined;
    while (Date.now() < until) {
      last = await fn();
      if (check(last)) return last;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`${what}: not reached in ${timeoutMs} ms; last: ${JSON.stringify(last)}\nproxy log:\n${this.proxy?.stderr.slice(-4000)}`);
  }

  /** GETs a URL from inside the node namespace; resolves with status and body. */
  async http(url: string, from: Namespace = this.node): Promise<{ status: number; body: string }> {
    const code = `const r = await fetch(${JSON.stringify(url)}); process.stdout.write(r.status + "\\n" + await r.text());`;
    const r = await from.exec('node', ['--input-type=module', '-e', code], { timeoutMs: 10_000 });
    const [status, ...body] = r.stdout.split('\n');
    return { status: Number(status), body: body.join('\n') };
  }

  async destroy(): Promise<void> {
    await this.topo?.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Counts lines by their first word (the backend's name, or ERR). */
export function tally(lines: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of lines) {
    const k = l.startsWith('ERR') ? l : l.split(' ')[0];
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

/**
 * The ClusterIP services both proxy modes are proven against, every pod an endpoint of each:
 * `web` (10.96.0.10), `sticky` (ClientIP affinity, .11), `empty` (no endpoints, .12), `shrink`
 * (.13) and `stream` (.14), dual-stack.
 */
export function writeClusterIPServices(env: ProxyEnv): void {
  const all = () => env.pods.flatMap((p) => [{ ip: p.ip4 }, { ip: p.ip6 }]);
  env.write('web.yaml', serviceYaml({ name: 'web', clusterIPs: ['10.96.0.10', 'fd00:96::10'], endpoints: all() }));
  env.write('sticky.yaml', serviceYaml({
    name: 'sticky', clusterIPs: ['10.96.0.11', 'fd00:96::11'], endpoints: all(),
    spec: { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 300 } } },
  }));
  env.write('empty.yaml', serviceYaml({ name: 'empty', clusterIPs: ['10.96.0.12', 'fd00:96::12'], endpoints: [] }));
  env.write('shrink.yaml', serviceYaml({ name: 'shrink', clusterIPs: ['10.96.0.13', 'fd00:96::13'], endpoints: all() }));
  env.write('stream.yaml', serviceYaml({ name: 'stream', clusterIPs: ['10.96.0.14', 'fd00:96::14'], endpoints: all() }));
}

/** A TCP and a UDP port sharing node port `np` (tcp 80→8080, udp 53→5353). */
export function nodePorts(np: number) {
  return [
    { name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: np },
    { name: 'udp', port: 53, targetPort: 5353, protocol: 'UDP', nodePort: np },
  ];
}

/**
 * The node and the externally reached services both rule-based modes are proven against, with
 * `pod-c` "on another node" (node-b) as far as the catalog knows (the packets still reach it):
 * `np` NodePort 30080; `local` LoadBalancer 198.51.100.9, eTP Local, health-check port 32100;
 * `remote` eTP Local with only pod-c (32101); `fw` (198.51.100.10) allowing 192.168.50.0/24 and
 * `fw-deny` (198.51.100.11) allowing only 203.0.113.0/24; `ext` with external IP 198.51.100.20.
 */
export function writeExternalServices(env: ProxyEnv): void {
  const onNode = (name: string) => (name === 'pod-c' ? 'node-b' : NODE);
  const eps = env.pods.flatMap((p) => [{ ip: p.ip4, node: onNode(p.name) }, { ip: p.ip6, node: onNode(p.name) }]);
  const withStatus = (yaml: string, ip: string) => yaml.replace(/^(\{"apiVersion":"v1","kind":"Service".*)$/m, (line) => JSON.stringify({ ...JSON.parse(line), status: { loadBalancer: { ingress: [{ ip }] } } }));
  env.write('node.yaml', JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: NODE }, status: { addresses: [{ type: 'InternalIP', address: NODE_IP4 }, { type: 'InternalIP', address: NODE_IP6 }] } }));
  env.write('np.yaml', serviceYaml({ name: 'np', clusterIPs: ['10.96.1.1', 'fd00:96::1:1'], ports: nodePorts(30080), endpoints: eps, spec: { type: 'NodePort' } }));
  env.write('local.yaml', withStatus(serviceYaml({
    name: 'local', clusterIPs: ['10.96.1.2', 'fd00:96::1:2'], ports: nodePorts(30081), endpoints: eps,
    spec: { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 32100 },
  }), '198.51.100.9'));
  env.write('remote.yaml', serviceYaml({
    name: 'remote', clusterIPs: ['10.96.1.3', 'fd00:96::1:3'], ports: nodePorts(30082), endpoints: eps.filter((e) => e.node === 'node-b'),
    spec: { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 32101 },
  }));
  env.write('fw.yaml', withStatus(serviceYaml({
    name: 'fw', clusterIPs: ['10.96.1.4'], ports: nodePorts(30083), endpoints: eps,
    spec: { type: 'LoadBalancer', loadBalancerSourceRanges: ['192.168.50.0/24'] },
  }), '198.51.100.10'));
  env.write('fw-deny.yaml', withStatus(serviceYaml({
    name: 'fw-deny', clusterIPs: ['10.96.1.5'], ports: nodePorts(30084), endpoints: eps,
    spec: { type: 'LoadBalancer', loadBalancerSourceRanges: ['203.0.113.0/24'] },
  }), '198.51.100.11'));
  env.write('ext.yaml', serviceYaml({ name: 'ext', clusterIPs: ['10.96.1.6'], endpoints: eps, spec: { externalIPs: ['198.51.100.20'] } }));
}

/** ClientIP affinity on `sticky` (10.96.0.11, fd00:96::11): each client's connections and UDP
 *  exchanges, 20 of each, all reach one backend. */
export async function expectClientIPAffinity(env: ProxyEnv, pods: readonly string[]): Promise<void> {
  for (const [vip, proto, port] of [['10.96.0.11', 'tcp', 80], ['10.96.0.11', 'udp', 53], ['fd00:96::11', 'tcp', 80], ['fd00:96::11', 'udp', 53]] as const) {
    const t = tally(await env.connect(env.client, proto, vip, port, 20));
    expect(Object.keys(t), `${proto} ${vip}`).toHaveLength(1);
    expect(pods).toContain(Object.keys(t)[0]);
  }
}

/** YAML of a Service and one EndpointSlice per family, all endpoints on `node` unless given. */
export function serviceYaml(o: {
  name: string;
  clusterIPs: readonly string[];
  ports?: readonly { name: string; port: number; targetPort: number; protocol: string; nodePort?: number }[];
  endpoints: readonly { ip: string; node?: string; ready?: boolean }[];
  spec?: Record<string, unknown>;
}): string {
  const ports = o.ports ?? [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP' }, { name: 'udp', port: 53, targetPort: 5353, protocol: 'UDP' }];
  const families: string[] = o.clusterIPs.map((ip) => (ip.includes(':') ? 'IPv6' : 'IPv4'));
  const svc = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: o.name, namespace: 'test' },
    spec: { clusterIP: o.clusterIPs[0], clusterIPs: o.clusterIPs, ipFamilies: families, ports, selector: { app: o.name }, ...o.spec },
  };
  const docs: unknown[] = [svc];
  for (const family of ['IPv4', 'IPv6'] as const) {
    const eps = o.endpoints.filter((e) => (family === 'IPv6') === e.ip.includes(':'));
    if (!families.includes(family)) continue;
    docs.push({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${o.name}-${family.toLowerCase()}`, namespace: 'test', labels: { 'kubernetes.io/service-name': o.name } },
      addressType: family,
      ports: ports.map((p) => ({ name: p.name, port: p.targetPort, protocol: p.protocol })),
      endpoints: eps.map((e) => ({ addresses: [e.ip], nodeName: e.node ?? NODE, conditions: { ready: e.ready ?? true } })),
    });
  }
  return docs.map((d) => JSON.stringify(d)).join('\n---\n') + '\n';
}
