// Runs the stale-UDP-flow decision (conntrack.ts) against the kernel with the `conntrack` tool,
// as kube-proxy does it after every sync: per family one dump of the UDP entries, then every
// deletion in one `conntrack -R FILE` (a batch of -D lines), so a sync costs at most three
// processes whatever the number of stale entries. Families without a UDP service that has serving
// endpoints are not even dumped: nothing of theirs could be stale.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IPFamily, ObjectKey, ServiceEndpoints } from '../../cluster/types.js';
import type { Logger } from '../../common/log.js';
import { conntrackArgs, isEmpty, parseFlows, servingIndex, staleFilters, type FlowFilter } from './conntrack.js';
import type { ServicePlan } from './model.js';

export interface ToolRun {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ConntrackTool {
  run(args: readonly string[]): Promise<ToolRun>;
  /** `conntrack -R` of these lines. */
  load(lines: string): Promise<ToolRun>;
}

/**
 * The real tool. The batch goes through a file: `-R -` opens /dev/stdin, which fails on the
 * socket Node gives a child as stdin. The file lives in a private directory under the temp dir
 * (an emptyDir in the DaemonSet, whose root filesystem is read-only).
 */
export function conntrackTool(run: (cmd: string, args: readonly string[]) => Promise<ToolRun>, dir = tmpdir()): ConntrackTool {
  return {
    run: (args) => run('conntrack', args),
    load: async (lines) => {
      const tmp = mkdtempSync(join(dir, 'kube-dataplane-conntrack-'));
      try {
        writeFileSync(join(tmp, 'batch'), lines);
        return await run('conntrack', ['-R', join(tmp, 'batch')]);
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    },
  };
}

export interface CleanReport {
  /** Entries dumped, per family dumped. */
  listed: Partial<Record<IPFamily, number>>;
  filters: readonly FlowFilter[];
  /** Entries the kernel reported deleted. */
  deleted: number;
  failed: boolean;
}

export class StaleFlowCleaner {
  constructor(
    private readonly tool: ConntrackTool,
    private readonly families: readonly IPFamily[],
    private readonly log: Logger,
    private readonly count?: (result: 'ok' | 'error', n: number) => void,
  ) {}

  async clean(plans: Iterable<ServicePlan>, endpointsOf: (key: ObjectKey) => ServiceEndpoints | undefined): Promise<CleanReport> {
    const report: CleanReport = { listed: {}, filters: [], deleted: 0, failed: false };
    const all = [...plans];
    const filters: FlowFilter[] = [];
    for (const family of this.families) {
      const index = servingIndex(all, endpointsOf, family);
      if (isEmpty(index)) continue;
      const r = await this.tool.run(['-L', '-f', family === 'IPv4' ? 'ipv4' : 'ipv6', '-p', 'udp', '-o', 'extended']);
      if (r.code !== 0) {
        // kube-proxy logs and skips the clean-up for this sync; the next sync tries again.
        this.log.warn('cannot list conntrack entries; stale UDP flows stay until the next sync', { family, error: r.stderr.trim() });
        report.failed = true;
        continue;
      }
      const flows = parseFlows(r.stdout);
      report.listed[family] = flows.length;
      filters.push(...staleFilters(flows, index));
    }
    report.filters = filters;
    if (filters.length === 0) return report;
    const batch = filters.map((f) => conntrackArgs(f).join(' ')).join('\n') + '\n';
    const r = await this.tool.load(batch);
    if (r.code !== 0) {
      this.log.warn('cannot delete stale UDP flows', { filters: filters.length, error: r.stderr.trim() });
      this.count?.('error', filters.length);
      report.failed = true;
      return report;
    }
    // -R prints each deleted entry on stdout.
    report.deleted = r.stdout.split('\n').filter((l) => /\budp\b/.test(l)).length;
    this.count?.('ok', filters.length);
    this.log.debug('stale UDP flows deleted', { filters: filters.length, entries: report.deleted });
    return report;
  }
}
