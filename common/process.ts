// Kernel tools as child processes: argument arrays, input on stdin, never a shell. Every part
// that calls `iptables-restore`, `nft`, `ip` or `conntrack` goes through here.
import { spawn } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';

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
    // Decoded as it comes: an `iptables-save` of 10k services is 45 MB, and keeping its chunks
    // to concatenate and decode at the end held three native copies of it at once (heaptrack).
    const decoder = new StringDecoder('utf8');
    const out: string[] = [];
    const err: Buffer[] = [];
    let settled = false;
    const done = (r: ToolResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d: Buffer) => out.push(decoder.write(d)));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e) => done({ code: 127, stdout: '', stderr: `${cmd}: ${e.message}` }));
    child.on('close', (code, signal) =>
      done({ code: code ?? 128, stdout: out.join('') + decoder.end(), stderr: Buffer.concat(err).toString() + (signal ? ` (killed by ${signal})` : '') }),
    );
    // A tool that exits early (bad input) closes stdin; that is reported through its exit code.
    child.stdin.on('error', () => {});
    if (typeof input !== 'object') child.stdin.end(input ?? '');
    else void writeLines(child.stdin, input);
  });
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
