// The command line as a user meets it: the compiled binary, its exit codes and one-line reasons.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TestApiServer } from '../test-apiserver/server.js';
import { beforeAll, describe, expect, it } from 'vitest';

const BIN = new URL('../dist/cmd/kube-dataplane.js', import.meta.url).pathname;
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, KUBERNETES_SERVICE_HOST: '' } });

describe('kube-dataplane command line', () => {
  beforeAll(() => {
    if (!existsSync(BIN)) execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { stdio: 'ignore' });
  });

  it('prints its version', () => {
    const r = run('--version');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^kube-dataplane \d+\.\d+\.\d+\n$/);
  });

  it('lists commands, and each command its flags', () => {
    expect(run('--help').stdout).toMatch(/agent .*\n.*proxy .*\n.*dns .*\n.*catalog/s);
    const dns = run('dns', '--help');
    expect(dns.status).toBe(0);
    expect(dns.stdout).toContain('--cluster-domain');
    expect(dns.stdout).not.toContain('--proxy-mode');
  });

  it.each([
    [['dns', '--manifests', '/m', '--bogus'], 'kube-dataplane dns: unknown flag --bogus for dns\n'],
    [['proxy', '--manifests', '/m', '--proxy-mode', 'ipvs'], 'kube-dataplane proxy: --proxy-mode must be one of iptables|userspace|nftables, not "ipvs"\n'],
    [['agent'], 'kube-dataplane agent: no source: give --kubeconfig FILE or --manifests DIR (or run in a pod)\n'],
    [['frobnicate'], 'kube-dataplane: unknown command "frobnicate" (try --help)\n'],
  ])('exits 2 with one line on %j', (args, line) => {
    const r = run(...args);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(line);
  });

  it('prints the normalized catalog of a manifest directory', () => {
    const r = run('catalog', '--manifests', new URL('../manifests/example', import.meta.url).pathname, '--log-level', 'error');
    expect(r.status).toBe(0);
    const cat = JSON.parse(r.stdout);
    expect(cat.synced).toBe(true);
    const web = cat.services.find((s: { key: string }) => s.key === 'demo/web');
    expect(web.clusterIPs).toEqual(['10.96.0.80', 'fd00:96::80']);
    expect(web.endpoints.ports[0].endpoints.map((e: { ip: string }) => e.ip)).toEqual(['10.244.0.11', '10.244.0.12', 'fd00:244::11', 'fd00:244::12']);
  });

  it('prints the catalog of an API server through --kubeconfig, rejecting the bad object alone', async () => {
    const server = await TestApiServer.start();
    let dir = '';
    try {
      server.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'prod' }, spec: { clusterIP: '10.96.0.5', ports: [{ port: 80 }] } });
      server.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'broken', namespace: 'prod' }, spec: { clusterIP: '10.96.0.6', ports: [{ port: 70000 }] } });
      server.apply({
        apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
        metadata: { name: 'web-1', namespace: 'prod', labels: { 'kubernetes.io/service-name': 'web' } },
        ports: [{ port: 8080 }], endpoints: [{ addresses: ['10.244.0.7'] }],
      });
      dir = mkdtempSync(join(tmpdir(), 'kdp-kc-'));
      const kubeconfig = join(dir, 'kubeconfig');
      await server.writeKubeconfig(kubeconfig);
      const r = await promisify(execFile)(process.execPath, [BIN, 'catalog', '--kubeconfig', kubeconfig], { encoding: 'utf8' });
      const cat = JSON.parse(r.stdout);
      expect(cat.services.map((s: { key: string }) => s.key)).toEqual(['prod/web']);
      expect(cat.services[0].endpoints.endpoints[0].ip).toBe('10.244.0.7');
      expect(r.stderr).toMatch(/rejected object .*object=prod\/broken .*spec\.ports\[0\]\.port/);
    } finally {
      await server.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });
});
