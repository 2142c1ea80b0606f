import { afterEach, describe, expect, it } from 'vitest';
import { HttpEndpoint, parseHostPort } from './http-server.js';
import { configureLogging, logger } from './log.js';
import { usableCpus } from './cpus.js';

describe('logging', () => {
  afterEach(() => configureLogging({ level: 'info', format: 'text', write: (l) => process.stderr.write(l + '\n') }));

  it('writes one text line per event with key=value fields, quoting where needed', () => {
    const lines: string[] = [];
    configureLogging({ write: (l) => lines.push(l), format: 'text', level: 'info' });
    logger('catalog').warn('rejected object', { object: 'default/web', errors: 'spec.ports[0].port: 0 is bad', n: 2 });
    logger('catalog').debug('not shown');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\S+Z WARN  catalog rejected object object=default\/web errors="spec.ports\[0\].port: 0 is bad" n=2$/);
  });

  it('writes JSON lines on request', () => {
    const lines: string[] = [];
    configureLogging({ write: (l) => lines.push(l), format: 'json', level: 'debug' });
    logger('dns', { listen: ':53' }).debug('started', { err: new Error('x') });
    expect(JSON.parse(lines[0])).toMatchObject({ level: 'debug', component: 'dns', msg: 'started', listen: ':53', err: 'x' });
  });
});

describe('HTTP endpoint', () => {
  it.each([
    ['127.0.0.1:10256', { host: '127.0.0.1', port: 10256 }],
    [':8080', { host: '0.0.0.0', port: 8080 }],
    ['[::1]:53', { host: '::1', port: 53 }],
  ])('parses %s', (s, want) => expect(parseHostPort(s)).toEqual(want));

  it.each(['8080', 'host:', '1.2.3.4:99999', '[::1]'])('refuses %s', (s) => expect(() => parseHostPort(s, '--x')).toThrow(/--x/));

  it('serves routes, 404 for the rest, 500 when a route throws', async () => {
    const ep = new HttpEndpoint({
      '/healthz': () => ({ status: 200, body: 'ok' }),
      '/boom': () => {
        throw new Error('broken');
      },
    });
    const addr = await ep.listen({ host: '127.0.0.1', port: 0 });
    try {
      const base = `http://127.0.0.1:${addr.port}`;
      expect(await (await fetch(`${base}/healthz?verbose`)).text()).toBe('ok');
      expect((await fetch(`${base}/nope`)).status).toBe(404);
      const boom = await fetch(`${base}/boom`);
      expect([boom.status, await boom.text()]).toEqual([500, 'broken\n']);
    } finally {
      await ep.close();
    }
  });
});

describe('usableCpus', () => {
  const files = (m: Record<string, string>) => (p: string) => m[p];
  it('is the affinity without a cgroup limit', () => {
    expect(usableCpus(files({ '/sys/fs/cgroup/cpu.max': 'max 100000\n' }), 8)).toBe(8);
    expect(usableCpus(files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1\n', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n' }), 4)).toBe(4);
    expect(usableCpus(files({}), 3)).toBe(3);
  });
  it('is lowered to a cgroup v2 or v1 limit, rounded up', () => {
    expect(usableCpus(files({ '/sys/fs/cgroup/cpu.max': '150000 100000\n' }), 8)).toBe(2);
    expect(usableCpus(files({ '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us': '50000', '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us': '100000' }), 8)).toBe(1);
    expect(usableCpus(files({ '/sys/fs/cgroup/cpu.max': '800000 100000' }), 2)).toBe(2);
  });
});
