// `nft monitor` in a test's namespace, in step with the test: `start` returns once the monitor is
// seen to print, and `settle` once everything committed before it has been printed. Both commit
// a marker table (made and deleted in one transaction) and wait for its line, which a fixed sleep
// could only hope for; `events` is the output without the markers.
import type { Namespace, Process } from './netns.js';

const MARKER = 'kdp-monitor-mark';

export class NftMonitor {
  private marks = 0;

  private constructor(private readonly ns: Namespace, readonly proc: Process) {}

  /** Starts `nft monitor ARGS` in `ns` and waits until it prints (a marker, sent until seen). */
  static async start(ns: Namespace, args: readonly string[] = [], label = 'nft monitor'): Promise<NftMonitor> {
    const m = new NftMonitor(ns, ns.spawn('nft', ['monitor', ...args], { label }));
    for (let i = 0; ; i++) {
      try {
        await m.mark(1_000);
        return m;
      } catch (err) {
        // Subscribing takes a moment; a marker committed before it is not printed.
        if (i >= 10) throw err;
      }
    }
  }

  /** Resolves once everything committed before this call has been printed. */
  async settle(): Promise<void> {
    await this.mark(10_000);
  }

  /** The monitor's lines, markers left out. */
  events(): string {
    return this.proc.stdout.split('\n').filter((l) => !l.includes(MARKER)).join('\n');
  }

  async stop(): Promise<void> {
    await this.proc.stop();
  }

  private async mark(timeoutMs: number): Promise<void> {
    const name = `${MARKER}-${++this.marks}`;
    await this.ns.exec('nft', ['add', 'table', 'ip', name, ';', 'delete', 'table', 'ip', name]);
    await this.proc.waitForOutput(new RegExp(`delete table ip ${name}\\b`), timeoutMs);
  }
}
