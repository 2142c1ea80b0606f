import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_THREADS, dnsThreads, reusePortSupported } from './threads.js';

describe('dnsThreads', () => {
  it('is --workers when given, else the CPUs up to the ceiling', () => {
    expect(dnsThreads(3, 2, '24.22.3')).toEqual({ threads: 3 });
    expect(dnsThreads(0, 2, '24.22.3')).toEqual({ threads: 2 });
    expect(dnsThreads(0, 64, '24.22.3')).toEqual({ threads: DEFAULT_MAX_THREADS });
    expect(dnsThreads(0, 1, '24.22.3')).toEqual({ threads: 1 });
  });

  it('knows which Node versions share a UDP port between sockets', () => {
    expect(['22.12.0', '22.20.1', '23.1.0', '24.0.0', '25.2.1'].map((v) => reusePortSupported(v))).toEqual([true, true, true, true, true]);
    expect(['20.20.2', '22.11.0', '23.0.0'].map((v) => reusePortSupported(v))).toEqual([false, false, false]);
  });

  it('on an older Node: one thread by default, with the reason; --workers N > 1 refused, naming the flag', () => {
    const d = dnsThreads(0, 4, '20.20.2');
    expect(d.threads).toBe(1);
    expect(d.warning).toMatch(/Node 20\.20\.2 .*SO_REUSEPORT/);
    expect(() => dnsThreads(2, 4, '20.20.2')).toThrow(/--workers 2: .*Node 20\.20\.2/);
    expect(dnsThreads(1, 4, '20.20.2')).toEqual({ threads: 1 });
  });
});
