// The UDP session budget of one service. Every session holds a socket (a file descriptor) for
// as long as it lives (30 s idle), so without a bound a flood of datagrams from many source
// ports — spoofed or not — would exhaust the proxy's descriptors and stop every service. When a
// service is at its bound, datagrams that would start a new session are dropped, as the kernel
// drops new flows when its conntrack table is full; sessions already running keep working, so a
// flood cannot push out the clients being served.
export const DEFAULT_MAX_UDP_SESSIONS = 1_000;

export class SessionBudget {
  private used = 0;
  private warned = false;

  constructor(readonly max: number, private readonly onFull: () => void) {}

  get count(): number {
    return this.used;
  }

  /** Takes one session's share; false (and a warning once per episode) when none is left. */
  take(): boolean {
    if (this.used >= this.max) {
      if (!this.warned) {
        this.warned = true;
        this.onFull();
      }
      return false;
    }
    this.used++;
    return true;
  }

  release(): void {
    if (this.used > 0) this.used--;
    if (this.used < this.max) this.warned = false;
  }
}
