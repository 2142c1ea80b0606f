// Runs the test API server in a child process and drives it over IPC: for benchmarks, whose
// time and memory must be the client's alone.
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface ChildServer {
  readonly url: string;
  readonly objects: number;
  readonly process: ChildProcess;
  /** Sends one command (`apply`, `update`, `delete`, `compact`, `drop`, `down`, `up`) and
   *  resolves with the server's resourceVersion after it. */
  send(cmd: Record<string, unknown> & { op: string }): Promise<number>;
  stop(): Promise<void>;
}

interface Reply { id?: number; ok?: boolean; rv?: number; error?: string; ready?: boolean; url?: string; objects?: number }

export interface ForkOptions {
  /** A network namespace to run the server in (`ip netns exec` keeps the IPC channel open), so
   *  that clients in other namespaces reach it over a network, as agents reach kube-apiserver. */
  netns?: string;
}

/** `args` are test-apiserver/main.ts flags, e.g. `['--services', '10000']`. */
export function forkTestApiServer(args: readonly string[], opts: ForkOptions = {}): Promise<ChildServer> {
  // From the sources (a vitest test), the compiled server in dist/.
  const main = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '../dist/test-apiserver/main.js' : './main.js', import.meta.url));
  const stdio = ['ignore', 'inherit', 'inherit', 'ipc'] as const;
  const child = opts.netns
    ? spawn('ip', ['netns', 'exec', opts.netns, process.execPath, main, ...args], { stdio: [...stdio] })
    : fork(main, [...args], { stdio: [...stdio] });
  const waiting = new Map<number, { resolve: (rv: number) => void; reject: (e: Error) => void }>();
  let next = 1;
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null): void => {
      const err = new Error(`test-apiserver exited (${code})`);
      for (const w of waiting.values()) w.reject(err);
      reject(err);
    };
    child.once('exit', onExit);
    child.on('message', (m: Reply) => {
      if (m.ready) {
        resolve({
          url: m.url!,
          objects: m.objects ?? 0,
          process: child,
          send(cmd) {
            const id = next++;
            return new Promise<number>((res, rej) => {
              waiting.set(id, { resolve: res, reject: rej });
              child.send({ ...cmd, id });
            });
          },
          stop() {
            child.off('exit', onExit);
            return new Promise<void>((res) => {
              if (child.exitCode !== null) return res();
              child.once('exit', () => res());
              child.kill('SIGTERM');
            });
          },
        });
        return;
      }
      const w = m.id !== undefined ? waiting.get(m.id) : undefined;
      if (!w) return;
      waiting.delete(m.id!);
      if (m.ok) w.resolve(m.rv ?? 0);
      else w.reject(new Error(m.error ?? 'test-apiserver command failed'));
    });
  });
}
