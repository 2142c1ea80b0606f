// The node-local DNS address: NodeLocal DNSCache's design. Our default listen address is the
// link-local 169.254.20.10, which no node has by itself, so we put it on an interface of our
// own (`--listen-interface`, default kdp-dns0), as NodeLocal DNSCache puts its `-localip` on
// its `nodelocaldns` dummy interface. A link-local address is never routed off the node, so a
// resolver there serves the node's pods (through their route to the node) and nobody beyond
// it. Only IPv4 link-local listen addresses are added this way: any other address must already
// be the node's, or the listener fails with a clear error. The interface is left in place when
// we stop, so a restart or a rolling update finds it ready.
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Logger } from '../common/log.js';
import { runTool } from '../common/process.js';

export const DEFAULT_INTERFACE = 'kdp-dns0';

export type Ip = (args: readonly string[]) => Promise<{ code: number; stdout: string; stderr: string }>;

const ip: Ip = (args) => runTool('ip', args, undefined, 30_000);

export function isLinkLocal4(host: string): boolean {
  return net.isIPv4(host) && host.startsWith('169.254.');
}

function localAddresses(): Set<string> {
  return new Set(Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((a) => a.address)));
}

/**
 * Adds the IPv4 link-local hosts among `hosts` that no interface has yet to `ifname`, creating
 * it (a dummy, else an ifb where the kernel has no dummy driver: both carry addresses and send
 * nothing) and bringing it up. Resolves with the addresses it added.
 */
export async function ensureLinkLocal(hosts: readonly string[], ifname: string, log: Logger, run: Ip = ip, local: () => Set<string> = localAddresses): Promise<string[]> {
  const have = local();
  const missing = [...new Set(hosts.filter((h) => isLinkLocal4(h) && !have.has(h)))];
  if (missing.length === 0) return [];
  if (!ifname) throw new Error(`--listen ${missing.join(',')}: no interface of this node has it, and --listen-interface is empty`);
  const fail = (what: string, r: { code: number; stderr: string }) =>
    new Error(`--listen-interface ${ifname}: ${what} exited ${r.code}: ${r.stderr.trim()} (needed for --listen ${missing.join(',')}; the agent needs NET_ADMIN)`);
  const exists = await run(['link', 'show', 'dev', ifname]);
  if (exists.code !== 0) {
    let kind = 'dummy';
    let r = await run(['link', 'add', ifname, 'type', 'dummy']);
    if (r.code !== 0 && /Unknown device type|not supported/i.test(r.stderr)) {
      kind = 'ifb';
      r = await run(['link', 'add', ifname, 'type', 'ifb']);
    }
    if (r.code !== 0 && !/File exists/.test(r.stderr)) throw fail('ip link add', r);
    log.info('DNS interface created', { interface: ifname, kind });
  }
  for (const h of missing) {
    const r = await run(['addr', 'replace', `${h}/32`, 'dev', ifname]);
    if (r.code !== 0) throw fail(`ip addr replace ${h}/32`, r);
  }
  const up = await run(['link', 'set', ifname, 'up']);
  if (up.code !== 0) throw fail('ip link set up', up);
  log.info('DNS addresses added', { interface: ifname, addresses: missing.join(',') });
  return missing;
}
