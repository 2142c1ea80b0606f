// The network's lock: an abstract Unix socket bound by name. bind(2) on a name already bound fails
// with EADDRINUSE, so exactly one process holds it; the kernel unbinds it when the holder's last
// descriptor closes, and that happens however the holder dies (SIGKILL included). No file, no
// pid and no /proc are involved, so holders in other pid namespaces (Multus' thick plugin, a
// runtime in a container with its own /proc) are judged by the kernel, not by us. An earlier
// design named the holder by pid and start time in a file and stole the lock when /proc did not
// show that pid, which is wrong for any holder whose pid belongs to another namespace.
//
// The name is derived from the network directory's device and inode, not its path: a runtime in
// a container sees the host's /var/lib/cni/networks under another path (a hostPath mount), but
// the same inode. Abstract names live in a network namespace: every caller must run in the same
// one, which CNI guarantees in practice (a runtime runs its plugins in its own namespace, the
// host's; Multus' thick daemon runs with hostNetwork).
//
// Node's net.Server binds synchronously inside listen(): `listening` is true on return if the
// bind worked. That lets the plugin, which has nothing else to do, wait without an event loop.
// Node (libuv) binds an abstract name padded with NULs to the whole sun_path, so /proc/net/unix
// and ss show it followed by '@'s; every binder is Node, so the padded names still collide.
import { createServer, type Server } from 'node:net';
import { statSync } from 'node:fs';

export interface LockOptions {
  timeoutMs: number;
}

/** The abstract socket name (without the leading NUL) that locks directory `dir`. */
export function lockName(dir: string): string {
  const st = statSync(dir, { bigint: true });
  return `kube-dataplane-ipam/dev-${st.dev}/ino-${st.ino}`;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

export class LockTimeout extends Error {
  /** `timeoutMs`: the configured wait (what the message says; the time actually waited is at
   *  least that, and not worth a flaky message). */
  constructor(readonly lockName: string, readonly timeoutMs: number) {
    super(`lock @${lockName} is held by another process (ss -xlp | grep '${lockName}' names it); gave up after ${timeoutMs} ms`);
  }
}

/** Tries once; the server if the name was free. */
function tryBind(name: string): Server | undefined {
  const server = createServer();
  // A failed bind is reported only as an 'error' event on the next tick (without a listener it
  // would crash the process then), so a failure is known here only as "not listening". Abstract
  // names need no permission, which leaves EADDRINUSE as the cause in practice.
  server.on('error', () => {});
  server.listen({ path: `\0${name}`, exclusive: true });
  if (server.listening) {
    server.unref(); // holding the lock must not keep the process alive
    return server;
  }
  return undefined;
}

export class SocketLock {
  private server: Server | undefined;

  /** `dir` must exist: the lock's name comes from its inode. */
  constructor(readonly dir: string) {}

  get name(): string {
    return lockName(this.dir);
  }

  /** Blocks (synchronously: the plugin has nothing else to do) until the lock is ours. */
  acquire(opts: LockOptions): void {
    if (this.server) return;
    const name = this.name;
    const began = Date.now();
    let delay = 1;
    for (;;) {
      this.server = tryBind(name);
      if (this.server) return;
      const waited = Date.now() - began;
      if (waited >= opts.timeoutMs) throw new LockTimeout(name, opts.timeoutMs);
      // Jitter keeps a crowd of waiters from retrying in lockstep.
      sleepMs(Math.min(delay, opts.timeoutMs - waited) * (0.5 + Math.random()));
      delay = Math.min(delay * 2, 20);
    }
  }

  release(): void {
    this.server?.close();
    this.server = undefined;
  }
}
