// The on-disk store: one JSON file per network, `<dataDir>/<network>/kube-dataplane-ipam.json`,
// replaced atomically (write a temp file, fsync, rename) while holding the lock
// `kube-dataplane-ipam.lock/` beside it. A reader without the lock always sees a whole version.
// A call reads one file and (for changes) writes one: no directory scan, no file per address, so
// the number of file operations does not grow with the allocations (the file grows ~120 bytes
// per address, which costs microseconds to parse).
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { emptyState, type AllocationState, type Owner } from './allocator.js';
import { cniError, ErrorCode } from './errors.js';
import { ipString, parseIP } from './ip.js';
import { DirLock, LockTimeout, sweepStaging, type Holder } from './lock.js';

export const STATE_FILE = 'kube-dataplane-ipam.json';
export const LOCK_DIR = 'kube-dataplane-ipam.lock';
export const IMPORTED_DIR = 'host-local-imported';
export const DEFAULT_DATA_DIR = '/var/lib/cni/networks';

export interface StoreOptions {
  lockTimeoutMs?: number;
  /** Log sink (stderr in the plugin: stdout carries the CNI result). */
  log?: (msg: string) => void;
  /**
   * Fault injection for the SIGKILL tests: stay this long inside the lock, between deciding and
   * writing, so that a kill lands on a holder. Never set in production.
   */
  testHoldMs?: number;
}

interface Loaded {
  state: AllocationState;
  /** host-local files read because no state file existed yet (moved aside after the first write). */
  imported: string[];
}

export class NetworkStore {
  readonly dir: string;
  readonly statePath: string;

  constructor(readonly dataDir: string, readonly network: string, private readonly opts: StoreOptions = {}) {
    this.dir = join(dataDir, network);
    this.statePath = join(this.dir, STATE_FILE);
  }

  /** The current state without taking the lock (a whole version, possibly a moment old). */
  read(): AllocationState {
    return this.load().state;
  }

  /**
   * Runs `fn` on the current state under the lock and persists it if `fn` says it changed. If
   * `fn` throws, nothing is written: a failed ADD leaves no half allocation behind.
   */
  update<T>(fn: (state: AllocationState) => { result: T; changed: boolean }): T {
    mkdirSync(this.dir, { recursive: true });
    const lock = new DirLock(join(this.dir, LOCK_DIR));
    try {
      lock.acquire({
        timeoutMs: this.opts.lockTimeoutMs ?? 30_000,
        onStale: (h) => this.cleanAfterDeadHolder(h),
      });
    } catch (err) {
      if (err instanceof LockTimeout) {
        throw cniError(ErrorCode.tryAgainLater, `network "${this.network}": ${err.message}`);
      }
      throw cniError(ErrorCode.ioFailure, `network "${this.network}": cannot take lock ${lock.path}: ${(err as Error).message}`);
    }
    try {
      const { state, imported } = this.load();
      const { result, changed } = fn(state);
      if (this.opts.testHoldMs) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, this.opts.testHoldMs);
      if (changed || imported.length > 0) this.write(state);
      if (imported.length > 0) this.moveImported(imported);
      return result;
    } finally {
      lock.release();
    }
  }

  /** Removes what killed processes left: staging lock directories and temp state files. */
  sweep(): string[] {
    let removed: string[] = [];
    try {
      removed = sweepStaging(this.dir, LOCK_DIR);
      for (const name of readdirSync(this.dir)) {
        const m = /^kube-dataplane-ipam\.json\.tmp-(\d+)$/.exec(name);
        if (m && !pidExists(Number(m[1]))) {
          unlinkSync(join(this.dir, name));
          removed.push(name);
        }
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    return removed;
  }

  private cleanAfterDeadHolder(h: Holder): void {
    this.opts.log?.(`network "${this.network}": took over lock left by dead pid ${h.pid}`);
    try {
      unlinkSync(join(this.dir, `${STATE_FILE}.tmp-${h.pid}`));
    } catch {
      /* it died before writing one */
    }
  }

  private load(): Loaded {
    let text: string;
    try {
      text = readFileSync(this.statePath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return this.importHostLocal();
      throw cniError(ErrorCode.ioFailure, `cannot read ${this.statePath}: ${(err as Error).message}`);
    }
    return { state: decodeState(text, this.statePath), imported: [] };
  }

  private write(state: AllocationState): void {
    const tmp = `${this.statePath}.tmp-${process.pid}`;
    const data = encodeState(this.network, state, new Date().toISOString());
    try {
      const fd = openSync(tmp, 'w', 0o644);
      try {
        writeSync(fd, data);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      // No fsync of the directory after the rename (it costs as much again): the rename can only
      // be lost with a power cut, which kills every pod of the node; the runtime then re-adds
      // them all, and GC frees what the older state still holds. The fsync above is what keeps
      // a crash from leaving an empty or partial file behind the new name.
      renameSync(tmp, this.statePath);
    } catch (err) {
      throw cniError(ErrorCode.ioFailure, `cannot write ${this.statePath}: ${(err as Error).message}`);
    }
  }

  /**
   * A node moving from host-local keeps its pods' addresses: host-local's files (one per address,
   * holding "containerID\r\nifname", plus last_reserved_ip.N) become our first state.
   */
  private importHostLocal(): Loaded {
    const state = emptyState();
    const imported: string[] = [];
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return { state, imported };
    }
    for (const name of names) {
      const last = /^last_reserved_ip\.(\d+)$/.exec(name);
      const ip = last ? null : parseIP(name);
      if (!last && !ip) continue;
      let content: string;
      try {
        content = readFileSync(join(this.dir, name), 'utf8');
      } catch {
        continue;
      }
      if (last) {
        const lastIP = parseIP(content.trim());
        if (lastIP) state.lastReserved.set(Number(last[1]), ipString(lastIP));
      } else if (ip) {
        const [containerID, ifname] = content.split(/\r?\n/);
        if (!containerID) continue;
        // Old host-local versions wrote the container ID only; runtimes default to eth0.
        state.allocations.set(ipString(ip), { containerID: containerID.trim(), ifname: (ifname ?? '').trim() || 'eth0', time: 'imported from host-local' });
      }
      imported.push(name);
    }
    return { state, imported };
  }

  private moveImported(names: string[]): void {
    const to = join(this.dir, IMPORTED_DIR);
    mkdirSync(to, { recursive: true });
    for (const n of names) {
      try {
        renameSync(join(this.dir, n), join(to, n));
      } catch {
        /* already moved */
      }
    }
    this.opts.log?.(`network "${this.network}": imported ${names.length} host-local files, moved to ${to}`);
  }
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const ABOUT =
  'Pod addresses handed out by the CNI IPAM plugin kube-dataplane-ipam for this network: ' +
  'address -> the attachment (container ID, interface name) holding it, and when it was given. ' +
  'Each ADD/DEL/GC replaces this file atomically (write, fsync, rename) while holding the lock ' +
  'directory kube-dataplane-ipam.lock/ (its one file names the holding pid). lastReserved is where ' +
  'the round-robin search of each range set resumes. To free an address by hand, use ' +
  '`kube-dataplane ipam gc` or CNI DEL rather than editing this file.';

/** One allocation per line, so a person (or grep) can read it; still plain JSON. */
export function encodeState(network: string, state: AllocationState, updated: string): string {
  const last: Record<string, string> = {};
  for (const [k, v] of state.lastReserved) last[String(k)] = v;
  let out = `{\n  "about": ${JSON.stringify(ABOUT)},\n  "network": ${JSON.stringify(network)},\n  "updated": ${JSON.stringify(updated)},\n`;
  out += `  "count": ${state.allocations.size},\n  "lastReserved": ${JSON.stringify(last)},\n  "allocations": {`;
  let first = true;
  for (const [addr, o] of state.allocations) {
    out += `${first ? '' : ','}\n    ${JSON.stringify(addr)}: {"containerID": ${JSON.stringify(o.containerID)}, "ifname": ${JSON.stringify(o.ifname)}, "time": ${JSON.stringify(o.time)}}`;
    first = false;
  }
  out += first ? '}\n}\n' : '\n  }\n}\n';
  return out;
}

export function decodeState(text: string, path: string): AllocationState {
  const damaged = (why: string) =>
    cniError(ErrorCode.ioFailure, `state file ${path} is damaged (${why}); refusing to use it, so that no address in use is handed out again; repair it, or remove it once no pod of this network holds an address`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw damaged((err as Error).message);
  }
  if (!doc || typeof doc !== 'object') throw damaged('not a JSON object');
  const { allocations, lastReserved } = doc as { allocations?: unknown; lastReserved?: unknown };
  if (!allocations || typeof allocations !== 'object') throw damaged('"allocations" is not an object');
  const state = emptyState();
  for (const [addr, o] of Object.entries(allocations as Record<string, Partial<Owner>>)) {
    if (!o || typeof o.containerID !== 'string' || typeof o.ifname !== 'string') {
      throw damaged(`allocation ${addr} has no containerID/ifname`);
    }
    state.allocations.set(addr, { containerID: o.containerID, ifname: o.ifname, time: typeof o.time === 'string' ? o.time : '' });
  }
  if (lastReserved && typeof lastReserved === 'object') {
    for (const [k, v] of Object.entries(lastReserved as Record<string, unknown>)) {
      if (typeof v === 'string' && /^\d+$/.test(k)) state.lastReserved.set(Number(k), v);
    }
  }
  return state;
}
