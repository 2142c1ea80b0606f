// `make demo`: the agent on the embedded example (manifests/example) in network namespaces, built
// as a real node is (netns-tests/harness/example-node.ts): the client pod resolves names with real
// `dig` and connects through service IPs. Each step says honestly whether it worked; nothing
// touches the root namespace, and everything is deleted at the end.
import { clientArgs, startExampleNode } from '../netns-tests/harness/example-node.js';
import type { Namespace } from '../netns-tests/harness/netns.js';
import { corefileSteps } from './corefile-steps.js';
import { kubectlSteps } from './kubectl-steps.js';
import { resolve } from 'node:path';

let failures = 0;

function step(title: string, lines: string[] = []): void {
  process.stdout.write(`\n\x1b[1m== ${title}\x1b[0m\n`);
  for (const l of lines) process.stdout.write(`  ${l}\n`);
}

async function show(ns: Namespace, cmd: string, args: string[], expect: RegExp, what: string, shown?: string): Promise<void> {
  process.stdout.write(`$ ${shown ?? `${cmd} ${args.join(' ')}`}\n`);
  const r = await ns.exec(cmd, args, { allowFailure: true, timeoutMs: 60_000 });
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
  // `make demo ARGS=--cluster`: three nodes in namespaces (demo/cluster.ts).
  if (process.argv.includes('--cluster')) return (await import('./cluster.js')).main();
  // `make demo ARGS=--api`: the agent reads a Kubernetes API (the repo's test API server) through
  // --kubeconfig, as the DaemonSet does, instead of the manifest directory; kubectl then changes
  // that API and the demo shows the node following (kubectl-steps.ts).
  // `make demo ARGS=--userspace` / `ARGS=--nftables`: the proxy half in its other modes (Node
  // listeners on the VIPs; an nftables table of maps) instead of iptables rules.
  const mode = process.argv.includes('--userspace') ? 'userspace' : process.argv.includes('--nftables') ? 'nftables' : 'iptables';
  const ex = await startExampleNode({ say: step, source: process.argv.includes('--api') ? 'api' : 'manifests', proxyMode: mode });
  try {
    const agentLog = (ex.agent.stdout + ex.agent.stderr).trim().split('\n').slice(0, 14);
    step('what the agent logged at start', agentLog.map((l) => `| ${l}`));
    const client = ex.pods.client;

    step('DNS from the client pod, with real dig');
    await show(client, 'dig', ['+short', 'web.demo.svc.cluster.local'], /^10\.96\.0\.80$/m, 'A record of a ClusterIP service');
    await show(client, 'dig', ['+short', 'AAAA', 'web.demo.svc.cluster.local'], /^fd00:96::80$/m, 'AAAA record of the same dual-stack service');
    await show(client, 'dig', ['+short', '+search', 'web'], /^10\.96\.0\.80$/m, 'a short name through the pod search path');
    await show(client, 'dig', ['+short', 'SRV', '_http._tcp.web.demo.svc.cluster.local'], /80 web\.demo\.svc\.cluster\.local\.$/m, 'SRV record of a named port');
    await show(client, 'dig', ['+short', 'db.demo.svc.cluster.local'], /^10\.244\.0\.21$/m, 'headless service → endpoint address');
    await show(client, 'dig', ['+short', '-x', '10.96.0.80'], /^web\.demo\.svc\.cluster\.local\.$/m, 'PTR of a cluster IP');
    await show(client, 'dig', ['+short', 'docs.demo.svc.cluster.local'], /docs\.example\.test\.\n192\.0\.2\.10/, 'ExternalName → CNAME, target resolved upstream');
    await show(client, 'dig', ['nosuch.demo.svc.cluster.local'], /status: NXDOMAIN/, 'NXDOMAIN for a name that does not exist');

    // --workers: the DNS answers UDP from several threads, one socket each (dns/README.md).
    const threads = Number(/dns serving .*workers=(\d+)/.exec(ex.agent.stdout + ex.agent.stderr)?.[1] ?? 1);
    if (threads > 1) {
      step(`DNS on every core: ${threads} threads, one SO_REUSEPORT socket each, the workers answering from the main thread's shared answer table`);
      const server = (await client.exec('sh', ['-c', 'awk \'/^nameserver/ { print $2; exit }\' /etc/resolv.conf'])).stdout.trim();
      const ask = [resolve('netns-tests/dns-client.mjs'), '--summary', server, '53', '0.0.0.0', '20', 'web.demo.svc.cluster.local/A', 'db.demo.svc.cluster.local/A'];
      await show(client, process.execPath, ask, /sent 40 from 20 sockets, 40 answered/, 'the same two questions from 20 source ports (the first asker of each, per worker, is answered by the main thread)', `node dns-client.mjs ${server} ×20 sockets`);
      await show(client, process.execPath, ask, /sent 40 from 20 sockets, 40 answered/, 'and again: now from the table', `node dns-client.mjs ${server} ×20 sockets`);
      await show(ex.node, 'sh', ['-c', 'curl -s 127.0.0.1:9153/metrics | grep ^kube_dataplane_dns_worker'], /answered="table"\} [1-9]/, 'the worker threads got clients of their own and answered them from the table', 'curl -s 127.0.0.1:9153/metrics | grep ^kube_dataplane_dns_worker');
    } else {
      step('DNS on one core: this machine gives the agent one CPU, so the DNS answers from one thread (--workers)');
    }

    await corefileSteps(ex, { step, show }, '127.0.0.1:5353');

    step('connections through the service IP, from the client pod');
    const both = /"web-0":\d+.*"web-1":\d+|"web-1":\d+.*"web-0":\d+/;
    for (const [url, n, expect, what] of [
      ['http://10.96.0.80/', 20, both, 'ClusterIP over IPv4 reaches both backends'],
      ['http://[fd00:96::80]/', 20, both, 'ClusterIP over IPv6 reaches both backends'],
      ['http://web.demo.svc.cluster.local/', 4, /^\{("web-[01]":\d+,?)+\}$/, 'by name: DNS and the proxy together'],
    ] as const) {
      await show(client, process.execPath, clientArgs(url, n), expect, what, `fetch ${url} ×${n} (node client, a connection each)`);
    }

    if (mode === 'nftables') {
      step('what the agent programmed for the services (nftables mode, in the node namespace)');
      await show(ex.node, 'nft', ['list', 'map', 'ip', 'kube-dataplane', 'service-ips'], /10\.96\.0\.80 \. tcp \. 80 : goto/, 'the cluster IP in the service map: its verdict goes to the chain shared by every path with that many endpoints', 'nft list map ip kube-dataplane service-ips');
      await show(ex.node, 'nft', ['list', 'map', 'ip', 'kube-dataplane', 'endpoints'], /10\.96\.0\.80 \. tcp \. 80 \. 1 : /, 'its endpoints by slot: numgen random mod n picks one, 1/n each', 'nft list map ip kube-dataplane endpoints');
    } else if (mode === 'userspace') {
      step('what the agent set up for the services (userspace mode, in the node namespace)');
      await show(ex.node, 'ip', ['-br', 'address', 'show', 'dev', 'kdp-vips0'], /10\.96\.0\.80\/32.*fd00:96::80\/128|fd00:96::80\/128.*10\.96\.0\.80\/32/, 'the service IPs are local addresses of the VIP interface');
      await show(ex.node, 'ss', ['-Hltn', 'sport', '= :80'], /10\.96\.0\.80:80/, 'a TCP listener on the cluster IP');
    } else {
      step('rules the agent programmed for demo/web (iptables-save -t nat in the node namespace)');
      const rules = await ex.node.exec('iptables-save', ['-t', 'nat'], { allowFailure: true });
      const interesting = rules.stdout.split('\n').filter((l) => /^-A KUBE-(SERVICES|SVC-|SEP-).*(demo\/web|DNAT|KUBE-SVC)/.test(l));
      process.stdout.write(interesting.slice(0, 12).map((l) => `  ${l}`).join('\n') + '\n');
    }

    if (ex.apiURL) await kubectlSteps(ex, { step, show });

    step(failures === 0 ? 'everything shown works' : `${failures} step(s) not working yet (see above)`);
    return 0;
  } finally {
    await ex.destroy();
  }
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`demo failed: ${err.stack ?? err}\n`);
    process.exit(1);
  },
);
