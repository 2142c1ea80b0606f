// `make demo ARGS=--api`, the kubectl part: this machine's kubectl drives the test API server the
// agent watches (both in the node namespace, on loopback). It applies a new Service with its
// EndpointSlice from a manifest file, shows DNS and the rules following, removes an endpoint by
// applying the edited file and shows the traffic moving, then prints a few of the agent's
// metrics. Every step is judged by what it printed, after waiting (bounded) for the agent to catch
// up: the agent follows the API asynchronously, as a real node does.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientArgs, type ExampleNode } from '../netns-tests/harness/example-node.js';
import type { Namespace } from '../netns-tests/harness/netns.js';
import { endpointSlice, manifest, service } from '../test-apiserver/population.js';

/** The demo's narration: a step title, and a command whose output is shown and judged. */
export interface Narration {
  step(title: string, lines?: string[]): void;
  show(ns: Namespace, cmd: string, args: string[], expect: RegExp, what: string, shown?: string): Promise<void>;
}

const VIP = '10.96.0.90';

/** The new service: web-0 and web-1 (the example's backends, port 8080) behind 10.96.0.90:80. */
function shop(endpoints: readonly string[]): string {
  return manifest([
    service({ namespace: 'demo', name: 'shop', clusterIP: VIP }),
    endpointSlice({ namespace: 'demo', service: 'shop', name: 'shop-1', addresses: endpoints }),
  ]);
}

/** Reads the agent's Prometheus endpoints from the node namespace and prints the lines that
 *  match (once: the proxy's and the DNS server's endpoints share one registry). */
const METRICS = `
const [want, ...urls] = process.argv.slice(1);
const re = new RegExp(want);
(async () => {
  const seen = new Set();
  for (const url of urls) {
    for (const l of (await (await fetch(url)).text()).split('\\n')) {
      if (re.test(l) && !seen.has(l)) { seen.add(l); console.log(l); }
    }
  }
})().catch((e) => { console.error(String(e)); process.exit(1); });
`;
const WANTED_METRICS = [
  'kubeproxy_sync_proxy_rules_duration_seconds_(count|sum)',
  'kubeproxy_sync_proxy_rules_last_timestamp_seconds',
  'kubedataplane_watch_events_total\\{kind="EndpointSlice"',
  'coredns_dns_requests_total\\{.*type="A"\\}',
];
const METRICS_URLS = ['http://127.0.0.1:10249/metrics', 'http://127.0.0.1:9153/metrics'];

export async function kubectlSteps(ex: ExampleNode, say: Narration): Promise<void> {
  const kubeconfig = ex.agentArgs[ex.agentArgs.indexOf('--kubeconfig') + 1];
  const work = mkdtempSync(join(tmpdir(), 'kdp-demo-kubectl-'));
  const file = join(work, 'shop.yaml');
  // kubectl's discovery cache goes to the demo's directory, not to ~/.kube.
  const kubectl = (...args: string[]) => ['--kubeconfig', kubeconfig, '--cache-dir', join(work, 'cache'), ...args];
  const showKubectl = (args: string[], expect: RegExp, what: string) =>
    say.show(ex.node, 'kubectl', kubectl(...args), expect, what, `kubectl ${args.join(' ')}`);
  /** Repeats `cmd` (quietly, up to ~10 s) until its output matches, then shows and judges it. */
  const showEventually = async (ns: Namespace, cmd: string, args: string[], expect: RegExp, what: string, shown?: string) => {
    for (let i = 0; i < 40; i++) {
      const r = await ns.exec(cmd, args, { allowFailure: true, timeoutMs: 30_000 });
      if (r.code === 0 && expect.test(r.stdout + r.stderr)) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    await say.show(ns, cmd, args, expect, what, shown);
  };
  const fetchShop = (expect: RegExp, what: string) => showEventually(
    ex.pods.client, process.execPath, clientArgs(`http://${VIP}/`, 20), expect, what,
    `fetch http://${VIP}/ ×20 (node client, a connection each)`,
  );
  const digShop = (args: string[], expect: RegExp, what: string) =>
    showEventually(ex.pods.client, 'dig', [...args, 'shop.demo.svc.cluster.local'], expect, what);

  try {
    say.step('kubectl against the API the agent watches', [
      `kubeconfig written by the test API server: ${kubeconfig} (server ${ex.apiURL})`,
    ]);
    await showKubectl(['version', '--client'], /^Client Version: v?\S+/m, "this machine's kubectl");
    await showKubectl(['api-resources'], /^services\s+svc\s+(v1\s+)?true\s+Service$/m,
      'discovery: the kinds the server holds, with their short names');
    await showKubectl(['get', 'svc,endpointslices', '-n', 'demo'],
      /service\/web\b[\s\S]*endpointslice\.discovery\.k8s\.io\/web-v4/, "the example's services and slices");

    const both = shop(['10.244.0.11', '10.244.0.12']);
    say.step(`kubectl apply: a new Service demo/shop (${VIP}) with its EndpointSlice (web-0, web-1)`, both.trimEnd().split('\n'));
    writeFileSync(file, both);
    await showKubectl(['apply', '-f', file], /service\/shop created\nendpointslice\.discovery\.k8s\.io\/shop-1 created/,
      'created through the API (POST, with the last-applied annotation)');
    await digShop(['+short'], /^10\.96\.0\.90$/m, 'DNS follows: the new name resolves from the client pod');
    await showKubectl(['get', 'svc/shop', 'endpointslice/shop-1', '-n', 'demo'],
      /^service\/shop\s+ClusterIP\s+10\.96\.0\.90\s[\s\S]*10\.244\.0\.11,10\.244\.0\.12/m,
      'kubectl reads them back (the server prints the tables)');
    await fetchShop(/"web-0":\d+.*"web-1":\d+|"web-1":\d+.*"web-0":\d+/, 'the rules follow: the new VIP reaches both backends');

    say.step('kubectl apply of the edited file: web-1 removed from the slice (a strategic merge patch)');
    writeFileSync(file, shop(['10.244.0.11']));
    await showKubectl(['apply', '-f', file], /service\/shop unchanged\nendpointslice\.discovery\.k8s\.io\/shop-1 configured/,
      'the slice patched, the service untouched');
    await showKubectl(['get', 'endpointslice', 'shop-1', '-n', 'demo'], /^shop-1\s+IPv4\s+8080\s+10\.244\.0\.11\s/m,
      'one endpoint left in the API');
    await fetchShop(/^\{"web-0":20\}$/m, 'the traffic moved: every connection reaches web-0, the remaining backend');

    say.step("a few of the agent's metrics (its /metrics endpoints, in the node namespace)");
    await say.show(ex.node, process.execPath, ['-e', METRICS, `^(${WANTED_METRICS.join('|')})`, ...METRICS_URLS],
      /kubeproxy_sync_proxy_rules_duration_seconds_count \d+[\s\S]*kubedataplane_watch_events_total\{kind="EndpointSlice",type="MODIFIED"\} [1-9]/,
      'rule syncs counted and timed; the slice changes the agent saw through its watch',
      `fetch ${METRICS_URLS.join(' ')} (rule syncs, watch events, DNS requests)`);

    say.step('kubectl delete -f: the service goes, and its name with it');
    await showKubectl(['delete', '-f', file], /service "shop" deleted\nendpointslice\.discovery\.k8s\.io "shop-1" deleted/,
      'deleted through the API');
    await digShop([], /status: NXDOMAIN/, 'DNS follows: NXDOMAIN for the deleted service');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
