#!/usr/bin/env node
// The test API server as a process, for benchmarks and the demo: serves a directory of
// Kubernetes YAML and/or a generated population, writes a kubeconfig pointing at itself, and,
// when started with an IPC channel (child_process.fork), takes write commands from its parent
// so a benchmark can change objects without sharing its process (and its memory) with the server.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseManifest } from '../cluster/sources/manifests.js';
import { configureLogging, isLogLevel, logger } from '../common/log.js';
import { population } from './population.js';
import { RESOURCE_TYPES } from './resources.js';
import { TestApiServer } from './server.js';

const USAGE = `usage: test-apiserver [flags]
  --host HOST                 listen address (default 127.0.0.1)
  --port PORT                 listen port (default 0: any free port)
  --dir DIR                   serve the Services, EndpointSlices, Nodes, Pods and Namespaces in DIR's YAML files
  --services N                generate N services (each with one EndpointSlice)
  --endpoints-per-service M   endpoints per generated service (default 10)
  --nodes K                   generated nodes (default 10)
  --kubeconfig-out FILE       write a kubeconfig pointing at this server
  --bookmark-interval-ms MS   bookmark period of watches that allow them (default 60000)
  --history-limit N           watch events kept per kind before compaction (default 100000)
  --token TOKEN               require this bearer token
  --log-level LEVEL           debug|info|warn|error (default info)`;

const SERVED = new Set(RESOURCE_TYPES.map((r) => r.kind));
const log = logger('test-apiserver');

/** Every served object in the YAML (and JSON) files under `dir`, parsed as the agent's
 *  --manifests source parses them; a file that does not parse is skipped with a warning. */
function* objectsInDir(dir: string): Generator<unknown> {
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) {
      yield* objectsInDir(path);
      continue;
    }
    if (!/\.(ya?ml|json)$/.test(entry)) continue;
    try {
      for (const found of parseManifest(readFileSync(path, 'utf8'), path)) yield found.obj;
    } catch (err) {
      log.warn('manifest skipped', { path, line: (err as { line?: number }).line, error: (err as Error).message });
    }
  }
}

interface Command {
  id: number;
  op: 'apply' | 'create' | 'update' | 'delete' | 'compact' | 'drop' | 'down' | 'up' | 'stop';
  object?: unknown;
  kind?: string;
  namespace?: string;
  name?: string;
  rv?: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      dir: { type: 'string' },
      services: { type: 'string', default: '0' },
      'endpoints-per-service': { type: 'string', default: '10' },
      nodes: { type: 'string', default: '10' },
      'kubeconfig-out': { type: 'string' },
      'bookmark-interval-ms': { type: 'string', default: '60000' },
      'history-limit': { type: 'string', default: '100000' },
      token: { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const level = values['log-level']!;
  if (!isLogLevel(level)) throw new Error(`--log-level ${level}: not one of debug, info, warn, error`);
  configureLogging({ level });
  const num = (flag: keyof typeof values): number => {
    const n = Number(values[flag]);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${String(flag)} ${String(values[flag])}: not a non-negative integer`);
    return n;
  };
  const server = await TestApiServer.start({
    host: values.host,
    port: num('port'),
    bookmarkIntervalMs: num('bookmark-interval-ms'),
    historyLimit: num('history-limit'),
    token: values.token,
  });
  let count = 0;
  if (values.dir) {
    for (const obj of objectsInDir(values.dir)) {
      const kind = (obj as { kind?: unknown })?.kind;
      if (typeof kind !== 'string' || !SERVED.has(kind)) continue;
      server.apply(obj);
      count++;
    }
  }
  const services = num('services');
  if (services > 0) {
    for (const obj of population({ services, endpointsPerService: num('endpoints-per-service'), nodes: num('nodes') })) {
      server.apply(obj);
      count++;
    }
  }
  if (values['kubeconfig-out']) await server.writeKubeconfig(values['kubeconfig-out']);
  log.info('serving', { url: server.url, objects: count, resourceVersion: server.resourceVersion, kubeconfig: values['kubeconfig-out'] });

  const stop = async (): Promise<void> => {
    await server.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());

  if (process.send) {
    process.on('message', (m: Command) => void handle(server, m, stop));
    process.on('disconnect', () => void stop());
    process.send({ ready: true, url: server.url, objects: count, rv: server.resourceVersion });
  } else {
    process.stdout.write(`${server.url}\n`);
  }
}

async function handle(server: TestApiServer, m: Command, stop: () => Promise<void>): Promise<void> {
  try {
    switch (m.op) {
      case 'apply': server.apply(m.object); break;
      case 'create': server.create(m.object); break;
      case 'update': server.update(m.object); break;
      case 'delete': server.delete(m.kind!, m.namespace, m.name!); break;
      case 'compact': server.compact(m.rv); break;
      case 'drop': server.dropConnections(); break;
      case 'down': await server.setDown(true); break;
      case 'up': await server.setDown(false); break;
      case 'stop': return await stop();
    }
    process.send!({ id: m.id, ok: true, rv: server.resourceVersion });
  } catch (err) {
    process.send!({ id: m.id, ok: false, error: err instanceof Error ? err.message : String(err) });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`test-apiserver: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
});
