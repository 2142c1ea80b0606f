// The harness itself: two pod namespaces reach each other through a bridge in a node namespace,
// over IPv4 and IPv6, and everything is gone afterwards.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Topology, run } from './harness/netns.js';

describe('namespace harness', () => {
  let topo: Topology;

  beforeAll(async () => {
    topo = await Topology.create();
    const node = await topo.namespace('node');
    await topo.bridge(node, 'cbr0', ['10.244.0.1/24', 'fd00:244::1/64']);
    for (const [i, name] of ['a', 'b'].entries()) {
      const pod = await topo.namespace(name);
      await topo.plugIntoBridge(
        { ns: pod, ifname: 'eth0', addresses: [`10.244.0.${10 + i}/24`, `fd00:244::${10 + i}/64`] },
        node,
        `veth${name}`,
        'cbr0',
      );
    }
  });

  afterAll(async () => {
    const names = topo.namespaces.map((n) => n.name);
    await topo.destroy();
    const left = (await run('ip', ['netns', 'list'])).stdout;
    for (const n of names) expect(left).not.toContain(n);
  });

  it('pod a reaches pod b over IPv4 through the bridge', async () => {
    const [, a] = topo.namespaces;
    const r = await a.exec('ping', ['-c1', '-W2', '10.244.0.11'], { allowFailure: true });
    expect(r.stdout).toMatch(/1 received/);
  });

  it('pod b reaches pod a over IPv6 through the bridge', async () => {
    const b = topo.namespaces[2];
    const r = await b.exec('ping', ['-6', '-c1', '-W2', 'fd00:244::10'], { allowFailure: true });
    expect(r.stdout).toMatch(/1 received/);
  });

  it('an address nobody has is not reachable (the test can fail)', async () => {
    const [, a] = topo.namespaces;
    const r = await a.exec('ping', ['-c1', '-W1', '10.244.0.99'], { allowFailure: true });
    expect(r.code).not.toBe(0);
  });

  it('a process runs in a namespace and its output is collected', async () => {
    const node = topo.namespaces[0];
    const p = node.spawn('sh', ['-c', 'ip -br link show cbr0; sleep 30']);
    await p.waitForOutput('cbr0');
    expect(await p.stop()).not.toBe(0);
    expect(p.stdout).toMatch(/cbr0\s+UP/);
  });

  it('the root namespace has no interface of ours', async () => {
    const root = (await run('ip', ['-br', 'link'])).stdout;
    expect(root).not.toMatch(/veth[ab]\b|cbr0/);
  });
});
