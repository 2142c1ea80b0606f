// One node of the embedded example (manifests/example), built the way a real node is: a node
// namespace with the pod bridge, an upstream resolver, the kube-dataplane agent, and pods wired
// by Debian's bridge CNI plugin delegating to kube-dataplane-ipam (ranges from the node's
// spec.podCIDRs, through the file the agent keeps). `make demo` narrates it; the agent
// end-to-end test asserts on it.
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Topology, run, type Namespace, type Process } from './netns.js';

/** The repository root, whether this module runs from its source (tests) or from dist/ (demo). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}
export const ROOT = repoRoot();
export const BIN = join(ROOT, 'dist/cmd/kube-dataplane.js');
export const IPAM_BIN = join(ROOT, 'dist/cmd/kube-dataplane-ipam.cjs');
export const EXAMPLE = join(ROOT, 'manifests/example');
const TEST_APISERVER = join(ROOT, 'dist/test-apiserver/main.js');

/** An HTTP server that answers with its own name. */
const BACKEND = `
const [name, port] = process.argv.slice(1);
const server = require('node:http').createServer((req, res) => res.end(name + '\\n'));
server.listen(Number(port), '::', () => console.log('listening', name, port));
`;

/** N requests, each on a fresh connection (no keep-alive) so the proxy balances each one;
 *  prints {who: count}. */
const CLIENT = `
const [url, n] = process.argv.slice(1);
const get = () => new Promise((resolve) => {
  const req = require('node:http').get(url, { agent: false, timeout: 2000 }, (res) => {
    let body = '';
    res.on('data', (d) => (body += d)).on('end', () => resolve(body.trim()));
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e) => resolve('error: ' + (e.code || e.message)));
});
(async () => {
  const counts = {};
  for (let i = 0; i < Number(n); i++) { const who = await get(); counts[who] = (counts[who] || 0) + 1; }
  console.log(JSON.stringify(counts));
})();
`;

export function clientArgs(url: string, n: number): string[] {
  return ['-e', CLIENT, url, String(n)];
}

export interface ExampleNode {
  readonly topo: Topology;
  readonly node: Namespace;
  readonly pods: Record<'web-0' | 'web-1' | 'client', Namespace>;
  /** The addresses the IPAM plugin gave each pod, as CNI returned them. */
  readonly addresses: Record<string, string[]>;
  readonly agent: Process;
  readonly agentArgs: readonly string[];
  readonly network: string;
  /** A private copy of manifests/example: the agent's --manifests directory (free to edit), or
   *  what the test API server serves. */
  readonly manifests: string;
  /** With `source: 'api'`: the test API server's URL (in the node namespace, on loopback). */
  readonly apiURL?: string;
  /** With `source: 'api'`: sends `obj` to the API (POST to create, PUT to replace), from the node
   *  namespace where the server listens; rejects with the server's answer if it refuses. */
  apiWrite(method: 'POST' | 'PUT' | 'DELETE', path: string, obj?: unknown): Promise<void>;
  /** Fetches `url` n times from the client pod; {backend name or error: count}. */
  fetchCounts(url: string, n: number): Promise<Record<string, number>>;
  /** Polls (up to ~5 s) until `name` resolves to `ip` from the client pod and 3 requests to
   *  `url` all reach `backend`; returns the last answer and counts for the test to assert on. */
  waitUntilServed(name: string, ip: string, url: string, backend: string): Promise<{ answer: string; counts: Record<string, number> }>;
  destroy(): Promise<void>;
}

/** What a replacement for the agent process is given (ExampleOptions.startAgent). */
export interface AgentLaunch {
  readonly node: Namespace;
  /** Where the cluster is read from: `--manifests DIR` or `--kubeconfig FILE`. */
  readonly source: readonly string[];
  /** The file the IPAM plugin reads the node's pod CIDRs from; its directory is the agent's. */
  readonly podCIDRsFile: string;
  /** The upstream resolver in the node namespace, HOST:PORT. */
  readonly upstream: string;
}

export interface ExampleOptions {
  /** Where the agent reads the cluster: the manifest directory (default), or a Kubernetes API
   *  (the repo's test API server serving the same objects) through --kubeconfig, as the
   *  DaemonSet does. */
  source?: 'manifests' | 'api';
  /** The agent's `--proxy-mode` (default: iptables). */
  proxyMode?: 'iptables' | 'userspace' | 'nftables';
  say?: (title: string, lines?: string[]) => void;
  /** The upstream resolver's port on the node's 127.0.0.1 (default 5353); 53 lets an agent that
   *  takes its upstreams from a resolv.conf (`nameserver 127.0.0.1`) find it. */
  upstreamPort?: number;
  /** Starts whatever serves the node instead of `kube-dataplane agent` run here (e.g. the image's
   *  containers); returns the process that logs the proxy's progress and its command line. */
  startAgent?: (launch: AgentLaunch) => Promise<{ process: Process; args: readonly string[] }>;
  /** The CNI IPAM plugin the bridge plugin delegates to (default: dist/'s). */
  ipamBin?: string;
}

export async function startExampleNode(opts: ExampleOptions = {}): Promise<ExampleNode> {
  const say = opts.say ?? (() => {});
  const topo = await Topology.create();
  const work = mkdtempSync(join(tmpdir(), 'kdp-example-'));
  const destroy = async () => {
    await topo.destroy();
    rmSync(work, { recursive: true, force: true });
  };
  try {
    const node = await topo.namespace('node');
    await topo.bridge(node, 'cbr0', ['10.244.0.1/24', 'fd00:244::1/64']);
    await node.sysctl('net.ipv4.ip_forward', 1);
    await node.sysctl('net.ipv6.conf.all.forwarding', 1);
    say('node namespace with the pod bridge cbr0 (10.244.0.1/24, fd00:244::1/64)', [node.name]);

    const upstreamAddress = `127.0.0.1:${opts.upstreamPort ?? 5353}`;
    const upstream = node.spawn('dnsmasq', ['--no-daemon', '--no-resolv', '--no-hosts', '--listen-address=127.0.0.1', `--port=${opts.upstreamPort ?? 5353}`, '--bind-interfaces', '--address=/example.test/192.0.2.10'], { label: 'dnsmasq' });
    await upstream.waitForOutput(/started/, 5_000);
    say('upstream resolver (dnsmasq) in the node namespace, for names outside the cluster', [`${upstreamAddress}, example.test → 192.0.2.10`]);

    const podCIDRsFile = join(work, 'run', 'node-pod-cidrs.json');
    mkdirSync(dirname(podCIDRsFile));
    const manifests = join(work, 'manifests');
    cpSync(EXAMPLE, manifests, { recursive: true });
    let source = ['--manifests', manifests];
    let apiURL: string | undefined;
    if (opts.source === 'api') {
      const kubeconfig = join(work, 'kubeconfig');
      const api = node.spawn(process.execPath, [TEST_APISERVER, '--dir', manifests, '--kubeconfig-out', kubeconfig, '--bookmark-interval-ms', '5000'], { label: 'test-apiserver' });
      await api.waitForOutput(/^http:\/\/\S+$/m, 10_000);
      apiURL = /^(http:\/\/\S+)$/m.exec(api.stdout)![1];
      source = ['--kubeconfig', kubeconfig];
      say('a Kubernetes API (the repo\'s test API server) serving manifests/example, in the node namespace', [apiURL]);
    }
    const agentArgs = ['agent', ...source, '--node-name', 'node-a', '--cluster-cidr', '10.244.0.0/16,fd00:244::/48',
      '--listen', '10.244.0.1:53', '--listen', '[fd00:244::1]:53', '--upstream', upstreamAddress,
      '--healthz-bind-address', '127.0.0.1:10256', '--metrics-bind-address', '127.0.0.1:10249',
      '--health-listen', '127.0.0.1:8080', '--ready-listen', '127.0.0.1:8181', '--metrics-listen', '127.0.0.1:9153',
      '--node-pod-cidrs-file', podCIDRsFile, ...(opts.proxyMode ? ['--proxy-mode', opts.proxyMode] : [])];
    const started = opts.startAgent
      ? await opts.startAgent({ node, source, podCIDRsFile, upstream: upstreamAddress })
      : { process: node.spawn(process.execPath, [BIN, ...agentArgs], { label: 'agent' }), args: agentArgs };
    const agent = started.process;
    await agent.waitForOutput(/node pod CIDRs written/, 15_000);
    say('kube-dataplane agent, in the node namespace', [`$ kube-dataplane ${started.args.join(' ')}`]);

    // What a runtime on node-a does: bridge runs in the node namespace, our IPAM plugin first in
    // CNI_PATH. The example's EndpointSlices name web-0/web-1 by address, so those two ask for
    // theirs (CNI_ARGS IP=, as with host-local); the client takes what the allocator gives.
    const cniBin = join(work, 'cni-bin');
    await run('mkdir', ['-p', cniBin]);
    symlinkSync(opts.ipamBin ?? IPAM_BIN, join(cniBin, 'kube-dataplane-ipam'));
    const network = JSON.stringify({
      cniVersion: '1.0.0', name: 'podnet', type: 'bridge', bridge: 'cbr0', isGateway: true, isDefaultGateway: true,
      ipam: { type: 'kube-dataplane-ipam', podCIDRsFrom: 'node', nodePodCIDRsFile: podCIDRsFile, dataDir: join(work, 'ipam') },
    });
    const pods = {} as ExampleNode['pods'];
    const addresses: Record<string, string[]> = {};
    for (const [name, want] of [['web-0', '10.244.0.11,fd00:244::11'], ['web-1', '10.244.0.12,fd00:244::12'], ['client', '']] as const) {
      const ns = await topo.namespace(name);
      const env = {
        PATH: process.env.PATH, CNI_COMMAND: 'ADD', CNI_CONTAINERID: `example-${name}`, CNI_NETNS: `/var/run/netns/${ns.name}`,
        CNI_IFNAME: 'eth0', CNI_PATH: `${cniBin}:/usr/lib/cni`, ...(want ? { CNI_ARGS: `IgnoreUnknown=1;IP=${want}` } : {}),
      };
      const r = await run('ip', ['netns', 'exec', node.name, '/usr/lib/cni/bridge'], { env, input: network, allowFailure: true });
      if (r.code !== 0) throw new Error(`CNI ADD for ${name} failed: ${r.stdout}${r.stderr}`);
      addresses[name] = (JSON.parse(r.stdout).ips as { address: string }[]).map((i) => i.address);
      pods[name] = ns;
    }
    say("pods web-0, web-1 and client, wired by Debian's bridge CNI plugin delegating to kube-dataplane-ipam", [
      `network config: ${network}`,
      ...Object.entries(addresses).map(([name, a]) => `${name}: ${a.join(', ')}`),
    ]);
    const servers = (['web-0', 'web-1'] as const).map((name) => pods[name].spawn(process.execPath, ['-e', BACKEND, name, '8080'], { label: name }));
    await Promise.all(servers.map((s) => s.waitForOutput('listening')));
    // Both families' rules are in before any test connects: the first full sync writes IPv4, then
    // IPv6, and another suite's iptables-restore can hold the xtables lock between the two.
    await agent.waitForOutput(/rules synced(",")? ?sync"?[=:]"?full/, 30_000); // text or JSON logs
    const fetchCounts = async (url: string, n: number) => {
      const r = await pods.client.exec(process.execPath, clientArgs(url, n), { timeoutMs: 60_000 });
      return JSON.parse(r.stdout) as Record<string, number>;
    };
    pods.client.writeResolvConf('nameserver 10.244.0.1\nsearch demo.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n');

    return {
      topo, node, pods, addresses, agent, agentArgs: started.args, network, manifests, apiURL, destroy,
      fetchCounts,
      async apiWrite(method, path, obj) {
        if (!apiURL) throw new Error("apiWrite: the example node was started without source: 'api'");
        const body = obj === undefined ? '' : `, body: ${JSON.stringify(JSON.stringify(obj))}`;
        const script = `fetch(${JSON.stringify(apiURL + path)}, { method: ${JSON.stringify(method)}, headers: { 'content-type': 'application/json' }${body} }).then(async (r) => { if (!r.ok) { console.error(r.status, await r.text()); process.exit(1); } })`;
        await node.exec(process.execPath, ['-e', script]);
      },
      async waitUntilServed(name, ip, url, backend) {
        let answer = '';
        let counts: Record<string, number> = {};
        for (let i = 0; i < 20 && !(answer === ip && counts[backend] === 3); i++) {
          await new Promise((r) => setTimeout(r, 250));
          answer = (await pods.client.exec('dig', ['+short', name])).stdout.trim();
          if (answer === ip) counts = await fetchCounts(url, 3);
        }
        return { answer, counts };
      },
    };
  } catch (err) {
    await destroy();
    throw err;
  }
}
