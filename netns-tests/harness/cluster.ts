// A cluster of nodes in network namespaces, run from the shipped manifests:
//
//   underlay namespace: bridge br0 (192.168.50.1, fd00:50::1), the test API server on
//   192.168.50.1:6443, the nodes' resolver (dnsmasq on :53), and an outside client
//   (192.168.50.200) standing for a load balancer
//   node-N namespaces: eth0 on br0 (192.168.50.1N), the pod bridge cbr0 that Debian's bridge CNI
//   plugin makes, host-gw routes to every other node's pod CIDRs, and the DaemonSet's pod
//   (manifests/deploy/daemonset.yaml with configmap.yaml, planned by kubelet.ts): its init
//   container installs the IPAM plugin, then its `proxy` and `dns` containers run as processes
//   pods: a namespace each, wired by the bridge plugin delegating to kube-dataplane-ipam
//   (podCIDRsFrom: node, from the file the node's proxy keeps), running proxy-backend.mjs
//
// Nodes have no default route, only the underlay and the other nodes' pod CIDRs: a pod's packet
// to a service address its node has not programmed yet is unroutable (ENETUNREACH at once)
// rather than lost, so tests tell "not synced yet" from "dropped by the rules" without waiting
// out a timeout. (So processes of the node itself cannot reach service IPs; no test needs it.)
// The nodes' resolv.conf names the underlay's resolver, the DaemonSet's dnsPolicy Default.
//
// The harness also plays the cluster's controllers: it gives each Node its spec.podCIDRs (the
// node IPAM controller's carving, ipam/node-cidrs.ts), and writes EndpointSlices for services
// with nodeName, zone and the hints the EndpointSlice controller derives from
// trafficDistribution. The agents reach the API over the underlay, as a real agent reaches
// kube-apiserver. Everything lives in one Topology and is deleted with it, also on failure.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import yaml from 'js-yaml';
import { carveNodeCIDRs, DEFAULT_MASK_SIZES } from '../../ipam/node-cidrs.js';
import { forkTestApiServer, type ChildServer } from '../../test-apiserver/child.js';
import {
  endpointSlices, familyOf, hostNetworkSlice, nodeObject, serviceObject, sliceName, ECHO_PORT, POD_PORT, type NodeFacts, type ServiceSpec,
} from './cluster-objects.js';
import { ROOT } from './example-node.js';
import { manifestOf, planPod, type PodPlan, type PodTemplate } from './kubelet.js';
import { Topology, run, type Namespace, type Process } from './netns.js';
import { eventually, httpGet } from './probes.js';

const DEPLOY = join(ROOT, 'manifests/deploy');
const BACKEND = join(ROOT, 'netns-tests/proxy-backend.mjs');
const BRIDGE_PLUGIN = '/usr/lib/cni/bridge';

export const UNDERLAY4 = '192.168.50.1';
export const UNDERLAY6 = 'fd00:50::1';
export const OUTSIDE4 = '192.168.50.200';
/** A name only the underlay's resolver knows: pods get it through cluster DNS forwarding. */
export const UPSTREAM_NAME = 'example.test';
export const UPSTREAM_ADDRESS = '192.0.2.10';
const API_PORT = 6443;

export interface NodeSpec {
  name: string;
  zone: string;
}

export const DEFAULT_NODES: readonly NodeSpec[] = [
  { name: 'node-1', zone: 'zone-a' },
  { name: 'node-2', zone: 'zone-a' },
  { name: 'node-3', zone: 'zone-b' },
];

export interface ClusterOptions {
  nodes?: readonly NodeSpec[];
  /** Keys changed in the ConfigMap's config.yaml, as an operator edits it (e.g. proxy-mode). */
  config?: Record<string, string>;
  say?: (title: string, lines?: string[]) => void;
}

export interface ClusterNode {
  readonly name: string;
  readonly zone: string;
  readonly index: number;
  readonly ns: Namespace;
  readonly ip4: string;
  readonly ip6: string;
  /** What the node IPAM controller gives this node; in the Node object once assigned. */
  readonly podCIDRs: readonly string[];
  podCIDRsAssigned: boolean;
  /** The node's filesystem (hostPath volumes). */
  readonly hostRoot: string;
  readonly plan: PodPlan;
  /** The DaemonSet pod's running containers, by name (`proxy`, `dns`). */
  containers: Map<string, Process>;
  deleting?: boolean;
  taints?: NodeFacts['taints'];
}

export interface Pod {
  readonly name: string;
  readonly namespace: string;
  readonly node: ClusterNode;
  readonly ns: Namespace;
  readonly ip4: string;
  readonly ip6: string;
  readonly server: Process;
}

/** The kubelet's resolv.conf for a pod with dnsPolicy ClusterFirst. */
function podResolvConf(clusterDNS: string, namespace: string, domain: string): string {
  return `nameserver ${clusterDNS}\nsearch ${namespace}.svc.${domain} svc.${domain} ${domain}\noptions ndots:5\n`;
}

export class Cluster {
  readonly nodes = new Map<string, ClusterNode>();
  readonly pods = new Map<string, Pod>();
  /** Outside the cluster, on the underlay: what a load balancer or a user would be. */
  outside!: Namespace;
  underlay!: Namespace;
  api!: ChildServer;
  readonly work = mkdtempSync(join(tmpdir(), 'kdp-cluster-'));
  readonly kubeconfig = join(this.work, 'kubeconfig');
  private readonly template: PodTemplate;
  private readonly configMaps: Record<string, Record<string, string>>;
  /** The ConfigMap's config.yaml as the agents read it. */
  readonly config: Record<string, unknown>;
  readonly clusterDNS: string;
  private readonly dnsService: any;
  private nextIndex = 1;
  private readonly say: NonNullable<ClusterOptions['say']>;

  private constructor(readonly topo: Topology, opts: ClusterOptions) {
    this.say = opts.say ?? (() => {});
    this.template = manifestOf(join(DEPLOY, 'daemonset.yaml'), 'DaemonSet').spec.template.spec;
    const cm = manifestOf(join(DEPLOY, 'configmap.yaml'), 'ConfigMap');
    const config = yaml.load(cm.data['config.yaml']) as Record<string, unknown>;
    Object.assign(config, opts.config ?? {});
    this.config = config;
    this.configMaps = { [cm.metadata.name]: { ...cm.data, 'config.yaml': yaml.dump(config) } };
    this.dnsService = manifestOf(join(DEPLOY, 'dns-service.yaml'), 'Service');
    this.clusterDNS = this.dnsService.spec.clusterIP;
  }

  static async start(opts: ClusterOptions = {}): Promise<Cluster> {
    const cluster = new Cluster(await Topology.create(), opts);
    try {
      await cluster.build(opts.nodes ?? DEFAULT_NODES);
      return cluster;
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
  }

  get domain(): string {
    return String(this.config['cluster-domain'] ?? 'cluster.local');
  }

  private async build(nodes: readonly NodeSpec[]): Promise<void> {
    this.underlay = await this.topo.namespace('underlay');
    await this.topo.bridge(this.underlay, 'br0', [`${UNDERLAY4}/24`, `${UNDERLAY6}/64`]);
    this.outside = await this.topo.namespace('outside');
    await this.topo.plugIntoBridge({ ns: this.outside, ifname: 'eth0', addresses: [`${OUTSIDE4}/24`, 'fd00:50::200/64'] }, this.underlay, 'u-outside', 'br0');
    // The data centre's resolver, the nodes' /etc/resolv.conf: what cluster DNS forwards to.
    const resolver = this.underlay.spawn('dnsmasq', ['--no-daemon', '--no-resolv', '--no-hosts', `--listen-address=${UNDERLAY4}`, '--bind-interfaces', `--address=/${UPSTREAM_NAME}/${UPSTREAM_ADDRESS}`], { label: 'dnsmasq' });
    await resolver.waitForOutput(/started/, 5_000);
    this.api = await forkTestApiServer(['--host', UNDERLAY4, '--port', String(API_PORT), '--kubeconfig-out', this.kubeconfig, '--bookmark-interval-ms', '5000', '--log-level', 'warn'], { netns: this.underlay.name });
    this.say('underlay: bridge br0 in a namespace of its own; the test API server on it', [`${this.underlay.name}: br0 ${UNDERLAY4}/24 ${UNDERLAY6}/64`, `API: ${this.api.url}`, `resolver (dnsmasq): ${UNDERLAY4}:53, ${UPSTREAM_NAME} → ${UPSTREAM_ADDRESS}`, `outside client: ${OUTSIDE4}`]);
    await this.apply({ ...this.dnsService });
    await Promise.all(nodes.map((n) => this.addNode(n)));
  }

  /** Sends an object to the API server (create or replace). */
  async apply(obj: unknown): Promise<void> {
    await this.api.send({ op: 'apply', object: obj });
  }

  async remove(kind: string, namespace: string | undefined, name: string): Promise<void> {
    await this.api.send({ op: 'delete', kind, namespace, name });
  }

  node(name: string): ClusterNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name} in this cluster`);
    return n;
  }

  pod(name: string): Pod {
    const p = this.pods.get(name);
    if (!p) throw new Error(`no pod ${name} in this cluster`);
    return p;
  }

  private nodeObject(n: ClusterNode): Record<string, unknown> {
    return nodeObject({ ...n, podCIDRs: n.podCIDRsAssigned ? n.podCIDRs : undefined });
  }

  /** A node joins in the order a real one does: the kubelet registers its Node (addresses, zone)
   *  and starts the DaemonSet pod; then the node IPAM controller gives it spec.podCIDRs, which
   *  the proxy writes for the IPAM plugin, and the routes to them follow (host-gw). Resolves once
   *  the proxy has synced, DNS is ready and (unless `podCIDRs: false`) the CIDRs are in use. */
  async addNode(spec: NodeSpec, opts: { podCIDRs?: boolean } = {}): Promise<ClusterNode> {
    if (this.nodes.has(spec.name)) throw new Error(`node ${spec.name} exists already`);
    const index = this.nextIndex++;
    const ns = await this.topo.namespace(spec.name);
    const ip4 = `192.168.50.${10 + index}`;
    const ip6 = `fd00:50::${10 + index}`;
    await this.topo.plugIntoBridge({ ns, ifname: 'eth0', addresses: [`${ip4}/24`, `${ip6}/64`] }, this.underlay, `u-${spec.name}`, 'br0');
    await ns.sysctl('net.ipv4.ip_forward', 1);
    await ns.sysctl('net.ipv6.conf.all.forwarding', 1);
    ns.writeResolvConf(`nameserver ${UNDERLAY4}\n`);
    const hostRoot = join(this.work, spec.name, 'host');
    const plan = planPod(this.template, this.configMaps, { nodeName: spec.name, hostIP: ip4, hostRoot, podDir: join(this.work, spec.name, 'pod') }, ROOT);
    const podCIDRs = carveNodeCIDRs(String(this.config['cluster-cidr']), DEFAULT_MASK_SIZES, index);
    const node: ClusterNode = { ...spec, index, ns, ip4, ip6, podCIDRs, podCIDRsAssigned: false, hostRoot, plan, containers: new Map() };
    this.nodes.set(spec.name, node);
    await this.apply(this.nodeObject(node));
    for (const other of this.nodes.values()) if (other !== node && other.podCIDRsAssigned) await this.routePodCIDRs(node, other);
    await this.publishDnsEndpoints();
    await this.startAgent(node);
    this.say(`${spec.name} (${spec.zone}): ${ip4}, ${ip6}`, [
      ...plan.containers.map((c) => `${c.name}: ${c.argv.map((a) => a.replace(this.work, '…')).join(' ')}`),
    ]);
    if (opts.podCIDRs !== false) await this.assignPodCIDRs(node);
    return node;
  }

  /** The node IPAM controller's part: spec.podCIDRs on the Node; every node routes them to it. */
  async assignPodCIDRs(node: ClusterNode): Promise<void> {
    node.podCIDRsAssigned = true;
    await this.apply(this.nodeObject(node));
    for (const other of this.nodes.values()) if (other !== node) await this.routePodCIDRs(other, node);
    const file = join(node.hostRoot, this.podCIDRsFile);
    const written = await eventually(async () => existsSync(file), (x) => x, 30_000);
    if (!written) throw new Error(`${node.name}: the proxy wrote no ${file} after spec.podCIDRs were set:\n${agentLog(node)}`);
    this.say(`${node.name}: spec.podCIDRs ${node.podCIDRs.join(', ')} (the proxy keeps them for the IPAM plugin)`);
  }

  /** On `on`: `to`'s pod CIDRs via `to`'s node address (host-gw). */
  private async routePodCIDRs(on: ClusterNode, to: ClusterNode): Promise<void> {
    // `replace`: nodes joining at once may both set the same route.
    for (const cidr of to.podCIDRs) {
      await on.ns.ip(cidr.includes(':') ? '-6' : '-4', 'route', 'replace', cidr, 'via', cidr.includes(':') ? to.ip6 : to.ip4, 'dev', 'eth0');
    }
  }

  private get podCIDRsFile(): string {
    const proxy = this.template.containers.find((c) => c.name === 'proxy');
    const arg = proxy?.args?.find((a) => a.startsWith('--node-pod-cidrs-file='));
    if (!arg) throw new Error('daemonset.yaml: the proxy container has no --node-pod-cidrs-file');
    return arg.slice('--node-pod-cidrs-file='.length);
  }

  /** The DaemonSet pod on `node`: the init container to completion, then every container. */
  async startAgent(node: ClusterNode): Promise<void> {
    for (const c of node.plan.init) {
      await node.ns.exec(c.argv[0], c.argv.slice(1), { env: { ...process.env, ...c.env } });
    }
    await Promise.all(node.plan.containers.map((c) => this.startContainer(node, c.name)));
  }

  /** One container of the node's DaemonSet pod; resolves once it is synced (proxy: its first
   *  full sync) or ready (dns: its readiness probe). */
  async startContainer(node: ClusterNode, name: string): Promise<void> {
    const c = node.plan.containers.find((x) => x.name === name);
    if (!c) throw new Error(`daemonset.yaml has no container ${name}`);
    // Node 24 first: the binary is executed directly and its shebang finds `node` on PATH.
    const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH}`, ...c.env };
    const argv = [...c.argv, '--kubeconfig', this.kubeconfig];
    const p = node.ns.spawn(argv[0], argv.slice(1), { env, label: `${node.name}/${name}` });
    node.containers.set(name, p);
    if (name === 'proxy') await p.waitForOutput(/"msg":"rules synced".*"sync":"full"/, 60_000);
    if (name === 'dns') {
      const ready = (await eventually(() => httpGet(node.ns, 'http://127.0.0.1:8181/ready'), (r) => r.status === 200, 30_000)).status;
      if (ready !== 200) throw new Error(`${node.name}: DNS /ready says ${ready}:\n${p.stderr}`);
    }
  }

  /** Stops the node's DaemonSet pod (every container, SIGTERM as the kubelet sends it). */
  async stopAgent(node: ClusterNode): Promise<void> {
    await Promise.all([...node.containers.values()].map((p) => p.stop(5_000)));
    node.containers.clear();
  }

  async restartAgent(node: ClusterNode): Promise<void> {
    await this.stopAgent(node);
    await this.startAgent(node);
  }

  /** Replaces the Node's spec.taints (e.g. the cluster autoscaler's ToBeDeletedByClusterAutoscaler). */
  async setTaints(node: ClusterNode, taints: NonNullable<ClusterNode['taints']>): Promise<void> {
    node.taints = taints;
    await this.apply(this.nodeObject(node));
  }

  /** The Node object says the node is being deleted (metadata.deletionTimestamp). */
  async markNodeDeleting(node: ClusterNode): Promise<void> {
    node.deleting = true;
    await this.apply(this.nodeObject(node));
  }

  /** The node leaves: its Node object is deleted, its pods and agent stop, routes to it go. */
  async deleteNode(node: ClusterNode): Promise<void> {
    await this.remove('Node', undefined, node.name);
    await this.stopAgent(node);
    for (const pod of [...this.pods.values()].filter((p) => p.node === node)) await this.removePod(pod);
    this.nodes.delete(node.name);
    for (const other of this.nodes.values()) {
      if (!node.podCIDRsAssigned) break;
      for (const cidr of node.podCIDRs) await other.ns.ip(cidr.includes(':') ? '-6' : '-4', 'route', 'del', cidr);
    }
    this.topo.deleteNamespace(node.ns);
    await this.publishDnsEndpoints();
  }

  /** The kube-dns Service's endpoints: the DaemonSet's hostNetwork pods, i.e. the node IPs. */
  private async publishDnsEndpoints(): Promise<void> {
    await this.apply(hostNetworkSlice(this.dnsService, [...this.nodes.values()]));
  }

  private cniNetwork(node: ClusterNode): string {
    return JSON.stringify({
      // hairpinMode: a pod reaching itself through a service IP comes back out of its own bridge
      // port (kubelet's --hairpin-mode does the same for its bridge).
      cniVersion: '1.0.0', name: 'podnet', type: 'bridge', bridge: 'cbr0', isGateway: true, isDefaultGateway: true, hairpinMode: true,
      ipam: {
        type: 'kube-dataplane-ipam', podCIDRsFrom: 'node', nodeName: node.name,
        nodePodCIDRsFile: join(node.hostRoot, this.podCIDRsFile), dataDir: join(node.hostRoot, 'var/lib/cni/networks'),
      },
    });
  }

  private async cni(node: ClusterNode, command: 'ADD' | 'DEL', id: string, netns: string): Promise<any> {
    const env = {
      PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: `/var/run/netns/${netns}`, CNI_IFNAME: 'eth0',
      CNI_PATH: `${join(node.hostRoot, 'opt/cni/bin')}:/usr/lib/cni`,
    };
    const r = await run('ip', ['netns', 'exec', node.ns.name, BRIDGE_PLUGIN], { env, input: this.cniNetwork(node), allowFailure: true });
    if (r.code !== 0) throw new Error(`CNI ${command} of pod ${id} on ${node.name} failed: ${r.stdout}${r.stderr}`);
    return command === 'ADD' ? JSON.parse(r.stdout) : undefined;
  }

  /** CNI STATUS of the node's IPAM plugin (what a CNI 1.1 runtime asks before it starts pods;
   *  Debian's bridge plugin speaks only 1.0, so the IPAM plugin is asked directly). */
  async ipamStatus(node: ClusterNode): Promise<{ code: number; out: any }> {
    const config = { ...JSON.parse(this.cniNetwork(node)).ipam, cniVersion: '1.1.0', name: 'podnet' };
    const network = JSON.stringify({ cniVersion: '1.1.0', name: 'podnet', type: 'bridge', ipam: config });
    const env = { PATH: process.env.PATH, CNI_COMMAND: 'STATUS', CNI_PATH: join(node.hostRoot, 'opt/cni/bin') };
    const r = await run('ip', ['netns', 'exec', node.ns.name, join(node.hostRoot, 'opt/cni/bin/kube-dataplane-ipam')], { env, input: network, allowFailure: true });
    return { code: r.code, out: r.stdout.trim() ? JSON.parse(r.stdout) : undefined };
  }

  /** A pod on `node`: wired by the bridge plugin and our IPAM, serving proxy-backend.mjs, with
   *  the kubelet's resolv.conf. */
  async addPod(nodeName: string, name: string, namespace = 'default'): Promise<Pod> {
    if (this.pods.has(name)) throw new Error(`pod ${name} exists already`);
    const node = this.node(nodeName);
    const ns = await this.topo.namespace(name);
    let result: any;
    try {
      result = await this.cni(node, 'ADD', name, ns.name);
    } catch (err) {
      // What a runtime does after a failed ADD: DEL, and the sandbox goes.
      await this.cni(node, 'DEL', name, ns.name).catch(() => {});
      this.topo.deleteNamespace(ns);
      throw err;
    }
    const ips = (result.ips as { address: string }[]).map((i) => i.address.split('/')[0]);
    const ip4 = ips.find((a) => !a.includes(':'));
    const ip6 = ips.find((a) => a.includes(':'));
    if (!ip4 || !ip6) throw new Error(`pod ${name} on ${node.name}: IPAM gave ${ips.join(', ')}, not one address per family`);
    ns.writeResolvConf(podResolvConf(this.clusterDNS, namespace, this.domain));
    const server = ns.spawn(process.execPath, [BACKEND, '--name', name, '--port', String(POD_PORT), '--echo-port', String(ECHO_PORT)], { label: name });
    await server.waitForOutput('listening');
    const pod: Pod = { name, namespace, node, ns, ip4, ip6, server };
    this.pods.set(name, pod);
    return pod;
  }

  async removePod(pod: Pod): Promise<void> {
    await pod.server.stop(1_000);
    await this.cni(pod.node, 'DEL', pod.name, pod.ns.name);
    this.topo.deleteNamespace(pod.ns);
    this.pods.delete(pod.name);
  }

  /** A Service and its EndpointSlices (one per family) with `backends` as endpoints. */
  async addService(spec: ServiceSpec, backends: readonly Pod[]): Promise<void> {
    await this.apply(serviceObject(spec));
    await this.setEndpoints(spec, backends);
  }

  /** Rewrites the service's slices (cluster-objects.ts: as the EndpointSlice controller would). */
  async setEndpoints(spec: ServiceSpec, backends: readonly Pod[], opts: { terminating?: readonly Pod[] } = {}): Promise<void> {
    for (const slice of endpointSlices(spec, backends, new Set(opts.terminating ?? []))) await this.apply(slice);
  }

  async removeService(spec: ServiceSpec): Promise<void> {
    const namespace = spec.namespace ?? 'default';
    for (const family of spec.clusterIPs.map(familyOf)) await this.remove('EndpointSlice', namespace, sliceName(spec, family));
    await this.remove('Service', namespace, spec.name);
  }

  async destroy(): Promise<void> {
    await this.api?.stop();
    await this.topo.destroy();
    rmSync(this.work, { recursive: true, force: true });
  }
}

/** The proxy container's log, for a failing test's message. */
export function agentLog(node: ClusterNode): string {
  return [...node.containers.entries()].map(([name, p]) => `--- ${node.name}/${name}\n${p.stderr}${p.stdout}`).join('\n');
}
