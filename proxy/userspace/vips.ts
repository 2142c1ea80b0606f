// The interface holding the service addresses the listeners bind: created if missing (a dummy,
// or an ifb where the kernel has no dummy driver: both carry addresses and send nothing), kept
// up, addresses as /32 or /128 (IPv6 without duplicate address detection, so they can be bound
// at once). `ip` runs as a child process with argument arrays; batches go through `ip -batch -`.
import type { Logger } from '../../common/log.js';
import { runTool } from '../../common/process.js';

export const VIP_INTERFACE = 'kdp-vips0';

export type Ip = (args: readonly string[], input?: string) => Promise<{ code: number; stdout: string; stderr: string }>;

const ip: Ip = (args, input) => runTool('ip', args, input, 30_000);

export class VipInterface {
  constructor(private readonly log: Logger, readonly name: string = VIP_INTERFACE, private readonly run: Ip = ip) {}

  /** Creates the interface if missing and brings it up; resolves with its addresses. */
  async ensure(): Promise<Set<string>> {
    let addrs = await this.addresses();
    if (!addrs) {
      let kind = 'dummy';
      let r = await this.run(['link', 'add', this.name, 'type', 'dummy']);
      if (r.code !== 0 && /Unknown device type|not supported/i.test(r.stderr)) {
        kind = 'ifb';
        r = await this.run(['link', 'add', this.name, 'type', 'ifb']);
      }
      if (r.code !== 0 && !/File exists/.test(r.stderr)) throw new Error(`cannot create the VIP interface ${this.name}: ip link add exited ${r.code}: ${r.stderr.trim()}`);
      // No link-local address: nothing is meant to talk on this link.
      await this.run(['link', 'set', this.name, 'addrgenmode', 'none']);
      this.log.info('VIP interface created', { interface: this.name, kind });
      addrs = new Set();
    }
    const up = await this.run(['link', 'set', this.name, 'up']);
    if (up.code !== 0) throw new Error(`cannot bring ${this.name} up: ${up.stderr.trim()}`);
    return addrs;
  }

  /** The addresses on the interface, or undefined when it does not exist. */
  async addresses(): Promise<Set<string> | undefined> {
    const r = await this.run(['-j', 'addr', 'show', 'dev', this.name]);
    if (r.code !== 0) {
      if (/does not exist|Cannot find device/i.test(r.stderr)) return undefined;
      throw new Error(`ip addr show dev ${this.name} exited ${r.code}: ${r.stderr.trim()}`);
    }
    const out = new Set<string>();
    const links = JSON.parse(r.stdout || '[]') as { addr_info?: { local?: string; scope?: string }[] }[];
    for (const l of links) for (const a of l.addr_info ?? []) if (a.local && a.scope !== 'link') out.add(a.local);
    return out;
  }

  /** Adds and removes addresses in one `ip -batch`; resolves with the ones that failed. */
  async change(add: readonly string[], remove: readonly string[]): Promise<{ address: string; op: 'add' | 'del'; error: string }[]> {
    const ops: { address: string; op: 'add' | 'del' }[] = [...remove.map((a) => ({ address: a, op: 'del' as const })), ...add.map((a) => ({ address: a, op: 'add' as const }))];
    if (ops.length === 0) return [];
    const lines = ops.map(({ address, op }) => {
      const v6 = address.includes(':');
      return `addr ${op} ${address}/${v6 ? 128 : 32} dev ${this.name}${v6 && op === 'add' ? ' nodad' : ''}`;
    });
    const r = await this.run(['-force', '-batch', '-'], lines.join('\n') + '\n');
    if (r.code === 0) return [];
    // `ip -force -batch` goes on after a failing line and names it: "Command failed -:N".
    const failed: { address: string; op: 'add' | 'del'; error: string }[] = [];
    const errs = r.stderr.split('\n');
    for (let i = 0; i < errs.length; i++) {
      const m = /Command failed -:(\d+)/.exec(errs[i]);
      if (!m) continue;
      const op = ops[Number(m[1]) - 1];
      if (op) failed.push({ ...op, error: (errs[i - 1] ?? '').trim() });
    }
    if (failed.length === 0) failed.push(...ops.map((o) => ({ ...o, error: r.stderr.trim() })));
    return failed;
  }

  /** Deletes the interface (and so every address on it); true if it existed. */
  async remove(): Promise<boolean> {
    const r = await this.run(['link', 'del', this.name]);
    if (r.code === 0) return true;
    if (/does not exist|Cannot find device/i.test(r.stderr)) return false;
    throw new Error(`ip link del ${this.name} exited ${r.code}: ${r.stderr.trim()}`);
  }
}
