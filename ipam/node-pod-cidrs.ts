// The node's pod CIDRs as the agent last saw them in Node.spec.podCIDRs, kept in a small file so
// that the IPAM plugin (a short-lived process per pod) needs no API client to find its ranges.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseCIDR, prefixString } from '../common/ip-bigint.js';

export const DEFAULT_NODE_POD_CIDRS_FILE = '/run/kube-dataplane/node-pod-cidrs.json';

export interface NodePodCIDRs {
  nodeName: string;
  podCIDRs: string[];
  updated: string;
}

/** Canonical CIDRs ("10.244.1.0/24"), or an Error naming the bad entry. */
export function canonicalPodCIDRs(podCIDRs: readonly string[], what: string): string[] {
  const seen = new Set<number>();
  return podCIDRs.map((c, i) => {
    const p = parseCIDR(c);
    if (!p) throw new Error(`${what}[${i}]: ${JSON.stringify(c)} is not a CIDR`);
    if (seen.has(p.prefix.family)) throw new Error(`${what}[${i}]: a second IPv${p.prefix.family} CIDR ${c} (one per family)`);
    seen.add(p.prefix.family);
    return prefixString(p.prefix);
  });
}

/**
 * Writes the file atomically (temp file, fsync, rename) so the plugin never reads half of it. The
 * agent calls this whenever the Node's spec.podCIDRs change.
 */
export function writeNodePodCIDRsFile(path: string, nodeName: string, podCIDRs: readonly string[]): void {
  const doc: NodePodCIDRs = {
    nodeName,
    podCIDRs: canonicalPodCIDRs(podCIDRs, `node ${nodeName} spec.podCIDRs`),
    updated: new Date().toISOString(),
  };
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o644);
  try {
    writeSync(fd, JSON.stringify(doc, null, 2) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** Reads the file; throws an Error saying what is missing or wrong. */
export function readNodePodCIDRsFile(path: string): NodePodCIDRs {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(
      code === 'ENOENT'
        ? `node pod CIDRs file ${path} does not exist yet (the kube-dataplane agent writes it once the Node has spec.podCIDRs)`
        : `cannot read node pod CIDRs file ${path}: ${(err as Error).message}`,
    );
  }
  let doc: Partial<NodePodCIDRs>;
  try {
    doc = JSON.parse(text) as Partial<NodePodCIDRs>;
  } catch (err) {
    throw new Error(`node pod CIDRs file ${path} is not JSON: ${(err as Error).message}`);
  }
  if (!doc || !Array.isArray(doc.podCIDRs) || doc.podCIDRs.some((c) => typeof c !== 'string')) {
    throw new Error(`node pod CIDRs file ${path}: "podCIDRs" is not a list of strings`);
  }
  if (doc.podCIDRs.length === 0) throw new Error(`node pod CIDRs file ${path}: node ${doc.nodeName ?? '?'} has no pod CIDRs yet`);
  return {
    nodeName: typeof doc.nodeName === 'string' ? doc.nodeName : '',
    podCIDRs: canonicalPodCIDRs(doc.podCIDRs, `${path} podCIDRs`),
    updated: typeof doc.updated === 'string' ? doc.updated : '',
  };
}
