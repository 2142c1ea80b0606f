import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDuration, parseFlags, UsageError } from './flags.js';

const tempDirs: string[] = [];
const tempDir = (prefix: string) => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(d);
  return d;
};
afterAll(() => tempDirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('parseFlags', () => {
  it('applies the defaults of DESIGN.md', () => {
    const o = parseFlags('agent', ['--manifests', '/m']);
    expect(o).toMatchObject({
      manifests: '/m',
      proxyMode: 'iptables',
      iptablesBackend: 'auto',
      minSyncPeriodMs: 1000,
      syncPeriodMs: 30_000,
      healthzBindAddress: '0.0.0.0:10256',
      metricsBindAddress: '127.0.0.1:10249',
      listen: ['169.254.20.10:53'],
      listenInterface: 'kdp-dns0',
      allowFrom: [],
      resolvConf: '/etc/resolv.conf',
      systemdResolvConf: '/run/systemd/resolve/resolv.conf',
      clusterDomain: 'cluster.local',
      pods: 'insecure',
      healthListen: '127.0.0.1:8080',
      readyListen: '127.0.0.1:8181',
      metricsListen: '127.0.0.1:9153',
    });
  });

  it('takes --flag value and --flag=value; repeated and comma lists add up and replace the default', () => {
    const o = parseFlags('dns', ['--manifests=/m', '--listen', '127.0.0.1:5353', '--listen=[::1]:5353', '--upstream', '10.0.0.1,10.0.0.2:53']);
    expect(o.listen).toEqual(['127.0.0.1:5353', '[::1]:5353']);
    expect(o.upstream).toEqual(['10.0.0.1', '10.0.0.2:53']);
  });

  it.each([
    [['--manifests', '/m', '--bogus'], /unknown flag --bogus/],
    [['--manifests', '/m', '--listen'], /--listen needs a value/],
    [['--manifests', '/m', '--pods', 'maybe'], /--pods must be one of insecure\|verified\|disabled/],
    [['--manifests', '/m', '--ttl', '-3'], /--ttl takes a whole number/],
    [['--kubeconfig', 'k', '--manifests', 'm'], /exclusive/],
    [['stray'], /unexpected argument "stray"/],
  ])('refuses %j', (argv, message) => {
    expect(() => parseFlags('dns', argv)).toThrow(UsageError);
    expect(() => parseFlags('dns', argv)).toThrow(message);
  });

  it('refuses a flag of another command', () => {
    expect(() => parseFlags('dns', ['--manifests', '/m', '--proxy-mode', 'iptables'])).toThrow(/unknown flag --proxy-mode for dns/);
  });

  it('requires a source, except for --cleanup', () => {
    const saved = process.env.KUBERNETES_SERVICE_HOST;
    delete process.env.KUBERNETES_SERVICE_HOST;
    try {
      expect(() => parseFlags('proxy', [])).toThrow(/no source/);
      expect(parseFlags('proxy', ['--cleanup']).cleanup).toBe(true);
    } finally {
      if (saved !== undefined) process.env.KUBERNETES_SERVICE_HOST = saved;
    }
  });

  it('fills unset flags from --config, and flags win', () => {
    const dir = tempDir('kdp-config-');
    const file = join(dir, 'c.yaml');
    writeFileSync(file, 'manifests: /from-file\nmin-sync-period: 250ms\nmasquerade-all: true\nlisten: [127.0.0.1:53]\n');
    const o = parseFlags('agent', ['--config', file, '--min-sync-period', '2s']);
    expect(o).toMatchObject({ manifests: '/from-file', minSyncPeriodMs: 2000, masqueradeAll: true, listen: ['127.0.0.1:53'] });
    writeFileSync(file, 'no-such-flag: 1\n');
    expect(() => parseFlags('agent', ['--config', file])).toThrow(/unknown key "no-such-flag"/);
    expect(() => parseFlags('agent', ['--config', join(dir, 'missing.yaml')])).toThrow(/--config .*missing.yaml/);
  });
});

describe('the shipped deploy manifests', () => {
  it('hold a ConfigMap whose config.yaml the agent accepts', () => {
    const cm = yaml.load(readFileSync(new URL('../manifests/deploy/configmap.yaml', import.meta.url), 'utf8')) as { data: Record<string, string> };
    const dir = tempDir('kdp-cm-');
    writeFileSync(join(dir, 'config.yaml'), cm.data['config.yaml']);
    const o = parseFlags('agent', ['--config', join(dir, 'config.yaml'), '--kubeconfig', '/k']);
    expect(o).toMatchObject({ proxyMode: 'iptables', clusterCIDR: ['10.244.0.0/16', 'fd00:244::/48'], logFormat: 'json', iptablesLocalhostNodeports: false });
  });
});

describe('parseDuration', () => {
  it.each([
    ['1s', 1000],
    ['500ms', 500],
    ['2m', 120_000],
    ['1h30m', 5_400_000],
    ['1.5s', 1500],
  ])('%s = %d ms', (s, ms) => expect(parseDuration(s)).toBe(ms));
  it.each(['', '1', 's', '1x', '1s ', '-1s'])('refuses %j', (s) => expect(() => parseDuration(s)).toThrow(/not a duration/));
});
