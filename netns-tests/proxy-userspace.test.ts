// The userspace proxy mode with real packets: `kube-dataplane proxy --proxy-mode userspace` in a
// node namespace puts the service addresses on its VIP interface and forwards with Node sockets
// to pods behind its bridge; a client namespace outside routes the service range via the node.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Process } from './harness/netns.js';
import { BIN, CLIENT, NODE_IP4, NODE_IP6, nodePorts, ProxyEnv, serviceYaml, tally, writeClusterIPServices } from './proxy-env.js';

const PODS = ['pod-a', 'pod-b', 'pod-c'];
const VIPS = 'kdp-vips0';

describe('proxy: userspace mode', () => {
  let env: ProxyEnv;
  let blocker: Process | undefined;
  let monitor: Process;
  const all = () => env.pods.flatMap((p) => [{ ip: p.ip4 }, { ip: p.ip6 }]);
  const without = (name: string) => all().filter((e) => !env.pods.find((p) => p.name === name && (p.ip4 === e.ip || p.ip6 === e.ip)));
  const vipAddresses = async () => {
    const r = await env.node.exec('ip', ['-j', 'addr', 'show', 'dev', VIPS], { allowFailure: true });
    if (r.code !== 0) return undefined;
    return (JSON.parse(r.stdout) as { addr_info: { local: string }[] }[])[0].addr_info.map((a) => a.local).sort();
  };

  /** One datagram from a connected socket, which (unlike an unconnected one) is told of an ICMP port unreachable. */
  const udpConnected = async (host: string, port: number): Promise<string> => {
    const code = `
      const s = require('dgram').createSocket(${JSON.stringify(host.includes(':') ? 'udp6' : 'udp4')});
      const done = (t) => { console.log(t); process.exit(0); };
      setTimeout(() => done('ERR ETIMEDOUT'), 3000);
      s.on('message', (m) => done(String(m).trim()));
      s.on('error', (e) => done('ERR ' + e.code));
      s.connect(${port}, ${JSON.stringify(host)}, () => { s.send('hello'); setTimeout(() => s.send('hello'), 500); });`;
    return (await env.client.exec('node', ['-e', code])).stdout.trim();
  };

  beforeAll(async () => {
    env = await ProxyEnv.create({ pods: PODS });
    writeClusterIPServices(env);
    env.write('np.yaml', serviceYaml({
      name: 'np', clusterIPs: ['10.96.0.15', 'fd00:96::15'], endpoints: all(), spec: { type: 'NodePort' },
      ports: [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: 30080 }, { name: 'udp', port: 53, targetPort: 5353, protocol: 'UDP', nodePort: 30080 }],
    }));
    env.write('mixed.yaml', serviceYaml({
      name: 'mixed', clusterIPs: ['10.96.0.16'], endpoints: all(),
      ports: [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP' }, { name: 'sctp', port: 90, targetPort: 9090, protocol: 'SCTP' }],
    }));
    // loadBalancerSourceRanges: `fw` admits the client's link (and so the node), `fw-deny` a
    // range nobody here is in.
    const withIngress = (yaml: string, ips: string[]) => yaml.replace(/^(\{"apiVersion":"v1","kind":"Service".*)$/m, (line) => JSON.stringify({ ...JSON.parse(line), status: { loadBalancer: { ingress: ips.map((ip) => ({ ip })) } } }));
    env.write('fw.yaml', withIngress(serviceYaml({
      name: 'fw', clusterIPs: ['10.96.0.19', 'fd00:96::19'], endpoints: all(), ports: nodePorts(30093),
      spec: { type: 'LoadBalancer', loadBalancerSourceRanges: ['192.168.50.0/24', 'fd00:50::/64'] },
    }), ['198.51.100.10', 'fd00:51::10']));
    env.write('fw-deny.yaml', withIngress(serviceYaml({
      name: 'fw-deny', clusterIPs: ['10.96.0.20'], endpoints: all(), ports: nodePorts(30094),
      spec: { type: 'LoadBalancer', loadBalancerSourceRanges: ['203.0.113.0/24'] },
    }), ['198.51.100.11']));
    env.write('flood.yaml', serviceYaml({ name: 'flood', clusterIPs: ['10.96.0.21'], endpoints: all() }));
    env.write('drain.yaml', serviceYaml({ name: 'drain', clusterIPs: ['10.96.0.18'], endpoints: all(), ports: [{ name: 'echo', port: 9090, targetPort: 9090, protocol: 'TCP' }] }));
    // Port 30090 is taken on the node before the proxy starts: that listener must wait, alone.
    blocker = env.node.spawn('node', ['-e', 'require("net").createServer().listen(30090, "0.0.0.0", () => console.log("blocking"))'], { label: 'blocker' });
    await blocker.waitForOutput('blocking');
    env.write('late.yaml', serviceYaml({
      name: 'late', clusterIPs: ['10.96.0.17'], endpoints: all(), spec: { type: 'NodePort' },
      ports: [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: 30090 }],
    }));
    await env.startProxy({ pods: PODS, flags: ['--proxy-mode', 'userspace', '--sync-period', '3s', '--log-level', 'debug', '--userspace-udp-max-sessions', '100'] });
    monitor = env.node.spawn('ip', ['monitor', 'address', 'dev', VIPS], { label: 'address monitor' });
  });

  afterAll(async () => {
    await env?.destroy();
  });

  it('puts every service address on its VIP interface', async () => {
    const addrs = await vipAddresses();
    for (const ip of ['10.96.0.10', 'fd00:96::10', '10.96.0.12', '10.96.0.15', 'fd00:96::15', '10.96.0.16']) expect(addrs).toContain(ip);
    expect(env.proxy!.stderr).toMatch(/proxy started mode=userspace/);
  });

  for (const [proto, vip, port] of [['tcp', '10.96.0.10', 80], ['tcp', 'fd00:96::10', 80], ['udp', '10.96.0.10', 53], ['udp', 'fd00:96::10', 53]] as const) {
    it(`${proto.toUpperCase()} to ${vip} reaches every backend, which sees the node as the source`, async () => {
      const lines = await env.connect(env.client, proto, vip, port, 30);
      const t = tally(lines);
      expect(Object.keys(t).sort()).toEqual(PODS);
      // Round-robin: each gets its turn. A UDP client socket may reuse the source port of an
      // earlier one whose session is still alive and so land where that one did.
      for (const p of PODS) proto === 'tcp' ? expect(t[p]).toBe(10) : expect(t[p]).toBeGreaterThanOrEqual(7);
      const node = vip.includes(':') ? 'fd00:244::1' : '10.244.0.1';
      for (const l of lines) expect(l.split(' ')[1]).toBe(node);
    });
  }

  it('a pod reaches the service, itself included', async () => {
    const t = tally(await env.connect(env.pods[1].ns, 'tcp', '10.96.0.10', 80, 9));
    expect(Object.keys(t).sort()).toEqual(PODS);
  });

  it('session affinity ClientIP: every connection and session of a client sticks to one backend', async () => {
    for (const [vip, proto, port] of [['10.96.0.11', 'tcp', 80], ['10.96.0.11', 'udp', 53], ['fd00:96::11', 'tcp', 80], ['fd00:96::11', 'udp', 53]] as const) {
      const t = tally(await env.connect(env.client, proto, vip, port, 15));
      expect(Object.keys(t)).toHaveLength(1);
      expect(PODS).toContain(Object.keys(t)[0]);
    }
    // Another client (a pod) is still spread over the backends by the same service: no global pin.
    const fromPods = new Set<string>();
    for (const p of env.pods) for (const l of await env.connect(p.ns, 'tcp', '10.96.0.11', 80, 1)) fromPods.add(l.split(' ')[0]);
    expect(fromPods.size).toBeGreaterThan(1);
  });

  it('a service without endpoints refuses at connect, as kube-proxy\'s REJECT does: TCP and UDP', async () => {
    for (const vip of ['10.96.0.12', 'fd00:96::12']) {
      // Refused, not accepted and then reset: no socket listens, the address stays local.
      expect(await env.connect(env.client, 'tcp', vip, 80, 3, 5_000)).toEqual(['ERR ECONNREFUSED', 'ERR ECONNREFUSED', 'ERR ECONNREFUSED']);
      expect(await udpConnected(vip, 53)).toBe('ERR ECONNREFUSED');
    }
    expect(await vipAddresses()).toEqual(expect.arrayContaining(['10.96.0.12', 'fd00:96::12']));
  });

  it('a service that gains endpoints is served; one that loses them all refuses again', async () => {
    env.write('empty.yaml', serviceYaml({ name: 'empty', clusterIPs: ['10.96.0.12', 'fd00:96::12'], endpoints: all() }));
    await env.eventually('empty served', () => env.connect(env.client, 'tcp', '10.96.0.12', 80, 1), (l) => /^pod-\w/.test(l[0]));
    expect(await udpConnected('fd00:96::12', 53)).toMatch(/^pod-\w/);
    env.write('empty.yaml', serviceYaml({ name: 'empty', clusterIPs: ['10.96.0.12', 'fd00:96::12'], endpoints: [] }));
    await env.eventually('empty refuses', () => env.connect(env.client, 'tcp', '10.96.0.12', 80, 1), (l) => l[0] === 'ERR ECONNREFUSED');
    expect(await udpConnected('10.96.0.12', 53)).toBe('ERR ECONNREFUSED');
  });

  it('UDP sessions are capped per service: a flood of sources cannot exhaust file descriptors', async () => {
    // --userspace-udp-max-sessions 100 (above): 300 sources at once get at most 100 sessions (one
    // socket each), and a client that already has a session keeps being served.
    const fds = () => readdirSync(`/proc/${env.proxy!.child.pid}/fd`).length;
    const stream = env.client.spawn('node', [CLIENT, 'udp-stream', '10.96.0.21', '53', '100'], { label: 'udp stream' });
    await stream.waitForOutput(/pod-\w/);
    const before = fds();
    const flood = `
      const dgram = require('dgram');
      for (let i = 0; i < 300; i++) dgram.createSocket('udp4').send('x', 53, '10.96.0.21');
      setTimeout(() => process.exit(0), 1500);`;
    await env.client.exec('node', ['-e', flood]);
    expect(fds() - before).toBeLessThanOrEqual(100);
    await env.proxy!.waitForOutput(/UDP session limit reached.*service=test\/flood/);
    const mark = stream.stdout.length;
    await stream.waitForOutput(new RegExp(`^[\\s\\S]{${mark}}[\\s\\S]*pod-\\w`));
    await stream.stop();
  });

  for (const [proto, nodeIP] of [['tcp', NODE_IP4], ['udp', NODE_IP4], ['tcp', NODE_IP6], ['udp', NODE_IP6]] as const) {
    it(`NodePort ${proto.toUpperCase()} on ${nodeIP} reaches every backend`, async () => {
      expect(Object.keys(tally(await env.connect(env.client, proto, nodeIP, 30080, 9))).sort()).toEqual(PODS);
    });
  }

  it('loadBalancerSourceRanges: an allowed client reaches the LB IPs over TCP and UDP; another source is reset (TCP) or dropped (UDP)', async () => {
    for (const lb of ['198.51.100.10', 'fd00:51::10']) {
      for (const [proto, port] of [['tcp', 80], ['udp', 53]] as const) {
        expect(Object.keys(tally(await env.connect(env.client, proto, lb, port, 9))).sort(), `${proto} ${lb}`).toEqual(PODS);
      }
    }
    expect(await env.connect(env.client, 'tcp', '198.51.100.11', 80, 2, 5_000)).toEqual(['ERR ECONNRESET', 'ERR ECONNRESET']);
    expect(await env.connect(env.client, 'udp', '198.51.100.11', 53, 2, 1_000)).toEqual(['ERR ETIMEDOUT', 'ERR ETIMEDOUT']);
    // Only the LB IP is filtered: the same service's cluster IP and node port serve that client.
    expect(Object.keys(tally(await env.connect(env.client, 'tcp', '10.96.0.20', 80, 6))).sort()).toEqual(PODS);
    expect(Object.keys(tally(await env.connect(env.client, 'udp', NODE_IP4, 30094, 9))).sort()).toEqual(PODS);
    // The node reaches its local LB IP with that IP as source: admitted where a range holds a
    // node address (fw), not elsewhere (fw-deny).
    expect(Object.keys(tally(await env.connect(env.node, 'tcp', '198.51.100.10', 80, 6))).sort()).toEqual(PODS);
    expect(await env.connect(env.node, 'tcp', '198.51.100.11', 80, 1, 5_000)).toEqual(['ERR ECONNRESET']);
    expect(env.proxy!.stderr).toMatch(/outside loadBalancerSourceRanges reset.*service=test\/fw-deny:tcp/);
  });

  it('an SCTP port is logged once and not served; the TCP port of the same service is', async () => {
    expect(env.proxy!.stderr.match(/SCTP is not supported.*test\/mixed:sctp/g)).toHaveLength(1);
    expect(Object.keys(tally(await env.connect(env.client, 'tcp', '10.96.0.16', 80, 6))).sort()).toEqual(PODS);
  });

  it('a node port in use is logged with its service and bound at the next reconcile tick once free', async () => {
    expect(env.proxy!.stderr).toMatch(/cannot listen for a service.*service=test\/late:tcp.*listener="TCP 0.0.0.0:30090".*EADDRINUSE/);
    expect(await env.connect(env.client, 'tcp', '10.96.0.17', 80, 3)).toHaveLength(3); // its cluster IP works meanwhile
    expect(Object.keys(tally(await env.connect(env.client, 'tcp', '10.96.0.17', 80, 6))).sort()).toEqual(PODS);
    await blocker!.stop();
    await env.eventually('node port 30090 served', async () => tally(await env.connect(env.client, 'tcp', NODE_IP4, 30090, 3)), (t) => Object.keys(t).every((k) => PODS.includes(k)));
  });

  it('follows manifest edits: endpoint removed, added back, service removed', async () => {
    env.write('shrink.yaml', serviceYaml({ name: 'shrink', clusterIPs: ['10.96.0.13', 'fd00:96::13'], endpoints: without('pod-c') }));
    for (const vip of ['10.96.0.13', 'fd00:96::13']) {
      const t = await env.eventually(`pod-c gone from ${vip}`, async () => tally(await env.connect(env.client, 'tcp', vip, 80, 12)), (t) => !t['pod-c']);
      expect(Object.keys(t).sort()).toEqual(['pod-a', 'pod-b']);
    }
    env.write('shrink.yaml', serviceYaml({ name: 'shrink', clusterIPs: ['10.96.0.13', 'fd00:96::13'], endpoints: all() }));
    await env.eventually('pod-c back', async () => tally(await env.connect(env.client, 'tcp', '10.96.0.13', 80, 12)), (t) => Object.keys(t).length === 3);
    rmSync(join(env.dir, 'shrink.yaml'));
    await env.eventually('shrink addresses gone', vipAddresses, (a) => !!a && !a.includes('10.96.0.13') && !a.includes('fd00:96::13'));
    expect((await env.connect(env.client, 'tcp', '10.96.0.13', 80, 1, 2_000))[0]).toMatch(/^ERR /);
    expect(await vipAddresses()).toContain('10.96.0.10');
  });

  it('a removed service\'s established connection goes on; its address leaves once it ends', async () => {
    const stream = env.client.spawn('node', [CLIENT, 'tcp-stream', '10.96.0.18', '9090', '100'], { label: 'tcp stream' });
    try {
      await stream.waitForOutput(/pod-\w \d+/);
      rmSync(join(env.dir, 'drain.yaml'));
      await env.eventually('drain listener closed', () => env.connect(env.client, 'tcp', '10.96.0.18', 9090, 1), (l) => l[0] === 'ERR ECONNREFUSED');
      const mark = stream.stdout.length;
      await env.eventually('stream still answered', async () => stream.stdout.slice(mark), (out) => /pod-\w \d+\n.*pod-\w \d+\n/s.test(out));
      expect(stream.stdout).not.toMatch(/ERR/);
      expect(await vipAddresses()).toContain('10.96.0.18');
    } finally {
      await stream.stop();
    }
    await env.eventually('drain address removed after the connection ended', vipAddresses, (a) => !!a && !a.includes('10.96.0.18'));
  });

  it('full syncs and reconcile ticks leave the addresses in use alone', async () => {
    expect(monitor.stdout).toMatch(/fd00:96::13/); // the monitor sees the interface's changes
    const deleted = monitor.stdout.split('\n').filter((l) => l.startsWith('Deleted') && !/10\.96\.0\.1[38]\/|fd00:96::13\//.test(l));
    expect(deleted).toEqual([]);
    // The start's full sync and at least two reconcile ticks (a full pass in this mode).
    expect(env.proxy!.stderr.match(/rules synced sync=full/g)!.length).toBeGreaterThanOrEqual(1);
    expect(env.proxy!.stderr.match(/rules synced sync=reconcile/g)?.length ?? 0).toBeGreaterThanOrEqual(2);
  });

  it('a UDP session to a removed endpoint moves to a live one', async () => {
    for (const vip of ['10.96.0.14', 'fd00:96::14']) {
      const stream = env.client.spawn('node', [CLIENT, 'udp-stream', vip, '53', '100'], { label: `udp stream ${vip}` });
      await stream.waitForOutput(/pod-\w/);
      const first = /(pod-\w)/.exec(stream.stdout)![1];
      env.write('stream.yaml', serviceYaml({ name: 'stream', clusterIPs: ['10.96.0.14', 'fd00:96::14'], endpoints: without(first) }));
      // The removed backend still runs and would answer: only the closed session moves the stream.
      const mark = stream.stdout.length;
      await env.eventually(`stream to ${vip} leaves ${first}`, async () => stream.stdout.slice(mark).trim().split('\n').slice(-3), (last) => last.length === 3 && last.every((l) => /^pod-\w/.test(l) && !l.startsWith(first)));
      await stream.stop();
      env.write('stream.yaml', serviceYaml({ name: 'stream', clusterIPs: ['10.96.0.14', 'fd00:96::14'], endpoints: all() }));
      await env.eventually('stream service whole again', async () => tally(await env.connect(env.client, 'udp', vip, 53, 9)), (t) => Object.keys(t).length === 3);
    }
  });

  it('the agent\'s proxy half runs the same mode over the addresses a stopped proxy left', async () => {
    await env.proxy!.stop();
    expect(await vipAddresses()).toContain('10.96.0.10'); // a stopped proxy leaves them for its restart
    const agent = env.node.spawn('node', [
      BIN, 'agent', '--manifests', env.dir, '--node-name', 'node-a', '--proxy-mode', 'userspace',
      '--healthz-bind-address', '127.0.0.1:10256', '--metrics-bind-address', '127.0.0.1:10249',
      '--listen', '127.0.0.1:1053', '--upstream', '127.0.0.1:1054',
      '--health-listen', '127.0.0.1:18080', '--ready-listen', '127.0.0.1:18181', '--metrics-listen', '127.0.0.1:19153',
    ], { label: 'agent' });
    try {
      await agent.waitForOutput(/rules synced sync=full/, 30_000);
      for (const [proto, vip, port] of [['tcp', '10.96.0.10', 80], ['udp', 'fd00:96::10', 53]] as const) {
        expect(Object.keys(tally(await env.connect(env.client, proto, vip, port, 6))).sort()).toEqual(PODS);
      }
    } finally {
      await agent.stop();
    }
  });

  it('--cleanup deletes the VIP interface with its addresses', async () => {
    expect(await vipAddresses()).toContain('10.96.0.10');
    const r = await env.node.exec('node', [BIN, 'proxy', '--cleanup', '--manifests', env.dir], { allowFailure: true });
    expect(r.code).toBe(0);
    expect(await vipAddresses()).toBeUndefined();
  });
});
