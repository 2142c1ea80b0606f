// Health-check node ports: one small HTTP server per service with externalTrafficPolicy Local,
// answering load balancers whether this node has endpoints for it (200) or not (503), with
// kube-proxy's JSON body. Servers come and go as services do; a port that cannot be bound is
// logged and retried at the next sync, without touching the others.
import http from 'node:http';
import type { Logger } from '../../../common/log.js';

export interface HealthCheckService {
  readonly namespace: string;
  readonly name: string;
  readonly port: number;
  readonly localEndpoints: number;
}

interface Entry {
  svc: HealthCheckService;
  server?: http.Server;
}

export class ServiceHealthServers {
  private readonly byKey = new Map<string, Entry>();

  constructor(private readonly log: Logger, private readonly proxyHealthy: () => boolean, private readonly host = '::') {}

  /** Adds, updates or removes (undefined) the health-check server of one service. */
  async set(key: string, svc: HealthCheckService | undefined): Promise<void> {
    const cur = this.byKey.get(key);
    if (cur && svc && cur.svc.port === svc.port && cur.server) {
      cur.svc = svc;
      return;
    }
    if (cur) {
      this.byKey.delete(key);
      await this.close(cur);
    }
    if (!svc) return;
    const entry: Entry = { svc };
    this.byKey.set(key, entry);
    await this.open(key, entry);
  }

  /** Retries servers that failed to bind. */
  async retry(): Promise<void> {
    for (const [key, e] of this.byKey) if (!e.server) await this.open(key, e);
  }

  ports(): number[] {
    return [...this.byKey.values()].filter((e) => e.server).map((e) => e.svc.port);
  }

  async closeAll(): Promise<void> {
    const all = [...this.byKey.values()];
    this.byKey.clear();
    await Promise.all(all.map((e) => this.close(e)));
  }

  private handler(entry: Entry): http.RequestListener {
    return (_req, res) => {
      const { namespace, name, localEndpoints } = entry.svc;
      const serviceProxyHealthy = this.proxyHealthy();
      const ok = localEndpoints > 0 && serviceProxyHealthy;
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json', 'x-content-type-options': 'nosniff', 'x-load-balancing-endpoint-weight': String(localEndpoints) });
      res.end(JSON.stringify({ service: { namespace, name }, localEndpoints, serviceProxyHealthy }));
    };
  }

  private async open(key: string, entry: Entry): Promise<void> {
    const listen = (server: http.Server, host: string) =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ port: entry.svc.port, host, ipv6Only: false }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    try {
      let server = http.createServer(this.handler(entry));
      try {
        await listen(server, this.host);
      } catch (err) {
        // A host without IPv6 cannot bind '::'; IPv4 alone still serves the load balancers.
        if (this.host !== '::' || !['EAFNOSUPPORT', 'EADDRNOTAVAIL'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
        server = http.createServer(this.handler(entry));
        await listen(server, '0.0.0.0');
      }
      entry.server = server;
      this.log.info('health-check node port open', { service: key, port: entry.svc.port });
    } catch (err) {
      this.log.error('health-check node port cannot be opened; retrying at the next sync', { service: key, port: entry.svc.port, error: (err as Error).message });
    }
  }

  private async close(e: Entry): Promise<void> {
    const s = e.server;
    e.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
