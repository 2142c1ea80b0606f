// A small packet tracer over rendered rules: says where the first packet of a new connection
// ends up (accepted towards which DNAT target, masqueraded or not, dropped or rejected), with
// the probability of each outcome. It understands exactly the matches and targets render.ts
// writes, and fails loudly on anything else, so unit tests can check policy exhaustively
// without a kernel; the namespace tests then check the kernel agrees.
import { cidrContains, familyOf } from '../../common/ip.js';

export interface Packet {
  src: string;
  dst: string;
  protocol: 'tcp' | 'udp' | 'sctp';
  dport: number;
  /** Sent by a process on the node itself (OUTPUT) rather than arriving (PREROUTING). */
  fromNode?: boolean;
  /** The interface it arrived on (none when sent by the node). */
  iif?: string;
}

export interface Outcome {
  verdict: 'ACCEPT' | 'DROP' | 'REJECT';
  /** `ip:port` (or `[ip]:port`) when DNATed. */
  dnat?: string;
  masquerade: boolean;
  probability: number;
  /** The chains traversed, for failure messages. */
  path: string[];
}

type Rule = string[];
type Tables = Map<string, Map<string, Rule[]>>;

function tokenize(line: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line))) out.push(m[1] ?? m[2]);
  return out;
}

/** Applies restore input (several may be applied in turn, as `--noflush` does). */
export class RuleSet {
  readonly tables: Tables = new Map();

  apply(text: string): void {
    let table: Map<string, Rule[]> | undefined;
    for (const line of text.split('\n')) {
      if (!line || line.startsWith('#')) continue;
      if (line.startsWith('*')) {
        const name = line.slice(1);
        if (!this.tables.has(name)) this.tables.set(name, new Map());
        table = this.tables.get(name)!;
        continue;
      }
      if (line === 'COMMIT') continue;
      if (!table) throw new Error(`rule outside a table: ${line}`);
      if (line.startsWith(':')) {
        table.set(line.slice(1).split(' ')[0], []);
        continue;
      }
      const [op, chain, ...rest] = tokenize(line);
      const rules = table.get(chain) ?? (['INPUT', 'FORWARD', 'OUTPUT', 'PREROUTING', 'POSTROUTING'].includes(chain) ? [] : undefined);
      if (!rules) throw new Error(`${op} on missing chain ${chain}`);
      table.set(chain, rules);
      if (op === '-A') rules.push(rest);
      else if (op === '-I') rules.splice(Number(rest[0]) - 1, 0, rest.slice(1));
      else if (op === '-D') {
        const i = rules.findIndex((r) => r.join(' ') === rest.join(' '));
        if (i < 0) throw new Error(`-D of a missing rule: ${line}`);
        rules.splice(i, 1);
      } else if (op === '-X') {
        for (const [name, rs] of table) for (const r of rs) if (r[r.indexOf('-j') + 1] === chain) throw new Error(`-X ${chain} still referenced from ${name}`);
        table.delete(chain);
      } else throw new Error(`unknown operation ${op}`);
    }
  }

  chain(table: string, chain: string): Rule[] | undefined {
    return this.tables.get(table)?.get(chain);
  }
}

interface State {
  pkt: Packet;
  /** nat DNATed it (conntrack state DNAT, seen by filter). */
  dnatted?: boolean;
  mark: boolean;
  prob: number;
  path: string[];
}

type ChainResult = { kind: 'continue' | 'terminal'; verdict?: string; dnat?: string; state: State };

/** Traces one packet through nat then filter then POSTROUTING, as the kernel's hooks order them. */
export function trace(rules: RuleSet, pkt: Packet, nodeIPs: readonly string[]): Outcome[] {
  const isLocal = (ip: string) => nodeIPs.includes(ip) || ip === '127.0.0.1' || ip === '::1';

  function matches(rule: Rule, s: State): { ok: boolean; branch?: number } {
    let branch: number | undefined;
    for (let i = 0; i < rule.length; i++) {
      let neg = false;
      let t = rule[i];
      if (t === '!') {
        neg = true;
        t = rule[++i];
      }
      const arg = () => rule[++i];
      const test = (cond: boolean) => (neg ? !cond : cond);
      switch (t) {
        case '-m': {
          const mod = arg();
          if (mod === 'statistic') {
            if (rule[i + 1] !== '--mode' || rule[i + 2] !== 'random' || rule[i + 3] !== '--probability') throw new Error(`statistic form: ${rule.join(' ')}`);
            branch = Number(rule[i + 4]);
            i += 4;
          }
          break;
        }
        case '--comment':
          arg();
          break;
        case '-s': {
          const c = arg();
          if (!test(inCIDR(c, s.pkt.src))) return { ok: false };
          break;
        }
        case '-d': {
          const c = arg();
          if (!test(inCIDR(c, s.pkt.dst))) return { ok: false };
          break;
        }
        case '-i': {
          const name = arg();
          const iif = s.pkt.fromNode ? undefined : s.pkt.iif;
          const hit = iif !== undefined && (name.endsWith('+') ? iif.startsWith(name.slice(0, -1)) : iif === name);
          if (!test(hit)) return { ok: false };
          break;
        }
        case '-p':
          if (!test(arg() === s.pkt.protocol)) return { ok: false };
          break;
        case '--dport':
          if (!test(Number(arg()) === s.pkt.dport)) return { ok: false };
          break;
        case '--dst-type':
          if (arg() !== 'LOCAL') throw new Error('addrtype other than LOCAL');
          if (!test(isLocal(s.pkt.dst))) return { ok: false };
          break;
        case '--src-type':
          if (arg() !== 'LOCAL') throw new Error('addrtype other than LOCAL');
          if (!test(!!s.pkt.fromNode || isLocal(s.pkt.src))) return { ok: false };
          break;
        case '--ctstate': {
          const states = arg().split(',');
          // A first packet is NEW; in filter it is also DNAT once nat rewrote its destination.
          if (!test(states.includes('NEW') || (states.includes('DNAT') && !!s.dnatted))) return { ok: false };
          break;
        }
        case '--mark':
          if (!test(s.mark === (arg() === '0x4000/0x4000'))) return { ok: false };
          break;
        case '--rcheck':
          // No affinity state in a first packet: an affinity check never matches here.
          return { ok: false };
        case '--name': case '--seconds': case '--mask':
          arg();
          break;
        case '--reap': case '--rsource': case '--set':
          break;
        case '-j':
          return { ok: true, branch };
        default:
          throw new Error(`tracer does not know ${t} in: ${rule.join(' ')}`);
      }
    }
    return { ok: true, branch };
  }

  function runChain(table: string, chain: string, s: State, depth = 0): ChainResult[] {
    if (depth > 20) throw new Error('jump loop');
    const rs = rules.chain(table, chain);
    if (!rs) throw new Error(`jump to missing chain ${table}/${chain}`);
    const path = [...s.path, chain];
    const results: ChainResult[] = [];
    const walk = (from: number, st: State): void => {
      for (let i = from; i < rs.length; i++) {
        const rule = rs[i];
        const m = matches(rule, st);
        if (!m.ok) continue;
        if (m.branch !== undefined && m.branch < 1) {
          // Explore the "not taken" side separately.
          walk(i + 1, { ...st, prob: st.prob * (1 - m.branch) });
          st = { ...st, prob: st.prob * m.branch };
        }
        const j = rule.indexOf('-j');
        if (j < 0) continue;
        const target = rule[j + 1];
        if (target === 'RETURN') return void results.push({ kind: 'continue', state: st });
        if (target === 'ACCEPT' || target === 'DROP' || target === 'REJECT') return void results.push({ kind: 'terminal', verdict: target, state: st });
        if (target === 'DNAT') return void results.push({ kind: 'terminal', verdict: 'DNAT', dnat: rule[j + 3], state: st });
        if (target === 'MARK') {
          st = { ...st, mark: rule[j + 2] === '--or-mark' ? true : !st.mark };
          continue;
        }
        if (target === 'MASQUERADE') return void results.push({ kind: 'terminal', verdict: 'MASQUERADE', state: st });
        for (const sub of runChain(table, target, { ...st, path }, depth + 1)) {
          if (sub.kind === 'terminal') results.push(sub);
          else walk(i + 1, sub.state);
        }
        return;
      }
      results.push({ kind: 'continue', state: st });
    };
    walk(0, { ...s, path });
    return results;
  }

  function hook(table: string, builtin: string, s: State): ChainResult[] {
    return rules.chain(table, builtin) ? runChain(table, builtin, s) : [{ kind: 'continue', state: s }];
  }

  const outcomes: Outcome[] = [];
  const start: State = { pkt: { ...pkt }, mark: false, prob: 1, path: [] };
  for (const n of hook('nat', pkt.fromNode ? 'OUTPUT' : 'PREROUTING', start)) {
    let st = n.state;
    let dnat: string | undefined;
    if (n.kind === 'terminal') {
      if (n.verdict !== 'DNAT') throw new Error(`nat verdict ${n.verdict}`);
      dnat = n.dnat!;
      const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(dnat)!;
      st = { ...st, dnatted: true, pkt: { ...st.pkt, dst: m[1], dport: Number(m[2]) } };
    }
    const filterChains = pkt.fromNode ? ['OUTPUT'] : isLocal(st.pkt.dst) ? ['INPUT'] : ['FORWARD'];
    let dropped: string | undefined;
    let fst = st;
    for (const builtin of filterChains) {
      for (const f of hook('filter', builtin, fst)) {
        if (f.kind === 'terminal' && f.verdict !== 'ACCEPT') dropped = f.verdict;
        fst = { ...fst, prob: f.state.prob };
      }
    }
    const post = hook('nat', 'POSTROUTING', st);
    const masquerade = post.some((p) => p.verdict === 'MASQUERADE');
    outcomes.push({ verdict: (dropped as Outcome['verdict']) ?? 'ACCEPT', ...(dnat ? { dnat } : {}), masquerade, probability: st.prob, path: st.path });
  }
  return outcomes;
}

function inCIDR(c: string, ip: string): boolean {
  if (!c.includes('/')) return c === ip;
  const [net] = c.split('/');
  if (familyOf(net) !== familyOf(ip)) return false;
  return cidrContains(c, ip);
}
