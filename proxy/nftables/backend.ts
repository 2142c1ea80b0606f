// The nftables mode: each family's table rendered by render.ts and applied with `nft -f -` (a
// child process, input on stdin), one atomic transaction per family and sync. Full syncs rewrite
// the table (deleted and made again when we do not know what it holds: at start and after a
// failure); partial syncs touch only the changed services' chains, sets and map elements. The
// state kept between syncs is what the kernel was last told successfully.
import type { IPFamily, ObjectKey } from '../../cluster/types.js';
import type { Logger } from '../../common/log.js';
import type { Backend, SyncRequest, SyncResult } from '../core/backend.js';
import { familyConfig, type FamilyConfig } from '../core/family-config.js';
import type { ProxyMetrics } from '../core/metrics.js';
import type { ServicePlan } from '../core/model.js';
import { runTool } from '../../common/process.js';
import { MapUndo } from './map-undo.js';
import {
  TABLE_NAME,
  baseRuleCount,
  countService,
  hairpinCounts,
  renderFull,
  renderPartial,
  renderService,
  words,
  type Owners,
  type ServiceChange,
  type ServiceNft,
} from './render.js';

export interface NftablesOptions {
  families: readonly IPFamily[];
  clusterCIDRs: readonly string[];
  masqueradeAll: boolean;
  /** The nft program (tests may point it elsewhere). */
  nft?: string;
  /** Sees every input before it is applied (benchmarks replay them). */
  onApply?: (family: IPFamily, lines: readonly string[], full: boolean) => void;
}

export class NftError extends Error {}

interface FamilyState {
  /** Plan and config each service's rules were rendered from (re-rendered to diff). */
  readonly applied: Map<ObjectKey, { plan: ServicePlan; cfg: FamilyConfig }>;
  readonly owners: Owners;
  readonly hairpin: Map<string, number>;
  chains: Set<string>;
  sets: Set<string>;
  rules: number;
  elements: number;
}

/** Runs `nft -f -` with `lines` on stdin. */
export async function nftApply(lines: readonly string[], nft = 'nft'): Promise<void> {
  const r = await runTool(nft, ['-f', '-'], lines);
  if (r.code !== 0) throw new NftError(`${nft} -f exited ${r.code}: ${r.stderr.trim().split('\n').slice(0, 6).join(' | ')}`);
}

export class NftablesBackend implements Backend {
  readonly name = 'nftables';
  readonly natFlows = true;
  private readonly state = new Map<IPFamily, FamilyState>();
  /** Time spent in our own code during the last sync, ms. */
  lastOwnMs = 0;
  /** Time spent waiting for nft during the last sync, ms. */
  lastToolMs = 0;

  constructor(private readonly opts: NftablesOptions, private readonly log: Logger, private readonly metrics?: ProxyMetrics) {}

  async sync(req: SyncRequest): Promise<SyncResult> {
    this.lastOwnMs = 0;
    this.lastToolMs = 0;
    const written = { rules: 0, elements: 0 };
    for (const family of this.opts.families) {
      const cfg = familyConfig(family, req.node, this.opts);
      try {
        if (req.full || !this.state.has(family)) await this.fullSync(family, cfg, req, written);
        else await this.partialSync(family, cfg, req, written);
      } catch (err) {
        // What the kernel holds is unknown now: the next (full) sync makes the table anew.
        this.state.delete(family);
        this.metrics?.restoreFailures.inc();
        if (!req.full) this.metrics?.partialRestoreFailures.inc();
        this.log.error('nft -f failed; the next sync is a full one', { family, sync: req.full ? 'full' : 'partial', error: (err as Error).message });
        throw err;
      }
    }
    const rules = { rules: 0, elements: 0 };
    for (const s of this.state.values()) {
      rules.rules += s.rules;
      rules.elements += s.elements;
    }
    return { rules, written };
  }

  private async apply(family: IPFamily, lines: readonly string[], full: boolean): Promise<void> {
    this.opts.onApply?.(family, lines, full);
    const t0 = performance.now();
    try {
      await nftApply(lines, this.opts.nft);
    } finally {
      this.lastToolMs += performance.now() - t0;
    }
  }

  private async fullSync(family: IPFamily, cfg: FamilyConfig, req: SyncRequest, written: { rules: number; elements: number }): Promise<void> {
    const t0 = performance.now();
    const prev = this.state.get(family);
    const rendered: ServiceNft[] = [];
    const applied = new Map<ObjectKey, { plan: ServicePlan; cfg: FamilyConfig }>();
    for (const plan of req.plans.values()) {
      const r = renderService(plan, cfg);
      if (!r) continue;
      rendered.push(r);
      applied.set(plan.key, { plan, cfg });
    }
    const full = renderFull(rendered, cfg, prev ? { chains: prev.chains, sets: prev.sets } : undefined);
    let rules = baseRuleCount(cfg);
    for (const s of rendered) rules += countService(s).rules;
    const elements = full.owners.size;
    this.lastOwnMs += performance.now() - t0;
    await this.apply(family, full.lines, true);
    this.state.set(family, { applied, owners: full.owners, hairpin: hairpinCounts(rendered), chains: full.chains, sets: full.sets, rules, elements });
    written.rules += rules;
    written.elements += elements;
  }

  private async partialSync(family: IPFamily, cfg: FamilyConfig, req: SyncRequest, written: { rules: number; elements: number }): Promise<void> {
    const t0 = performance.now();
    const st = this.state.get(family)!;
    const changes: (ServiceChange & { plan?: ServicePlan })[] = [];
    for (const key of req.changed) {
      const plan = req.plans.get(key);
      const after = plan ? renderService(plan, cfg) : undefined;
      const was = st.applied.get(key);
      const before = was ? renderService(was.plan, was.cfg) : undefined;
      if (before || after) changes.push({ key, plan, before, after });
    }
    // renderPartial updates these as if nft succeeds; on a failure its recorded changes are undone
    // so the remembered state is what the kernel was last told (dropped anyway, but coherent).
    const undo = new MapUndo();
    try {
      const lines = renderPartial(changes, family, st.owners, st.hairpin, undo);
      this.lastOwnMs += performance.now() - t0;
      if (lines) await this.apply(family, lines, false);
    } catch (err) {
      undo.rollback();
      throw err;
    }
    for (const { key, plan, before, after } of changes) {
      if (before) {
        st.rules -= countService(before).rules;
        for (const c of before.chains.keys()) st.chains.delete(c);
        for (const s of before.sets.keys()) st.sets.delete(s);
      }
      if (after) {
        const n = countService(after);
        st.rules += n.rules;
        written.rules += n.rules;
        written.elements += n.elements;
        for (const c of after.chains.keys()) st.chains.add(c);
        for (const s of after.sets.keys()) st.sets.add(s);
        st.applied.set(key, { plan: plan!, cfg });
      } else st.applied.delete(key);
    }
    st.elements = st.owners.size;
  }

  /** Nothing to make: the tables come with the first (full) sync. */
  async prepare(): Promise<void> {}

  close(): void {}

  /** Deletes our tables, both families (`add` first so a missing table is no error). */
  async cleanup(): Promise<void> {
    for (const family of ['IPv4', 'IPv6'] as const) {
      const t = words(family).table;
      await nftApply([`add table ${t}`, `delete table ${t}`], this.opts.nft);
      this.state.delete(family);
    }
    this.log.info('removed nftables tables', { table: TABLE_NAME });
  }
}

/** The families whose `nft` works here (a table can be made and deleted in one transaction). */
export async function usableFamilies(log: Logger, nft = 'nft'): Promise<IPFamily[]> {
  const out: IPFamily[] = [];
  for (const family of ['IPv4', 'IPv6'] as const) {
    const t = `${words(family).table.split(' ')[0]} ${TABLE_NAME}-probe`;
    try {
      await nftApply([`add table ${t}`, `delete table ${t}`], nft);
      out.push(family);
    } catch (err) {
      log.warn('IP family not available; its services get no rules', { family, error: (err as Error).message });
    }
  }
  if (out.length === 0) throw new Error(`${nft} cannot make a table in either family here`);
  return out;
}
