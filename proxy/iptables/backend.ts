// The iptables mode: renders each family's rules and applies them with `iptables-restore
// --noflush` (one atomic transaction per table and family). Full syncs rewrite every chain of
// ours and reconcile with what `iptables-save` shows; partial syncs touch only the chains and
// dispatch rules of the services that changed; a reconcile (the --sync-period tick) reads
// `iptables-save -t nat` and `-t filter` back and rewrites only the chains and jumps that differ
// from what was applied (reconcile.ts). The state kept between syncs is what the kernel was last
// told successfully; a failed restore leaves it as it was and the core's next sync is a full one.
import type { IPFamily, ObjectKey } from '../../cluster/types.js';
import type { Logger } from '../../common/log.js';
import type { Backend, SyncRequest, SyncResult } from '../core/backend.js';
import { familyConfig, type DetectLocalOptions, type FamilyConfig } from '../core/family-config.js';
import type { ProxyMetrics } from '../core/metrics.js';
import type { ServicePlan } from '../core/model.js';
import {
  JUMPS,
  SERVICE_CHAIN,
  STATIC_CHAINS,
  countRules,
  parseSave,
  renderFullLines,
  renderPartial,
  renderService,
  type ServiceChange,
  type ServiceRules,
  type Table,
} from './render.js';
import { Reconciler, repairLines } from './reconcile.js';
import { runTool } from '../../common/process.js';
import { toolName, type Flavour } from './tools.js';

export interface IptablesOptions {
  flavour: Flavour;
  families: readonly IPFamily[];
  clusterCIDRs: readonly string[];
  /** --detect-local-mode; absent means ClusterCIDR. */
  detectLocal?: DetectLocalOptions;
  /** --iptables-localhost-nodeports, after route_localnet was set. */
  localhostNodePorts?: boolean;
  masqueradeAll: boolean;
  /** Sees every restore input before it is applied (benchmarks replay them). */
  onRestore?: (family: IPFamily, text: string | readonly string[], full: boolean) => void;
}

export class RestoreError extends Error {}

interface Applied {
  readonly plan: ServicePlan;
  readonly cfg: FamilyConfig;
}

export class IptablesBackend implements Backend {
  readonly name = 'iptables';
  readonly natFlows = true;
  /**
   * What the kernel holds per service: the plan and family config it was rendered from, not the
   * rendered lines. A partial sync renders the old plan again to diff against the new one; the
   * plans are immutable records the proxier makes anyway, so this costs a reference where the
   * lines cost ~4 KB a service (40+ MB at 10k services, per family).
   */
  private readonly applied = new Map<IPFamily, Map<ObjectKey, Applied>>();
  private readonly counts = new Map<IPFamily, Record<Table, number>>();
  /** Per family: each chain's rule count and digests as last applied, for reconciles. */
  private readonly recon = new Map<IPFamily, Reconciler>();
  /** Time spent in our own code (planning excluded) during the last sync, ms. */
  lastOwnMs = 0;
  /** Time spent waiting for the tools during the last sync, ms. */
  lastToolMs = 0;

  constructor(private readonly opts: IptablesOptions, private readonly log: Logger, private readonly metrics?: ProxyMetrics) {}

  async sync(req: SyncRequest): Promise<SyncResult> {
    const written: Record<Table, number> = { nat: 0, filter: 0 };
    this.lastOwnMs = 0;
    this.lastToolMs = 0;
    const repaired = { chains: 0, jumps: 0 };
    for (const family of this.opts.families) {
      const cfg = familyConfig(family, req.node, this.opts);
      if (req.full) await this.fullSync(family, cfg, req, written);
      else {
        await this.partialSync(family, cfg, req, written);
        if (req.reconcile) await this.reconcile(family, cfg, repaired);
      }
    }
    const rules: Record<Table, number> = { nat: 0, filter: 0 };
    for (const c of this.counts.values()) {
      rules.nat += c.nat;
      rules.filter += c.filter;
    }
    return req.reconcile && !req.full ? { rules, written, repaired } : { rules, written };
  }

  /**
   * Reads back this family's nat and filter tables and repairs, in one restore, what differs
   * from what was applied: our chains missing or edited, jumps from the built-in chains missing
   * or doubled, chains named like ours that nothing wants. Nothing differing costs the two
   * saves and a pass over their text; no restore.
   */
  private async reconcile(family: IPFamily, cfg: FamilyConfig, repaired: { chains: number; jumps: number }): Promise<void> {
    const rec = this.recon.get(family);
    const applied = this.applied.get(family);
    if (!rec || !applied) throw new Error(`reconcile of ${family} before any full sync`);
    const nat = await this.tool(family, 'save', ['-t', 'nat']);
    const filter = await this.tool(family, 'save', ['-t', 'filter']);
    const t0 = performance.now();
    rec.begin();
    const diffs = [rec.diff('filter', filter), rec.diff('nat', nat)];
    const accepted = diffs.flatMap((d) => d.accepted);
    if (accepted.length) {
      this.log.warn('chains printed differently from our rules twice in a row after a rewrite; taken as the kernel\'s spelling of them', { family, chains: accepted.slice(0, 10).join(','), count: accepted.length });
    }
    // Only the services owning a differing chain are rendered again (all of them only when a
    // shared chain such as KUBE-SERVICES must be rewritten whole).
    const render = (a: Applied | undefined) => (a ? renderService(a.plan, a.cfg) : undefined);
    const lines = repairLines(diffs, {
      cfg,
      service: (key) => render(applied.get(key)),
      *all() {
        for (const a of applied.values()) {
          const r = render(a);
          if (r) yield r;
        }
      },
    });
    this.lastOwnMs += performance.now() - t0;
    if (!lines) return;
    const chains = diffs.flatMap((d) => [...d.rewrite.map((c) => `${d.table}/${c.chain}`), ...d.stray.map((c) => `${d.table}/${c} (stray)`)]);
    const jumps = diffs.flatMap((d) => [...d.missingJumps.map((j) => `${d.table}/${j.chain}->${j.target}`), ...d.extraJumps.map((j) => `${d.table}/${j.chain} extra -${j.spec}`)]);
    this.log.info('repairing iptables rules that differ from what was applied', {
      family,
      chains: chains.length,
      jumps: jumps.length,
      what: [...chains, ...jumps].slice(0, 10).join(', '),
    });
    rec.written();
    await this.restore(family, lines, 'reconcile');
    repaired.chains += chains.length;
    repaired.jumps += jumps.length;
  }

  private async fullSync(family: IPFamily, cfg: FamilyConfig, req: SyncRequest, written: Record<Table, number>): Promise<void> {
    let t0 = performance.now();
    const rendered = new Map<ObjectKey, ServiceRules>();
    for (const plan of req.plans.values()) {
      const r = renderService(plan, cfg);
      if (r) rendered.set(plan.key, r);
    }
    this.lastOwnMs += performance.now() - t0;
    const saved = await this.tool(family, 'save', []);
    t0 = performance.now();
    const text = renderFullLines(rendered.values(), cfg, parseSave(saved));
    const count = countRules(rendered.values());
    this.lastOwnMs += performance.now() - t0;
    await this.restore(family, text, 'full');
    t0 = performance.now();
    const applied = new Map<ObjectKey, Applied>();
    for (const key of rendered.keys()) applied.set(key, { plan: req.plans.get(key)!, cfg });
    this.applied.set(family, applied);
    this.counts.set(family, count);
    const rec = this.recon.get(family) ?? new Reconciler();
    rec.resetFull(rendered.values(), cfg);
    this.recon.set(family, rec);
    this.lastOwnMs += performance.now() - t0;
    written.nat += count.nat;
    written.filter += count.filter;
  }

  private async partialSync(family: IPFamily, cfg: FamilyConfig, req: SyncRequest, written: Record<Table, number>): Promise<void> {
    const t0 = performance.now();
    const applied = this.applied.get(family);
    if (!applied) throw new Error(`partial sync of ${family} before any full sync`);
    const changes: (ServiceChange & { key: ObjectKey; plan?: ServicePlan })[] = [];
    for (const key of req.changed) {
      const plan = req.plans.get(key);
      const after = plan ? renderService(plan, cfg) : undefined;
      const was = applied.get(key);
      const before = was ? renderService(was.plan, was.cfg) : undefined;
      if (before || after) changes.push({ key, plan, before, after });
    }
    const text = renderPartial(changes);
    this.lastOwnMs += performance.now() - t0;
    if (text) await this.restore(family, text, 'partial');
    const t1 = performance.now();
    this.recon.get(family)?.applyPartial(changes);
    const count = this.counts.get(family)!;
    for (const { key, plan, before, after } of changes) {
      if (before) {
        const c = countRules([before]);
        count.nat -= c.nat - STATIC_RULE_COUNT.nat;
        count.filter -= c.filter - STATIC_RULE_COUNT.filter;
      }
      if (after) {
        const c = countRules([after]);
        count.nat += c.nat - STATIC_RULE_COUNT.nat;
        count.filter += c.filter - STATIC_RULE_COUNT.filter;
        written.nat += c.nat - STATIC_RULE_COUNT.nat;
        written.filter += c.filter - STATIC_RULE_COUNT.filter;
        applied.set(key, { plan: plan!, cfg });
      } else applied.delete(key);
    }
    this.lastOwnMs += performance.now() - t1;
  }

  private async tool(family: IPFamily, what: 'save' | 'restore', args: string[], input?: string | readonly string[]): Promise<string> {
    const cmd = toolName(this.opts.flavour, family, what);
    const t0 = performance.now();
    const r = await runTool(cmd, args, input);
    this.lastToolMs += performance.now() - t0;
    if (r.code !== 0) throw new RestoreError(`${cmd} exited ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  private async restore(family: IPFamily, text: string | readonly string[], sync: 'full' | 'partial' | 'reconcile'): Promise<void> {
    const full = sync === 'full';
    // The lines as they are: joining a full ruleset into one string would cost its size again.
    this.opts.onRestore?.(family, text, full);
    try {
      await this.tool(family, 'restore', ['--noflush', '--wait=5'], text);
    } catch (err) {
      this.metrics?.restoreFailures.inc();
      if (!full) this.metrics?.partialRestoreFailures.inc();
      // "line N failed": show that line, which is what an operator needs to see.
      const m = /line (\d+) failed/.exec((err as Error).message);
      const line = m ? (typeof text === 'string' ? text.split('\n') : text)[Number(m[1]) - 1] : undefined;
      this.log.error('iptables-restore failed; the next sync is a full one', {
        family,
        sync,
        error: (err as Error).message,
        ...(line ? { failedLine: line } : {}),
      });
      throw err;
    }
  }

  /** Nothing to make: the tables and chains come with the first (full) sync. */
  async prepare(): Promise<void> {}

  close(): void {}

  /** Removes every rule and chain of ours, in both flavours and families. */
  async cleanup(): Promise<void> {
    for (const flavour of ['nft', 'legacy'] as const) {
      for (const family of ['IPv4', 'IPv6'] as const) {
        const save = await runTool(toolName(flavour, family, 'save'), []);
        if (save.code !== 0) continue; // flavour or family not available here
        const text = cleanupRestore(save.stdout);
        if (!text) continue;
        const r = await runTool(toolName(flavour, family, 'restore'), ['--noflush', '--wait=5'], text);
        if (r.code !== 0) throw new RestoreError(`${toolName(flavour, family, 'restore')} (cleanup) exited ${r.code}: ${r.stderr.trim()}`);
        this.log.info('removed rules', { flavour, family });
      }
    }
  }
}

const STATIC_RULE_COUNT = countRules([]);

/** Restore input deleting our jumps and chains from a saved ruleset; undefined if none. */
export function cleanupRestore(saved: string): string | undefined {
  const targets = new Set(JUMPS.map((j) => j.target));
  const lines: string[] = [];
  let table: string | undefined;
  let block: { deletes: string[]; chains: string[] } = { deletes: [], chains: [] };
  const flush = () => {
    if (table && (block.deletes.length || block.chains.length)) {
      lines.push(`*${table}`, ...block.deletes, ...block.chains.map((c) => `:${c} - [0:0]`), ...block.chains.map((c) => `-X ${c}`), 'COMMIT');
    }
    block = { deletes: [], chains: [] };
  };
  for (const line of saved.split('\n')) {
    if (line.startsWith('*')) {
      flush();
      table = line.slice(1).trim();
      continue;
    }
    if (table !== 'nat' && table !== 'filter') continue;
    if (line.startsWith(':')) {
      const chain = line.slice(1).split(' ')[0];
      if (STATIC_CHAINS[table].includes(chain) || SERVICE_CHAIN.test(chain)) block.chains.push(chain);
    } else if (line.startsWith('-A ')) {
      const chain = line.split(' ')[1];
      const m = / -j (\S+)/.exec(line);
      if (m && targets.has(m[1]) && !chain.startsWith('KUBE-')) block.deletes.push(`-D ${line.slice(3)}`);
    } else if (line === 'COMMIT') {
      flush();
      table = undefined;
    }
  }
  flush();
  return lines.length ? lines.join('\n') + '\n' : undefined;
}
