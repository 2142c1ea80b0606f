// The image as a node runs it: `make image`'s OCI archive unpacked by umoci, and the DaemonSet's
// pod run from it by runc — the init container installs the CNI IPAM plugin, then the proxy and
// dns containers with their command lines, capabilities, users and read-only roots from
// manifests/deploy/daemonset.yaml, the ConfigMap's config, in the example node's namespace
// (hostNetwork). They read the test API server through a kubeconfig: the one flag added to the
// DaemonSet's command line, since in-cluster config needs TLS and a service account token.
// Pods wired through the plugin the init container copied resolve with real dig and connect
// through service IPs, so the image holds everything the agent calls (iptables*, nft,
// conntrack, ip) and runs with no more than the DaemonSet grants. Not reproduced: the
// runtime's default seccomp profile (RuntimeDefault; runc has none of its own).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExampleNode, type ExampleNode } from './harness/example-node.js';
import { run, type Namespace, type Process } from './harness/netns.js';
import { RuncRuntime, type ContainerSpec, type RunOptions } from './harness/runc.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const ARCHIVE = join(ROOT, 'dist/image', `kube-dataplane-${VERSION}.oci.tar`);
const load = (path: string) => yaml.loadAll(readFileSync(join(ROOT, path), 'utf8')) as any[];
const podSpec = load('manifests/deploy/daemonset.yaml')[0].spec.template.spec;
const containers: ContainerSpec[] = [...podSpec.initContainers, ...podSpec.containers];
const container = (name: string) => containers.find((c) => c.name === name)!;
const configMapData: Record<string, string> = load('manifests/deploy/configmap.yaml')[0].data;
const kubeDns = load('manifests/deploy/dns-service.yaml')[0];
const exampleNode = load('manifests/example/node.yaml')[0];
const NODE_NAME: string = exampleNode.metadata.name;
const NODE_IP: string = exampleNode.status.addresses.find((a: any) => a.type === 'InternalIP').address;
const LINK_LOCAL_DNS = '169.254.20.10';

describe('the image run by runc as the DaemonSet runs it', () => {
  let work: string;
  let runtime: RuncRuntime;
  let ex: ExampleNode;
  let dns: Process;
  let proxyConfig: Record<string, any>;
  let podOptions: RunOptions & { node: Namespace };
  let cniBin: string;

  beforeAll(async () => {
    // A no-op when the image is up to date (`make test` built it before this suite).
    await run('make', ['-s', '-C', ROOT, 'image'], { timeoutMs: 600_000 });
    work = mkdtempSync(join(tmpdir(), 'kdp-image-'));
    runtime = await RuncRuntime.unpack(ARCHIVE, VERSION);

    // The pod's volumes: the ConfigMap's keys as files; the host paths as empty ones.
    const config = join(work, 'config');
    mkdirSync(config);
    for (const [key, value] of Object.entries(configMapData)) writeFileSync(join(config, key), value);
    cniBin = join(work, 'opt-cni-bin');
    mkdirSync(cniBin);
    const xtablesLock = join(work, 'xtables.lock');
    writeFileSync(xtablesLock, '');
    const pod = `kdp${process.pid}`;

    const init = await runtime.runToExit(container('install-cni-ipam'), { pod, volumes: { 'cni-bin': { hostPath: cniBin } } });
    expect(init.code, init.output).toBe(0);

    ex = await startExampleNode({
      source: 'api',
      // The node's resolver on 127.0.0.1:53, where dnsPolicy Default's resolv.conf points.
      upstreamPort: 53,
      ipamBin: join(cniBin, 'kube-dataplane-ipam'),
      startAgent: async ({ node, source, podCIDRsFile, upstream }) => {
        expect(source[0]).toBe('--kubeconfig');
        await node.ip('addr', 'add', `${NODE_IP}/32`, 'dev', 'lo');
        const opts = podOptions = {
          pod, node,
          fields: { 'spec.nodeName': NODE_NAME, 'status.hostIP': NODE_IP },
          volumes: {
            config: { hostPath: config, readOnly: true }, 'xtables-lock': { hostPath: xtablesLock },
            run: { hostPath: dirname(podCIDRsFile) }, tmp: { tmpfs: true as const },
          },
          files: {
            '/etc/resolv.conf': `nameserver ${upstream.split(':')[0]}\n`,
            '/var/lib/kube-dataplane/kubeconfig': readFileSync(source[1], 'utf8'),
          },
          extraArgs: ['--kubeconfig=/var/lib/kube-dataplane/kubeconfig'],
        };
        dns = runtime.start(container('dns'), opts).process;
        const proxy = runtime.start(container('proxy'), opts);
        proxyConfig = proxy.config;
        return { process: proxy.process, args: proxy.config.process.args };
      },
    });
  }, 600_000);

  afterAll(async () => {
    await ex?.destroy();
    runtime?.destroy();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  // A timeout is an answer too (''): the polls below retry it.
  const dig = async (...args: string[]) =>
    (await ex.pods.client.exec('dig', ['+short', '+tries=1', '+time=2', ...args], { allowFailure: true })).stdout.trim();
  /** Polls a dig until it answers `want` (the DNS container starts beside the proxy). */
  async function digUntil(want: string, ...args: string[]): Promise<string> {
    let answer = '';
    for (let i = 0; i < 40 && answer !== want; i++) {
      answer = await dig(...args);
      if (answer !== want) await new Promise((r) => setTimeout(r, 250));
    }
    return answer;
  }
  const nodeGet = async (url: string) =>
    (await ex.node.exec(process.execPath, ['-e', `fetch(${JSON.stringify(url)}).then(async (r) => console.log(r.status, await r.text()))`])).stdout;

  it('the init container installed the IPAM plugin; the pods got their addresses through it', () => {
    expect(statSync(join(cniBin, 'kube-dataplane-ipam')).mode & 0o111).not.toBe(0);
    expect(ex.addresses['web-0']).toEqual(['10.244.0.11/24', 'fd00:244::11/64']);
    expect(ex.addresses.client[0]).toMatch(/^10\.244\.0\.\d+\/24$/);
  });

  it('the proxy container ran as root with only NET_ADMIN and NET_RAW, no new privileges, a read-only root', () => {
    expect(proxyConfig.process.user.uid).toBe(0);
    expect(proxyConfig.process.capabilities.effective).toEqual(['CAP_NET_ADMIN', 'CAP_NET_RAW']);
    expect(proxyConfig.process.noNewPrivileges).toBe(true);
    expect(proxyConfig.root.readonly).toBe(true);
    // The image's own default user is not root (the DaemonSet says runAsUser: 0 where it must).
    expect(runtime.image.process.user.uid).not.toBe(0);
  });

  it('the proxy from the image programmed the rules: a ClusterIP reaches both backends, IPv4 and IPv6', async () => {
    const logs = ex.agent.stdout + ex.agent.stderr;
    expect(logs).toMatch(/"iptables backend chosen","backend":"nft"/);
    // Both flavours' tools answered the choice, and nft removed what the nftables mode leaves.
    expect(logs).toMatch(/"reason":"no rules in either flavour/);
    expect(logs).not.toMatch(/cannot remove what the/);
    expect((await ex.node.exec('iptables-nft-save', ['-t', 'nat'])).stdout).toContain('-A KUBE-SERVICES');
    for (const url of ['http://10.96.0.80/', 'http://[fd00:96::80]/']) {
      const counts = await ex.fetchCounts(url, 20);
      expect(Object.keys(counts).sort(), url).toEqual(['web-0', 'web-1']);
    }
  });

  it('DNS from the image answers on the link-local address and the node IP, and forwards through the resolv.conf upstream', async () => {
    expect(await digUntil('10.96.0.80', `@${LINK_LOCAL_DNS}`, 'web.demo.svc.cluster.local')).toBe('10.96.0.80');
    expect(await dig(`@${NODE_IP}`, 'AAAA', 'web.demo.svc.cluster.local')).toBe('fd00:96::80');
    expect(await dig(`@${LINK_LOCAL_DNS}`, '+tcp', 'web.demo.svc.cluster.local')).toBe('10.96.0.80');
    expect(await dig(`@${LINK_LOCAL_DNS}`, 'docs.demo.svc.cluster.local')).toBe('docs.example.test.\n192.0.2.10');
  });

  it('a pod resolves through the kube-dns Service (dns-service.yaml) to the DNS container, and names connect', async () => {
    await ex.apiWrite('POST', '/api/v1/namespaces/kube-system/services', kubeDns);
    await ex.apiWrite('POST', '/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices', dnsSlice(NODE_IP));
    ex.pods.client.writeResolvConf(`nameserver ${kubeDns.spec.clusterIP}\nsearch demo.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n`);
    expect(await digUntil('10.96.0.80', '+search', 'web')).toBe('10.96.0.80');
    expect(await dig('+search', '+tcp', 'web')).toBe('10.96.0.80');
    const counts = await ex.fetchCounts('http://web.demo.svc.cluster.local/', 10);
    expect(Object.keys(counts).sort()).toEqual(['web-0', 'web-1']);
  });

  it("the proxy deletes the UDP flows to kube-dns's old endpoint with the image's conntrack", async () => {
    // The flows the last test made go to the node IP; move the endpoint to the link-local one.
    await ex.apiWrite('PUT', '/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices/kube-dns-1', dnsSlice(LINK_LOCAL_DNS));
    let metrics = '';
    for (let i = 0; i < 40 && !/conntrack_deletions_total\{result="ok"\} [1-9]/.test(metrics); i++) {
      await new Promise((r) => setTimeout(r, 250));
      metrics = await nodeGet('http://127.0.0.1:10249/metrics');
    }
    expect(metrics).toMatch(/^kubedataplane_proxy_conntrack_deletions_total\{result="ok"\} [1-9]/m);
    expect(ex.agent.stdout + ex.agent.stderr).not.toMatch(/cannot (list conntrack|delete stale)/);
    expect(await digUntil('10.96.0.80', '+search', 'web')).toBe('10.96.0.80');
  });

  it("answers the DaemonSet's probes", async () => {
    expect(await nodeGet('http://127.0.0.1:10256/livez')).toMatch(/^200 /);
    expect(await nodeGet('http://127.0.0.1:8080/health')).toMatch(/^200 /);
    expect(await nodeGet('http://127.0.0.1:8181/ready')).toMatch(/^200 /);
  });

  it('both containers stop cleanly on SIGTERM', async () => {
    expect(await dns.stop(5_000)).toBe(0);
    expect(await ex.agent.stop(5_000)).toBe(0);
  });

  it("the proxy in nftables mode from the same image: nft and the netlink addon program the service map", async () => {
    const { process: proxy } = runtime.start(container('proxy'), {
      ...podOptions, pod: `${podOptions.pod}-nft`, extraArgs: [...(podOptions.extraArgs ?? []), '--proxy-mode=nftables'],
    });
    await proxy.waitForOutput(/rules synced/, 30_000);
    expect((await ex.node.exec('nft', ['list', 'table', 'ip', 'kube-dataplane'])).stdout).toContain('10.96.0.80');
    // It removed the iptables mode's rules, so the connections below went through its map.
    expect((await ex.node.exec('iptables-nft-save', ['-t', 'nat'])).stdout).not.toContain('KUBE-SERVICES');
    const counts = await ex.fetchCounts('http://10.96.0.80/', 20);
    expect(Object.keys(counts).sort()).toEqual(['web-0', 'web-1']);
    expect(proxy.stdout + proxy.stderr).not.toMatch(/"level":"(warn|error)"/);
    expect(await proxy.stop(5_000)).toBe(0);
  });
});

/** kube-dns's EndpointSlice: this node's DNS container (hostNetwork) at `address`. */
function dnsSlice(address: string) {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
    metadata: { name: 'kube-dns-1', namespace: 'kube-system', labels: { 'kubernetes.io/service-name': kubeDns.metadata.name } },
    ports: kubeDns.spec.ports.map((p: any) => ({ name: p.name, port: p.port, protocol: p.protocol })),
    endpoints: [{ addresses: [address], nodeName: NODE_NAME, conditions: { ready: true } }],
  };
}
