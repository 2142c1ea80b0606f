// `make demo`, the Corefile part: beside the agent, `kube-dataplane dns --corefile` serves a
// customised CoreDNS Corefile in the node namespace (on 10.244.0.1:1053), over the same example
// cluster, and the pods ask it with dig: the kubernetes plugin with its own TTL, inline hosts, a
// rewritten name, forwarding with a cache, acl by source. Then a Corefile with a plugin we do not
// serve is refused, naming its file and line.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, type ExampleNode } from '../netns-tests/harness/example-node.js';
import type { Narration } from './kubectl-steps.js';

const LISTEN = '10.244.0.1';
const PORT = '1053';

function corefile(upstream: string): string {
  return [
    `.:${PORT} {`,
    `  bind ${LISTEN}`,
    '  errors',
    '  acl {',
    '    block net 10.244.0.12',
    '  }',
    '  hosts {',
    '    192.0.2.50 printer.lan',
    '    fallthrough',
    '  }',
    '  rewrite name exact db.corp.internal web.demo.svc.cluster.local answer auto',
    '  kubernetes cluster.local in-addr.arpa ip6.arpa {',
    '    pods insecure',
    '    ttl 7',
    '    fallthrough in-addr.arpa ip6.arpa',
    '  }',
    `  forward . ${upstream}`,
    '  cache 30',
    '  loadbalance',
    '}',
    '',
  ].join('\n');
}

export async function corefileSteps(ex: ExampleNode, { step, show }: Narration, upstream: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kdp-demo-corefile-'));
  try {
    const file = join(dir, 'Corefile');
    writeFileSync(file, corefile(upstream));
    step(`a CoreDNS Corefile, served as it is: kube-dataplane dns --corefile, on ${LISTEN}:${PORT}`, corefile(upstream).trimEnd().split('\n').map((l) => `| ${l}`));
    const dns = ex.node.spawn(process.execPath, [BIN, 'dns', '--manifests', ex.manifests, '--cluster-cidr', '10.244.0.0/16', '--corefile', file], { label: 'dns --corefile' });
    try {
      await dns.waitForOutput(/dns serving/, 30_000);
      const dig = (...args: string[]) => ['+noall', '+answer', '-p', PORT, `@${LISTEN}`, ...args];
      await show(ex.pods.client, 'dig', dig('web.demo.svc.cluster.local'), /web\.demo\.svc\.cluster\.local\.\s+7\s+IN\s+A\s+10\.96\.0\.80/, 'kubernetes: the cluster name, with the block\'s ttl 7');
      await show(ex.pods.client, 'dig', dig('printer.lan'), /printer\.lan\.\s+\d+\s+IN\s+A\s+192\.0\.2\.50/, 'hosts: an inline entry');
      await show(ex.pods.client, 'dig', dig('db.corp.internal'), /db\.corp\.internal\.\s+7\s+IN\s+A\s+10\.96\.0\.80/, 'rewrite: another name for the web service, answered under the name asked');
      await show(ex.pods.client, 'dig', dig('www.example.test'), /www\.example\.test\.\s+\d+\s+IN\s+A\s+192\.0\.2\.10/, 'forward: a name outside the cluster, from the upstream');
      await show(ex.pods['web-1'], 'dig', ['-p', PORT, `@${LISTEN}`, 'web.demo.svc.cluster.local'], /status: REFUSED/, 'acl: the same question from web-1 (10.244.0.12), which the block refuses', `dig -p ${PORT} @${LISTEN} web.demo.svc.cluster.local   # from web-1`);
    } finally {
      await dns.stop();
    }

    const bad = join(dir, 'Corefile.bad');
    writeFileSync(bad, corefile(upstream).replace('  cache 30', '  cache 30\n  dnstap /tmp/dnstap.sock full'));
    const start = `${process.execPath} ${BIN} dns --manifests ${ex.manifests} --corefile ${bad} 2>&1; echo "exit status $?"`;
    await show(ex.node, 'sh', ['-c', start], /Corefile\.bad:\d+: plugin dnstap is not implemented[\s\S]*exit status [1-9]/, 'a plugin we do not serve: refused at start, with the file and line', 'kube-dataplane dns --corefile Corefile.bad   # a dnstap line added');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
