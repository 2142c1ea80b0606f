// Packet checks that every rule-based proxy mode (iptables, nftables) must pass the same way,
// registered into the calling file's describe block: one copy of the expectations, so the modes
// cannot drift apart. The services are those of `writeExternalServices`.
import { expect, it } from 'vitest';
import { CLIENT_IP4, CLIENT_IP6, NODE_IP4, NODE_IP6, tally, type ProxyEnv } from './proxy-env.js';

/** NodePort in both families and protocols, and externalTrafficPolicy Local on node ports and a
 *  load-balancer IP. `env` is read when the tests run (it is made in beforeAll). */
export function externalTrafficCases(env: () => ProxyEnv, pods: readonly string[]): void {
  for (const [proto, nodeIP] of [['tcp', NODE_IP4], ['udp', NODE_IP4], ['tcp', NODE_IP6], ['udp', NODE_IP6]] as const) {
    it(`NodePort ${proto.toUpperCase()} on ${nodeIP} reaches every endpoint, masqueraded`, async () => {
      const lines = await env().connect(env().client, proto, nodeIP, 30080, 40);
      expect(Object.keys(tally(lines)).sort()).toEqual([...pods].sort());
      const gw = nodeIP.includes(':') ? 'fd00:244::1' : '10.244.0.1';
      for (const l of lines) expect(l.split(' ')[1]).toBe(gw);
    });
  }

  it('externalTrafficPolicy Local: only local endpoints, with the client\'s own source address', async () => {
    for (const [dst, client] of [[NODE_IP4, CLIENT_IP4], [NODE_IP6, CLIENT_IP6]]) {
      for (const proto of ['tcp', 'udp'] as const) {
        const lines = await env().connect(env().client, proto, dst, 30081, 30);
        expect(Object.keys(tally(lines)).sort()).toEqual(['pod-a', 'pod-b']);
        for (const l of lines) expect(l.split(' ')[1]).toBe(client);
      }
    }
    // The load-balancer IP follows the same policy.
    const viaLB = await env().connect(env().client, 'tcp', '198.51.100.9', 80, 20);
    expect(Object.keys(tally(viaLB)).sort()).toEqual(['pod-a', 'pod-b']);
    for (const l of viaLB) expect(l.split(' ')[1]).toBe(CLIENT_IP4);
  });
}
