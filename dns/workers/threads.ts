// How many threads answer UDP: `--workers`, or by default one per CPU the process may use, at
// most DEFAULT_MAX_THREADS. More than one needs SO_REUSEPORT from node:dgram, which came in
// Node 22.12 (and 23.1): an older Node ignores the option, so a second socket on the address
// fails with EADDRINUSE, which reads as "another process holds the port".

/** The default's ceiling: a worker thread costs about 15 MB, so one per CPU of a large node
 *  would not fit the DNS container's memory limit, and four cores of DNS answer over 200k QPS,
 *  more than a node's pods ask. `--workers N` goes past it. */
export const DEFAULT_MAX_THREADS = 4;

/** Whether this Node's dgram sockets take `reusePort`. */
export function reusePortSupported(version: string = process.versions.node): boolean {
  const [major, minor] = version.split('.').map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

/**
 * The threads to run. `requested` is `--workers` (0: the default). Throws when more than one
 * is asked for on a Node that cannot share the port; the default is then one thread, with a
 * warning for the log.
 */
export function dnsThreads(requested: number, cpus: number, version: string = process.versions.node): { threads: number; warning?: string } {
  const wanted = requested > 0 ? requested : Math.min(cpus, DEFAULT_MAX_THREADS);
  if (wanted <= 1 || reusePortSupported(version)) return { threads: wanted };
  const why = `Node ${version} has no SO_REUSEPORT for UDP (it came in 22.12); the DaemonSet's image runs Node 24`;
  if (requested > 0) throw new Error(`--workers ${requested}: more than one thread needs a socket per thread on each address: ${why}`);
  return { threads: 1, warning: `one DNS thread: ${why}` };
}
