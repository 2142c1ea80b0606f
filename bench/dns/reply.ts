// Reading DNS replies in tests and benchmarks: dns-packet's decode also names the header's rcode
// ('NOERROR', …), which @types/dns-packet leaves out, and an OPT record has no data.
import dnsPacket from 'dns-packet';

export type Reply = dnsPacket.DecodedPacket & { rcode: string };

export function decodeReply(buf: Buffer): Reply {
  const msg = dnsPacket.decode(buf);
  if (!('rcode' in msg) || typeof msg.rcode !== 'string') throw new Error('dns-packet decoded no rcode');
  return Object.assign(msg, { rcode: msg.rcode });
}

/** A record's data; an OPT record has none. */
export const rdata = (a: dnsPacket.Answer | undefined) => (a && 'data' in a ? a.data : undefined);
