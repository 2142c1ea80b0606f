import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Catalog } from '../../cluster/catalog.js';
import type { IPFamily } from '../../cluster/types.js';
import { configureLogging } from '../../common/log.js';
import type { ServicePlan } from '../core/model.js';
import { planService } from '../core/plan.js';
import { emptyDiff, normalizeRule, Reconciler, repairLines, updateInLines, type TableDiff } from './reconcile.js';
import { parseSave, renderFull, renderPartial, renderService, type FamilyConfig, type ServiceRules, type Table } from './render.js';
import { RuleSet, trace } from './tracer.js';

configureLogging({ write: () => {} });

// The services whose rules testdata/save-1.8.9-ipv{4,6}.txt hold: renderFull of exactly these,
// loaded with iptables-restore --noflush into a fresh namespace and read back with
// `iptables-save -t nat` + `-t filter` (1.8.9; the legacy and nf_tables flavours print the same
// rule lines). A change to the renderer's output for them means capturing the files again.
const CFG: Record<IPFamily, FamilyConfig> = {
  IPv4: { family: 'IPv4', clusterCIDRs: ['10.244.0.0/16'], masqueradeAll: false, nodePortAddresses: 'all', nodeIPs: ['192.168.1.10'] },
  IPv6: { family: 'IPv6', clusterCIDRs: ['fd00:244::/48'], masqueradeAll: false, nodePortAddresses: 'all', nodeIPs: ['fd00:1::10'] },
};

function servicePlans(fam: IPFamily, extra: { web?: number; added?: boolean } = {}): ServicePlan[] {
  const v6 = fam === 'IPv6';
  const ip = (n: number) => (v6 ? `fd00:244::${n.toString(16)}` : `10.244.1.${n}`);
  const vip = (n: number) => (v6 ? `fd00:96::${n.toString(16)}` : `10.96.0.${n}`);
  const service = (name: string, spec: Record<string, unknown>) => ({
    metadata: { name, namespace: 'ns', resourceVersion: '1' },
    spec: { ipFamilies: [fam], ports: [{ name: 'p', port: 80, targetPort: 8080, protocol: 'TCP' }], ...spec },
  });
  const slice = (svc: string, eps: { ip: string; node?: string }[], port = { name: 'p', port: 8080, protocol: 'TCP' }) => ({
    metadata: { name: `${svc}-1`, namespace: 'ns', labels: { 'kubernetes.io/service-name': svc } },
    addressType: fam,
    ports: [port],
    endpoints: eps.map((e) => ({ addresses: [e.ip], nodeName: e.node ?? 'node-b', conditions: { ready: true, serving: true, terminating: false } })),
  });
  const web = Array.from({ length: extra.web ?? 3 }, (_, i) => ({ ip: ip(5 + i) }));
  const objs: [unknown, unknown][] = [
    [service('web', { clusterIP: vip(10) }), slice('web', web)],
    [service('aff', { clusterIP: vip(11), sessionAffinity: 'ClientIP' }), slice('aff', [{ ip: ip(5) }, { ip: ip(6) }])],
    [service('none', { clusterIP: vip(12) }), slice('none', [])],
    [service('udp', { clusterIP: vip(13), ports: [{ name: 'p', port: 53, targetPort: 5353, protocol: 'UDP' }] }), slice('udp', [{ ip: ip(5) }], { name: 'p', port: 5353, protocol: 'UDP' })],
    [
      service('np', { type: 'NodePort', clusterIP: vip(20), externalTrafficPolicy: 'Local', healthCheckNodePort: 32000, ports: [{ name: 'p', port: 80, targetPort: 8080, nodePort: 30080 }] }),
      slice('np', [{ ip: ip(5), node: 'node-a' }, { ip: ip(6) }]),
    ],
    [
      {
        ...service('lb', {
          type: 'LoadBalancer',
          clusterIP: vip(30),
          externalIPs: [v6 ? '2001:db8::5' : '198.51.100.5'],
          loadBalancerSourceRanges: [v6 ? '2001:db8:1::/48' : '203.0.113.0/24'],
          ports: [{ name: 'p', port: 80, targetPort: 8080, nodePort: 30090 }],
        }),
        status: { loadBalancer: { ingress: [{ ip: v6 ? '2001:db8::9' : '198.51.100.9' }] } },
      },
      slice('lb', [{ ip: ip(8) }]),
    ],
    [service('npl', { type: 'NodePort', clusterIP: vip(21), externalTrafficPolicy: 'Local', ports: [{ name: 'p', port: 80, targetPort: 8080, nodePort: 30081 }] }), slice('npl', [{ ip: ip(6) }])],
  ];
  if (extra.added) objs.push([service('new', { clusterIP: vip(40) }), slice('new', [{ ip: ip(9) }, { ip: ip(10) }])]);
  const c = new Catalog();
  for (const [s, e] of objs) {
    c.apply('Service', s);
    c.apply('EndpointSlice', e);
  }
  return [...c.services()].map((s) => planService(s, c.endpoints(s.key), { nodeName: 'node-a' })).filter((p): p is ServicePlan => !!p);
}

function render(fam: IPFamily, plans = servicePlans(fam)): ServiceRules[] {
  return plans.map((p) => renderService(p, CFG[fam])).filter((r): r is ServiceRules => !!r);
}

/** The fixture's save of one table. */
function saved(fam: IPFamily, table: Table): string {
  const text = readFileSync(join(import.meta.dirname, 'testdata', `save-1.8.9-${fam === 'IPv4' ? 'ipv4' : 'ipv6'}.txt`), 'utf8');
  const start = text.indexOf(`*${table}\n`);
  return text.slice(start, text.indexOf('COMMIT\n', start) + 7);
}

function setup(fam: IPFamily = 'IPv4') {
  const rendered = render(fam);
  const rec = new Reconciler();
  rec.resetFull(rendered, CFG[fam]);
  const byKey = new Map(rendered.map((r) => [r.key, r]));
  const src = { cfg: CFG[fam], service: (k: string) => byKey.get(k), all: () => rendered };
  const diff = (filter: string, nat: string): TableDiff[] => {
    rec.begin();
    return [rec.diff('filter', filter), rec.diff('nat', nat)];
  };
  return { rec, rendered, src, diff, nat: saved(fam, 'nat'), filter: saved(fam, 'filter') };
}

const nothing = (ds: TableDiff[]) => ds.every(emptyDiff);
const rewritten = (ds: TableDiff[]) => ds.flatMap((d) => d.rewrite.map((c) => `${d.table} ${c.chain}`));
/** A chain of the fixture whose name's first rule matches `re`. */
function chainOf(text: string, re: RegExp): string {
  const line = text.split('\n').find((l) => l.startsWith('-A ') && re.test(l));
  if (!line) throw new Error(`no rule matches ${re}`);
  return line.split(' ')[1];
}
const drop = (text: string, pred: (l: string) => boolean) => text.split('\n').filter((l) => !pred(l)).join('\n');
const insertAfter = (text: string, pred: (l: string) => boolean, add: string) => text.split('\n').flatMap((l) => (pred(l) ? [l, add] : [l])).join('\n');

describe('normalizeRule', () => {
  it('agrees on what we write and what iptables-save prints', () => {
    const pairs: [string, string][] = [
      ['-A KUBE-SEP-X -m comment --comment "ns/a:p" -m recent --name KUBE-SEP-X --mask 255.255.255.255 --rsource --set -p tcp -m tcp -j DNAT --to-destination 10.244.1.5:8080',
        '-A KUBE-SEP-X -p tcp -m comment --comment "ns/a:p" -m recent --set --name KUBE-SEP-X --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.244.1.5:8080'],
      ['-m comment --comment "x -> y" -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-Y', '-m comment --comment "x -> y" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-Y'],
      ['-j MARK --or-mark 0x4000', '-j MARK --set-xmark 0x4000/0x4000'],
      ['-j MARK --xor-mark 0x4000', '-j MARK --set-xmark 0x4000/0x0'],
      ['-m comment --comment "n has no endpoints" -d 10.96.0.12/32 -p tcp -m tcp --dport 80 -j REJECT', '-d 10.96.0.12/32 -p tcp -m comment --comment "n has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable'],
      ['-m comment --comment "np" -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS', '! -d 127.0.0.0/8 -m comment --comment np -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS'],
    ];
    for (const [ours, kernel] of pairs) expect(normalizeRule(ours)).toBe(normalizeRule(kernel));
  });

  it('tells edited rules apart', () => {
    const base = '-m comment --comment "ns/a:p" -p tcp -m tcp -j DNAT --to-destination 10.244.1.5:8080';
    for (const other of [
      base.replace('8080', '8081'),
      base.replace('"ns/a:p"', '"ns/b:p"'),
      `! -s 10.0.0.0/8 ${base}`,
      `-s 10.0.0.0/8 ${base}`,
      '-m statistic --mode random --probability 0.5 -j KUBE-SEP-Y',
    ]) {
      expect(normalizeRule(other)).not.toBe(normalizeRule(base));
    }
    expect(normalizeRule('-m statistic --mode random --probability 0.5 -j X')).not.toBe(normalizeRule('-m statistic --mode random --probability 0.25 -j X'));
  });
});

describe('Reconciler.diff (against what iptables 1.8.9 printed)', () => {
  for (const fam of ['IPv4', 'IPv6'] as const) {
    it(`${fam}: the kernel's save of our own rules differs in nothing, and the next one is compared by its text alone`, () => {
      const { rec, diff, nat, filter } = setup(fam);
      expect(diff(filter, nat)).toSatisfy(nothing);
      // Learned: every chain's saved text has a digest now (an empty chain, KUBE-FIREWALL without
      // localhost node ports, prints no rule lines and has nothing to learn).
      for (const [chain, s] of rec.book.entries()) if (rec.book.count[s] > 0) expect(rec.book.raw[s], chain).toBeGreaterThanOrEqual(0);
      expect(diff(filter, nat)).toSatisfy(nothing);
    });
  }

  it('a flushed service chain is rewritten, alone, from its owner', () => {
    const { diff, nat, filter, src } = setup();
    const svc = chainOf(nat, /^-A KUBE-SVC-\S+ .*ns\/web:p -> /);
    const ds = diff(filter, drop(nat, (l) => l.startsWith(`-A ${svc} `)));
    expect(rewritten(ds)).toEqual([`nat ${svc}`]);
    expect(ds[1].rewrite[0].owner).toBe('ns/web');
    const lines = repairLines(ds, src)!;
    const web = src.service('ns/web')!;
    expect(lines).toEqual(['*nat', `:${svc} - [0:0]`, ...web.chains.get(svc)!, 'COMMIT']);
  });

  it('an extra rule, a deleted rule and an edited rule in endpoint chains are each rewritten', () => {
    const { diff, nat, filter } = setup();
    const [a, b, c] = [/ns\/web:p" -j KUBE-MARK-MASQ/, /ns\/aff:p" -j KUBE-MARK-MASQ/, /DNAT --to-destination 10\.244\.1\.8:8080/].map((re) => chainOf(nat, re));
    let t = insertAfter(nat, (l) => l.startsWith(`-A ${a} `) && l.includes('KUBE-MARK-MASQ'), `-A ${a} -s 10.9.9.9/32 -j DROP`);
    t = drop(t, (l) => l.startsWith(`-A ${b} `) && l.includes('DNAT'));
    t = t.replace('--to-destination 10.244.1.8:8080', '--to-destination 10.244.1.99:8080');
    expect(rewritten(diff(filter, t)).sort()).toEqual([`nat ${a}`, `nat ${b}`, `nat ${c}`].sort());
  });

  it('an edit that keeps the count is repaired once; seen again unchanged right after, it is accepted', () => {
    const { diff, nat, filter } = setup();
    const c = chainOf(nat, /DNAT --to-destination 10\.244\.1\.8:8080/);
    const edited = nat.replace('--to-destination 10.244.1.8:8080', '--to-destination 10.244.1.99:8080');
    expect(rewritten(diff(filter, edited))).toEqual([`nat ${c}`]);
    // The repair took: the kernel prints our rules again.
    expect(diff(filter, nat)).toSatisfy(nothing);
    // Edited again, repaired, and the same text again at once: not fought a second time.
    expect(rewritten(diff(filter, edited))).toEqual([`nat ${c}`]);
    const again = diff(filter, edited);
    expect(again).toSatisfy(nothing);
    expect(again[1].accepted).toEqual([c]);
  });

  it('a missing chain is recreated; a stray chain named like ours is deleted', () => {
    const { diff, nat, filter, src } = setup();
    const sep = chainOf(nat, /ns\/udp:p" -j KUBE-MARK-MASQ/);
    let t = drop(nat, (l) => l.startsWith(`-A ${sep} `) || l.startsWith(`:${sep} `));
    t = insertAfter(t, (l) => l.startsWith(':KUBE-SERVICES '), ':KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]');
    t = insertAfter(t, (l) => l.startsWith('-A KUBE-SERVICES ') && l.includes('KUBE-NODEPORTS'), '-A KUBE-SVC-AAAAAAAAAAAAAAAA -j KUBE-MARK-MASQ');
    const ds = diff(filter, t);
    expect(rewritten(ds)).toEqual([`nat ${sep}`]);
    expect(ds[1].stray).toEqual(['KUBE-SVC-AAAAAAAAAAAAAAAA']);
    const lines = repairLines(ds, src)!;
    expect(lines[0]).toBe('*nat');
    expect(lines).toContain(`:${sep} - [0:0]`);
    expect(lines).toContain(':KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]');
    expect(lines.at(-2)).toBe('-X KUBE-SVC-AAAAAAAAAAAAAAAA');
  });

  it('missing jumps are inserted at the top; doubled ones lose their extra copy', () => {
    const { diff, nat, filter, src } = setup();
    let t = drop(nat, (l) => l.startsWith('-A PREROUTING ') || l.startsWith('-A OUTPUT '));
    const dup = filter.split('\n').find((l) => l.startsWith('-A FORWARD ') && l.includes('-j KUBE-FORWARD'))!;
    const f = insertAfter(filter, (l) => l === dup, '-A FORWARD -j KUBE-FORWARD');
    t = insertAfter(t, (l) => l.startsWith('-A POSTROUTING '), '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING');
    const ds = diff(f, t);
    expect(rewritten(ds)).toEqual([]);
    expect(ds[1].missingJumps.map((j) => j.chain)).toEqual(['PREROUTING', 'OUTPUT']);
    expect(ds[0].extraJumps).toEqual([{ chain: 'FORWARD', spec: '-j KUBE-FORWARD' }]);
    expect(ds[1].extraJumps).toEqual([{ chain: 'POSTROUTING', spec: '-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING' }]);
    expect(repairLines(ds, src)).toEqual([
      '*filter',
      '-D FORWARD -j KUBE-FORWARD',
      'COMMIT',
      '*nat',
      '-D POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
      '-I OUTPUT 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      '-I PREROUTING 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      'COMMIT',
    ]);
  });

  it('shared chains: order is free except the node-port jump, which must stay last; a change rewrites the chain whole', () => {
    const { diff, nat, filter, src } = setup();
    const lines = nat.split('\n');
    const svcRules = lines.filter((l) => l.startsWith('-A KUBE-SERVICES '));
    const others = lines.filter((l) => !l.startsWith('-A KUBE-SERVICES '));
    const at = others.findIndex((l) => l.startsWith('-A KUBE-SVC-'));
    const shuffled = (rs: string[]) => [...others.slice(0, at), ...rs, ...others.slice(at)].join('\n');
    const np = svcRules.filter((l) => l.includes('-j KUBE-NODEPORTS'));
    const rest = svcRules.filter((l) => !l.includes('-j KUBE-NODEPORTS'));
    expect(diff(filter, shuffled([...rest.reverse(), ...np]))).toSatisfy(nothing);
    const ds = diff(filter, shuffled([...np, ...rest]));
    expect(rewritten(ds)).toEqual(['nat KUBE-SERVICES']);
    const repair = repairLines(ds, src)!;
    const written = repair.filter((l) => l.startsWith('-A KUBE-SERVICES '));
    expect(written).toHaveLength(svcRules.length);
    expect(written.at(-1)).toContain('-j KUBE-NODEPORTS');
    // An operator's rule in filter KUBE-SERVICES.
    const f = insertAfter(filter, (l) => l.startsWith('-A KUBE-SERVICES '), '-A KUBE-SERVICES -d 10.96.0.10/32 -j DROP');
    expect(rewritten(diff(f, nat))).toEqual(['filter KUBE-SERVICES']);
  });
});

// ---------------------------------------------------------------------------------------------
// With the tracer: the repair, applied over the tampered rules, gives the same packet outcomes as
// the rules we wrote, and a save of the result differs in nothing.

/** A RuleSet printed back as `iptables-save -t TABLE` would (quoting arguments with spaces). */
function saveOf(rules: RuleSet, table: Table): string {
  const t = rules.tables.get(table)!;
  const q = (tok: string) => (/[\s"]/.test(tok) || tok === '' ? `"${tok.replace(/(["\\])/g, '\\$1')}"` : tok);
  const out = [`*${table}`];
  for (const chain of t.keys()) out.push(`:${chain} ${/^[A-Z]+$/.test(chain) ? 'ACCEPT' : '-'} [0:0]`);
  for (const [chain, rs] of t) for (const r of rs) out.push(`-A ${chain} ${r.map(q).join(' ')}`);
  out.push('COMMIT');
  return out.join('\n') + '\n';
}

describe('reconcile with the tracer', () => {
  const where = (rules: RuleSet, dst: string) => {
    const out: Record<string, number> = {};
    for (const o of trace(rules, { src: '10.244.9.9', dst, protocol: 'tcp', dport: 80 }, CFG.IPv4.nodeIPs)) {
      const k = `${o.verdict} ${o.dnat ?? ''}`;
      out[k] = Math.round(((out[k] ?? 0) + o.probability) * 1000) / 1000;
    }
    return out;
  };

  it('flushed chain, extra rule, missing jump, stray chain: repaired in one restore, traffic as before', () => {
    const { diff, src, rendered } = setup();
    const kernel = new RuleSet();
    kernel.apply(renderFull(rendered, CFG.IPv4, parseSave('')));
    const want = where(kernel, '10.96.0.10');
    expect(Object.keys(want)).toHaveLength(3);
    expect(diff(saveOf(kernel, 'filter'), saveOf(kernel, 'nat'))).toSatisfy(nothing);

    // The operator.
    const nat = kernel.tables.get('nat')!;
    const svc = [...nat.keys()].find((c) => c.startsWith('KUBE-SVC-') && nat.get(c)!.some((r) => r.join(' ').includes('ns/web:p ->')))!;
    nat.set(svc, []);
    const sep = [...nat.keys()].find((c) => c.startsWith('KUBE-SEP-') && nat.get(c)!.some((r) => r.join(' ').includes('10.244.1.8:8080')))!;
    nat.get(sep)!.unshift(['-j', 'DROP']);
    nat.set('PREROUTING', []);
    nat.set('KUBE-SEP-AAAAAAAAAAAAAAAA', [['-j', 'KUBE-MARK-MASQ']]);
    expect(where(kernel, '10.96.0.10')).not.toEqual(want);

    const ds = diff(saveOf(kernel, 'filter'), saveOf(kernel, 'nat'));
    expect(rewritten(ds).sort()).toEqual([`nat ${sep}`, `nat ${svc}`].sort());
    expect(ds[1].missingJumps.map((j) => j.chain)).toEqual(['PREROUTING']);
    expect(ds[1].stray).toEqual(['KUBE-SEP-AAAAAAAAAAAAAAAA']);
    kernel.apply(repairLines(ds, src)!.join('\n') + '\n');
    expect(where(kernel, '10.96.0.10')).toEqual(want);
    expect(diff(saveOf(kernel, 'filter'), saveOf(kernel, 'nat'))).toSatisfy(nothing);
  });

  it('after partial syncs (a chain rewritten, rules inserted at the top of KUBE-SERVICES) the book still matches the kernel', () => {
    const { rec, diff, rendered } = setup();
    const kernel = new RuleSet();
    kernel.apply(renderFull(rendered, CFG.IPv4, parseSave('')));
    expect(diff(saveOf(kernel, 'filter'), saveOf(kernel, 'nat'))).toSatisfy(nothing);
    // web grows to 5 endpoints; a new service appears; "none" goes away.
    const after = render('IPv4', servicePlans('IPv4', { web: 5, added: true }));
    const by = (rs: ServiceRules[]) => new Map(rs.map((r) => [r.key, r]));
    const before = by(rendered);
    const next = by(after);
    const changes = [
      { key: 'ns/web', before: before.get('ns/web'), after: next.get('ns/web') },
      { key: 'ns/none', before: before.get('ns/none'), after: undefined },
      { key: 'ns/new', before: undefined, after: next.get('ns/new') },
    ];
    const text = renderPartial(changes);
    if (text) kernel.apply(text);
    rec.applyPartial(changes);
    expect(diff(saveOf(kernel, 'filter'), saveOf(kernel, 'nat'))).toSatisfy(nothing);
    expect(Object.keys(where(kernel, '10.96.0.10'))).toHaveLength(5);
    expect(Object.keys(where(kernel, '10.96.0.40'))).toHaveLength(2);
    // The new service's rule went in at the top of KUBE-SERVICES, not where a full sync puts it.
    expect(kernel.chain('nat', 'KUBE-SERVICES')![0].join(' ')).toContain('ns/new:p');
  });
});

describe('updateInLines', () => {
  it('hashes a save a megabyte at a time to the digest of the whole, non-ASCII comments included', () => {
    const line = (i: number) => `-A KUBE-SVC-${i} -m comment --comment "ns/svc-${i}:http ü" -j KUBE-SEP-${i}\n`;
    const text = Array.from({ length: 60_000 }, (_, i) => line(i)).join('');
    expect(text.length).toBeGreaterThan(3 << 20);
    const whole = createHash('sha1').update(text.slice(17, text.length - 5)).digest('hex');
    const h = createHash('sha1');
    updateInLines(h, text, 17, text.length - 5);
    expect(h.digest('hex')).toBe(whole);
  });
});
