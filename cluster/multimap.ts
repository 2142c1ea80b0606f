// A map from a key to several values, sized for 100k+ keys where nearly every key has exactly
// one value (an address and its owner, a service and its one slice): an entry holds that value
// itself, and only becomes a list when a second value arrives. A Set or array per key would
// cost ~100 bytes more per key.

export class MultiMap<K, V> {
  /** V is never an array itself, so Array.isArray tells one value from several. */
  private readonly map = new Map<K, V | V[]>();

  get size(): number {
    return this.map.size;
  }

  get(key: K): readonly V[] {
    const e = this.map.get(key);
    return e === undefined ? [] : Array.isArray(e) ? e : [e];
  }

  has(key: K, value: V): boolean {
    const e = this.map.get(key);
    return e === undefined ? false : Array.isArray(e) ? e.includes(value) : e === value;
  }

  add(key: K, value: V): void {
    const e = this.map.get(key);
    if (e === undefined) this.map.set(key, value);
    else if (Array.isArray(e)) e.push(value);
    else this.map.set(key, [e, value]);
  }

  /** Removes the values of `key` that `drop` selects. */
  remove(key: K, drop: (v: V) => boolean): void {
    const e = this.map.get(key);
    if (e === undefined) return;
    const kept = (Array.isArray(e) ? e : [e]).filter((v) => !drop(v));
    if (kept.length === 0) this.map.delete(key);
    else this.map.set(key, kept.length === 1 ? kept[0] : kept);
  }
}
