// The on-disk store, in host-local's own layout plus an index by attachment, one directory per
// network (`<dataDir>/<network>/`):
//
//   10.244.1.5, fd00::5      one file per held address, named by it, holding "containerID\r\nifname"
//                            (exactly what host-local writes); creating it with O_EXCL is the claim
//   last_reserved_ip.<set>   where the round-robin search of range set <set> resumes (host-local's)
//   attachments/<id>:<ifname>  JSON: the addresses that attachment holds, and since when
//   (no file for the lock: it is an abstract Unix socket named by this directory's inode, lock.ts)
//   README                   explains all this to a person
//
// No call scans the directory: ADD looks at candidates from the last reserved one (a stat each)
// and reads one index file, DEL and CHECK read one index file and the address files it names.
// Only GC and `kube-dataplane ipam list` read everything. Every change runs under the lock.
//
// The address files are the truth about who holds what; an index entry is believed only where
// the address file it names agrees. So a call killed at any instant can leave an address file no
// index lists (GC frees it) or an index entry for an address it never claimed (ignored), but
// never one address for two attachments.
import {
  closeSync,
  constants,
  existsSync,
  fsyncSync,
  ftruncateSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { attachmentKey, candidates, decide, sameAttachment, type Allocated, type Attachment, type LedgerView, type Owner } from './allocator.js';
import { cniError, ErrorCode } from './errors.js';
import { formatIP, ipString, parseIP, type IP } from '../common/ip-bigint.js';
import { LockTimeout, SocketLock } from './lock.js';
import type { RangeSet } from './range.js';

/** The lock directory of earlier versions (a pid-named holder file inside); GC removes it. */
export const LEGACY_LOCK_DIR = 'kube-dataplane-ipam.lock';
export const ATTACHMENTS_DIR = 'attachments';
export const README_FILE = 'README';
export const LAST_RESERVED_PREFIX = 'last_reserved_ip.';
/** The single JSON state file of earlier versions; converted to this layout on first use. */
export const LEGACY_STATE_FILE = 'kube-dataplane-ipam.json';
export const LEGACY_IMPORTED = 'kube-dataplane-ipam.json.imported';
export const DEFAULT_DATA_DIR = '/var/lib/cni/networks';
// Only the lock holder writes, so one fixed name serves every process; a holder killed mid-write
// leaves it for the next writer to overwrite (or GC to remove). No pid in the name: a pid means
// nothing to a caller in another pid namespace.
export const TMP_FILE = 'kube-dataplane-ipam.tmp';
const INDEX_STAGING = `${ATTACHMENTS_DIR}.tmp`;

export interface StoreOptions {
  lockTimeoutMs?: number;
  /** Log sink (stderr in the plugin: stdout carries the CNI result). */
  log?: (msg: string) => void;
  /**
   * Fault injection for the SIGKILL tests: stay this long inside the lock, between recording the
   * decision and claiming the addresses, so that a kill lands on a holder. Only the test build
   * of the plugin can set it (test-hooks.ts).
   */
  testHoldMs?: number;
}

/** One held address, as `list` and GC see it. */
export interface Allocation extends Owner {
  address: string;
  /** Whether the attachment's index lists it (false: left by a killed call, or by host-local). */
  indexed: boolean;
}

interface IndexEntry extends Attachment {
  addresses: string[];
  time: string;
}

/** "containerID\r\nifname" (host-local's format; its oldest versions wrote the ID alone). */
export function parseAddressFile(text: string): Attachment | undefined {
  const [id, ifname] = text.split(/\r?\n/);
  const containerID = (id ?? '').trim();
  if (!containerID) return undefined;
  return { containerID, ifname: (ifname ?? '').trim() || 'eth0' };
}

export function addressFileText(who: Attachment): string {
  return `${who.containerID}\r\n${who.ifname}`;
}

/** The index file name: a container ID has no ":", so the name is unambiguous. */
export function indexName(who: Attachment): string {
  return `${who.containerID}:${who.ifname}`;
}

function isAddressName(name: string): IP | null {
  // Cheap rejection first: the directory also holds the lock, the index and README.
  const c = name.charCodeAt(0);
  if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102) || c === 58)) return null;
  const ip = parseIP(name);
  return ip && ipString(ip) === name ? ip : null;
}

export class NetworkStore {
  readonly dir: string;
  readonly indexDir: string;

  constructor(readonly dataDir: string, readonly network: string, private readonly opts: StoreOptions = {}) {
    this.dir = join(dataDir, network);
    this.indexDir = join(this.dir, ATTACHMENTS_DIR);
  }

  // ---- the calls a pod pays for: a fixed number of file operations each ----

  /**
   * ADD: decides, records the decision in the attachment's index, then claims each new address
   * with an O_EXCL create. Index first means a DEL after a killed ADD finds what it claimed.
   */
  add(sets: readonly RangeSet[], who: Attachment, requested: readonly IP[], now: string): Allocated[] {
    return this.locked(() => {
      const view = this.view();
      const decided = decide(view, sets, who, requested);
      const held = view.heldBy(who);
      const addresses = decided.map((d) => ipString(d.ip));
      for (const a of held) if (!addresses.includes(a)) addresses.push(a); // a set no longer configured
      const fresh = decided.filter((d) => d.fresh);
      const unchanged = addresses.length === held.length && addresses.every((a) => held.includes(a));
      if (!unchanged) {
        const old = this.readIndex(who);
        this.writeIndex({ ...who, addresses, time: old && fresh.length < decided.length ? old.time : now });
      }
      if (this.opts.testHoldMs) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, this.opts.testHoldMs);
      const claimed: string[] = [];
      for (const d of fresh) {
        const text = ipString(d.ip);
        if (!this.claim(text, who)) {
          // Only a writer that ignores our lock (host-local run at the same time) gets here.
          for (const c of claimed) this.unlinkQuiet(join(this.dir, c));
          throw cniError(ErrorCode.tryAgainLater, `network "${this.network}": address ${text} was taken by a writer outside our lock (host-local?); try again`);
        }
        claimed.push(text);
      }
      for (const d of fresh) this.writeLastReserved(d.set.index, ipString(d.ip));
      return decided.map(({ set, range, ip }) => ({ set, range, ip }));
    });
  }

  /** DEL: frees what the attachment's index lists and its address files confirm. */
  del(who: Attachment): string[] {
    return this.locked(() => {
      const entry = this.readIndex(who);
      if (!entry) return [];
      const freed: string[] = [];
      for (const a of entry.addresses) {
        const owner = this.addressOwner(a);
        // Empty: our own claim, killed before it wrote the holder (no live call can be mid-claim:
        // we hold the lock).
        if (owner === null || (owner && sameAttachment(owner, who))) {
          this.unlinkQuiet(join(this.dir, a));
          if (owner) freed.push(a);
        }
      }
      this.unlinkQuiet(join(this.indexDir, indexName(who)));
      return freed;
    });
  }

  /** CHECK: the addresses the attachment holds (no lock: a whole answer, possibly a moment old). */
  held(who: Attachment): string[] {
    return this.view().heldBy(who);
  }

  /** STATUS: whether a set has a free address, looking from where ADD would (no scan). */
  hasFree(set: RangeSet): boolean {
    const view = this.view();
    for (const c of candidates(set, view.lastReserved(set.index))) {
      if (view.isFree(formatIP(set.family, c.value))) return true;
    }
    return false;
  }

  // ---- operator calls: these read the whole directory ----

  /** Every held address, by family and value. */
  list(): Allocation[] {
    this.ensureMigrated(false);
    return this.scan().allocations;
  }

  /**
   * Frees every address whose holder `keep` does not name (given every allocation), every address
   * file naming no holder, and every address an index-holding attachment does not list (a killed
   * ADD's); indexes the rest (host-local's files); drops stale index entries; removes what
   * killed calls left. Under the lock, so no call is half-way meanwhile.
   */
  gc(keep: (all: Allocation[]) => Attachment[], opts: { dryRun?: boolean } = {}): { freed: Allocation[]; removed: string[] } {
    const freed = this.locked(() => {
      const { allocations, index, empty } = this.scan();
      const kept = new Set(keep(allocations).map(attachmentKey));
      const out: Allocation[] = [];
      const holds = new Map<string, { who: Attachment; addresses: string[]; time: string }>();
      for (const a of allocations) {
        const key = attachmentKey(a);
        const listed = index.get(key);
        if (!kept.has(key) || (listed && !a.indexed)) {
          out.push(a);
          continue;
        }
        const h = holds.get(key) ?? { who: { containerID: a.containerID, ifname: a.ifname }, addresses: [], time: listed?.time ?? a.time };
        h.addresses.push(a.address);
        holds.set(key, h);
      }
      if (opts.dryRun) return { out, removed: [] };
      for (const a of out) this.unlinkQuiet(join(this.dir, a.address));
      for (const name of empty) this.unlinkQuiet(join(this.dir, name));
      for (const [key, entry] of index) {
        const h = holds.get(key);
        if (!h) this.unlinkQuiet(join(this.indexDir, indexName(entry)));
      }
      for (const [key, h] of holds) {
        const listed = index.get(key);
        const same = listed && listed.addresses.length === h.addresses.length && h.addresses.every((x) => listed.addresses.includes(x));
        if (!same) this.writeIndex({ ...h.who, addresses: listed ? listed.addresses.filter((x) => h.addresses.includes(x)) : h.addresses, time: h.time });
      }
      return { out, removed: this.sweep() };
    });
    return { freed: freed.out, removed: freed.removed };
  }

  /**
   * Removes what killed calls left: the temp file and index staging directory (no live call can
   * be writing them: we hold the lock), and what earlier versions left (pid-named temp files and
   * the old lock directory with its staging directories). Call only under the lock.
   */
  private sweep(): string[] {
    const removed: string[] = [];
    for (const name of readdirSync(this.dir)) {
      if (
        name === TMP_FILE ||
        name === INDEX_STAGING ||
        name === LEGACY_LOCK_DIR ||
        /^(?:kube-dataplane-ipam\.tmp-|attachments\.tmp-|kube-dataplane-ipam\.lock\.)\d+$/.test(name)
      ) {
        rmSync(join(this.dir, name), { recursive: true, force: true });
        removed.push(name);
      }
    }
    return removed;
  }

  // ---- reading ----

  /** The decision's view: each answer is one or two small file reads. */
  private view(): LedgerView {
    const last = new Map<number, string | undefined>();
    return {
      heldBy: (who) => {
        const entry = this.readIndex(who);
        if (!entry) return [];
        return entry.addresses.filter((a) => {
          const o = this.addressOwner(a);
          return o !== undefined && o !== null && sameAttachment(o, who);
        });
      },
      ownerOf: (address) => {
        const o = this.addressOwner(address);
        return o ? { ...o, time: '' } : undefined;
      },
      isFree: (address) => {
        try {
          lstatSync(join(this.dir, address));
          return false;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
          throw err;
        }
      },
      lastReserved: (i) => {
        if (!last.has(i)) {
          let v: string | undefined;
          try {
            v = readFileSync(join(this.dir, `${LAST_RESERVED_PREFIX}${i}`), 'utf8').trim();
          } catch {
            v = undefined;
          }
          last.set(i, v);
        }
        return last.get(i);
      },
    };
  }

  /** The holder an address file names; undefined when there is no file, null when it names none. */
  private addressOwner(address: string): Attachment | null | undefined {
    const text = readStateFile(join(this.dir, address));
    if (text === undefined) return undefined;
    return parseAddressFile(text) ?? null;
  }

  private readIndex(who: Attachment): IndexEntry | undefined {
    return this.readIndexFile(indexName(who));
  }

  /**
   * A damaged index entry (hand-edited, say) is treated as absent: addresses are only ever given
   * out by their own files, so this can leak (GC reclaims), never hand out twice.
   */
  private readIndexFile(name: string): IndexEntry | undefined {
    const text = readStateFile(join(this.indexDir, name));
    if (text === undefined) return undefined;
    try {
      const doc = JSON.parse(text) as Partial<IndexEntry>;
      if (typeof doc.containerID === 'string' && typeof doc.ifname === 'string' && Array.isArray(doc.addresses) && doc.addresses.every((a) => typeof a === 'string')) {
        return { containerID: doc.containerID, ifname: doc.ifname, addresses: doc.addresses, time: typeof doc.time === 'string' ? doc.time : '' };
      }
    } catch {
      /* below */
    }
    this.opts.log?.(`network "${this.network}": ignoring damaged index file ${join(this.indexDir, name)} (GC rebuilds it)`);
    return undefined;
  }

  /** Everything: address files (with their holders and index state) and index entries. */
  private scan(): { allocations: Allocation[]; index: Map<string, IndexEntry>; empty: string[] } {
    const index = new Map<string, IndexEntry>();
    let names: string[] = [];
    try {
      names = readdirSync(this.indexDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const name of names) {
      const e = this.readIndexFile(name);
      if (e) index.set(attachmentKey(e), e);
    }
    const allocations: (Allocation & { ip: IP })[] = [];
    const empty: string[] = [];
    try {
      names = readdirSync(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      names = [];
    }
    for (const name of names) {
      const ip = isAddressName(name);
      if (!ip) continue;
      const owner = this.addressOwner(name);
      if (owner === undefined) continue;
      if (owner === null) {
        empty.push(name);
        continue;
      }
      const entry = index.get(attachmentKey(owner));
      const indexed = !!entry?.addresses.includes(name);
      let time = indexed ? entry!.time : '';
      if (!time) {
        try {
          time = statSync(join(this.dir, name)).mtime.toISOString();
        } catch {
          time = '';
        }
      }
      allocations.push({ address: name, containerID: owner.containerID, ifname: owner.ifname, time, indexed, ip });
    }
    allocations.sort((a, b) => a.ip.family - b.ip.family || (a.ip.value < b.ip.value ? -1 : a.ip.value > b.ip.value ? 1 : 0));
    return { allocations: allocations.map(({ ip: _ip, ...a }) => a), index, empty };
  }

  // ---- writing ----

  /** Runs `fn` under the network's lock, after converting an older layout once. */
  private locked<T>(fn: () => T): T {
    mkdirSync(this.dir, { recursive: true });
    const lock = new SocketLock(this.dir);
    try {
      lock.acquire({ timeoutMs: this.opts.lockTimeoutMs ?? 30_000 });
    } catch (err) {
      if (err instanceof LockTimeout) {
        throw cniError(ErrorCode.tryAgainLater, `network "${this.network}": ${err.message}`);
      }
      throw cniError(ErrorCode.ioFailure, `network "${this.network}": cannot take the lock of ${this.dir}: ${(err as Error).message}`);
    }
    try {
      this.ensureMigrated(true);
      return fn();
    } finally {
      lock.release();
    }
  }

  /** O_EXCL create of the address file: exactly one caller can ever create it. */
  private claim(address: string, who: Attachment): boolean {
    let fd: number;
    try {
      fd = openSync(join(this.dir, address), 'wx', 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw cniError(ErrorCode.ioFailure, `cannot create ${join(this.dir, address)}: ${(err as Error).message}`);
    }
    try {
      writeSync(fd, addressFileText(who));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return true;
  }

  private writeIndex(e: IndexEntry): void {
    const doc = { containerID: e.containerID, ifname: e.ifname, addresses: e.addresses, time: e.time };
    this.writeFile(join(this.indexDir, indexName(e)), JSON.stringify(doc) + '\n');
  }

  /**
   * Write, fsync, rename: a reader sees the old file or the new one, never a part. The one temp
   * name is safe because only the lock holder writes; a holder that died leaves it behind. The
   * directory is not fsynced after the rename: only a power cut can lose a rename, and that kills
   * every pod of the node (the runtime re-adds them; GC frees what the older files still hold).
   */
  private writeFile(path: string, data: string): void {
    const tmp = join(this.dir, TMP_FILE);
    try {
      const fd = openSync(tmp, 'w', 0o644);
      try {
        writeSync(fd, data);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, path);
    } catch (err) {
      throw cniError(ErrorCode.ioFailure, `cannot write ${path}: ${(err as Error).message}`);
    }
  }

  /**
   * Overwritten in place (write at 0, truncate to length), not replaced: replacing a file costs
   * ~1.5 ms here (ext4 flushes on rename-over and on truncate-to-zero), this ~0.03 ms. It is only
   * where the next search starts: a torn or lost write makes the search start elsewhere, and an
   * address is only ever taken by creating its own file, so no outcome can hand one out twice.
   */
  private writeLastReserved(setIndex: number, address: string): void {
    const path = join(this.dir, `${LAST_RESERVED_PREFIX}${setIndex}`);
    try {
      const fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o644);
      try {
        const n = writeSync(fd, address, 0);
        ftruncateSync(fd, n);
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      throw cniError(ErrorCode.ioFailure, `cannot write ${path}: ${(err as Error).message}`);
    }
  }

  private unlinkQuiet(path: string): void {
    try {
      unlinkSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw cniError(ErrorCode.ioFailure, `cannot remove ${path}: ${(err as Error).message}`);
    }
  }

  // ---- first use: index host-local's files, convert our older JSON state ----

  /**
   * A network directory without `attachments/` is new, or host-local's, or our older JSON
   * layout's. Its address files stay as they are; what is missing is the index, built here once
   * (one scan) in a staging directory that is renamed into place when complete, so a kill
   * midway leaves nothing half-built. Without the lock (list), it only reports a legacy file.
   */
  private ensureMigrated(haveLock: boolean): void {
    if (existsSync(this.indexDir)) return;
    if (!haveLock) {
      if (existsSync(join(this.dir, LEGACY_STATE_FILE))) this.readLegacy(); // damaged → code 5
      return;
    }
    const legacy = existsSync(join(this.dir, LEGACY_STATE_FILE)) ? this.readLegacy() : undefined;
    const staging = join(this.dir, INDEX_STAGING);
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging);
    const times = new Map<string, string>();
    if (legacy) {
      for (const [address, o] of legacy.allocations) {
        times.set(address, o.time);
        if (!this.claim(address, o)) {
          const now = this.addressOwner(address);
          if (!now || !sameAttachment(now, o)) {
            this.opts.log?.(`network "${this.network}": ${address} of ${o.containerID}/${o.ifname} in ${LEGACY_STATE_FILE} has a file naming another holder; kept the file`);
          }
        }
      }
      for (const [i, a] of legacy.lastReserved) this.writeLastReserved(i, a);
    }
    const groups = new Map<string, IndexEntry>();
    for (const name of readdirSync(this.dir)) {
      if (!isAddressName(name)) continue;
      const owner = this.addressOwner(name);
      if (!owner) continue;
      const key = attachmentKey(owner);
      const g = groups.get(key) ?? { ...owner, addresses: [], time: times.get(name) ?? statSync(join(this.dir, name)).mtime.toISOString() };
      g.addresses.push(name);
      groups.set(key, g);
    }
    for (const g of groups.values()) {
      this.writeFile(join(staging, indexName(g)), JSON.stringify({ containerID: g.containerID, ifname: g.ifname, addresses: g.addresses, time: g.time }) + '\n');
    }
    this.writeFile(join(this.dir, README_FILE), readmeText(this.network));
    renameSync(staging, this.indexDir);
    if (legacy) renameSync(join(this.dir, LEGACY_STATE_FILE), join(this.dir, LEGACY_IMPORTED));
    if (groups.size > 0 || legacy) {
      this.opts.log?.(`network "${this.network}": indexed ${groups.size} attachments${legacy ? ` (converted ${LEGACY_STATE_FILE}, kept as ${LEGACY_IMPORTED})` : ' from address files already here (host-local\'s)'}`);
    }
  }

  private readLegacy(): { allocations: Map<string, Owner>; lastReserved: Map<number, string> } {
    const path = join(this.dir, LEGACY_STATE_FILE);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw cniError(ErrorCode.ioFailure, `cannot read ${path}: ${(err as Error).message}`);
    }
    return decodeLegacyState(text, path);
  }
}

/** A state file's text; undefined when it does not exist, an I/O failure for anything else. */
function readStateFile(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw cniError(ErrorCode.ioFailure, `cannot read ${path}: ${(err as Error).message}`);
  }
}

export function readmeText(network: string): string {
  return `Pod addresses of CNI network "${network}", handed out by kube-dataplane-ipam.

The layout is host-local's, plus an index by attachment:

  10.244.1.5, fd00:10:244:1::5, ...
      One file per address in use, named by the address, holding the attachment that has it:
      "<containerID>\\r\\n<ifname>" (host-local writes the same). The file existing is the
      allocation: it is created with O_EXCL, so no two callers can ever create the same one.
  last_reserved_ip.<N>
      The address last handed out from range set N; the next search starts after it, so freed
      addresses are reused only after the rest of the range (round-robin).
  attachments/<containerID>:<ifname>
      JSON: {"containerID", "ifname", "addresses", "time"}: what an attachment holds, so that
      DEL, CHECK and a repeated ADD read one file instead of every file here. It is a hint: an
      address counts as held only if its own file names the same attachment.
  kube-dataplane-ipam.tmp, attachments.tmp/
      A file (an index) being written, then renamed into place; left only by a killed call.

Every change (ADD, DEL, GC) holds the lock: an abstract Unix socket, not a file here, named
kube-dataplane-ipam/dev-<device>/ino-<inode of this directory> ("ss -xlp | grep kube-dataplane-ipam"
shows who holds it). The kernel frees it when its holder dies, in whatever pid namespace. A call killed midway can leave an address file that
no index lists, or an index entry for an address never claimed; "kube-dataplane ipam gc" and CNI
GC reclaim those. Do not run host-local on this directory at the same time as kube-dataplane-ipam
(they lock differently). Switching between them needs no conversion: host-local reads and writes
the address files as they are; after switching back, delete attachments/ (under no load) and the
next call rebuilds it from the address files.

To see or free addresses: kube-dataplane ipam list --network ${network} --data-dir <dir>;
kube-dataplane ipam gc ... (or CNI DEL). Do not edit these files by hand.
`;
}

/** The single JSON state of earlier versions (read once, to convert it). */
export function decodeLegacyState(text: string, path: string): { allocations: Map<string, Owner>; lastReserved: Map<number, string> } {
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
  const out = { allocations: new Map<string, Owner>(), lastReserved: new Map<number, string>() };
  for (const [addr, o] of Object.entries(allocations as Record<string, Partial<Owner>>)) {
    const ip = parseIP(addr);
    if (!ip || !o || typeof o.containerID !== 'string' || typeof o.ifname !== 'string') {
      throw damaged(`allocation ${addr} has no containerID/ifname`);
    }
    out.allocations.set(ipString(ip), { containerID: o.containerID, ifname: o.ifname, time: typeof o.time === 'string' ? o.time : '' });
  }
  if (lastReserved && typeof lastReserved === 'object') {
    for (const [k, v] of Object.entries(lastReserved as Record<string, unknown>)) {
      if (typeof v === 'string' && /^\d+$/.test(k)) out.lastReserved.set(Number(k), v);
    }
  }
  return out;
}
