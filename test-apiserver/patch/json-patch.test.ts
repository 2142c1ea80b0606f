// JSON patch: the operations of RFC 6902 and its error cases (appendix A), with the codes the API
// answers (400 for a malformed patch, 422 for one that does not apply).
import { describe, expect, it } from 'vitest';
import { PatchError, type Json } from './errors.js';
import { jsonPatch } from './json-patch.js';

function code(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof PatchError) return err.code;
    throw err;
  }
  return undefined;
}

describe('jsonPatch (RFC 6902)', () => {
  it('adds to objects and lists (by index and at the end with -)', () => {
    expect(jsonPatch({ foo: 'bar' }, [{ op: 'add', path: '/baz', value: 'qux' }])).toEqual({ foo: 'bar', baz: 'qux' });
    expect(jsonPatch({ foo: ['bar', 'baz'] }, [{ op: 'add', path: '/foo/1', value: 'qux' }])).toEqual({ foo: ['bar', 'qux', 'baz'] });
    expect(jsonPatch({ foo: ['bar'] }, [{ op: 'add', path: '/foo/-', value: ['abc'] }])).toEqual({ foo: ['bar', ['abc']] });
  });

  it('removes, replaces, moves, copies and tests', () => {
    expect(jsonPatch({ baz: 'qux', foo: 'bar' }, [{ op: 'remove', path: '/baz' }])).toEqual({ foo: 'bar' });
    expect(jsonPatch({ foo: ['bar', 'qux', 'baz'] }, [{ op: 'remove', path: '/foo/1' }])).toEqual({ foo: ['bar', 'baz'] });
    expect(jsonPatch({ baz: 'qux' }, [{ op: 'replace', path: '/baz', value: 'boo' }])).toEqual({ baz: 'boo' });
    expect(jsonPatch({ foo: { bar: 'baz', waldo: 'fred' }, qux: { corge: 'grault' } }, [{ op: 'move', from: '/foo/waldo', path: '/qux/thud' }]))
      .toEqual({ foo: { bar: 'baz' }, qux: { corge: 'grault', thud: 'fred' } });
    expect(jsonPatch({ foo: ['all', 'grass', 'cows', 'eat'] }, [{ op: 'move', from: '/foo/1', path: '/foo/3' }])).toEqual({ foo: ['all', 'cows', 'eat', 'grass'] });
    expect(jsonPatch({ a: { b: 1 } }, [{ op: 'copy', from: '/a', path: '/c' }])).toEqual({ a: { b: 1 }, c: { b: 1 } });
    expect(jsonPatch({ baz: 'qux', foo: ['a', 2, 'c'] }, [{ op: 'test', path: '/baz', value: 'qux' }, { op: 'test', path: '/foo/1', value: 2 }]))
      .toEqual({ baz: 'qux', foo: ['a', 2, 'c'] });
  });

  it('escapes ~ and / in pointers (~0, ~1)', () => {
    const labels: Json = { metadata: { labels: { 'app.kubernetes.io/name': 'web', 'a~b': 'x' } } };
    expect(jsonPatch(labels, [{ op: 'replace', path: '/metadata/labels/app.kubernetes.io~1name', value: 'api' }, { op: 'remove', path: '/metadata/labels/a~0b' }]))
      .toEqual({ metadata: { labels: { 'app.kubernetes.io/name': 'api' } } });
  });

  it('applies all operations or none: a failed test leaves the target as it was', () => {
    const target: Json = { baz: 'qux' };
    expect(code(() => jsonPatch(target, [{ op: 'add', path: '/x', value: 1 }, { op: 'test', path: '/baz', value: 'bar' }]))).toBe(422);
    expect(target).toEqual({ baz: 'qux' });
  });

  it('answers 422 for paths that do not exist and 400 for malformed operations', () => {
    expect(code(() => jsonPatch({ foo: 'bar' }, [{ op: 'add', path: '/baz/bat', value: 'qux' }]))).toBe(422);
    expect(code(() => jsonPatch({ foo: 'bar' }, [{ op: 'remove', path: '/nope' }]))).toBe(422);
    expect(code(() => jsonPatch({ foo: [1] }, [{ op: 'replace', path: '/foo/1', value: 2 }]))).toBe(422);
    expect(code(() => jsonPatch({ foo: [1] }, [{ op: 'add', path: '/foo/01', value: 2 }]))).toBe(422);
    expect(code(() => jsonPatch({}, { op: 'add' }))).toBe(400);
    expect(code(() => jsonPatch({}, [{ op: 'frobnicate', path: '/a' }]))).toBe(400);
    expect(code(() => jsonPatch({}, [{ op: 'add', path: '/a' }]))).toBe(400);
    expect(code(() => jsonPatch({}, [{ op: 'move', path: '/a' }]))).toBe(400);
    expect(code(() => jsonPatch({}, [{ op: 'add', path: 'a', value: 1 }]))).toBe(400);
    expect(code(() => jsonPatch({ a: { b: 1 } }, [{ op: 'move', from: '/a', path: '/a/b/c' }]))).toBe(422);
  });
});
