// What tests ask of a namespace from the outside: TCP connections through proxy-client.mjs
// ("<pod> <source it saw>" per connection), HTTP by curl, Prometheus metrics, and polling until a
// condition holds (netns tests poll; they do not sleep).
import { join } from 'node:path';
import { ROOT } from './example-node.js';
import type { Namespace } from './netns.js';

export const CLIENT = join(ROOT, 'netns-tests/proxy-client.mjs');

/** Polls `probe` until `done` says yes (or the time is up); returns the last value either way,
 *  for the caller to assert on. */
export async function eventually<T>(probe: () => Promise<T>, done: (v: T) => boolean, timeoutMs = 15_000, everyMs = 200): Promise<T> {
  const until = Date.now() + timeoutMs;
  let v = await probe();
  while (!done(v) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, everyMs));
    v = await probe();
  }
  return v;
}

/** `count` TCP connections from `from` to host:port, one answer line each:
 *  "<pod> <source it saw>" or "ERR <code>". The default timeout leaves room for a loaded
 *  machine; checks that expect a drop pass a short one. */
export async function connect(from: Namespace, host: string, port: number, count = 1, timeoutMs = 3_000): Promise<string[]> {
  const r = await from.exec(process.execPath, [CLIENT, 'tcp', host, String(port), String(count), String(timeoutMs)], { timeoutMs: 60_000 });
  return r.stdout.trim().split('\n').filter(Boolean);
}

/** Which pods answered `count` connections (the first word of each answer, errors included). */
export async function whoAnswers(from: Namespace, host: string, port: number, count = 12): Promise<Set<string>> {
  return new Set((await connect(from, host, port, count)).map((l) => (l.startsWith('ERR') ? l : l.split(' ')[0])));
}

/** GET `url` from `ns`; status 0 when nothing answered. */
export async function httpGet(ns: Namespace, url: string): Promise<{ status: number; body: string }> {
  const r = await ns.exec('curl', ['-s', '-m', '3', '-w', '\n%{http_code}', url], { allowFailure: true });
  const lines = r.stdout.split('\n');
  return { status: Number(lines.pop()) || 0, body: lines.join('\n') };
}

/** A metric's value in Prometheus text, summed over the lines whose labels contain every
 *  `labels` pair. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** The same, scraped from `url` in `ns`. */
export async function metric(ns: Namespace, url: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  return metricSum((await httpGet(ns, url)).body, name, labels);
}
