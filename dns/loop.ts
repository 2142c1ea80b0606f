// `loop`: a forwarding loop (the upstream, or its upstream, is this server) found at start and
// ended, as CoreDNS does: a HINFO question for a random name in the block's zone is sent to the
// block's own address; every arrival of that name is counted, and once it has arrived more than
// twice the questions are going round, so the server stops (the pod restarts and the operator
// reads why). One probe shows at most two arrivals here, because identical questions in flight
// share one upstream exchange; so up to three probes are sent, one after the other, and probing
// stops at the first real answer.
import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import type { ListenAddress } from '../common/http-server.js';
import type { Logger } from '../common/log.js';
import { FLAG_QR, FLAG_RD, MessageWriter, QCLASS_IN, RCODE } from './wire.js';

const HINFO = 13;
const PROBES = 3;
const ARRIVALS_THAT_MEAN_A_LOOP = 3;

export class LoopDetector {
  /** The probe's name, lower case, no final dot. */
  readonly name: string;
  private arrivals = 0;
  private done = false;

  constructor(zone: string, private readonly onLoop: (arrivals: number) => void) {
    this.name = `${randomInt(1e9)}.${randomInt(1e9)}${zone ? `.${zone}` : ''}`;
  }

  /** Called by the handler for every question it answers; cheap when it is not the probe. */
  saw(name: string): void {
    if (this.done || name !== this.name) return;
    if (++this.arrivals >= ARRIVALS_THAT_MEAN_A_LOOP) {
      this.done = true;
      this.onLoop(this.arrivals);
    }
  }

  /** Probes `at` (the block's own address) until an answer other than SERVFAIL, or three
   *  probes; each waits for its reply or `timeoutMs`. */
  async probe(at: ListenAddress, timeoutMs: number, log: Logger): Promise<void> {
    const host = at.host === '0.0.0.0' ? '127.0.0.1' : at.host === '::' ? '::1' : at.host;
    for (let i = 0; i < PROBES && !this.done; i++) {
      const rcode = await ask(host, at.port, this.name, timeoutMs);
      if (rcode !== undefined && rcode !== RCODE.SERVFAIL) break;
    }
    if (!this.done) log.debug('no forwarding loop', { probe: this.name, arrivals: this.arrivals });
    this.done = true;
  }
}

function ask(host: string, port: number, name: string, timeoutMs: number): Promise<number | undefined> {
  const w = new MessageWriter(300);
  const id = randomInt(65536);
  for (const v of [id, FLAG_RD, 1, 0, 0, 0]) w.u16(v);
  w.name(name);
  w.u16(HINFO);
  w.u16(QCLASS_IN);
  const query = Buffer.from(w.done());
  const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  return new Promise((resolve) => {
    const finish = (rcode: number | undefined) => {
      clearTimeout(timer);
      sock.close();
      resolve(rcode);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    sock.on('error', () => finish(undefined));
    sock.on('message', (m) => {
      if (m.length >= 4 && m.readUInt16BE(0) === id && (m.readUInt16BE(2) & FLAG_QR) !== 0) finish(m.readUInt16BE(2) & 0xf);
    });
    sock.send(query, port, host);
  });
}
