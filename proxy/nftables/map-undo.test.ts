import { describe, expect, it } from 'vitest';
import { MapUndo } from './map-undo.js';

describe('MapUndo', () => {
  it('rolls back sets, deletes and repeated changes of one key, across maps, to the state before the first', () => {
    const a = new Map([['x', 1], ['y', 2]]);
    const b = new Map([['k', 'v']]);
    const undo = new MapUndo();
    undo.set(a, 'x', 10);
    undo.delete(a, 'y');
    undo.set(a, 'y', 3);
    undo.set(a, 'z', 4);
    undo.delete(a, 'z');
    undo.set(a, 'x', 11);
    undo.delete(b, 'k');
    undo.set(b, 'n', 'new');
    expect([...a]).toEqual([['x', 11], ['y', 3]]);
    expect([...b]).toEqual([['n', 'new']]);
    expect(undo.size).toBe(8);
    undo.rollback();
    expect(new Map(a)).toEqual(new Map([['x', 1], ['y', 2]]));
    expect([...b]).toEqual([['k', 'v']]);
    expect(undo.size).toBe(0);
  });

  it('deleting a missing key and rolling back leaves it missing', () => {
    const a = new Map<string, number>();
    const undo = new MapUndo();
    undo.delete(a, 'gone');
    undo.rollback();
    expect(a.has('gone')).toBe(false);
  });
});
