// JSON merge patch against the examples of RFC 7386 (appendix A) and a kubectl label patch.
import { describe, expect, it } from 'vitest';
import type { Json } from './errors.js';
import { mergePatch } from './merge-patch.js';

describe('mergePatch (RFC 7386)', () => {
  const cases: Array<[Json, Json, Json]> = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [['a', 'b'], ['c', 'd'], ['c', 'd']],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];
  it.each(cases)('%j + %j = %j', (target, patch, result) => {
    expect(mergePatch(target, patch)).toEqual(result);
  });

  it('merges labels the way kubectl label sends them, and leaves the target untouched', () => {
    const svc: Json = { metadata: { name: 'web', labels: { app: 'web', tier: 'backend' } }, spec: { ports: [{ port: 80 }] } };
    const before = structuredClone(svc);
    const out = mergePatch(svc, { metadata: { labels: { tier: 'api', old: null } } });
    expect(out).toEqual({ metadata: { name: 'web', labels: { app: 'web', tier: 'api' } }, spec: { ports: [{ port: 80 }] } });
    expect(svc).toEqual(before);
  });
});
