// The backend's sync sequence against a stand-in for nft (a script that records its input and
// fails on demand): no kernel is touched here; the netns tests apply the same inputs for real.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Logger } from '../../common/log.js';
import type { NodeFacts } from '../core/backend.js';
import type { ServicePlan, Target } from '../core/model.js';
import { NftablesBackend } from './backend.js';

const dir = mkdtempSync(join(tmpdir(), 'nft-backend-test-'));
const nft = join(dir, 'nft');
const input = join(dir, 'input');
const failFlag = join(dir, 'fail');
writeFileSync(nft, `#!/bin/sh\ncat > ${input}\nif [ -e ${failFlag} ]; then echo "injected failure" >&2; exit 1; fi\n`, { mode: 0o755 });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} } as unknown as Logger;
const node: NodeFacts = { nodeIPs: { IPv4: ['192.168.50.1'], IPv6: [] }, nodePortAddresses: { IPv4: 'all', IPv6: 'all' } };
const ep = (ip: string): Target => ({ ip, port: 8080, local: true, ready: true });
function web(key: string, clusterIP: string, eps: Target[]): ServicePlan {
  const [namespace, name] = key.split('/');
  return {
    key, namespace, name, healthCheckNodePort: 0, localReadyEndpoints: 0,
    ports: [{
      serviceKey: key, name: `${key}:p`, family: 'IPv4', protocol: 'TCP', port: 80, clusterIP, nodePort: 0, externalIPs: [], loadBalancerIPs: [],
      firewall: false, sourceRanges: [], affinitySeconds: 0, internalLocal: false, externalLocal: false, externallyAccessible: false,
      clusterEndpoints: eps, localEndpoints: [], hasAnyEndpoints: eps.length > 0,
    }],
  };
}
const lastInput = () => readFileSync(input, 'utf8').split('\n').filter((l) => l);

describe('NftablesBackend', () => {
  it('a partial sync nft refuses is thrown, and the next one is a full sync making the table anew', async () => {
    const be = new NftablesBackend({ families: ['IPv4'], clusterCIDRs: ['10.244.0.0/16'], masqueradeAll: false, nft }, quiet);
    const plans = new Map([['test/a', web('test/a', '10.96.0.10', [ep('10.244.0.11')])], ['test/b', web('test/b', '10.96.0.20', [ep('10.244.0.11')])]]);
    await be.sync({ plans, changed: new Set(), full: true, reconcile: false, node });
    expect(lastInput().slice(0, 3)).toEqual(['add table ip kube-dataplane', 'delete table ip kube-dataplane', 'add table ip kube-dataplane']);

    plans.set('test/a', web('test/a', '10.96.0.10', [ep('10.244.0.12')]));
    writeFileSync(failFlag, '');
    await expect(be.sync({ plans, changed: new Set(['test/a']), full: false, reconcile: false, node })).rejects.toThrow(/injected failure/);
    expect(lastInput()).toContain('add element ip kube-dataplane hairpin { 10.244.0.12 . 10.244.0.12 }');
    unlinkSync(failFlag);

    // A partial request after the failure still rewrites the whole table, from scratch.
    const r = await be.sync({ plans, changed: new Set(['test/a']), full: false, reconcile: false, node });
    const lines = lastInput();
    expect(lines.slice(0, 3)).toEqual(['add table ip kube-dataplane', 'delete table ip kube-dataplane', 'add table ip kube-dataplane']);
    expect(lines).toContain('add element ip kube-dataplane hairpin { 10.244.0.12 . 10.244.0.12, 10.244.0.11 . 10.244.0.11 }');
    expect(r.rules.elements).toBe(6); // per service: its cluster IP, its verdict, one endpoint slot

    // And from there partial syncs carry on: test/b moves off 10.244.0.11, which nobody uses now.
    plans.set('test/b', web('test/b', '10.96.0.20', [ep('10.244.0.12')]));
    await be.sync({ plans, changed: new Set(['test/b']), full: false, reconcile: false, node });
    expect(lastInput()).toContain('delete element ip kube-dataplane hairpin { 10.244.0.11 . 10.244.0.11 }');
    expect(lastInput()).not.toContain('add element ip kube-dataplane hairpin { 10.244.0.12 . 10.244.0.12 }');
    expect(existsSync(failFlag)).toBe(false);
  });
});
