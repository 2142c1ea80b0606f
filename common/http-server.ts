// The small HTTP server behind /metrics, /healthz, /health and /ready. proxy and dns each start
// one or more on their own addresses; handlers are plain functions of the request path.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Reply {
  status: number;
  body: string;
  contentType?: string;
}
export type Route = (req: http.IncomingMessage) => Reply | Promise<Reply>;

export interface ListenAddress {
  host: string;
  port: number;
}

/** Parses `HOST:PORT`, `[V6]:PORT` or `:PORT` (all addresses). */
export function parseHostPort(s: string, what = 'address'): ListenAddress {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`${what} ${JSON.stringify(s)} is not HOST:PORT`);
  const host = m[1] ?? (m[2] || '0.0.0.0');
  return { host, port };
}

export class HttpEndpoint {
  private server?: http.Server;

  constructor(private readonly routes: Record<string, Route>) {}

  async listen(addr: ListenAddress): Promise<AddressInfo> {
    const server = http.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      const route = this.routes[path];
      if (!route) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      Promise.resolve()
        .then(() => route(req))
        .then(
          (r) => res.writeHead(r.status, { 'content-type': r.contentType ?? 'text/plain; charset=utf-8' }).end(r.body),
          (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
        );
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(addr.port, addr.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
