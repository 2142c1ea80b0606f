// The CNI IPAM plugin protocol: CNI_COMMAND and friends from the environment, the network config
// on stdin, the result (or the spec's error object, with a non-zero exit) on stdout, logs on
// stderr. Everything is synchronous: the process does one thing and exits, and each module on
// this path is loaded by every pod start, so the path stays small.
import { readFileSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { attachmentText, type Allocated, type Attachment } from './allocator.js';
import {
  checkVersion,
  decodeConfig,
  LATEST_VERSION,
  parseIpamConfig,
  requestedFromCniArgs,
  SUPPORTED_VERSIONS,
  type IpamConfig,
} from './config.js';
import { cniError, CniError, ErrorCode } from './errors.js';
import { formatIP, ipString, parseCIDR, parseIP } from '../common/ip-bigint.js';
import { readNodePodCIDRsFile } from './node-pod-cidrs.js';
import { buildRangeSets, rangeSetText, type RangeSet } from './range.js';
import { NetworkStore } from './store.js';
import { testHoldMs } from './test-hooks.js';

const COMMANDS = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'] as const;
type Command = (typeof COMMANDS)[number];

/** Which environment variables each command needs (as the CNI skel library checks them). */
const REQUIRED_ENV: Record<Command, readonly string[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'],
  GC: [],
  STATUS: [],
  VERSION: [],
};

export interface PluginIO {
  env: NodeJS.ProcessEnv;
  stdin: () => string;
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

function envError(msg: string): CniError {
  return cniError(ErrorCode.invalidEnvironment, msg);
}

function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EOF') return '';
    throw cniError(ErrorCode.ioFailure, `cannot read the network config from stdin: ${(err as Error).message}`);
  }
}

function attachmentFromEnv(env: NodeJS.ProcessEnv): Attachment {
  const containerID = env.CNI_CONTAINERID!;
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(containerID)) {
    throw envError(`CNI_CONTAINERID ${JSON.stringify(containerID)}: want letters, digits, "_", "." or "-", starting with a letter or digit`);
  }
  const ifname = env.CNI_IFNAME!;
  if (Buffer.byteLength(ifname) > 15 || ifname === '.' || ifname === '..' || /[/:\s]/.test(ifname)) {
    throw envError(`CNI_IFNAME ${JSON.stringify(ifname)}: not a valid interface name (at most 15 bytes, no "/", ":" or spaces)`);
  }
  return { containerID, ifname };
}

async function nodePodCIDRs(cfg: IpamConfig): Promise<string[]> {
  try {
    if (cfg.kubeconfig) {
      // Loaded only for this option: the default path stays free of YAML and HTTP code.
      const { getNodePodCIDRs } = await import('./kube-api.js');
      return await getNodePodCIDRs(cfg.kubeconfig, cfg.nodeName ?? hostname());
    }
    const file = readNodePodCIDRsFile(cfg.nodePodCIDRsFile);
    if (cfg.nodeName && file.nodeName && file.nodeName !== cfg.nodeName) {
      throw new Error(`node pod CIDRs file ${cfg.nodePodCIDRsFile} is for node ${file.nodeName}, not ${cfg.nodeName}`);
    }
    return file.podCIDRs;
  } catch (err) {
    if (err instanceof CniError) throw err;
    // The agent may not have seen the Node's CIDRs yet: the runtime should retry, not give up.
    throw cniError(ErrorCode.tryAgainLater, `ipam.podCIDRsFrom "node": ${(err as Error).message}`);
  }
}

async function rangeSets(cfg: IpamConfig): Promise<RangeSet[]> {
  if (cfg.podCIDRsFrom === 'node' && cfg.rangesField !== 'runtimeConfig.ipRanges') {
    const cidrs = await nodePodCIDRs(cfg);
    return buildRangeSets(cidrs.map((subnet) => [{ subnet }]), `node pod CIDRs ${JSON.stringify(cidrs)}`);
  }
  return buildRangeSets(cfg.ranges, cfg.rangesField);
}

function dnsFrom(path: string | undefined): Record<string, unknown> {
  if (!path) return {};
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw cniError(ErrorCode.invalidConfig, `ipam.resolvConf: cannot read ${path}: ${(err as Error).message}`);
  }
  const dns: { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] } = {};
  for (const line of text.split('\n')) {
    const [key, ...rest] = line.trim().split(/\s+/);
    if (key === 'nameserver' && rest[0]) (dns.nameservers ??= []).push(rest[0]);
    else if (key === 'domain' && rest[0]) dns.domain = rest[0];
    else if (key === 'search') dns.search = rest;
    else if (key === 'options') (dns.options ??= []).push(...rest);
  }
  return dns;
}

function addResult(cfg: IpamConfig, allocated: Allocated[]): Record<string, unknown> {
  const legacy = cfg.cniVersion.startsWith('0.');
  const ips = allocated.map(({ range, ip }) => {
    const entry: Record<string, string> = {};
    if (legacy) entry.version = String(ip.family);
    entry.address = `${ipString(ip)}/${range.prefix.length}`;
    entry.gateway = formatIP(ip.family, range.gateway);
    return entry;
  });
  return { cniVersion: cfg.cniVersion, ips, routes: cfg.routes, dns: dnsFrom(cfg.resolvConf) };
}

function storeFor(cfg: IpamConfig, io: PluginIO): NetworkStore {
  return new NetworkStore(cfg.dataDir, cfg.network, {
    lockTimeoutMs: cfg.lockTimeoutMs,
    testHoldMs: testHoldMs(io.env),
    log: (msg) => io.stderr(`kube-dataplane-ipam: ${msg}\n`),
  });
}

async function cmdAdd(cfg: IpamConfig, who: Attachment, io: PluginIO): Promise<Record<string, unknown>> {
  const sets = await rangeSets(cfg);
  const requested = [...cfg.requestedIPs, ...requestedFromCniArgs(io.env.CNI_ARGS)];
  const allocated = storeFor(cfg, io).add(sets, who, requested, new Date().toISOString());
  return addResult(cfg, allocated);
}

function cmdDel(cfg: IpamConfig, who: Attachment, io: PluginIO): void {
  // Under the lock even when nothing is held; nothing to release writes nothing (DEL is idempotent).
  storeFor(cfg, io).del(who);
}

function cmdCheck(cfg: IpamConfig, who: Attachment, io: PluginIO): void {
  const held = new Set(storeFor(cfg, io).held(who));
  if (held.size === 0) {
    throw cniError(ErrorCode.allocationMissing, `network "${cfg.network}": no address is allocated to ${attachmentText(who)}`);
  }
  const prev = cfg.prevResult as { ips?: { address?: unknown }[] } | undefined;
  for (const entry of prev?.ips ?? []) {
    const ip = typeof entry.address === 'string' ? (parseCIDR(entry.address)?.address ?? parseIP(entry.address)) : null;
    if (ip && !held.has(ipString(ip))) {
      throw cniError(
        ErrorCode.allocationMissing,
        `network "${cfg.network}": prevResult address ${entry.address as string} is not allocated to ${attachmentText(who)} (it holds ${[...held].join(', ')})`,
      );
    }
  }
}

function cmdGC(cfg: IpamConfig, io: PluginIO): void {
  if (!cfg.validAttachments) {
    throw cniError(ErrorCode.invalidConfig, 'GC: the config has no "cni.dev/valid-attachments"; refusing to guess which addresses are in use');
  }
  const valid = cfg.validAttachments;
  const { freed } = storeFor(cfg, io).gc(() => valid);
  for (const f of freed) io.stderr(`kube-dataplane-ipam: GC released ${f.address} of ${attachmentText(f)}\n`);
}

async function cmdStatus(cfg: IpamConfig, io: PluginIO): Promise<void> {
  let sets: RangeSet[];
  try {
    sets = await rangeSets(cfg);
  } catch (err) {
    if (err instanceof CniError && err.code === ErrorCode.tryAgainLater) throw cniError(ErrorCode.notAvailable, err.message);
    throw err;
  }
  const store = storeFor(cfg, io);
  for (const set of sets) {
    if (!store.hasFree(set)) {
      throw cniError(ErrorCode.notAvailable, `network "${cfg.network}": range set ${set.index} (${rangeSetText(set)}) has no free address`);
    }
  }
}

function errorObject(version: string, err: unknown): Record<string, unknown> {
  if (err instanceof CniError) {
    const o: Record<string, unknown> = { cniVersion: version, code: err.code, msg: err.message };
    if (err.details) o.details = err.details;
    return o;
  }
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string' && e.syscall) {
    return { cniVersion: version, code: ErrorCode.ioFailure, msg: e.message };
  }
  return { cniVersion: version, code: 999, msg: `internal error: ${e?.message ?? String(err)}`, details: e?.stack ?? '' };
}

/** Runs one CNI command with the given I/O; resolves to the exit code. */
export async function runWith(io: PluginIO): Promise<number> {
  let version: string = LATEST_VERSION;
  try {
    const command = io.env.CNI_COMMAND;
    if (!command) throw envError(`CNI_COMMAND is not set (want one of ${COMMANDS.join(', ')})`);
    if (!(COMMANDS as readonly string[]).includes(command)) throw envError(`CNI_COMMAND ${JSON.stringify(command)} is not one of ${COMMANDS.join(', ')}`);
    const cmd = command as Command;
    for (const name of REQUIRED_ENV[cmd]) {
      if (!io.env[name]) throw envError(`${name} is not set (required for ${cmd})`);
    }
    const text = io.stdin();
    if (cmd === 'VERSION') {
      let asked: unknown;
      try {
        asked = text.trim() ? JSON.parse(text).cniVersion : undefined;
      } catch {
        asked = undefined;
      }
      const v = typeof asked === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(asked) ? asked : LATEST_VERSION;
      io.stdout(JSON.stringify({ cniVersion: v, supportedVersions: SUPPORTED_VERSIONS }) + '\n');
      return 0;
    }
    const doc = decodeConfig(text);
    version = checkVersion(doc);
    const cfg = parseIpamConfig(doc, version);
    switch (cmd) {
      case 'ADD':
        io.stdout(JSON.stringify(await cmdAdd(cfg, attachmentFromEnv(io.env), io)) + '\n');
        return 0;
      case 'DEL':
        cmdDel(cfg, attachmentFromEnv(io.env), io);
        return 0;
      case 'CHECK':
        cmdCheck(cfg, attachmentFromEnv(io.env), io);
        return 0;
      case 'GC':
        cmdGC(cfg, io);
        return 0;
      case 'STATUS':
        await cmdStatus(cfg, io);
        return 0;
    }
  } catch (err) {
    io.stdout(JSON.stringify(errorObject(version, err)) + '\n');
    return 1;
  }
}

// Plain fd writes: they finish before process.exit, and skip building process.stdout's stream.
function writeAll(fd: number, s: string): void {
  const buf = Buffer.from(s);
  for (let off = 0; off < buf.length; ) {
    try {
      off += writeSync(fd, buf, off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    }
  }
}

/** The plugin binary's entry point (cmd/kube-dataplane-ipam.ts). */
export function runPlugin(): Promise<number> {
  return runWith({
    env: process.env,
    stdin: readStdin,
    stdout: (s) => writeAll(1, s),
    stderr: (s) => writeAll(2, s),
  });
}
