// `make demo`: the agent on the embedded example (manifests/example) in network namespaces.
// A node namespace holds a bridge, the agent and an upstream resolver; pod namespaces hold two
// web backends and a client. The client resolves names with real `dig` and connects through the
// service IP. Each step says honestly whether it worked; nothing touches the root namespace.
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Topology, run, type Namespace, type Process } from '../netns-tests/harness/netns.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = `${ROOT}dist/cmd/kube-dataplane.js`;
const EXAMPLE = `${ROOT}manifests/example`;
const IPAM_BIN = `${ROOT}dist/cmd/kube-dataplane-ipam.js`;

const BACKEND = `
const [name, port] = process.argv.slice(1);
const server = require('node:http').createServer((req, res) => res.end(name + '\\n'));
server.listen(Number(port), '::', () => console.log('listening', name, port));
`;

// A fresh connection per request (no keep-alive), so the proxy balances each one.
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

let failures = 0;

function step(title: string): void {
  process.stdout.write(`\n\x1b[1m== ${title}\x1b[0m\n`);
}

async function show(ns: Namespace, cmd: string, args: string[], expect: RegExp, what: string, shown?: string): Promise<void> {
  process.stdout.write(`$ ${shown ?? `${cmd} ${args.join(' ')}`}\n`);
  const r = await ns.exec(cmd, args, { allowFailure: true, timeoutMs: 15_000 });
  // dig's chatter about .local and mDNS says nothing about us; keep the answer short.
  const out = (r.stdout + r.stderr)
    .split('\n')
    .filter((l) => l.trim() && !/^;; (WARNING|You are|global options|Got answer|Query time|SERVER|WHEN|MSG SIZE)|^; <<>>/.test(l))
    .slice(0, 14)
    .join('\n');
  process.stdout.write(out ? out.split('\n').map((l) => `  ${l}`).join('\n') + '\n' : '');
  if (r.code === 0 && expect.test(out)) process.stdout.write(`  \x1b[32m✓ ${what}\x1b[0m\n`);
  else {
    failures++;
    process.stdout.write(`  \x1b[31m✗ not working yet: ${what}\x1b[0m\n`);
  }
}

async function main(): Promise<number> {
  const topo = await Topology.create();
  const work = mkdtempSync(join(tmpdir(), 'kdp-demo-'));
  try {
    step('node namespace with the pod bridge cbr0 (10.244.0.1/24, fd00:244::1/64)');
    const node = await topo.namespace('node');
    await topo.bridge(node, 'cbr0', ['10.244.0.1/24', 'fd00:244::1/64']);
    await node.sysctl('net.ipv4.ip_forward', 1);
    await node.sysctl('net.ipv6.conf.all.forwarding', 1);
    process.stdout.write(`  ${node.name}\n`);

    step('upstream resolver (dnsmasq) in the node namespace, for names outside the cluster');
    const upstream = node.spawn('dnsmasq', ['--no-daemon', '--no-resolv', '--no-hosts', '--listen-address=127.0.0.1', '--port=5353', '--bind-interfaces', '--address=/example.test/192.0.2.10']);
    await new Promise((r) => setTimeout(r, 300));
    process.stdout.write(`  dnsmasq ${upstream.running ? 'running' : 'failed: ' + upstream.stderr.trim()}\n`);

    step('kube-dataplane agent --manifests manifests/example (in the node namespace)');
    const podCIDRsFile = join(work, 'node-pod-cidrs.json');
    const args = [BIN, 'agent', '--manifests', EXAMPLE, '--node-name', 'node-a', '--cluster-cidr', '10.244.0.0/16,fd00:244::/48',
      '--listen', '10.244.0.1:53', '--listen', '[fd00:244::1]:53', '--upstream', '127.0.0.1:5353',
      '--healthz-bind-address', '127.0.0.1:10256', '--metrics-bind-address', '127.0.0.1:10249',
      '--health-listen', '127.0.0.1:8080', '--ready-listen', '127.0.0.1:8181', '--metrics-listen', '127.0.0.1:9153',
      '--node-pod-cidrs-file', podCIDRsFile];
    process.stdout.write(`$ kube-dataplane ${args.slice(1).join(' ')}\n`);
    const agent = node.spawn(process.execPath, args, { label: 'agent' });
    await agent.waitForOutput(/synced/, 10_000).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 1500)); // first rule sync and DNS start
    const log = (agent.stdout + agent.stderr).trim().split('\n').slice(0, 14);
    process.stdout.write(log.map((l) => `  | ${l}`).join('\n') + '\n');
    if (!agent.running) process.stdout.write(`  \x1b[31m✗ the agent exited (${agent.exitCode})\x1b[0m\n`);

    step('pods web-0, web-1 and client, wired by Debian\'s bridge CNI plugin delegating to kube-dataplane-ipam');
    // What a runtime on node-a would do: bridge runs in the node namespace, our IPAM plugin first
    // in CNI_PATH, ranges from the node's spec.podCIDRs (the file the agent keeps).
    const cniBin = join(work, 'cni-bin');
    await run('mkdir', ['-p', cniBin]);
    symlinkSync(IPAM_BIN, join(cniBin, 'kube-dataplane-ipam'));
    const network = JSON.stringify({
      cniVersion: '1.0.0', name: 'podnet', type: 'bridge', bridge: 'cbr0', isGateway: true, isDefaultGateway: true,
      ipam: { type: 'kube-dataplane-ipam', podCIDRsFrom: 'node', nodePodCIDRsFile: podCIDRsFile, dataDir: join(work, 'ipam') },
    });
    process.stdout.write(`  network config: ${network}\n`);
    const pods: Record<string, Namespace> = {};
    // The example's EndpointSlices name web-0/web-1 by address, so those two ask for theirs
    // (CNI_ARGS IP=, as host-local allows); the client takes whatever the allocator gives.
    for (const [name, want] of [['web-0', '10.244.0.11,fd00:244::11'], ['web-1', '10.244.0.12,fd00:244::12'], ['client', '']]) {
      const ns = await topo.namespace(name);
      const env = {
        PATH: process.env.PATH, CNI_COMMAND: 'ADD', CNI_CONTAINERID: `demo-${name}`, CNI_NETNS: `/var/run/netns/${ns.name}`,
        CNI_IFNAME: 'eth0', CNI_PATH: `${cniBin}:/usr/lib/cni`, ...(want ? { CNI_ARGS: `IgnoreUnknown=1;IP=${want}` } : {}),
      };
      const r = await run('ip', ['netns', 'exec', node.name, '/usr/lib/cni/bridge'], { env, input: network, allowFailure: true });
      if (r.code !== 0) throw new Error(`CNI ADD for ${name} failed: ${r.stdout}${r.stderr}`);
      const ips = (JSON.parse(r.stdout).ips as { address: string }[]).map((i) => i.address).join(', ');
      process.stdout.write(`  ${name}: ${ips}\n`);
      pods[name] = ns;
    }
    const servers: Process[] = [];
    for (const name of ['web-0', 'web-1']) {
      servers.push(pods[name].spawn(process.execPath, ['-e', BACKEND, name, '8080'], { label: name }));
    }
    await Promise.all(servers.map((s) => s.waitForOutput('listening')));

    const client = pods.client;
    client.writeResolvConf('nameserver 10.244.0.1\nsearch demo.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n');

    step('DNS from the client pod, with real dig');
    await show(client, 'dig', ['+short', 'web.demo.svc.cluster.local'], /^10\.96\.0\.80$/m, 'A record of a ClusterIP service');
    await show(client, 'dig', ['+short', 'AAAA', 'web.demo.svc.cluster.local'], /^fd00:96::80$/m, 'AAAA record of the same dual-stack service');
    await show(client, 'dig', ['+short', '+search', 'web'], /^10\.96\.0\.80$/m, 'a short name through the pod search path');
    await show(client, 'dig', ['+short', 'SRV', '_http._tcp.web.demo.svc.cluster.local'], /80 web\.demo\.svc\.cluster\.local\.$/m, 'SRV record of a named port');
    await show(client, 'dig', ['+short', 'db.demo.svc.cluster.local'], /^10\.244\.0\.21$/m, 'headless service → endpoint address');
    await show(client, 'dig', ['+short', '-x', '10.96.0.80'], /^web\.demo\.svc\.cluster\.local\.$/m, 'PTR of a cluster IP');
    await show(client, 'dig', ['+short', 'docs.demo.svc.cluster.local'], /docs\.example\.test\.\n192\.0\.2\.10/, 'ExternalName → CNAME, target resolved upstream');
    await show(client, 'dig', ['nosuch.demo.svc.cluster.local'], /status: NXDOMAIN/, 'NXDOMAIN for a name that does not exist');

    step('connections through the service IP, from the client pod');
    await show(client, process.execPath, ['-e', CLIENT, 'http://10.96.0.80/', '20'], /"web-0":\d+.*"web-1":\d+|"web-1":\d+.*"web-0":\d+/, 'ClusterIP over IPv4 reaches both backends', 'fetch http://10.96.0.80/ ×20 (node client)');
    await show(client, process.execPath, ['-e', CLIENT, 'http://[fd00:96::80]/', '20'], /"web-0":\d+.*"web-1":\d+|"web-1":\d+.*"web-0":\d+/, 'ClusterIP over IPv6 reaches both backends', 'fetch http://[fd00:96::80]/ ×20 (node client)');
    await show(client, process.execPath, ['-e', CLIENT, 'http://web.demo.svc.cluster.local/', '4'], /"web-[01]":\d+/, 'by name: DNS and the proxy together', 'fetch http://web.demo.svc.cluster.local/ ×4 (node client)');

    step('rules the agent programmed for demo/web (iptables-save -t nat in the node namespace)');
    const rules = await node.exec('iptables-save', ['-t', 'nat'], { allowFailure: true });
    const interesting = rules.stdout.split('\n').filter((l) => /^-A KUBE-(SERVICES|SVC-|SEP-).*(demo\/web|DNAT|KUBE-SVC)/.test(l));
    process.stdout.write(interesting.slice(0, 12).map((l) => `  ${l}`).join('\n') + '\n');

    step(failures === 0 ? 'everything shown works' : `${failures} step(s) not working yet (see above)`);
    return 0;
  } finally {
    await topo.destroy();
    rmSync(work, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`demo failed: ${err.stack ?? err}\n`);
    process.exit(1);
  },
);
