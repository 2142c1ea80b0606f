// A log of the changes made to some Maps, to put them back as they were. A partial sync updates
// the backend's owner and hairpin maps (100k entries at 10k services) before nft has accepted the
// transaction; recording the few changes costs what the change costs, where a copy to fall back
// on cost the whole map on every sync.
export class MapUndo {
  private readonly log: { map: Map<unknown, unknown>; key: unknown; had: boolean; value: unknown }[] = [];

  set<K, V>(map: Map<K, V>, key: K, value: V): void {
    this.record(map, key);
    map.set(key, value);
  }

  delete<K, V>(map: Map<K, V>, key: K): void {
    this.record(map, key);
    map.delete(key);
  }

  /** Puts every map back as it was before the first recorded change; the log is empty after. */
  rollback(): void {
    for (let i = this.log.length - 1; i >= 0; i--) {
      const e = this.log[i];
      if (e.had) e.map.set(e.key, e.value);
      else e.map.delete(e.key);
    }
    this.log.length = 0;
  }

  get size(): number {
    return this.log.length;
  }

  private record<K, V>(map: Map<K, V>, key: K): void {
    this.log.push({ map: map as Map<unknown, unknown>, key, had: map.has(key), value: map.get(key) });
  }
}
