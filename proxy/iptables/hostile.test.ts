// Hostile catalogs through the whole path a manifest takes (catalog validation → plan → render
// → restore text), checked with the rule tracer: whatever bytes the names hold, nothing lands in
// a built-in chain but our jumps, every rule parses into the matches render.ts writes, every
// valid service still works and a refused one leaves no trace in the rules.
import { describe, expect, it } from 'vitest';
import { Catalog } from '../../cluster/catalog.js';
import { configureLogging } from '../../common/log.js';
import type { ServicePlan } from '../core/model.js';
import { planService } from '../core/plan.js';
import { JUMPS, parseSave, renderFull, renderService, type FamilyConfig, type ServiceRules } from './render.js';
import { RuleSet, trace } from './tracer.js';

const logged: string[] = [];
configureLogging({ write: (l) => logged.push(l), format: 'json' });

const CFG: FamilyConfig = { family: 'IPv4', clusterCIDRs: ['10.244.0.0/16'], masqueradeAll: false, nodePortAddresses: 'all', nodeIPs: ['192.168.1.10'] };
const BUILT_IN = ['INPUT', 'FORWARD', 'OUTPUT', 'PREROUTING', 'POSTROUTING'];

/** mulberry32: a seeded generator, so a failure is reproduced by its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INJECTIONS = ['"', '" -j ACCEPT', '\n-I INPUT 1 -j ACCEPT', '\n*filter\n-A INPUT -j ACCEPT\nCOMMIT', ' ', '\\', "'", '$(id)', '`x`', '\t', '\r', '#', ';', ':', '/', 'é', '\u0000', 'A'];

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)];
}
function validLabel(r: () => number, first = 'abcdefghij'): string {
  return pick(r, [...first]) + Array.from({ length: Math.floor(r() * 6) }, () => pick(r, [...'abcxyz019-'])).join('') + pick(r, [...'abc19']);
}
/** A valid value, or (hostile) the same with an injection spliced in somewhere. */
function maybeHostile(r: () => number, valid: string): { value: string; hostile: boolean } {
  if (r() < 0.6) return { value: valid, hostile: false };
  const at = Math.floor(r() * (valid.length + 1));
  return { value: valid.slice(0, at) + pick(r, INJECTIONS) + valid.slice(at), hostile: true };
}

interface Case {
  objs: { svc: unknown; slice: unknown }[];
  /** Index → cluster IP of the services that must come through, and of those that must not. */
  good: string[];
  bad: string[];
}

function hostileCatalog(seed: number): Case {
  const r = rng(seed);
  const out: Case = { objs: [], good: [], bad: [] };
  const n = 2 + Math.floor(r() * 5);
  for (let i = 0; i < n; i++) {
    const name = maybeHostile(r, `s${i}${validLabel(r)}`);
    const namespace = maybeHostile(r, validLabel(r));
    const portName = maybeHostile(r, validLabel(r));
    const proxyName = r() < 0.2 ? maybeHostile(r, validLabel(r)) : undefined;
    const vip = `10.96.${seed % 200}.${i + 1}`;
    const hostile = name.hostile || namespace.hostile || portName.hostile || !!proxyName?.hostile;
    // A valid service-proxy-name label means "not ours": no rules, as kube-proxy does.
    const ours = !proxyName;
    (hostile || !ours ? out.bad : out.good).push(vip);
    const labels = proxyName ? { 'service.kubernetes.io/service-proxy-name': proxyName.value } : {};
    out.objs.push({
      svc: { metadata: { name: name.value, namespace: namespace.value, labels }, spec: { type: 'NodePort', clusterIP: vip, ports: [{ name: portName.value, port: 80, targetPort: 8080, nodePort: 30000 + seed % 1000 * 2 + i }] } },
      slice: {
        metadata: { name: `${validLabel(r)}-${i}`, namespace: namespace.value, labels: { 'kubernetes.io/service-name': name.value } },
        addressType: 'IPv4',
        ports: [{ name: portName.value, port: 8080, protocol: 'TCP' }],
        endpoints: [{ addresses: [`10.244.${i}.5`], nodeName: 'node-b' }],
      },
    });
  }
  return out;
}

function render(c: Case): { text: string; rules: RuleSet } {
  const cat = new Catalog();
  for (const o of c.objs) {
    cat.apply('Service', o.svc);
    cat.apply('EndpointSlice', o.slice);
  }
  const plans = [...cat.services()].map((s) => planService(s, cat.endpoints(s.key), { nodeName: 'node-a' })).filter((p): p is ServicePlan => !!p);
  const rendered = plans.map((p) => renderService(p, CFG)).filter((x): x is ServiceRules => !!x);
  const text = renderFull(rendered, CFG, parseSave(''));
  const rules = new RuleSet();
  rules.apply(text);
  return { text, rules };
}

describe('hostile names', () => {
  it('a quote-and-newline Service name is refused, named with its field, and adds no rule', () => {
    logged.length = 0;
    const bad = { metadata: { name: 'x" -j ACCEPT\n-I INPUT 1 -j ACCEPT', namespace: 'ns' }, spec: { clusterIP: '10.96.0.9', ports: [{ port: 80 }] } };
    const good = { metadata: { name: 'web', namespace: 'ns' }, spec: { clusterIP: '10.96.0.10', ports: [{ port: 80 }] } };
    const { text, rules } = render({ objs: [{ svc: bad, slice: {} }, { svc: good, slice: { metadata: { name: 'web-1', namespace: 'ns', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4', ports: [{ port: 80 }], endpoints: [{ addresses: ['10.244.0.5'] }] } }], good: [], bad: [] });
    expect(text).not.toContain('10.96.0.9');
    expect(text).not.toContain('-I INPUT 1 -j ACCEPT');
    expect(trace(rules, { src: '10.244.0.7', dst: '10.96.0.10', protocol: 'tcp', dport: 80 }, CFG.nodeIPs).map((o) => o.dnat)).toEqual(['10.244.0.5:80']);
    const line = logged.map((l) => JSON.parse(l)).find((l) => l.msg === 'rejected object' && l.kind === 'Service');
    expect(line).toMatchObject({ object: 'ns/x" -j ACCEPT\n-I INPUT 1 -j ACCEPT', action: 'ignored' });
    expect(line.errors).toMatch(/^metadata\.name: /);
  });

  it('the generator makes both kinds, so the seeds below test something', () => {
    const all = Array.from({ length: 300 }, (_, i) => hostileCatalog(i + 1));
    expect(all.reduce((n, c) => n + c.good.length, 0)).toBeGreaterThan(200);
    expect(all.reduce((n, c) => n + c.bad.length, 0)).toBeGreaterThan(200);
  });

  for (let seed = 1; seed <= 300; seed++) {
    it.concurrent(`seed ${seed}: only our jumps in built-in chains; valid services DNAT, refused ones are absent`, () => {
      const c = hostileCatalog(seed);
      const { text, rules } = render(c);
      for (const table of ['nat', 'filter']) {
        for (const chain of BUILT_IN) {
          const specs = (rules.chain(table, chain) ?? []).map((r) => r.join(' '));
          const ours = JUMPS.filter((j) => j.table === table && j.chain === chain).map((j) => j.spec.replace(/"/g, ''));
          expect(specs).toEqual(ours);
        }
      }
      // Every restore line is one of the forms render.ts writes, with at most one quoted comment.
      for (const l of text.split('\n')) {
        expect(l).toMatch(/^(\*(nat|filter)|COMMIT|:[A-Z0-9-]+ - \[0:0\]|-[AIX] [A-Z0-9-]+( .*)?|)$/);
        expect((l.match(/"/g) ?? []).length === 0 || (l.match(/"/g) ?? []).length === 2).toBe(true);
      }
      for (const vip of c.good) {
        const i = Number(vip.split('.')[3]) - 1;
        const out = trace(rules, { src: '10.244.9.9', dst: vip, protocol: 'tcp', dport: 80 }, CFG.nodeIPs);
        expect(out.map((o) => o.dnat), vip).toEqual([`10.244.${i}.5:8080`]);
      }
      for (const vip of c.bad) expect(text, vip).not.toContain(`${vip}/32`);
    });
  }
});
