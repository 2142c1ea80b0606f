// A cross-process lock that survives SIGKILL, with no helper process and no native code.
//
// The lock is a directory, `NAME/`, that holds exactly one file naming its holder:
// `pid-<pid>.start-<ticks>.boot-<id>`. To take it, a process builds `NAME.<pid>/` with its holder
// file inside and renames it onto `NAME`: rename(2) replaces a missing or EMPTY directory
// atomically and fails on a non-empty one, so exactly one contender wins. Release unlinks the
// holder file, leaving an empty (free) directory.
//
// A holder killed with SIGKILL leaves its file behind. Anyone may then unlink that file BY ITS
// NAME once /proc shows the holder is gone (or is a zombie, or the pid now belongs to a process
// started at another time, or the machine rebooted). Because the name carries the identity, a
// late second stealer's unlink hits nothing instead of the new holder's file: there is no
// check-then-remove race, which plain "pid in a lock file" schemes have.
//
// Callers must share one pid namespace (a CNI runtime on a host does).
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Holder {
  pid: number;
  start: string;
  boot: string;
}

export interface LockOptions {
  timeoutMs: number;
  /** Told once per stale holder removed (a holder that died with the lock). */
  onStale?: (holder: Holder) => void;
}

let bootId: string | undefined;

function readBootId(): string {
  if (bootId === undefined) {
    try {
      bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim().slice(0, 8);
    } catch {
      bootId = 'unknown';
    }
  }
  return bootId;
}

/** The process state letter and start time (clock ticks since boot) from /proc/PID/stat. */
function procStat(pid: number): { state: string; start: string } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: split after its last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0], start: rest[19] };
}

export function selfHolder(): Holder {
  return { pid: process.pid, start: procStat(process.pid)?.start ?? '0', boot: readBootId() };
}

export function holderName(h: Holder): string {
  return `pid-${h.pid}.start-${h.start}.boot-${h.boot}`;
}

export function parseHolderName(name: string): Holder | undefined {
  const m = /^pid-(\d+)\.start-(\d+)\.boot-([0-9a-z-]+)$/.exec(name);
  return m ? { pid: Number(m[1]), start: m[2], boot: m[3] } : undefined;
}

/** True when the holder can no longer release the lock itself. */
export function holderIsGone(h: Holder): boolean {
  if (h.boot !== readBootId()) return true;
  const st = procStat(h.pid);
  return st === undefined || st.state === 'Z' || st.state === 'X' || st.start !== h.start;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

export class LockTimeout extends Error {
  constructor(readonly path: string, readonly holder: string | undefined, readonly waitedMs: number) {
    super(`lock ${path} is held by ${holder ?? 'another process'}; gave up after ${waitedMs} ms`);
  }
}

export class DirLock {
  private readonly me = selfHolder();
  private readonly staging: string;
  private held = false;

  constructor(readonly path: string) {
    this.staging = `${path}.${process.pid}`;
  }

  get holderFile(): string {
    return join(this.path, holderName(this.me));
  }

  /** Blocks (synchronously: the plugin has nothing else to do) until the lock is ours. */
  acquire(opts: LockOptions): void {
    const began = Date.now();
    this.prepareStaging();
    let delay = 1;
    let lastHolder: string | undefined;
    for (;;) {
      try {
        renameSync(this.staging, this.path);
        this.held = true;
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') {
          this.removeStaging();
          throw err;
        }
      }
      let names: string[] = [];
      try {
        names = readdirSync(this.path);
      } catch {
        continue; // released and replaced between our rename and this look: try again at once
      }
      if (names.length === 0) continue;
      let stole = false;
      for (const name of names) {
        const h = parseHolderName(name);
        if (h && !holderIsGone(h)) {
          lastHolder = `pid ${h.pid}`;
          continue;
        }
        try {
          unlinkSync(join(this.path, name));
          stole = true;
          if (h) opts.onStale?.(h);
        } catch {
          /* another contender removed it first */
        }
      }
      if (stole) continue;
      const waited = Date.now() - began;
      if (waited >= opts.timeoutMs) {
        this.removeStaging();
        throw new LockTimeout(this.path, lastHolder, waited);
      }
      // Jitter keeps a crowd of waiters from retrying in lockstep.
      sleepMs(Math.min(delay, opts.timeoutMs - waited) * (0.5 + Math.random()));
      delay = Math.min(delay * 2, 20);
    }
  }

  release(): void {
    if (!this.held) return;
    this.held = false;
    try {
      unlinkSync(this.holderFile);
    } catch {
      /* a stealer judged us gone: nothing left to release */
    }
  }

  private prepareStaging(): void {
    // A dead process with our pid may have left its staging directory (and holder file).
    rmSync(this.staging, { recursive: true, force: true });
    mkdirSync(this.staging);
    writeFileSync(join(this.staging, holderName(this.me)), '');
  }

  private removeStaging(): void {
    rmSync(this.staging, { recursive: true, force: true });
  }
}

/** Staging directories `NAME.<pid>` left by contenders killed before they won (for GC). */
export function sweepStaging(dir: string, base: string): string[] {
  const removed: string[] = [];
  const prefix = `${base}.`;
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length));
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) continue;
    const st = procStat(pid);
    if (st && st.state !== 'Z' && st.state !== 'X') continue;
    rmSync(join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
