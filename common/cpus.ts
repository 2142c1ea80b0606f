// How many CPUs this process may use: the CPUs its affinity allows (what `taskset` and a
// kubelet's static CPU manager set), lowered to its cgroup's CPU limit (a container's
// `resources.limits.cpu`: a quota of CPU time per period, rounded up to whole CPUs).
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

type Read = (path: string) => string | undefined;

const readOrUndefined: Read = (path) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

/** The cgroup's CPU limit in CPUs (v2 `cpu.max`, else v1's CFS quota), undefined when none. */
export function cgroupCpuLimit(read: Read = readOrUndefined): number | undefined {
  const v2 = read('/sys/fs/cgroup/cpu.max')?.trim().split(/\s+/);
  if (v2 && v2.length === 2) return v2[0] === 'max' ? undefined : perPeriod(Number(v2[0]), Number(v2[1]));
  for (const dir of ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpu,cpuacct']) {
    const quota = read(`${dir}/cpu.cfs_quota_us`);
    const period = read(`${dir}/cpu.cfs_period_us`);
    if (quota !== undefined && period !== undefined) return Number(quota) < 0 ? undefined : perPeriod(Number(quota), Number(period));
  }
  return undefined;
}

function perPeriod(quota: number, period: number): number | undefined {
  if (!(quota > 0) || !(period > 0)) return undefined;
  return Math.max(1, Math.ceil(quota / period));
}

export function usableCpus(read: Read = readOrUndefined, affinity: number = availableParallelism()): number {
  const limit = cgroupCpuLimit(read);
  return Math.max(1, limit === undefined ? affinity : Math.min(affinity, limit));
}
