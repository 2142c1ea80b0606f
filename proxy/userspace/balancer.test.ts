import { describe, expect, it } from 'vitest';
import type { Target } from '../core/model.js';
import { Balancer } from './balancer.js';

const t = (ip: string, port = 8080): Target => ({ ip, port, local: true, ready: true });
const A = t('10.0.0.1');
const B = t('10.0.0.2');
const C = t('10.0.0.3');

describe('Balancer', () => {
  it('round-robins over the endpoints, each once per round', () => {
    const b = new Balancer();
    b.update([A, B, C], 0);
    const picks = Array.from({ length: 9 }, () => b.pick('192.0.2.1')!.ip);
    expect(picks).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.1', '10.0.0.2', '10.0.0.3']);
  });

  it('no endpoints: nothing to pick', () => {
    const b = new Balancer();
    expect(b.pick('192.0.2.1')).toBeUndefined();
    b.update([A], 0);
    b.update([], 0);
    expect(b.pick('192.0.2.1')).toBeUndefined();
  });

  it('skips endpoints to avoid, and gives up when all are', () => {
    const b = new Balancer();
    b.update([A, B, C], 0);
    const avoid = new Set(['10.0.0.1:8080', '10.0.0.2:8080']);
    for (let i = 0; i < 4; i++) expect(b.pick('192.0.2.1', avoid)).toBe(C);
    expect(b.pick('192.0.2.1', new Set(['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.3:8080']))).toBeUndefined();
  });

  it('ClientIP affinity: a client sticks to its endpoint; others are still spread', () => {
    const b = new Balancer();
    b.update([A, B, C], 60);
    const first = b.pick('192.0.2.1')!;
    for (let i = 0; i < 10; i++) expect(b.pick('192.0.2.1')).toBe(first);
    const others = new Set(['192.0.2.2', '192.0.2.3', '192.0.2.4'].map((c) => b.pick(c)!.ip));
    expect(others.size).toBeGreaterThan(1);
  });

  it('affinity ends after the timeout without use, and is refreshed by use', () => {
    let now = 0;
    const b = new Balancer(() => now);
    b.update([A, B], 10);
    const first = b.pick('c')!;
    now = 9_000;
    expect(b.pick('c')).toBe(first); // refreshed: expires at 19 s now
    now = 18_000;
    expect(b.pick('c')).toBe(first);
    now = 40_000;
    b.pick('other'); // moves the round-robin on, so an expired client gets the next endpoint
    const again = b.pick('c')!;
    now = 41_000;
    expect(b.pick('c')).toBe(again);
    b.expire();
    now = 60_000;
    b.expire();
    expect((b as unknown as { sticky: Map<string, unknown> }).sticky.size).toBe(0);
  });

  it('a sticky client whose endpoint is removed, or fails, moves to a live one and sticks there', () => {
    const b = new Balancer();
    b.update([A, B, C], 60);
    const first = b.pick('c')!;
    const rest = [A, B, C].filter((x) => x !== first);
    b.update(rest, 60);
    const moved = b.pick('c')!;
    expect(rest).toContain(moved);
    expect(b.pick('c')).toBe(moved);
    const avoided = b.pick('c', new Set([`${moved.ip}:8080`]))!;
    expect(avoided).not.toBe(moved);
    expect(b.pick('c')).toBe(avoided);
  });

  it('turning affinity off forgets every client', () => {
    const b = new Balancer();
    b.update([A, B, C], 60);
    b.pick('c');
    b.update([A, B, C], 0);
    expect(new Set(Array.from({ length: 3 }, () => b.pick('c')!.ip)).size).toBe(3);
  });

  it('has() answers for the current endpoints only', () => {
    const b = new Balancer();
    b.update([A, B], 0);
    expect(b.has(t('10.0.0.2'))).toBe(true);
    expect(b.has(t('10.0.0.2', 9090))).toBe(false);
    b.update([A], 0);
    expect(b.has(B)).toBe(false);
  });
});
