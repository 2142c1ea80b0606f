import { describe, expect, it } from 'vitest';
import type { Endpoint, ServiceEndpoints } from '../../cluster/types.js';
import { logger } from '../../common/log.js';
import { StaleFlowCleaner, type ConntrackTool } from './conntrack-cleaner.js';
import { conntrackArgs, parseFlows, servingIndex, staleFilters } from './conntrack.js';
import type { ServicePlan, ServicePortPlan } from './model.js';

function port(over: Partial<ServicePortPlan>): ServicePortPlan {
  return {
    serviceKey: 'ns/dns', name: 'ns/dns:dns', family: 'IPv4', protocol: 'UDP', port: 53, clusterIP: '10.96.0.10', nodePort: 0,
    externalIPs: [], loadBalancerIPs: [], firewall: false, sourceRanges: [], affinitySeconds: 0, internalLocal: false, externalLocal: false,
    externallyAccessible: false, clusterEndpoints: [], localEndpoints: [], hasAnyEndpoints: false, ...over,
  };
}
const plan = (...ports: ServicePortPlan[]): ServicePlan => ({ key: 'ns/dns', namespace: 'ns', name: 'dns', ports, healthCheckNodePort: 0, localReadyEndpoints: 0 });
const ep = (ip: string, over: Partial<Endpoint> = {}): Endpoint => ({ ip, family: ip.includes(':') ? 'IPv6' : 'IPv4', ready: true, serving: true, terminating: false, ...over });
const endpoints = (name: string, eps: Endpoint[], protocol: 'UDP' | 'TCP' = 'UDP'): ServiceEndpoints => ({
  serviceKey: 'ns/dns', endpoints: eps, ports: [{ name, protocol, port: 5353, endpoints: eps }],
});

// What `conntrack -L -f ipv4 -p udp -o extended` prints (captured on these machines).
const dump = (lines: [string, number, string][]) =>
  lines.map(([dst, dport, rsrc], i) => `ipv4     2 udp      17 119 src=10.244.0.12 dst=${dst} sport=${40000 + i} dport=${dport} [UNREPLIED] src=${rsrc} dst=10.244.0.12 sport=5353 dport=${40000 + i} mark=0 use=1`).join('\n');

describe('stale UDP flows, kube-proxy 1.32+ rules', () => {
  it('parses the extended dump: original destination and port, reply source', () => {
    const text = `ipv6     10 udp      17 119 src=fd00::12 dst=fd00:96::10 sport=40001 dport=53 [UNREPLIED] src=fd00:244::11 dst=fd00::12 sport=5353 dport=40001 mark=0 use=1
ipv4     2 tcp      6 119 ESTABLISHED src=10.0.0.1 dst=10.96.0.1 sport=1 dport=443 src=10.244.0.1 dst=10.0.0.1 sport=6443 dport=1 mark=0 use=1
conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.`;
    expect(parseFlows(text)).toEqual([{ family: 'IPv6', origSrc: 'fd00::12', origDst: 'fd00:96::10', origPortDst: 53, replySrc: 'fd00:244::11' }]);
  });

  it('deletes entries to a service address or node port whose reply source is not a serving endpoint', () => {
    const p = port({ externalIPs: ['198.51.100.1'], nodePort: 30053 });
    const index = servingIndex([plan(p)], () => endpoints('dns', [ep('10.244.0.5'), ep('10.244.0.6', { ready: false, serving: true, terminating: true })]), 'IPv4');
    const flows = parseFlows(dump([
      ['10.96.0.10', 53, '10.244.0.5'], // serving: kept
      ['10.96.0.10', 53, '10.244.0.6'], // terminating but serving: kept (kube-proxy ignores terminating state)
      ['10.96.0.10', 53, '10.244.0.9'], // gone
      ['10.96.0.10', 53, '10.96.0.10'], // never DNATed (the service had no endpoints then)
      ['198.51.100.1', 53, '10.244.0.9'], // external IP, gone
      ['192.168.1.1', 30053, '10.244.0.9'], // node port on any address, gone
      ['192.168.1.1', 30053, '10.244.0.5'], // node port, serving
      ['10.96.0.10', 54, '10.244.0.9'], // another port of that address: not this service port
      ['10.96.0.99', 53, '10.244.0.9'], // no service
    ]));
    expect(staleFilters(flows, index)).toEqual([
      { family: 'IPv4', origDst: '10.96.0.10', origPortDst: 53, replySrc: '10.244.0.9' },
      { family: 'IPv4', origDst: '10.96.0.10', origPortDst: 53, replySrc: '10.96.0.10' },
      { family: 'IPv4', origDst: '198.51.100.1', origPortDst: 53, replySrc: '10.244.0.9' },
      { family: 'IPv4', origPortDst: 30053, replySrc: '10.244.0.9' },
    ]);
  });

  it('leaves alone: a port without serving endpoints, TCP ports, endpoints of another port name or family', () => {
    const flows = parseFlows(dump([['10.96.0.10', 53, '10.244.0.9']]));
    expect(staleFilters(flows, servingIndex([plan(port({}))], () => endpoints('dns', [ep('10.244.0.5', { serving: false, ready: false })]), 'IPv4'))).toEqual([]);
    expect(staleFilters(flows, servingIndex([plan(port({ protocol: 'TCP' }))], () => endpoints('dns', [ep('10.244.0.5')], 'TCP'), 'IPv4'))).toEqual([]);
    expect(staleFilters(flows, servingIndex([plan(port({}))], () => endpoints('other', [ep('10.244.0.5')]), 'IPv4'))).toEqual([]);
    expect(staleFilters(flows, servingIndex([plan(port({}))], () => endpoints('dns', [ep('fd00::5')]), 'IPv4'))).toEqual([]);
    // An unnamed port (plan name `ns/dns`) matches the slices' unnamed port.
    const unnamed = servingIndex([plan(port({ name: 'ns/dns' }))], () => endpoints('', [ep('10.244.0.5')]), 'IPv4');
    expect(staleFilters(flows, unnamed)).toHaveLength(1);
  });

  it('one filter per distinct match, and its conntrack -D line', () => {
    const index = servingIndex([plan(port({}))], () => endpoints('dns', [ep('10.244.0.5')]), 'IPv4');
    const flows = parseFlows(dump([['10.96.0.10', 53, '10.244.0.9'], ['10.96.0.10', 53, '10.244.0.9']]));
    const filters = staleFilters(flows, index);
    expect(filters).toHaveLength(1);
    expect(conntrackArgs(filters[0])).toEqual(['-D', '-f', 'ipv4', '-p', 'udp', '--orig-dst', '10.96.0.10', '--orig-port-dst', '53', '--reply-src', '10.244.0.9']);
    expect(conntrackArgs({ family: 'IPv6', origPortDst: 30053, replySrc: 'fd00::9' })).toEqual(['-D', '-f', 'ipv6', '-p', 'udp', '--orig-port-dst', '30053', '--reply-src', 'fd00::9']);
  });
});

describe('StaleFlowCleaner', () => {
  function fakeTool(dumps: Record<string, string>) {
    const calls: string[][] = [];
    const loaded: string[] = [];
    const tool: ConntrackTool = {
      run: async (args) => {
        calls.push([...args]);
        return { code: 0, stdout: dumps[args[2]] ?? '', stderr: '' };
      },
      load: async (lines) => {
        loaded.push(lines);
        return { code: 0, stdout: lines.trim().split('\n').map(() => 'udp 17 1 src=x').join('\n'), stderr: '' };
      },
    };
    return { tool, calls, loaded };
  }

  it('one dump per family that has a UDP service with serving endpoints, one batch for all deletions', async () => {
    const f = fakeTool({ ipv4: dump([['10.96.0.10', 53, '10.244.0.9'], ['10.96.0.10', 53, '10.244.0.5']]) });
    const cleaner = new StaleFlowCleaner(f.tool, ['IPv4', 'IPv6'], logger('test'));
    const r = await cleaner.clean([plan(port({}))], () => endpoints('dns', [ep('10.244.0.5')]));
    expect(f.calls).toEqual([['-L', '-f', 'ipv4', '-p', 'udp', '-o', 'extended']]); // no IPv6 service: no IPv6 dump
    expect(f.loaded).toEqual(['-D -f ipv4 -p udp --orig-dst 10.96.0.10 --orig-port-dst 53 --reply-src 10.244.0.9\n']);
    expect(r).toMatchObject({ listed: { IPv4: 2 }, deleted: 1, failed: false });
  });

  it('nothing stale: a dump and no batch; no UDP service: not even a dump', async () => {
    const f = fakeTool({ ipv4: dump([['10.96.0.10', 53, '10.244.0.5']]) });
    const cleaner = new StaleFlowCleaner(f.tool, ['IPv4'], logger('test'));
    await cleaner.clean([plan(port({}))], () => endpoints('dns', [ep('10.244.0.5')]));
    expect(f.calls).toHaveLength(1);
    expect(f.loaded).toEqual([]);
    await cleaner.clean([plan(port({ protocol: 'TCP' }))], () => endpoints('dns', [ep('10.244.0.5')], 'TCP'));
    expect(f.calls).toHaveLength(1);
  });

  it('a failed dump is reported and skipped, as kube-proxy does', async () => {
    const tool: ConntrackTool = { run: async () => ({ code: 1, stdout: '', stderr: 'boom' }), load: async () => { throw new Error('not called'); } };
    const r = await new StaleFlowCleaner(tool, ['IPv4'], logger('test')).clean([plan(port({}))], () => endpoints('dns', [ep('10.244.0.5')]));
    expect(r).toMatchObject({ failed: true, deleted: 0, filters: [] });
  });
});
