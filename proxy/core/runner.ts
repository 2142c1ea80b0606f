// The bounded-frequency runner: calls `fn` at most once per `minIntervalMs` (bursts of changes
// coalesce into one sync) and at least once per `maxIntervalMs` (the periodic resync), never two
// at a time. A failing run is retried with exponential backoff, from `retryMinMs` up to
// `maxIntervalMs`; a change arriving meanwhile still runs at the normal pace.
export interface RunnerOptions {
  minIntervalMs: number;
  maxIntervalMs: number;
  /** First retry delay after a failure (default: minIntervalMs, at least 100 ms). */
  retryMinMs?: number;
  onError?: (err: unknown, retryInMs: number) => void;
}

export class BoundedFrequencyRunner {
  private lastStart = -Infinity;
  private running = false;
  private requested = false;
  private stopped = false;
  private failures = 0;
  private retryAt = Infinity;
  private timer?: NodeJS.Timeout;
  private idle?: Promise<void>;

  constructor(private readonly fn: () => Promise<void>, private readonly opts: RunnerOptions) {}

  /** Asks for a run as soon as the minimum interval allows. */
  run(): void {
    if (this.stopped) return;
    this.requested = true;
    this.schedule();
  }

  /** The first run, at once. */
  start(): void {
    this.run();
  }

  /** Stops timers and waits for a run in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.idle;
  }

  get consecutiveFailures(): number {
    return this.failures;
  }

  private schedule(): void {
    if (this.stopped || this.running) return; // the running call reschedules when it ends
    const now = Date.now();
    let at: number;
    if (this.requested) at = Math.max(now, this.lastStart + this.opts.minIntervalMs);
    else at = Math.min(this.lastStart + this.opts.maxIntervalMs, this.retryAt);
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.fire(), Math.max(0, at - now));
  }

  private fire(): void {
    this.timer = undefined;
    if (this.stopped || this.running) return;
    this.running = true;
    this.requested = false;
    this.retryAt = Infinity;
    this.lastStart = Date.now();
    this.idle = this.fn().then(
      () => {
        this.failures = 0;
      },
      (err: unknown) => {
        this.failures++;
        const base = Math.max(100, this.opts.retryMinMs ?? this.opts.minIntervalMs);
        const delay = Math.min(this.opts.maxIntervalMs, base * 2 ** (this.failures - 1));
        this.retryAt = Date.now() + delay;
        this.opts.onError?.(err, delay);
      },
    ).finally(() => {
      this.running = false;
      this.schedule();
    });
  }
}
