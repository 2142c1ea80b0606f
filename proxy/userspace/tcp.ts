// One TCP listener of the userspace mode: accepts on a service address and port and splices
// each connection to an endpoint the router picks. Bytes flow both ways with half-close passed
// on (a client's FIN becomes the proxy's FIN to the endpoint and back); an error on either side
// resets the other; a side that closes ends the other. No endpoint: the accepted connection is
// reset at once, which the client sees as a reset connection instead of a hang. An endpoint that
// refuses or does not answer the handshake is replaced by another one (up to CONNECT_TRIES).
import net from 'node:net';
import type { Logger } from '../../common/log.js';
import { targetKey } from '../core/model.js';
import { admits, type ListenerSpec } from './listeners.js';
import { plainAddress, type Router } from './router.js';

export const CONNECT_TRIES = 3;
export const CONNECT_TIMEOUT_MS = 5_000;

function reset(s: net.Socket): void {
  if (s.destroyed) return;
  try {
    s.resetAndDestroy();
  } catch {
    s.destroy();
  }
}

/** Ends `s` gracefully once its pending writes are out. */
function finish(s: net.Socket): void {
  if (s.destroyed) return;
  if (s.writableFinished) s.destroy();
  else {
    s.once('finish', () => s.destroy());
    s.end();
  }
}

export function splice(a: net.Socket, b: net.Socket, live: Set<net.Socket>): void {
  for (const s of [a, b]) {
    s.setNoDelay(true);
    live.add(s);
    s.once('close', () => live.delete(s));
  }
  a.on('error', () => reset(b));
  b.on('error', () => reset(a));
  a.once('close', (hadError) => (hadError ? reset(b) : finish(b)));
  b.once('close', (hadError) => (hadError ? reset(a) : finish(a)));
  a.pipe(b);
  b.pipe(a);
}

export class TcpListener {
  private readonly server: net.Server;
  /** Accepted connections not yet closed (they outlive a closed listener). */
  active = 0;

  constructor(
    public spec: ListenerSpec,
    private readonly router: Router,
    private readonly live: Set<net.Socket>,
    private readonly log: Logger,
  ) {
    // Paused until the endpoint answers: nothing is read from a client we may still reset.
    this.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (c) => this.accept(c));
  }

  /** The port bound (the spec's, or the kernel's choice for port 0). */
  boundPort(): number {
    return (this.server.address() as { port: number }).port;
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const failed = (err: Error) => reject(err);
      this.server.once('error', failed);
      this.server.listen({ host: this.spec.host, port: this.spec.port, ipv6Only: this.spec.family === 'IPv6', exclusive: true }, () => {
        this.server.off('error', failed);
        this.server.on('error', (err) => this.log.warn('TCP listener error', { listener: this.spec.key, service: this.spec.portName, error: err.message }));
        resolve();
      });
    });
  }

  /** Stops accepting; established connections go on until either side ends them. */
  close(): void {
    this.server.close();
  }

  private accept(client: net.Socket): void {
    const spec = this.spec;
    const clientIP = plainAddress(client.remoteAddress);
    if (!admits(spec, clientIP)) {
      // Outside loadBalancerSourceRanges: refused before any endpoint is asked.
      this.log.debug('connection from a source outside loadBalancerSourceRanges reset', { service: spec.portName, listener: spec.key, client: clientIP });
      reset(client);
      return;
    }
    this.active++;
    client.once('close', () => this.active--);
    const tried = new Set<string>();
    let up: net.Socket | undefined;
    const gone = () => up?.destroy();
    client.on('error', gone);
    client.once('close', gone);
    const attempt = () => {
      const t = this.router.pick(spec, clientIP, tried);
      if (!t) {
        if (tried.size) this.log.debug('no endpoint accepted the connection', { service: spec.portName, tried: [...tried].join(',') });
        reset(client);
        return;
      }
      const sock = net.connect({ host: t.ip, port: t.port, allowHalfOpen: true, timeout: CONNECT_TIMEOUT_MS });
      up = sock;
      const fail = (why: string) => {
        sock.destroy();
        tried.add(targetKey(t));
        this.log.debug('endpoint connect failed', { service: spec.portName, endpoint: targetKey(t), error: why });
        if (client.destroyed) return;
        if (tried.size < CONNECT_TRIES) attempt();
        else reset(client);
      };
      const onError = (err: Error) => fail((err as NodeJS.ErrnoException).code ?? err.message);
      const onTimeout = () => fail('timeout');
      sock.once('error', onError);
      sock.once('timeout', onTimeout);
      sock.once('connect', () => {
        sock.off('error', onError);
        sock.off('timeout', onTimeout);
        sock.setTimeout(0);
        client.off('error', gone);
        client.off('close', gone);
        if (client.destroyed) {
          sock.destroy();
          return;
        }
        splice(client, sock, this.live);
      });
    };
    attempt();
  }
}
