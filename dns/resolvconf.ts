// Where the upstream resolvers come from when --upstream is not given: a resolv.conf, as
// CoreDNS's `forward . /etc/resolv.conf` reads it, with two node realities handled.
//
// - systemd-resolved (Ubuntu's default) leaves /etc/resolv.conf naming only its stub,
//   127.0.0.53. Forwarding there works but puts a second cache and its own loop risk in the
//   path, so we do what kubeadm configures kubelet to do on such nodes (resolvConf:
//   /run/systemd/resolve/resolv.conf when systemd-resolved is active): read the file in which
//   systemd-resolved lists the real upstreams. If that file is missing or empty, the stub is
//   still a working upstream and we use it.
// - We never forward to ourselves, but only an address and port we actually serve on is us:
//   the stub's 127.0.0.53 is loopback without being ours.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Upstream } from './forwarder.js';

/** systemd-resolved's stub listener, the only nameserver its managed /etc/resolv.conf names. */
export const SYSTEMD_STUB = '127.0.0.53';

export interface ResolvConfOptions {
  /** The resolv.conf to read (--resolv-conf). */
  readonly path: string;
  /** systemd-resolved's list of real upstreams (--systemd-resolv-conf); '' turns this off. */
  readonly systemdPath: string;
}

export interface ResolvConfChoice {
  readonly path: string;
  readonly text: string;
  /** Why `path` is not the configured one, for the start-up log. */
  readonly reason?: string;
}

export function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export function nameservers(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    const host = m[1].replace(/%.*$/, ''); // zone index of link-local addresses
    if (net.isIP(host)) out.push(host);
  }
  return out;
}

/** The `search` domains of a resolv.conf (the last `search` line wins, as in libc). */
export function searchDomains(text: string): string[] {
  let out: string[] = [];
  for (const line of text.split('\n')) {
    const f = line.replace(/[#;].*/, '').trim().split(/\s+/);
    if (f[0] === 'search' || f[0] === 'domain') out = f.slice(1).map((d) => d.toLowerCase().replace(/\.$/, '')).filter(Boolean);
  }
  return out;
}

export function chooseResolvConf(o: ResolvConfOptions, read: (path: string) => string | undefined = readOrUndefined): ResolvConfChoice {
  const text = read(o.path) ?? '';
  const servers = nameservers(text);
  if (o.systemdPath && servers.length > 0 && servers.every((s) => s === SYSTEMD_STUB)) {
    const other = read(o.systemdPath);
    if (other !== undefined && nameservers(other).length > 0) {
      return { path: o.systemdPath, text: other, reason: `${o.path} names only systemd-resolved's stub ${SYSTEMD_STUB}` };
    }
  }
  return { path: o.path, text };
}

/**
 * The nameservers of a resolv.conf, leaving out ourselves (no loops): a nameserver is us when it
 * is one of our listen addresses on its port, or, under a wildcard listener of its family on
 * its port, one of the local addresses that listener binds (`local`).
 */
export function upstreamsFromResolvConf(text: string, ours: readonly Upstream[], local: ReadonlySet<string> = localAddresses()): Upstream[] {
  const out: Upstream[] = [];
  for (const host of nameservers(text)) {
    const u = { host, port: 53 };
    const v6 = net.isIPv6(host);
    const isUs = ours.some((o) => o.port === u.port && (o.host === host || (isWildcard(o.host) && net.isIPv6(o.host) === v6 && local.has(host))));
    if (!isUs) out.push(u);
  }
  return out;
}

function isWildcard(h: string): boolean {
  return h === '0.0.0.0' || h === '::';
}

/** What a wildcard listener binds: every interface address, loopback's included (dns/server.ts). */
function localAddresses(): Set<string> {
  return new Set(Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((a) => a.address)));
}
