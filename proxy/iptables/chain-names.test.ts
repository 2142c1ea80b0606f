import { describe, expect, it } from 'vitest';
import { chainHash, endpointChainName, portChains } from './render.js';

// kube-proxy's own expectations (pkg/proxy/iptables/proxier_test.go): service port ns1/svc1:p80
// over TCP is KUBE-SVC-XPGD46QRK7WJZT7O, its endpoint 10.180.0.1:80 is KUBE-SEP-SXIVWICOYRO3J4NJ.
describe('chain names', () => {
  it('are kube-proxy\'s: base32(sha256(port name + lower-case protocol [+ endpoint]))[:16]', () => {
    const p = { name: 'ns1/svc1:p80', protocol: 'TCP' as const };
    expect(portChains(p)).toEqual({ svc: 'KUBE-SVC-XPGD46QRK7WJZT7O', svl: 'KUBE-SVL-XPGD46QRK7WJZT7O', ext: 'KUBE-EXT-XPGD46QRK7WJZT7O', fw: 'KUBE-FW-XPGD46QRK7WJZT7O' });
    expect(endpointChainName(p, { ip: '10.180.0.1', port: 80, local: false, ready: true })).toBe('KUBE-SEP-SXIVWICOYRO3J4NJ');
    expect(chainHash('default/web:httptcp')).toBe('CDGGSHYLG3RE2FKL');
  });

  it('are computed once per service port and kept with it', () => {
    const p = { name: 'ns/web:http', protocol: 'UDP' as const };
    expect(portChains(p)).toBe(portChains(p));
    // A different port record with the same name is hashed again and gets the same names.
    expect(portChains({ ...p })).not.toBe(portChains(p));
    expect(portChains({ ...p })).toEqual(portChains(p));
  });
});
