import { describe, expect, it } from 'vitest';
import { chooseResolvConf, upstreamsFromResolvConf } from './resolvconf.js';

describe('upstreams from resolv.conf', () => {
  const conf = '# comment\nsearch example\nnameserver 10.0.0.10\nnameserver 192.0.2.1\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nnameserver bogus\n';
  const local = new Set(['10.0.0.10', '10.0.0.11', '127.0.0.1', '::1']);

  it('takes the nameservers but never an address and port we serve on', () => {
    expect(upstreamsFromResolvConf(conf, [{ host: '10.0.0.10', port: 53 }], local)).toEqual([
      { host: '192.0.2.1', port: 53 }, { host: '127.0.0.53', port: 53 }, { host: 'fe80::1', port: 53 },
    ]);
    // A wildcard listener on port 53 serves every local address of its family, and only those.
    expect(upstreamsFromResolvConf(conf, [{ host: '0.0.0.0', port: 53 }], local)).toEqual([
      { host: '192.0.2.1', port: 53 }, { host: '127.0.0.53', port: 53 }, { host: 'fe80::1', port: 53 },
    ]);
    expect(upstreamsFromResolvConf(conf, [{ host: '0.0.0.0', port: 53 }, { host: '::', port: 53 }], new Set([...local, 'fe80::1']))).toEqual([
      { host: '192.0.2.1', port: 53 }, { host: '127.0.0.53', port: 53 },
    ]);
    // Another port is not us.
    expect(upstreamsFromResolvConf('nameserver 10.0.0.10\n', [{ host: '0.0.0.0', port: 5353 }], local)).toEqual([{ host: '10.0.0.10', port: 53 }]);
  });

  it('keeps systemd-resolved\'s stub under a wildcard listener: 127.0.0.53 is not a local address we bind', () => {
    expect(upstreamsFromResolvConf('nameserver 127.0.0.53\n', [{ host: '0.0.0.0', port: 53 }, { host: '::', port: 53 }], local)).toEqual([{ host: '127.0.0.53', port: 53 }]);
    // 127.0.0.1 is on lo, so a wildcard :53 listener binds it: that one is us.
    expect(upstreamsFromResolvConf('nameserver 127.0.0.1\n', [{ host: '0.0.0.0', port: 53 }], local)).toEqual([]);
  });
});

describe('which resolv.conf', () => {
  const files: Record<string, string> = {
    '/etc/resolv.conf': 'nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n',
    '/run/systemd/resolve/resolv.conf': 'nameserver 10.1.0.2\nnameserver fd00::2\n',
    '/other/resolv.conf': 'nameserver 192.0.2.1\n',
    '/empty/resolv.conf': '# no nameserver\n',
  };
  const read = (p: string) => files[p];

  it('uses systemd-resolved\'s own file when resolv.conf names only its stub', () => {
    const c = chooseResolvConf({ path: '/etc/resolv.conf', systemdPath: '/run/systemd/resolve/resolv.conf' }, read);
    expect([c.path, c.text, c.reason]).toEqual(['/run/systemd/resolve/resolv.conf', files['/run/systemd/resolve/resolv.conf'], expect.stringMatching(/only systemd-resolved's stub/)]);
  });

  it('keeps resolv.conf otherwise, and falls back to the stub when the other file is missing, empty or turned off', () => {
    expect(chooseResolvConf({ path: '/other/resolv.conf', systemdPath: '/run/systemd/resolve/resolv.conf' }, read).path).toBe('/other/resolv.conf');
    expect(chooseResolvConf({ path: '/etc/resolv.conf', systemdPath: '/missing' }, read)).toMatchObject({ path: '/etc/resolv.conf', text: files['/etc/resolv.conf'] });
    expect(chooseResolvConf({ path: '/etc/resolv.conf', systemdPath: '/empty/resolv.conf' }, read).path).toBe('/etc/resolv.conf');
    expect(chooseResolvConf({ path: '/etc/resolv.conf', systemdPath: '' }, read).path).toBe('/etc/resolv.conf');
    expect(chooseResolvConf({ path: '/missing', systemdPath: '/run/systemd/resolve/resolv.conf' }, read)).toEqual({ path: '/missing', text: '' });
  });
});
