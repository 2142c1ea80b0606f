// IPAM benchmark: kube-dataplane-ipam against Debian's host-local on the same dual-stack config,
// in the same run: N sequential ADDs, then N DELs, calls of the two plugins interleaved so that
// both see the same machine load. Reports p50/p99 per call around 0, N/2 and N allocated, the
// totals, and the process start (bare Node, our plugin answering VERSION) measured on its own.
//
//   node dist/bench/ipam/main.js [--calls N]      (default 1000; use 100 while developing)
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runWith } from '../../ipam/cni-plugin.js';
import { callPlugin, HOST_LOCAL_BIN, snapshotPlugin, type PluginCall } from '../../ipam/plugin-runner.js';

const args = process.argv.slice(2);
const callsArg = args.indexOf('--calls');
const N = callsArg >= 0 ? Number(args[callsArg + 1]) : 1000;
if (!Number.isInteger(N) || N < 10) throw new Error('--calls: want an integer >= 10');
const START_SAMPLES = 30;

const work = mkdtempSync(join(tmpdir(), 'kdp-ipam-bench-'));
const ours = snapshotPlugin(join(work, 'bin'));

interface Subject {
  name: string;
  argv: string[];
  dataDir: string;
  add: number[];
  del: number[];
}

const subjects: Subject[] = [
  { name: 'kube-dataplane-ipam', argv: [ours], dataDir: join(work, 'ours'), add: [], del: [] },
  { name: 'host-local', argv: [HOST_LOCAL_BIN], dataDir: join(work, 'host-local'), add: [], del: [] },
];
/** Our plugin's work alone: the same calls run in this process (no process start). */
const inProcess: Subject = { name: 'kube-dataplane-ipam in-process (no start)', argv: [], dataDir: join(work, 'in-process'), add: [], del: [] };

async function callInProcess(command: string, containerID: string): Promise<number> {
  let out = '';
  const began = performance.now();
  const code = await runWith({
    env: { CNI_COMMAND: command, CNI_CONTAINERID: containerID, CNI_NETNS: '/var/run/netns/none', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' },
    stdin: () => JSON.stringify({ ...config(inProcess), ipam: { ...config(inProcess).ipam, type: 'kube-dataplane-ipam' } }),
    stdout: (s) => (out += s),
    stderr: () => {},
  });
  const ms = performance.now() - began;
  if (code !== 0) throw new Error(`in-process ${command} ${containerID}: ${out}`);
  return ms;
}

function config(s: Subject) {
  return {
    cniVersion: '1.0.0',
    name: 'bench',
    ipam: {
      type: s.name,
      dataDir: s.dataDir,
      ranges: [[{ subnet: '10.128.0.0/16' }], [{ subnet: 'fd00:128::/64' }]],
      routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
    },
  };
}

async function call(s: Subject, c: Omit<PluginCall, 'config' | 'argv'>, env?: Record<string, string>): Promise<number> {
  const r = await callPlugin({ ...c, config: config(s), argv: s.argv, env });
  if (r.exitCode !== 0) throw new Error(`${s.name} ${c.command} ${c.containerID}: exit ${r.exitCode}: ${r.stdout}${r.stderr}`);
  return r.ms;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

/** The calls made while about `at` addresses were allocated (a window of ±5% of N). */
function around(xs: number[], at: number): number[] {
  const half = Math.max(5, Math.round(N * 0.05));
  const lo = Math.max(0, Math.min(at - half, xs.length - 2 * half));
  return xs.slice(lo, lo + 2 * half);
}

const round = (x: number) => Math.round(x * 10) / 10;

async function measureStart(): Promise<Record<string, { p50: number; p99: number }>> {
  const kinds: [string, PluginCall][] = [
    ['node -e "" (bare Node start)', { command: 'VERSION', config: {}, argv: [process.execPath, '-e', ''] }],
    ['kube-dataplane-ipam VERSION (start + modules)', { command: 'VERSION', config: { cniVersion: '1.0.0' }, argv: [ours] }],
    ['host-local VERSION', { command: 'VERSION', config: { cniVersion: '1.0.0' }, argv: [HOST_LOCAL_BIN] }],
  ];
  if (process.env.NODE_EXTRA_CA_CERTS) {
    kinds.push([
      'kube-dataplane-ipam VERSION with NODE_EXTRA_CA_CERTS set',
      { command: 'VERSION', config: { cniVersion: '1.0.0' }, argv: [ours], env: { NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS } },
    ]);
  }
  const samples = new Map<string, number[]>(kinds.map(([k]) => [k, []]));
  for (let i = 0; i < START_SAMPLES; i++) {
    for (const [k, c] of kinds) samples.get(k)!.push((await callPlugin(c)).ms);
  }
  return Object.fromEntries([...samples].map(([k, xs]) => [k, { p50: round(pct(xs, 50)), p99: round(pct(xs, 99)) }]));
}

async function main(): Promise<void> {
  for (const s of [...subjects, inProcess]) mkdirSync(s.dataDir, { recursive: true });
  process.stderr.write(`ipam bench: ${N} ADDs then ${N} DELs per plugin, interleaved\n`);
  const began = Date.now();
  for (let i = 0; i < N; i++) {
    for (const s of subjects) s.add.push(await call(s, { command: 'ADD', containerID: `c${i}` }));
    inProcess.add.push(await callInProcess('ADD', `c${i}`));
    if ((i + 1) % 100 === 0) process.stderr.write(`  ${i + 1} ADDs\n`);
  }
  for (let i = 0; i < N; i++) {
    for (const s of subjects) s.del.push(await call(s, { command: 'DEL', containerID: `c${i}` }));
    inProcess.del.push(await callInProcess('DEL', `c${i}`));
    if ((i + 1) % 100 === 0) process.stderr.write(`  ${i + 1} DELs\n`);
  }
  const start = await measureStart();

  const points = [0, Math.round(N / 2), N];
  const rows: Record<string, unknown>[] = [];
  for (const s of [...subjects, inProcess]) {
    for (const op of ['add', 'del'] as const) {
      const xs = s[op];
      const row: Record<string, unknown> = { plugin: s.name, op: op.toUpperCase(), totalS: round(xs.reduce((a, b) => a + b, 0) / 1000) };
      for (const at of points) {
        // ADD i runs with i allocated; DEL i with N - i allocated.
        const w = around(xs, op === 'add' ? at : N - at);
        row[`p50@${at}`] = round(pct(w, 50));
        row[`p99@${at}`] = round(pct(w, 99));
      }
      rows.push(row);
    }
  }

  const head = ['plugin', 'op', 'totalS', ...points.flatMap((p) => [`p50@${p}`, `p99@${p}`])];
  const lines = [head, ...rows.map((r) => head.map((h) => String(r[h])))];
  const widths = head.map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  const fmt = (l: string[]) => l.map((c, i) => c.padStart(i < 2 ? 0 : widths[i]).padEnd(widths[i])).join('  ');
  console.log(`\nIPAM, ${N} sequential ADDs then ${N} DELs, dual-stack; ms per call around N allocated, total in s`);
  console.log(fmt(lines[0]));
  for (const l of lines.slice(1)) console.log(fmt(l));
  console.log(`\nprocess start, ${START_SAMPLES} samples each (ms):`);
  for (const [k, v] of Object.entries(start)) console.log(`  ${k.padEnd(58)} p50 ${v.p50}  p99 ${v.p99}`);

  const outDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(
    join(outDir, 'ipam.json'),
    JSON.stringify({ date: new Date().toISOString(), calls: N, node: process.version, wallS: round((Date.now() - began) / 1000), rows, processStartMs: start }, null, 2) + '\n',
  );
  console.log(`\nwrote ${join(outDir, 'ipam.json')}`);
}

main()
  .catch((err: Error) => {
    process.stderr.write(`ipam bench: ${err.stack ?? err}\n`);
    process.exitCode = 1;
  })
  .finally(() => rmSync(work, { recursive: true, force: true }));
