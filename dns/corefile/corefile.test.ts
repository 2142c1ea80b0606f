// The Corefile's syntax and its translation into the DNS model: the Corefile kubeadm installs, a
// customised one, and each kind of mistake reported with its file and line.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CorefileError, parseCorefile, readCorefile } from './parse.js';
import { SAFE_TO_IGNORE, configFromCorefile } from './to-config.js';

const FIXTURES = resolve('dns/corefile/fixtures');

function configOf(text: string, env: NodeJS.ProcessEnv = {}) {
  return configFromCorefile(parseCorefile(text, 'Corefile', env), 'Corefile');
}

function errorOf(text: string, env: NodeJS.ProcessEnv = {}): string {
  try {
    configOf(text, env);
  } catch (err) {
    if (err instanceof CorefileError) return err.message;
    throw err;
  }
  throw new Error('no error');
}

describe('the Corefile kubeadm installs', () => {
  const { config, ignored } = configFromCorefile(readCorefile(join(FIXTURES, 'kubeadm.Corefile')), 'kubeadm.Corefile');

  it('is one root block on port 53 of every address, with the cluster zone, a forwarder and a cache', () => {
    expect(config.servers).toHaveLength(1);
    const s = config.servers[0];
    expect(s.zones).toEqual(['']);
    expect(s.listens).toEqual([{ host: '0.0.0.0', port: 53 }, { host: '::', port: 53 }]);
    expect(s.kubernetes).toEqual({ domain: 'cluster.local', reverseZones: ['in-addr.arpa', 'ip6.arpa'], pods: 'insecure', ttl: 30, fallthrough: ['in-addr.arpa', 'ip6.arpa'] });
    expect(s.forwards[0]).toMatchObject({ from: '', to: [], resolvConfs: ['/etc/resolv.conf'], maxConcurrent: 1000, policy: 'random' });
    expect(s.cache).toEqual({ maxTtl: 30, maxNegativeTtl: 30, capacity: 9984 * 2 });
    expect([s.errors, s.loadbalance, s.loop]).toEqual([true, true, true]);
  });

  it('serves /health with a 5 s lame duck, /ready on :8181 and metrics on :9153, on every address', () => {
    expect(config.health).toEqual({ listen: { host: '0.0.0.0', port: 8080 }, lameduckMs: 5000 });
    expect(config.ready).toEqual({ listen: { host: '0.0.0.0', port: 8181 } });
    expect(config.metrics).toEqual({ listen: { host: '0.0.0.0', port: 9153 } });
  });

  it('has every plugin served: nothing is ignored; reload every 30 s ± 15 s', () => {
    expect(ignored).toEqual([]);
    expect(config.reload).toEqual({ intervalMs: 30_000, jitterMs: 15_000 });
  });

  it('ignores only plugins that change no answer, naming their lines', () => {
    const { ignored: safe } = configOf('.:53 {\n  pprof\n  forward . 10.0.0.1\n  trace\n}\n');
    expect(safe.map((i) => `${i.plugin}@${i.at.line}`)).toEqual(['pprof@2', 'trace@4']);
    expect([...SAFE_TO_IGNORE].sort()).toEqual(['debug', 'metadata', 'pprof', 'trace']);
  });
});

describe('a customised Corefile: stub domains, snippets, policies', () => {
  const { config } = configFromCorefile(readCorefile(join(FIXTURES, 'stub-domains.Corefile')), 'stub-domains.Corefile');

  it('gives each block its zones, and a snippet its directives in every block that imports it', () => {
    expect(config.servers.map((s) => s.zones)).toEqual([['corp.example'], ['168.192.in-addr.arpa'], ['']]);
    expect(config.servers.map((s) => [s.errors, s.cache?.maxTtl])).toEqual([[true, 60], [false, undefined], [true, 60]]);
  });

  it('reads force_tcp, and accepts prefer_udp, expire and max_idle_conns (what every exchange here does, or nothing to tune)', () => {
    const { config: c } = configOf('.:53 {\n  forward . 10.0.0.1 {\n    force_tcp\n    prefer_udp\n    expire 10s\n    max_idle_conns 5\n  }\n}\n.:54 {\n  forward . 10.0.0.1 {\n    prefer_udp\n  }\n}\n');
    expect(c.servers.map((s) => s.forwards[0]?.forceTcp ?? false)).toEqual([true, false]);
    expect(errorOf('.:53 {\n  forward . 10.0.0.1 {\n    force_tcp now\n  }\n}\n')).toBe('Corefile:3: force_tcp: unexpected now');
    expect(errorOf('.:53 {\n  forward . 10.0.0.1 {\n    expire soon\n  }\n}\n')).toBe('Corefile:3: expire: "soon" is not a duration (5s, 500ms, 1m)');
  });

  it('reads acl policies: zones (by default the block ones), actions, types and nets, * for any', () => {
    const { config: c } = configOf('example.org:53 {\n  acl a.example.org {\n    allow net 192.168.1.0/24 10.0.0.1\n    filter type AAAA HTTPS net *\n    block type *\n  }\n  acl {\n    block net fd00::/8\n  }\n  forward . 10.0.0.1\n}\n');
    expect(c.servers[0].acl).toEqual([
      { zones: ['a.example.org'], rules: [{ action: 'allow', nets: ['192.168.1.0/24', '10.0.0.1'] }, { action: 'filter', types: [28, 65] }, { action: 'block' }] },
      { zones: ['example.org'], rules: [{ action: 'block', nets: ['fd00::/8'] }] },
    ]);
    expect(errorOf('.:53 {\n  acl {\n    deny net 10.0.0.0/8\n  }\n}\n')).toBe('Corefile:3: acl: deny is not an action (allow, block, filter, drop)');
    expect(errorOf('.:53 {\n  acl {\n    block net 10.0.0.0/33\n  }\n}\n')).toBe('Corefile:3: acl: net "10.0.0.0/33" is not a network or an address');
    expect(errorOf('.:53 {\n  acl {\n    block type BOGUS\n  }\n}\n')).toBe('Corefile:3: acl: BOGUS is not a question type');
  });

  it('reads DNS over TLS upstreams (port 853 unless given, a server name after %), tls files and tls_servername', () => {
    const { config: c } = configOf('.:53 {\n  forward . tls://9.9.9.9 tls://1.1.1.1%cloudflare-dns.com:8853 tls://[fd00::1]:853 tls://[fd00::2] 10.0.0.1 {\n    tls /etc/dot/ca.pem\n    tls_servername dns.quad9.net\n  }\n}\n.:54 {\n  forward . tls://9.9.9.9 {\n    tls /c.pem /k.pem /ca.pem\n  }\n}\n');
    const [a, b] = c.servers;
    expect(a.forwards[0]?.to).toEqual([
      { host: '9.9.9.9', port: 853, tls: {} },
      { host: '1.1.1.1', port: 8853, tls: { servername: 'cloudflare-dns.com' } },
      { host: 'fd00::1', port: 853, tls: {} },
      { host: 'fd00::2', port: 853, tls: {} },
      { host: '10.0.0.1', port: 53 },
    ]);
    expect(a.forwards[0]?.tls).toEqual({ caFile: '/etc/dot/ca.pem', servername: 'dns.quad9.net' });
    expect(b.forwards[0]?.tls).toEqual({ certFile: '/c.pem', keyFile: '/k.pem', caFile: '/ca.pem' });
  });

  it('reads DNS over HTTPS upstreams: port 443 and /dns-query unless given, a server name after %', () => {
    const { config: c } = configOf('.:53 {\n  forward . https://9.9.9.9 https://1.1.1.1%cloudflare-dns.com:8443/resolve https://[fd00::1] {\n    doh_method get\n  }\n}\n');
    expect(c.servers[0].forwards[0]?.dohMethod).toBe('GET');
    expect(c.servers[0].forwards[0]?.to).toEqual([
      { host: '9.9.9.9', port: 443, tls: {}, doh: { path: '/dns-query' } },
      { host: '1.1.1.1', port: 8443, tls: { servername: 'cloudflare-dns.com' }, doh: { path: '/resolve' } },
      { host: 'fd00::1', port: 443, tls: {}, doh: { path: '/dns-query' } },
    ]);
  });

  it('reads several forward plugins in their order, with next, next_on_nodata, failover and failfast_all_unhealthy_upstreams', () => {
    const { config: c } = configOf([
      '.:53 {',
      '  forward lab.example.local 10.20.0.1',
      '  forward . 1.2.3.4 {',
      '    next NXDOMAIN servfail',
      '    next_on_nodata',
      '  }',
      '  forward . 5.6.7.8 9.0.1.2 {',
      '    policy sequential',
      '    failover SERVFAIL REFUSED',
      '    failfast_all_unhealthy_upstreams',
      '    max_connect_attempts 3',
      '  }',
      '}',
      '',
    ].join('\n'));
    expect(c.servers[0].forwards.map((f) => [f.from, f.to.map((u) => u.host), f.next ?? [], f.nextOnNodata ?? false, f.failover ?? [], f.failfastAllDown ?? false])).toEqual([
      ['lab.example.local', ['10.20.0.1'], [], false, [], false],
      ['', ['1.2.3.4'], [3, 2], true, [], false],
      ['', ['5.6.7.8', '9.0.1.2'], [], false, [2, 5], true],
    ]);
    expect(c.servers[0].forwards[2].maxAttempts).toBe(3);
    expect(errorOf('.:53 {\n  forward . 10.0.0.1 {\n    failover NOERROR\n  }\n}\n')).toBe('Corefile:3: failover: NOERROR cannot be used');
    expect(errorOf('.:53 {\n  forward . 10.0.0.1 {\n    next NOPE\n  }\n}\n')).toBe('Corefile:3: next: NOPE is not an RCODE (NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED)');
  });

  it('reads upstreams with ports and schemes, policies, except, health checks', () => {
    const [corp, reverse, root] = config.servers;
    expect(corp.forwards[0]).toMatchObject({ to: [{ host: '10.0.0.1', port: 53 }, { host: '10.0.0.2', port: 5353 }], policy: 'sequential' });
    expect(reverse.forwards[0]?.to).toEqual([{ host: '10.0.0.3', port: 53 }]);
    expect(root.forwards[0]).toMatchObject({ to: [{ host: '192.0.2.53', port: 53 }], except: ['corp.example'], healthCheckMs: 2000, maxFails: 3 });
    expect(root.kubernetes).toMatchObject({ pods: 'verified', ttl: 5 });
    expect(config.metrics).toEqual({ listen: { host: '127.0.0.1', port: 9153 } });
    expect(config.health).toBeUndefined();
  });
});

describe('hosts', () => {
  it('takes a file, zones, inline lines and its options', () => {
    const { config } = configOf('.:53 {\n  hosts /etc/hosts.d/extra corp.example {\n    10.0.0.1 a.corp.example\n    fd00::1 b.corp.example b\n    ttl 60\n    no_reverse\n    reload 0s\n    fallthrough\n  }\n}\n');
    expect(config.servers[0].hosts).toEqual({
      file: '/etc/hosts.d/extra', inline: ['10.0.0.1 a.corp.example', 'fd00::1 b.corp.example b'], zones: ['corp.example'],
      ttl: 60, noReverse: true, reloadMs: 0, fallthrough: [''],
    });
    expect(configOf('.:53 {\n  hosts\n}\n').config.servers[0].hosts).toMatchObject({ file: '/etc/hosts', zones: [''], ttl: 3600, reloadMs: 5000 });
    expect(errorOf('.:53 {\n  hosts {\n    10.0.0.1\n  }\n}\n')).toBe('Corefile:3: hosts: 10.0.0.1 needs a name');
    expect(errorOf('.:53 {\n  hosts {\n    wildcard\n  }\n}\n')).toBe('Corefile:3: hosts: wildcard is neither an address line nor an option (ttl, no_reverse, reload, fallthrough)');
  });
});

describe('log', () => {
  it('takes names, a format and classes', () => {
    expect(configOf('.:53 {\n  log\n}\n').config.servers[0].log).toMatchObject({ zones: [''], format: expect.stringContaining('{remote}:{port}') });
    const { config } = configOf('.:53 {\n  log example.test "{name} {rcode}" {\n    class denial error\n  }\n}\n');
    expect(config.servers[0].log).toEqual({ zones: ['example.test'], format: '{name} {rcode}', classes: new Set(['denial', 'error']) });
    expect(errorOf('.:53 {\n  log {\n    class sometimes\n  }\n}\n')).toBe('Corefile:3: log: class sometimes is not one of all, success, denial, error');
  });
});

describe('rewrite', () => {
  it('takes name rules in one line or a block, with their answer rules, in their order', () => {
    const { config } = configOf([
      '.:53 {',
      '  rewrite name db.corp.internal. db.prod.svc.cluster.local answer auto',
      '  rewrite continue name suffix .legacy.test .example.test',
      '  rewrite stop {',
      '    name regex (.*)\\.svc\\.example\\.org\\.$ {1}.svc.cluster.local',
      '    answer name (.*)\\.svc\\.cluster\\.local\\.$ {1}.svc.example.org',
      '    answer value (.*)\\.svc\\.cluster\\.local\\.$ {1}.svc.example.org',
      '  }',
      '}',
      '',
    ].join('\n'));
    expect(config.servers[0].rewrite?.map((r) => [r.next, r.match, r.from, r.to, r.answerAuto, r.answerNames.length, r.answerValues.length])).toEqual([
      ['stop', 'exact', 'db.corp.internal', 'db.prod.svc.cluster.local', true, 0, 0],
      ['continue', 'suffix', '.legacy.test', '.example.test', false, 0, 0],
      ['stop', 'regex', '(.*)\\.svc\\.example\\.org\\.$', '{1}.svc.cluster.local', false, 1, 1],
    ]);
  });

  it('refuses other rewrites, a bad regex and stray words, naming the line', () => {
    expect(errorOf('.:53 {\n  rewrite type ANY HINFO\n}\n')).toBe('Corefile:2: rewrite: only name rules are implemented (not type)');
    expect(errorOf('.:53 {\n  rewrite name regex ( x\n}\n')).toMatch(/^Corefile:2: rewrite name regex \(: Invalid regular expression/);
    expect(errorOf('.:53 {\n  rewrite name a b answer sometimes\n}\n')).toBe('Corefile:2: rewrite: answer sometimes is not auto, name FROM TO or value FROM TO');
  });
});

describe('cache options', () => {
  it('reads serve_stale and prefetch with their defaults', () => {
    const { config } = configOf('.:53 {\n  cache 300 {\n    serve_stale 2h verify\n    prefetch 10 30s 25%\n  }\n}\n');
    expect(config.servers[0].cache).toMatchObject({ serveStale: { ms: 7_200_000, verify: true }, prefetch: { amount: 10, windowMs: 30_000, percentage: 25 } });
    expect(configOf('.:53 {\n  cache {\n    serve_stale\n    prefetch 2\n  }\n}\n').config.servers[0].cache).toMatchObject({ serveStale: { ms: 3_600_000, verify: false }, prefetch: { amount: 2, windowMs: 60_000, percentage: 10 } });
    expect(errorOf('.:53 {\n  cache {\n    prefetch 2 1m 95%\n  }\n}\n')).toBe('Corefile:3: cache: prefetch AMOUNT [DURATION] [PERCENTAGE%], the percentage from 10% to 90%');
  });
});

describe('kubernetes options', () => {
  it('reads endpoint_pod_names, noendpoints, ignore empty_service and namespaces', () => {
    const { config } = configOf('.:53 {\n  kubernetes cluster.local {\n    endpoint_pod_names\n    noendpoints\n    ignore empty_service\n    namespaces prod Staging\n  }\n}\n');
    expect(config.servers[0].kubernetes).toMatchObject({ naming: { endpointPodNames: true, noEndpoints: true, ignoreEmptyService: true }, namespaces: ['prod', 'staging'] });
    expect(errorOf('.:53 {\n  kubernetes cluster.local {\n    ignore everything\n  }\n}\n')).toBe('Corefile:3: kubernetes: ignore takes empty_service');
  });
});

describe('autopath', () => {
  it('needs @kubernetes and pods verified in its block', () => {
    const ok = configOf('.:53 {\n  kubernetes cluster.local {\n    pods verified\n  }\n  autopath @kubernetes\n  forward . 10.0.0.1\n}\n');
    expect(ok.config.servers[0].autopath).toEqual({ zones: [''] });
    expect(errorOf('.:53 {\n  kubernetes cluster.local\n  autopath @kubernetes\n}\n')).toBe('Corefile:3: autopath @kubernetes needs kubernetes with pods verified in the same block');
    expect(errorOf('.:53 {\n  autopath /etc/resolv.conf\n}\n')).toBe("Corefile:2: autopath: only @kubernetes is implemented as the search path's source (not /etc/resolv.conf)");
  });
});

describe('syntax', () => {
  it('takes several keys, ports, dns:// and trailing dots; groups a block by port', () => {
    const { config } = configOf('dns://Example.COM.:1053 other.test:1053, third.test {\n forward . 10.0.0.1\n}\n');
    expect(config.servers.map((s) => [s.zones, s.listens[0].port])).toEqual([[['example.com', 'other.test'], 1053], [['third.test'], 53]]);
  });

  it('substitutes {$VAR} and {%VAR%} from the environment, and an unset one is an error', () => {
    const { config } = configOf('.:{$PORT} {\n forward . {%UP%}\n}\n', { PORT: '5300', UP: '10.9.9.9' });
    expect([config.servers[0].listens[0].port, config.servers[0].forwards[0]?.to[0].host]).toEqual([5300, '10.9.9.9']);
    expect(errorOf('.:53 {\n forward . {$NOPE}\n}\n')).toBe('Corefile:2: environment variable NOPE is not set');
  });

  it('keeps quoted text whole and skips comments', () => {
    const blocks = parseCorefile('# top\n.:53 { # after the brace\n  errors # trailing\n  hosts "a b" {\n    fallthrough\n  }\n}\n', 'f');
    expect(blocks[0].directives.map((d) => [d.name, d.args, d.at.line, d.block?.map((b) => b.name)])).toEqual([
      ['errors', [], 3, undefined],
      ['hosts', ['a b'], 4, ['fallthrough']],
    ]);
  });

  it('imports files by glob, relative to the importing file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kdp-corefile-'));
    try {
      writeFileSync(join(dir, 'a.server'), 'a.test:53 {\n forward . 10.0.0.1\n}\n');
      writeFileSync(join(dir, 'b.server'), 'b.test:53 {\n forward . 10.0.0.2\n}\n');
      writeFileSync(join(dir, 'Corefile'), 'import *.server\n');
      const { config } = configFromCorefile(readCorefile(join(dir, 'Corefile')), 'Corefile');
      expect(config.servers.map((s) => s.zones[0])).toEqual(['a.test', 'b.test']);
      writeFileSync(join(dir, 'Corefile'), '.:53 {\n  import missing.conf\n}\n');
      expect(() => readCorefile(join(dir, 'Corefile'))).toThrow(`${join(dir, 'Corefile')}:2: import missing.conf: no such snippet or file`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops an import cycle', () => {
    expect(() => parseCorefile('(a) {\n import a\n}\n.:53 {\n import a\n}\n', 'f')).toThrow(/imports nest more than 10 deep/);
  });
});

describe('errors name the file, the line and the plugin', () => {
  const cases: Array<[string, string]> = [
    ['.:53 {\n  errors\n  dnstap /tmp/dnstap.sock full\n}\n', 'Corefile:3: plugin dnstap is not implemented by kube-dataplane (dns/README.md lists the plugins it serves)'],
    ['.:53 {\n  kubernetes cluster.local {\n    pods sometimes\n  }\n}\n', 'Corefile:3: kubernetes: pods is one of insecure, verified, disabled'],
    ['.:53 {\n  kubernetes cluster.local {\n    ttl 4000\n  }\n}\n', 'Corefile:3: kubernetes: ttl is whole seconds from 0 to 3600'],
    ['.:53 {\n  kubernetes cluster.local {\n    endpoint https://x\n  }\n}\n', 'Corefile:3: kubernetes: option endpoint is not implemented'],
    ['.:53 {\n  kubernetes\n}\n', 'Corefile:2: kubernetes: exactly one cluster zone is implemented (got .)'],
    ['.:53 {\n  forward .\n}\n', 'Corefile:2: forward needs a zone and at least one upstream'],
    ['.:53 {\n  forward . quic://1.1.1.1\n}\n', 'Corefile:2: forward quic://1.1.1.1: only plain DNS, DNS over TLS and DNS over HTTPS upstreams are implemented (no quic://)'],
    ['.:53 {\n  forward . tls://1.1.1.1 {\n    tls a b c d\n  }\n}\n', 'Corefile:3: tls: at most CERT KEY CA'],
    ['.:53 {\n  forward . 10.0.0.1 {\n    policy fastest\n  }\n}\n', 'Corefile:3: forward: policy is one of random, round_robin, sequential'],
    ['.:53 {\n  forward . not-an-ip\n}\n', 'Corefile:2: forward: "not-an-ip": "not-an-ip" is not an IP address'],
    ['.:53 {\n  cache 30 {\n    disable success example.com\n  }\n}\n', 'Corefile:3: cache: disable is implemented only for the kubernetes zone (given after kubernetes), whose answers are never cached'],
    ['.:53 {\n  health {\n    lameduck soon\n  }\n}\n', 'Corefile:3: lameduck: "soon" is not a duration (5s, 500ms, 1m)'],
    ['.:53 {\n  errors\n  errors\n}\n', 'Corefile:3: errors is already given at line 2'],
    ['.:53 {\n  reload 1s\n}\n', 'Corefile:2: reload: the interval is at least 2s and the jitter at least 1s'],
    ['.:53 {\n  bind eth0\n}\n', 'Corefile:2: bind eth0: only IP addresses are implemented (no interface names)'],
    ['.:53 {\n  forward . 10.0.0.1\n}\n.:53 {\n  forward . 10.0.0.2\n}\n', 'Corefile:4: zone . on port 53 is already served by the block at line 1'],
    ['tls://.:853 {\n  errors\n}\n', 'Corefile:1: server tls://.:853: only dns:// is served (no tls://)'],
    ['.:99999 {\n}\n', 'Corefile:1: server .:99999: bad port'],
    ['.:53 {\n  errors\n', 'Corefile:1: this { is not closed'],
    ['.:53\n{\n}\n', 'Corefile:1: server block .:53 needs a { block } on its line'],
    ['.:53 {\n  forward . "10.0.0.1\n}\n', 'Corefile:2: a quoted string is not closed'],
    ['', 'Corefile:1: no server block'],
  ];
  for (const [text, message] of cases) {
    it(message, () => expect(errorOf(text)).toBe(message));
  }
});
