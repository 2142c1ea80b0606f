// Runs a CNI plugin binary the way a runtime does (CNI_* environment, config on stdin, result on
// stdout), for the namespace tests and the benchmark. Not used by the plugin itself.
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the repository root (package.json)');
    dir = up;
  }
  return dir;
}

/** The plugin as installed: the single-file CommonJS bundle `make build` writes. */
export const PLUGIN_BIN = join(repoRoot(), 'dist', 'cmd', 'kube-dataplane-ipam.cjs');
/**
 * The same bundle built with the fault-injection hooks on (KUBE_DATAPLANE_IPAM_TEST_HOLD_LOCK_MS),
 * for the SIGKILL tests only. The shipped bundle has them compiled out (see the Makefile).
 */
export const TEST_HOOKS_PLUGIN_BIN = join(repoRoot(), 'dist', 'test', 'kube-dataplane-ipam-test-hooks.cjs');
/**
 * A private copy of the built plugin, so that a test or benchmark run is not disturbed by someone
 * rebuilding dist/ meanwhile. The bundle is self-contained, so the copy is one file — which is
 * also how it is installed on a node (/opt/cni/bin/kube-dataplane-ipam).
 */
export function snapshotPlugin(into = mkdtempSync(join(tmpdir(), 'kdp-ipam-bin-')), opts: { testHooks?: boolean } = {}): string {
  const from = opts.testHooks ? TEST_HOOKS_PLUGIN_BIN : PLUGIN_BIN;
  if (!existsSync(from)) throw new Error(`${from} is missing: run make build`);
  mkdirSync(into, { recursive: true });
  const bin = join(into, 'kube-dataplane-ipam');
  cpSync(from, bin);
  return bin;
}

export const HOST_LOCAL_BIN = '/usr/lib/cni/host-local';
export const BRIDGE_BIN = '/usr/lib/cni/bridge';

export interface PluginCall {
  command: string;
  config: unknown;
  containerID?: string;
  ifname?: string;
  netns?: string;
  cniPath?: string;
  cniArgs?: string;
  /** Replaces the default CNI_* values; undefined removes a variable. */
  env?: Record<string, string | undefined>;
  /** Program and leading arguments; default [PLUGIN_BIN]. */
  argv?: readonly string[];
  /** SIGKILL the process this many ms after it starts (chaos tests). */
  killAfterMs?: number;
  timeoutMs?: number;
}

export interface PluginOutcome {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON, or undefined. */
  json: any;
  ms: number;
}

/**
 * The environment a CNI runtime gives a plugin: PATH and the CNI_* variables, nothing of ours.
 * (A stray NODE_EXTRA_CA_CERTS, for one, makes every Node start ~100 ms slower.)
 */
export function cniEnv(call: PluginCall): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    CNI_COMMAND: call.command,
    CNI_CONTAINERID: call.containerID ?? 'c0',
    CNI_NETNS: call.netns ?? '/var/run/netns/none',
    CNI_IFNAME: call.ifname ?? 'eth0',
    CNI_PATH: call.cniPath ?? dirname(PLUGIN_BIN),
  };
  if (call.cniArgs !== undefined) env.CNI_ARGS = call.cniArgs;
  for (const [k, v] of Object.entries(call.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

export function callPlugin(call: PluginCall): Promise<PluginOutcome> {
  const [cmd, ...args] = call.argv ?? [PLUGIN_BIN];
  const began = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: cniEnv(call), stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timers: NodeJS.Timeout[] = [];
    if (call.killAfterMs !== undefined) timers.push(setTimeout(() => child.kill('SIGKILL'), call.killAfterMs));
    timers.push(setTimeout(() => child.kill('SIGKILL'), call.timeoutMs ?? 60_000));
    child.on('error', reject);
    child.on('close', (exitCode, signal) => {
      const ms = performance.now() - began;
      for (const t of timers) clearTimeout(t);
      let json: unknown;
      try {
        json = stdout.trim() ? JSON.parse(stdout) : undefined;
      } catch {
        json = undefined;
      }
      resolve({ exitCode, signal, stdout, stderr, json, ms });
    });
    child.stdin.on('error', () => {
      /* killed before it read its config */
    });
    child.stdin.end(typeof call.config === 'string' ? call.config : JSON.stringify(call.config));
  });
}

/** The address files of a network directory (host-local's layout): address → the attachment
 *  its file names. For tests that check what the plugin holds on disk. */
export function readAddressFiles(dir: string): Record<string, { containerID: string; ifname: string }> {
  const out: Record<string, { containerID: string; ifname: string }> = {};
  for (const name of readdirSync(dir)) {
    if (!/^[0-9a-f:.]+$/.test(name) || !/[.:]/.test(name)) continue;
    const [containerID, ifname] = readFileSync(join(dir, name), 'utf8').split('\r\n');
    out[name] = { containerID, ifname };
  }
  return out;
}
