// The namespace harness: builds small topologies of network namespaces (a node, pods, clients)
// linked by veth pairs and bridges, runs processes inside them, and always deletes what it made.
//
// Nothing here touches the root network namespace: links are created inside a namespace with
// `ip -n NS link add … peer … netns OTHER`, so no interface ever appears in the root one, and
// every command runs through `ip netns exec`. Names carry the test process's pid, so parallel
// test files never collide and a later run can reap what a killed run left behind.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';

const PREFIX = 'kdp';
let counter = 0;
const live = new Set<Topology>();

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  timeoutMs?: number;
  input?: string;
  env?: NodeJS.ProcessEnv;
  /** Resolve with a non-zero code instead of rejecting. */
  allowFailure?: boolean;
}

/** Runs a program (no shell) and collects its output; rejects on a non-zero exit unless told. */
export function run(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { timeout: opts.timeoutMs ?? 30_000, env: opts.env ?? process.env, maxBuffer: 64 << 20, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        const res = { code, stdout: String(stdout), stderr: String(stderr) };
        if (err && !opts.allowFailure) {
          const why = err.killed ? `killed after ${opts.timeoutMs ?? 30_000} ms` : `exit ${code}`;
          reject(new Error(`${cmd} ${args.join(' ')}: ${why}: ${res.stderr.trim() || res.stdout.trim()}`));
        } else resolve(res);
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Whether a process exists (EPERM: it does, someone else's). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function listNamespaces(): string[] {
  const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return out.split('\n').map((l) => l.split(' ')[0]).filter(Boolean);
}

/** Deletes namespaces left by test processes that no longer exist (a SIGKILLed run). */
export function reapOrphans(): void {
  for (const name of listNamespaces()) {
    const m = new RegExp(`^${PREFIX}(\\d+)x`).exec(name);
    if (m && !pidAlive(Number(m[1]))) deleteNamespaceSync(name);
  }
}

function deleteNamespaceSync(name: string): void {
  try {
    execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .forEach((pid) => {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* already gone */
        }
      });
  } catch {
    /* namespace already gone */
  }
  try {
    execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
  } catch {
    /* already gone */
  }
  rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
}

// A test process that exits (normally, or after an uncaught error) still cleans up.
process.once('exit', () => {
  for (const t of live) t.destroySync();
});

export class Process {
  stdout = '';
  stderr = '';
  exitCode: number | null = null;
  readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess, readonly label: string) {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? 128 : null);
        resolve(this.exitCode);
      }),
    );
  }

  get running(): boolean {
    return this.exitCode === null;
  }

  /** Resolves once `pattern` appears in stdout or stderr; rejects on exit or timeout. */
  waitForOutput(pattern: RegExp | string, timeoutMs = 10_000): Promise<void> {
    const test = () => {
      const all = this.stdout + this.stderr;
      return typeof pattern === 'string' ? all.includes(pattern) : pattern.test(all);
    };
    return new Promise((resolve, reject) => {
      const check = () => {
        if (test()) return done(resolve);
        if (!this.running) return done(() => reject(new Error(`${this.label} exited (${this.exitCode}) before printing ${pattern}:\n${this.stderr}${this.stdout}`)));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`${this.label}: no ${pattern} after ${timeoutMs} ms:\n${this.stderr}${this.stdout}`))), timeoutMs);
      const done = (fn: () => void) => {
        clearTimeout(timer);
        this.child.stdout?.off('data', check);
        this.child.stderr?.off('data', check);
        this.child.off('exit', check);
        fn();
      };
      this.child.stdout?.on('data', check);
      this.child.stderr?.on('data', check);
      this.child.on('exit', check);
      check();
    });
  }

  /** SIGTERM, then SIGKILL after `graceMs`, to the whole process group. */
  async stop(graceMs = 3_000): Promise<number | null> {
    if (!this.running) return this.exitCode;
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  signal(sig: NodeJS.Signals): void {
    try {
      process.kill(-this.child.pid!, sig);
    } catch {
      /* already gone */
    }
  }
}

export class Namespace {
  constructor(readonly topology: Topology, readonly name: string) {}

  /** Runs a program inside this namespace and collects its output. */
  exec(cmd: string, args: readonly string[] = [], opts?: ExecOptions): Promise<ExecResult> {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args], opts);
  }

  /** `ip -n NS …` */
  ip(...args: string[]): Promise<ExecResult> {
    return run('ip', ['-n', this.name, ...args]);
  }

  /** Starts a long-running program inside this namespace; stopped by `topology.destroy()`. */
  spawn(cmd: string, args: readonly string[] = [], opts: { env?: NodeJS.ProcessEnv; label?: string } = {}): Process {
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], {
      env: opts.env ?? process.env,
      detached: true, // its own process group, so stop() reaches its children too
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const p = new Process(child, opts.label ?? `${cmd}@${this.name}`);
    this.topology.processes.add(p);
    return p;
  }

  /** Adds addresses (CIDR notation) to a link, brings it up. */
  async addAddresses(ifname: string, cidrs: readonly string[]): Promise<void> {
    for (const cidr of cidrs) {
      // nodad: IPv6 addresses are usable at once instead of after duplicate detection.
      const extra = cidr.includes(':') ? ['nodad'] : [];
      await this.ip('addr', 'add', cidr, 'dev', ifname, ...extra);
    }
    await this.ip('link', 'set', ifname, 'up');
  }

  async addRoute(...spec: string[]): Promise<void> {
    await this.ip(spec.some((s) => s.includes(':')) ? '-6' : '-4', 'route', 'add', ...spec);
  }

  /** Writes /etc/netns/<name>/resolv.conf, which `ip netns exec` mounts over /etc/resolv.conf. */
  writeResolvConf(content: string): void {
    mkdirSync(`/etc/netns/${this.name}`, { recursive: true });
    writeFileSync(`/etc/netns/${this.name}/resolv.conf`, content);
  }

  async sysctl(key: string, value: string | number): Promise<void> {
    await this.exec('sysctl', ['-qw', `${key}=${value}`]);
  }
}

export interface LinkEnd {
  ns: Namespace;
  ifname: string;
  addresses?: readonly string[];
}

/** A set of namespaces and processes that live and die together. */
export class Topology {
  readonly id: string;
  readonly namespaces: Namespace[] = [];
  readonly processes = new Set<Process>();
  private destroyed = false;

  constructor() {
    this.id = `${PREFIX}${process.pid}x${(counter++).toString(36)}`;
    live.add(this);
  }

  static async create(): Promise<Topology> {
    reapOrphans();
    return new Topology();
  }

  /** A new namespace named `<id>-<name>`, with loopback up and forwarding on. */
  async namespace(name: string): Promise<Namespace> {
    const ns = new Namespace(this, `${this.id}-${name}`);
    await run('ip', ['netns', 'add', ns.name]);
    this.namespaces.push(ns);
    await ns.ip('link', 'set', 'lo', 'up');
    // No duplicate address detection on the links made here, link-local addresses included: a
    // bridge's link-local address still tentative when a test starts cost its first IPv6
    // connection ~2 s (a client's timeout), and the namespaces are private, so nothing duplicates.
    await ns.sysctl('net.ipv6.conf.all.accept_dad', 0);
    await ns.sysctl('net.ipv6.conf.default.accept_dad', 0);
    return ns;
  }

  /** A veth pair between two namespaces (or within one), both ends up with their addresses. */
  async veth(a: LinkEnd, b: LinkEnd): Promise<void> {
    await a.ns.ip('link', 'add', a.ifname, 'type', 'veth', 'peer', 'name', b.ifname, 'netns', b.ns.name);
    await a.ns.addAddresses(a.ifname, a.addresses ?? []);
    await b.ns.addAddresses(b.ifname, b.addresses ?? []);
  }

  /** A bridge inside `ns`, up, with its own addresses (the pods' gateway). */
  async bridge(ns: Namespace, name: string, addresses: readonly string[] = []): Promise<void> {
    await ns.ip('link', 'add', name, 'type', 'bridge');
    await ns.addAddresses(name, addresses);
  }

  /** A veth from `pod` (as `podIf`) to a port `hostIf` on the bridge `bridge` in `host`. */
  async plugIntoBridge(pod: LinkEnd, host: Namespace, hostIf: string, bridge: string): Promise<void> {
    await this.veth(pod, { ns: host, ifname: hostIf });
    await host.ip('link', 'set', hostIf, 'master', bridge);
  }

  /** Deletes one namespace of this topology now, killing what still runs in it. */
  deleteNamespace(ns: Namespace): void {
    const i = this.namespaces.indexOf(ns);
    if (i >= 0) this.namespaces.splice(i, 1);
    deleteNamespaceSync(ns.name);
  }

  /** Stops every process (TERM, then KILL) and deletes every namespace, whatever happened. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    await Promise.all([...this.processes].map((p) => p.stop(2_000)));
    this.destroySync();
  }

  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const p of this.processes) p.signal('SIGKILL');
    for (const ns of this.namespaces) deleteNamespaceSync(ns.name);
    live.delete(this);
  }
}
