// The iptables tools as child processes (argument arrays, input on stdin, never a shell), and the
// choice between the legacy and nf_tables flavours.
import { spawn } from 'node:child_process';
import type { IPFamily } from '../../cluster/types.js';

export type Flavour = 'legacy' | 'nft';

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `cmd args…` with `input` on stdin (a string, or lines streamed in batches so a
 *  million-line ruleset never becomes one string); resolves with its exit code and output (a
 *  missing program resolves with code 127 and the error in stderr). */
export function runTool(cmd: string, args: readonly string[], input?: string | readonly string[], timeoutMs = 600_000): Promise<ToolResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let settled = false;
    const done = (r: ToolResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e) => done({ code: 127, stdout: '', stderr: `${cmd}: ${e.message}` }));
    child.on('close', (code, signal) =>
      done({ code: code ?? 128, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() + (signal ? ` (killed by ${signal})` : '') }),
    );
    // A tool that exits early (bad input) closes stdin; that is reported through its exit code.
    child.stdin.on('error', () => {});
    if (typeof input !== 'object') child.stdin.end(input ?? '');
    else void writeLines(child.stdin, input);
  });
}

export function toolName(flavour: Flavour, family: IPFamily, what: 'restore' | 'save' | ''): string {
  const base = family === 'IPv4' ? 'iptables' : 'ip6tables';
  return `${base}-${flavour}${what ? `-${what}` : ''}`;
}

export interface FlavourChoice {
  flavour: Flavour;
  reason: string;
}

async function save(flavour: Flavour, family: IPFamily, table?: string): Promise<string> {
  const r = await runTool(toolName(flavour, family, 'save'), table ? ['-t', table] : [], undefined, 30_000);
  return r.code === 0 ? r.stdout : '';
}

/** Picks the flavour the host already uses, the way kube-proxy's image does: kubelet's marker
 *  chains first, then whichever flavour holds more rules; nft when neither has any. */
export async function chooseFlavour(requested: string): Promise<FlavourChoice> {
  if (requested === 'legacy' || requested === 'nft') return { flavour: requested, reason: `--iptables-backend ${requested}` };
  const marker = /^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY) /m;
  for (const flavour of ['nft', 'legacy'] as const) {
    for (const family of ['IPv4', 'IPv6'] as const) {
      if (marker.test(await save(flavour, family, 'mangle'))) return { flavour, reason: `kubelet's marker chain is in the ${flavour} ${family} mangle table` };
    }
  }
  const count = async (flavour: Flavour) => {
    let n = 0;
    for (const family of ['IPv4', 'IPv6'] as const) n += (await save(flavour, family)).split('\n').filter((l) => l.startsWith('-A ')).length;
    return n;
  };
  const legacy = await count('legacy');
  const nft = await count('nft');
  if (legacy > nft) return { flavour: 'legacy', reason: `the host has ${legacy} legacy rules and ${nft} nf_tables rules` };
  return { flavour: 'nft', reason: nft > 0 ? `the host has ${nft} nf_tables rules and ${legacy} legacy rules` : 'no rules in either flavour; nf_tables is the default' };
}

async function writeLines(out: NodeJS.WritableStream, lines: readonly string[]): Promise<void> {
  const BATCH = 20_000;
  for (let i = 0; i < lines.length; i += BATCH) {
    const chunk = lines.slice(i, i + BATCH).join('\n') + '\n';
    if (!out.write(chunk)) {
      const ok = await new Promise<boolean>((resolve) => {
        const done = (v: boolean) => {
          out.off('drain', onDrain);
          out.off('close', onClose);
          resolve(v);
        };
        const onDrain = () => done(true);
        const onClose = () => done(false);
        out.once('drain', onDrain);
        out.once('close', onClose);
      });
      if (!ok) return; // the tool exited early; its exit code tells why
    }
  }
  out.end();
}
