// The nftables mode: each family's table rendered by render.ts (layout.ts says its shape). A full
// sync writes the whole table in one transaction; a partial sync sends only the changed
// services' elements (and a new per-count chain now and then). Both go through the kernel writer
// (`TableWriter`: nfnetlink when it can, else `nft -f`); a reconcile reads our tables back and
// puts back what differs. The state kept between syncs is what the kernel was last told
// successfully.
import type { IPFamily, ObjectKey } from '../../cluster/types.js';
import type { Logger } from '../../common/log.js';
import { runTool } from '../../common/process.js';
import type { Backend, SyncRequest, SyncResult } from '../core/backend.js';
import { familyConfig, type DetectLocalOptions, type FamilyConfig } from '../core/family-config.js';
import type { ProxyMetrics } from '../core/metrics.js';
import type { ServicePlan } from '../core/model.js';
import { MapUndo } from './map-undo.js';
import {
  TABLE_NAME,
  baseRuleCount,
  countHairpin,
  countService,
  diffServices,
  elementText,
  collectTable,
  fullLines,
  partialLines,
  renderService,
  words,
  type Owners,
  type PartialChange,
  type ServiceChange,
  type ServiceNft,
} from './render.js';
import type { TableWriter } from './writer.js';

export interface NftablesOptions {
  families: readonly IPFamily[];
  clusterCIDRs: readonly string[];
  masqueradeAll: boolean;
  /** Service CIDRs (--service-cidr): unallocated addresses in them are dropped. */
  serviceCIDRs?: readonly string[];
  /** --detect-local-mode and its interface flags (absent: ClusterCIDR). */
  detectLocal?: DetectLocalOptions;
  /** The nft program (tests may point it elsewhere). */
  nft?: string;
  /** Writes partial changes and reads the table back; without one, partial syncs use `nft -f` and
   *  reconciles are skipped. */
  writer?: TableWriter;
  /** Sees every `nft -f` input before it is applied (a table loaded through netlink has no such
   *  input: `tableLines` spells it). */
  onApply?: (family: IPFamily, lines: readonly string[], full: boolean) => void;
}

export class NftError extends Error {}

/** A partial change this backend cannot apply piecemeal; the family's table is rewritten. */
class NeedsFullSync extends Error {}

interface FamilyState {
  /** Plan and config each service's elements were rendered from (re-rendered to diff). */
  readonly applied: Map<ObjectKey, { plan: ServicePlan; cfg: FamilyConfig }>;
  readonly owners: Owners;
  readonly hairpin: Map<string, number>;
  readonly cfg: FamilyConfig;
  chains: Set<string>;
  sets: Set<string>;
  countChains: Set<string>;
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
  /** Time spent waiting for the kernel (nft or netlink) during the last sync, ms. */
  lastToolMs = 0;

  constructor(private readonly opts: NftablesOptions, private readonly log: Logger, private readonly metrics?: ProxyMetrics) {}

  async sync(req: SyncRequest): Promise<SyncResult> {
    this.lastOwnMs = 0;
    this.lastToolMs = 0;
    const written = { rules: 0, elements: 0 };
    const repaired: Record<string, number> = {};
    const readBacks = { n: 0 };
    let rewrote = false;
    for (const family of this.opts.families) {
      const cfg = familyConfig(family, req.node, this.opts);
      const full = req.full || !this.state.has(family);
      try {
        if (full) await this.fullSync(family, cfg, req, written);
        else {
          try {
            await this.partialSync(family, cfg, req, written);
          } catch (err) {
            if (!(err instanceof NeedsFullSync)) throw err;
            this.log.info('rewriting the table', { family, reason: err.message });
            await this.fullSync(family, cfg, req, written);
            rewrote = true;
          }
          if (req.reconcile && (await this.reconcile(family, req, repaired, readBacks))) rewrote = true;
        }
      } catch (err) {
        // What the kernel holds is unknown now: the next (full) sync makes the table anew.
        this.state.delete(family);
        this.metrics?.restoreFailures.inc();
        if (!full) this.metrics?.partialRestoreFailures.inc();
        this.log.error('nftables update failed; the next sync is a full one', { family, sync: full ? 'full' : req.reconcile ? 'reconcile' : 'partial', error: (err as Error).message });
        throw err;
      }
    }
    const rules = { rules: 0, elements: 0 };
    for (const s of this.state.values()) {
      rules.rules += s.rules;
      rules.elements += s.elements;
    }
    return { rules, written, repaired, rewrote, readBacks: readBacks.n };
  }

  private async timed<T>(fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      this.lastToolMs += performance.now() - t0;
    }
  }

  private async applyLines(family: IPFamily, lines: readonly string[], full: boolean): Promise<void> {
    this.opts.onApply?.(family, lines, full);
    const writer = this.opts.writer;
    await this.timed(async () => {
      await writer?.beforeWrite();
      await nftApply(lines, this.opts.nft);
    });
  }

  private async fullSync(family: IPFamily, cfg: FamilyConfig, req: SyncRequest, written: { rules: number; elements: number }): Promise<void> {
    const t0 = performance.now();
    const prev = this.state.get(family);
    const applied = new Map<ObjectKey, { plan: ServicePlan; cfg: FamilyConfig }>();
    const hairpin = new Map<string, number>();
    let rules = baseRuleCount(cfg);
    // Rendered one service at a time and collected at once: the rendered services (a million
    // element objects at 100k services) never exist all together, only the table's text does.
    const rendered = function* (): Generator<ServiceNft> {
      for (const plan of req.plans.values()) {
        const r = renderService(plan, cfg);
        if (!r) continue;
        applied.set(plan.key, { plan, cfg });
        rules += countService(r).rules;
        countHairpin(hairpin, r);
        yield r;
      }
    };
    const content = collectTable(rendered(), cfg);
    rules += content.countChains.size;
    this.lastOwnMs += performance.now() - t0;
    // Through netlink in one transaction, no `nft` parse of 100k+ elements: a table made anew,
    // or the table we trust refilled (hourly, after node facts changed), which keeps its
    // affinity sets. `nft -f` does what does not fit one batch over an existing table.
    const writer = this.opts.writer;
    const viaNetlink = writer ? await this.timed(() => (prev ? writer.refill(content, prev) : writer.loadFresh(content))) : false;
    if (!viaNetlink) {
      const t1 = performance.now();
      const lines = fullLines(content, prev);
      this.lastOwnMs += performance.now() - t1;
      await this.applyLines(family, lines, true);
      if (this.opts.writer) await this.timed(() => this.opts.writer!.loaded(family));
    }
    this.state.set(family, {
      applied, owners: content.owners, hairpin, cfg,
      chains: new Set(content.chains.keys()), sets: new Set(content.sets.keys()), countChains: new Set(content.countChains), rules, elements: content.elements,
    });
    written.rules += rules;
    written.elements += content.elements;
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
    // diffServices updates these as if the change is applied; on a failure its recorded changes
    // are undone so the remembered state is what the kernel was last told (dropped anyway, but
    // coherent).
    const undo = new MapUndo();
    let change: PartialChange | undefined;
    try {
      change = diffServices(changes, st.owners, st.hairpin, st.countChains, undo);
      this.lastOwnMs += performance.now() - t0;
      if (change) await this.applyPartial(family, cfg, change);
    } catch (err) {
      undo.rollback();
      throw err;
    }
    const t1 = performance.now();
    for (const name of change?.newCountChains ?? []) st.countChains.add(name);
    st.rules += change?.newCountChains.length ?? 0;
    for (const { key, plan, before, after } of changes) {
      if (before) {
        const n = countService(before);
        st.rules -= n.rules;
        st.elements -= n.elements;
        for (const c of before.chains.keys()) st.chains.delete(c);
        for (const s of before.sets.keys()) st.sets.delete(s);
      }
      if (after) {
        const n = countService(after);
        st.rules += n.rules;
        st.elements += n.elements;
        written.rules += n.rules;
        written.elements += n.elements;
        for (const c of after.chains.keys()) st.chains.add(c);
        for (const s of after.sets.keys()) st.sets.add(s);
        st.applied.set(key, { plan: plan!, cfg });
      } else st.applied.delete(key);
    }
    this.lastOwnMs += performance.now() - t1;
  }

  private async applyPartial(family: IPFamily, cfg: FamilyConfig, change: PartialChange): Promise<void> {
    const writer = this.opts.writer;
    // Affinity chains and sets too: the writer makes their anonymous verdict maps itself, unless
    // such a change is too large for one transaction.
    if (writer && (await this.timed(() => writer.applyPartial(family, cfg, change)))) return;
    // Otherwise nft; but it cannot write the shared chains of a new endpoint count (layout.ts).
    if (change.newCountChains.length) throw new NeedsFullSync(`a new endpoint count (${change.newCountChains.join(', ')}) needs netlink`);
    await this.applyLines(family, partialLines(change, cfg), false);
    if (writer) await this.timed(() => writer.loaded(family));
  }

  /**
   * Reads our table back and repairs what differs from what was applied: the table or a fixed
   * chain gone or edited (a full rewrite of this family, which keeps established flows: only
   * rules and elements change), service elements missing, changed or extra (put back one by
   * one in one transaction).
   */
  /** Resolves true when it had to rewrite the family's table. */
  private async reconcile(family: IPFamily, req: SyncRequest, repaired: Record<string, number>, readBacks: { n: number }): Promise<boolean> {
    const writer = this.opts.writer;
    if (!writer) return false;
    const st = this.state.get(family)!;
    const expected = () => {
      const t0 = performance.now();
      try {
        return expectedElements(st);
      } finally {
        // Ours, though it runs inside the writer's (timed) call.
        const ms = performance.now() - t0;
        this.lastOwnMs += ms;
        this.lastToolMs -= ms;
      }
    };
    const found = await this.timed(() => writer.reconcile(family, st.cfg, expected, { chains: st.chains, sets: st.sets, countChains: st.countChains }));
    for (const [kind, n] of Object.entries(found.repaired)) repaired[kind] = (repaired[kind] ?? 0) + n;
    if (found.readBack) readBacks.n++;
    if (found.needsFull) {
      this.log.warn('our nftables table was changed outside the proxy; rewriting it', { family, reason: found.needsFull });
      repaired.tables = (repaired.tables ?? 0) + 1;
      // Made anew: a refill takes the table for what our last sync left, and it is not.
      this.state.delete(family);
      await this.fullSync(family, st.cfg, { ...req, full: true }, { rules: 0, elements: 0 });
      return true;
    }
    return false;
  }

  /** The family's table as last applied, spelled as the `nft -f` input that makes it anew
   *  (re-rendered from the applied plans; empty before the first sync). Benchmarks replay it. */
  tableLines(family: IPFamily): string[] {
    const st = this.state.get(family);
    return st ? fullLines(collectTable(renderApplied(st), st.cfg)) : [];
  }

  /** Nothing to make: the tables come with the first (full) sync. */
  async prepare(): Promise<void> {}

  close(): void {
    this.opts.writer?.close();
  }

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

/** The applied plans rendered again, one service at a time. */
function* renderApplied(st: FamilyState): Generator<ServiceNft> {
  for (const { plan, cfg } of st.applied.values()) {
    const r = renderService(plan, cfg);
    if (r) yield r;
  }
}

/** What the service maps and the hairpin set must hold, per map, in nft's spelling (`key` or
 *  `key : value`), re-rendered from the applied plans. */
function expectedElements(st: FamilyState): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const add = (map: string, text: string) => {
    let s = out.get(map);
    if (!s) out.set(map, (s = new Set()));
    s.add(text);
  };
  for (const r of renderApplied(st)) for (const e of r.elements) if (st.owners.get(e.path) === r.key) add(e.map, elementText(e));
  for (const ip of st.hairpin.keys()) add('hairpin', `${ip} . ${ip}`);
  return out;
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
