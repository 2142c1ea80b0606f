// What /proc says of a server process the DNS benchmark runs: its CPU time and memory.
import { readFileSync } from 'node:fs';

/** User + system CPU time of every thread of `pid`, in seconds. */
export function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The fields after the comm's closing parenthesis (a comm may hold spaces).
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks
}

/** Peak (VmHWM) or current (VmRSS) resident memory, in MB. */
export function rssMB(pid: number, which: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`${which}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}
