import { describe, expect, it } from 'vitest';
import { parseUpstream, upstreamsFromResolvConf } from './forwarder.js';

describe('upstreams', () => {
  it('parses HOST[:PORT] for both families and names what is wrong', () => {
    expect(parseUpstream('192.0.2.53')).toEqual({ host: '192.0.2.53', port: 53 });
    expect(parseUpstream('192.0.2.53:5353')).toEqual({ host: '192.0.2.53', port: 5353 });
    expect(parseUpstream('fd00::53')).toEqual({ host: 'fd00::53', port: 53 });
    expect(parseUpstream('[fd00::53]:5353')).toEqual({ host: 'fd00::53', port: 5353 });
    expect(() => parseUpstream('dns.example')).toThrow(/--upstream "dns.example": "dns.example" is not an IP address/);
    expect(() => parseUpstream('192.0.2.1:0')).toThrow(/bad port/);
  });

  it('takes resolv.conf nameservers but never ourselves', () => {
    const conf = '# comment\nsearch example\nnameserver 10.0.0.10\nnameserver 192.0.2.1\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nnameserver bogus\n';
    const local = new Set(['10.0.0.10', '10.0.0.11']);
    expect(upstreamsFromResolvConf(conf, [{ host: '10.0.0.10', port: 53 }], local)).toEqual([
      { host: '192.0.2.1', port: 53 }, { host: '127.0.0.53', port: 53 }, { host: 'fe80::1', port: 53 },
    ]);
    // A wildcard listener on port 53 is every local and loopback address of its family.
    expect(upstreamsFromResolvConf(conf, [{ host: '0.0.0.0', port: 53 }], local)).toEqual([{ host: '192.0.2.1', port: 53 }, { host: 'fe80::1', port: 53 }]);
    expect(upstreamsFromResolvConf(conf, [{ host: '0.0.0.0', port: 53 }, { host: '::', port: 53 }], new Set([...local, 'fe80::1']))).toEqual([{ host: '192.0.2.1', port: 53 }]);
    // Another port is not us.
    expect(upstreamsFromResolvConf('nameserver 10.0.0.10\n', [{ host: '0.0.0.0', port: 5353 }], local)).toEqual([{ host: '10.0.0.10', port: 53 }]);
  });
});
