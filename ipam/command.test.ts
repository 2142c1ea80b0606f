import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from './command.js';
import { getNodePodCIDRs } from './kube-api.js';
import { buildRangeSets } from './range.js';
import { NetworkStore } from './store.js';

const dir = mkdtempSync(join(tmpdir(), 'ipam-cmd-'));
let server: Server;
let kubeconfig: string;
const requests: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    requests.push(`${req.url} ${req.headers.authorization ?? ''}`);
    res.setHeader('content-type', 'application/json');
    if (req.url === '/api/v1/nodes/node-1') {
      res.end(JSON.stringify({ kind: 'Node', metadata: { name: 'node-1' }, spec: { podCIDRs: ['10.244.7.0/24', 'fd00:10:244:7::/64'] } }));
    } else if (req.url?.startsWith('/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1')) {
      res.end(JSON.stringify({ kind: 'PodList', items: [{ metadata: { namespace: 'default', name: 'web' }, status: { podIPs: [{ ip: '10.5.0.3' }, { ip: 'fd05::3' }] } }] }));
    } else {
      res.statusCode = 404;
      res.end('{}');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  // YAML, as kubeconfigs usually are.
  kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    `apiVersion: v1\nkind: Config\ncurrent-context: test\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:${port}\ncontexts:\n- name: test\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: secret-token\n`,
  );
});
afterAll(() => {
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

async function capture(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  try {
    return { code: await main(argv), out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

function seed(network: string, ids: string[], time = '2020-01-01T00:00:00.000Z'): NetworkStore {
  const store = new NetworkStore(dir, network);
  const sets = buildRangeSets([[{ subnet: '10.5.0.0/24' }], [{ subnet: 'fd05::/64' }]], 'r');
  for (const id of ids) store.add(sets, { containerID: id, ifname: 'eth0' }, [], time);
  return store;
}

describe('kube-dataplane ipam', () => {
  it('node-cidrs prints one line per node, or JSON', async () => {
    expect(await capture(['node-cidrs', '--cluster-cidr', '10.244.0.0/16,fd00::/48', '--count', '2'])).toEqual({
      code: 0,
      out: '0 10.244.0.0/24,fd00::/64\n1 10.244.1.0/24,fd00:0:0:1::/64\n',
      err: '',
    });
    const j = await capture(['node-cidrs', '--cluster-cidr=10.0.0.0/8', '--node-cidr-mask-size-ipv4', '16', '--index', '5', '--json']);
    expect(JSON.parse(j.out)).toEqual({ index: 5, podCIDRs: ['10.5.0.0/16'] });
    const bad = await capture(['node-cidrs', '--cluster-cidr', '10.0.0.0/8']);
    expect(bad).toEqual({ code: 2, out: '', err: 'kube-dataplane ipam node-cidrs: give exactly one of --index N and --count N\n' });
  });

  it('gc with --keep and --valid-attachments releases the rest', async () => {
    const store = seed('gc1', ['a', 'b', 'c']);
    writeFileSync(join(dir, 'valid.json'), JSON.stringify([{ containerID: 'c', ifname: 'eth0' }]));
    const r = await capture(['gc', '--data-dir', dir, '--network', 'gc1', '--keep', 'a/eth0', '--valid-attachments', join(dir, 'valid.json')]);
    expect(r.code).toBe(0);
    expect(r.out).toBe('released 10.5.0.3 (container b ifname eth0, since 2020-01-01T00:00:00.000Z)\nreleased fd05::3 (container b ifname eth0, since 2020-01-01T00:00:00.000Z)\n');
    expect(store.list().map((o) => o.containerID)).toEqual(['a', 'c', 'a', 'c']); // v4 then v6
  });

  it('gc --kubeconfig keeps addresses pods report and young allocations; --dry-run changes nothing', async () => {
    const store = seed('gc2', ['old-gone', 'web-sandbox']); // .2 and .3; the pod reports .3
    seed('gc2', ['just-added'], new Date().toISOString());
    const args = ['gc', '--data-dir', dir, '--network', 'gc2', '--kubeconfig', kubeconfig, '--node-name', 'node-1'];
    const dry = await capture([...args, '--dry-run']);
    expect(dry.out).toContain('would release 10.5.0.2 (container old-gone');
    expect(store.list().length).toBe(6);
    const r = await capture(args);
    expect(r.out.split('\n').filter(Boolean)).toEqual([
      'released 10.5.0.2 (container old-gone ifname eth0, since 2020-01-01T00:00:00.000Z)',
      'released fd05::2 (container old-gone ifname eth0, since 2020-01-01T00:00:00.000Z)',
    ]);
    expect(new Set(store.list().map((o) => o.containerID))).toEqual(new Set(['web-sandbox', 'just-added']));
    expect(requests.at(-1)).toBe('/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1 Bearer secret-token');
  });

  it('reads a node\'s spec.podCIDRs through a kubeconfig', async () => {
    expect(await getNodePodCIDRs(kubeconfig, 'node-1')).toEqual(['10.244.7.0/24', 'fd00:10:244:7::/64']);
    await expect(getNodePodCIDRs(kubeconfig, 'node-2')).rejects.toThrow('GET /api/v1/nodes/node-2: HTTP 404');
  });

  it('gc refuses to run without knowing what is in use', async () => {
    expect((await capture(['gc', '--data-dir', dir, '--network', 'x'])).err).toBe(
      'kube-dataplane ipam gc: gc needs to know what is in use: --valid-attachments FILE, --keep ID/IFNAME or --kubeconfig FILE\n',
    );
  });
});
