// A DNS UDP socket on node:dgram: one receive, one `rinfo`, one call into JavaScript and one send
// per datagram. The fallback where the batch binding (batch-socket.ts) is not built.
import dgram from 'node:dgram';
import type { UdpQueryHandler, UdpSocket, UdpSocketOptions } from './socket.js';

/**
 * We only ever send to the address a query came from, always a literal: resolving it through
 * dns.lookup (the default) costs a deferred callback per reply.
 */
function literalAddress(address: string, _family: unknown, cb: (err: Error | null, address: string, family: number) => void): void {
  cb(null, address, address.includes(':') ? 6 : 4);
}

/** Sends a reply that took a while (forwarded): its socket may have closed meanwhile. */
function sendLate(udp: dgram.Socket, reply: Buffer, to: dgram.RemoteInfo): void {
  try {
    udp.send(reply, to.port, to.address);
  } catch {
    /* the address went away or we are stopping: the client will retry */
  }
}

export async function openDgramSocket(opts: UdpSocketOptions, onQuery: UdpQueryHandler): Promise<UdpSocket> {
  const v6 = opts.host.includes(':');
  const udp = dgram.createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6, reusePort: opts.reusePort, recvBufferSize: opts.bufferBytes, sendBufferSize: opts.bufferBytes, lookup: literalAddress });
  await new Promise<void>((resolve, reject) => {
    udp.once('error', (err) => {
      udp.close();
      reject(err);
    });
    udp.bind(opts.port, opts.host, () => {
      udp.removeAllListeners('error');
      resolve();
    });
  });
  udp.on('error', opts.onError);
  udp.on('message', (msg, rinfo) => {
    const r = onQuery(msg, rinfo);
    if (r === undefined) return;
    if (Buffer.isBuffer(r)) udp.send(r, rinfo.port, rinfo.address);
    else void r.then((b) => b && sendLate(udp, b, rinfo));
  });
  let closing: Promise<void> | undefined;
  return {
    port: udp.address().port,
    close: () => (closing ??= new Promise<void>((resolve) => udp.close(() => resolve()))),
  };
}
