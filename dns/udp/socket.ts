// One UDP socket of a DNS listener: it reads queries, hands each to the listener's handler, and
// sends the answer back to the sender. Two implementations: batch-socket.ts (recvmmsg/sendmmsg
// through a small native binding, the default) and dgram-socket.ts (node:dgram, where the
// binding is not built).
import type { HandlerResult } from '../handler.js';
import type { Peer } from '../querylog.js';

/** The handler's answer to one query from `from`; a promise that never rejects. */
export type UdpQueryHandler = (msg: Buffer, from: Peer) => HandlerResult;

export interface UdpSocketOptions {
  /** A literal address; an IPv6 link-local one carries its scope (fe80::1%eth0). */
  readonly host: string;
  readonly port: number;
  /** SO_REUSEPORT: several threads bind the same address and the kernel spreads clients. */
  readonly reusePort: boolean;
  /** SO_RCVBUF and SO_SNDBUF. */
  readonly bufferBytes: number;
  /** A socket error after the bind (the bind's own errors reject the open). */
  readonly onError: (err: Error) => void;
}

export interface UdpSocket {
  /** The port bound: a port 0 asked becomes a real one. */
  readonly port: number;
  close(): Promise<void>;
}

export type UdpOpener = (opts: UdpSocketOptions, onQuery: UdpQueryHandler) => Promise<UdpSocket>;
