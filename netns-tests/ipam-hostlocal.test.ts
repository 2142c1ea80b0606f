// The store keeps host-local's own files, so a node can switch from Debian's host-local to
// kube-dataplane-ipam and back with no conversion. Both real binaries on one data directory,
// taking turns (never at once: they lock differently).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { callPlugin, HOST_LOCAL_BIN, snapshotPlugin } from '../ipam/plugin-runner.js';

const work = mkdtempSync(join(tmpdir(), 'kdp-ipam-hostlocal-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const ours = snapshotPlugin(join(work, 'bin'));
const dataDir = join(work, 'data');
const net = join(dataDir, 'switch');

function config(type: string) {
  return {
    cniVersion: '1.0.0',
    name: 'switch',
    ipam: { type, dataDir, ranges: [[{ subnet: '10.60.0.0/24' }], [{ subnet: 'fd60::/64' }]] },
  };
}

async function call(plugin: 'host-local' | 'ours', command: string, containerID: string) {
  const r = await callPlugin({
    command,
    containerID,
    config: config(plugin === 'ours' ? 'kube-dataplane-ipam' : 'host-local'),
    argv: [plugin === 'ours' ? ours : HOST_LOCAL_BIN],
  });
  expect(r.exitCode, `${plugin} ${command} ${containerID}: ${r.stdout}${r.stderr}`).toBe(0);
  return ((r.json?.ips ?? []) as { address: string }[]).map((i) => i.address.split('/')[0]);
}

function held(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(net)) {
    if (/^[0-9a-f:.]+$/.test(name) && /[.:]/.test(name)) out[name] = readFileSync(join(net, name), 'utf8');
  }
  return out;
}

describe('switching between host-local and kube-dataplane-ipam on one directory', () => {
  it('keeps every allocation and the round-robin position, both ways', async () => {
    expect(await call('host-local', 'ADD', 'c1')).toEqual(['10.60.0.2', 'fd60::2']);
    expect(await call('host-local', 'ADD', 'c2')).toEqual(['10.60.0.3', 'fd60::3']);

    // To ours: host-local's allocations are found where they are, and the search continues.
    expect(await call('ours', 'ADD', 'c1')).toEqual(['10.60.0.2', 'fd60::2']);
    expect(await call('ours', 'ADD', 'c3')).toEqual(['10.60.0.4', 'fd60::4']);
    await call('ours', 'DEL', 'c2');
    expect(held()).toEqual({
      '10.60.0.2': 'c1\r\neth0',
      'fd60::2': 'c1\r\neth0',
      '10.60.0.4': 'c3\r\neth0',
      'fd60::4': 'c3\r\neth0',
    });

    // Back to host-local: it frees what ours handed out, and continues after it.
    await call('host-local', 'DEL', 'c3');
    expect(await call('host-local', 'ADD', 'c4')).toEqual(['10.60.0.5', 'fd60::5']);
    expect(Object.keys(held()).sort()).toEqual(['10.60.0.2', '10.60.0.5', 'fd60::2', 'fd60::5']);

    // And to ours again, rebuilding the index as the directory's README says.
    expect(readFileSync(join(net, 'README'), 'utf8')).toContain('delete attachments/');
    rmSync(join(net, 'attachments'), { recursive: true });
    expect(await call('ours', 'ADD', 'c4')).toEqual(['10.60.0.5', 'fd60::5']);
    expect(await call('ours', 'ADD', 'c5')).toEqual(['10.60.0.6', 'fd60::6']);
    for (const id of ['c1', 'c4', 'c5']) await call('ours', 'DEL', id);
    expect(held()).toEqual({});
    expect(readdirSync(join(net, 'attachments'))).toEqual([]);
    expect(existsSync(join(net, 'kube-dataplane-ipam.json'))).toBe(false);
  });
});
