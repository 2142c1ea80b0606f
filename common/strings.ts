// Strings the catalog keeps for as long as an object lives. Two V8 habits make kept strings
// cost far more than their text at 100k endpoints:
// - a substring of 13+ characters is a *slice* that keeps its whole parent alive: an IP address
//   parsed by js-yaml out of a manifest keeps the document's text in memory;
// - a concatenation of 13+ characters is a *cons* tree (32 bytes per node) until something
//   flattens it, and a Map key never does.
// So what the catalog keeps goes through `own` (a flat copy of its own) or `shared` (one flat
// copy for all equal values: namespaces, protocols, port and node names repeat 100k times).

const SHARED_MAX = 100_000;
const table = new Map<string, string>();
const NON_LATIN1 = /[^\u0000-\u00ff]/;

/** A flat copy of `s` that holds no other string alive. */
export function own(s: string): string {
  // Shorter strings are always copied flat by V8; longer ones are rebuilt from their bytes.
  if (s.length < 13) return s;
  return NON_LATIN1.test(s) ? Buffer.from(s, 'utf16le').toString('utf16le') : Buffer.from(s, 'latin1').toString('latin1');
}

/**
 * `s` made flat in place, for a concatenation (cons) that is kept. Cheaper than `own`: reading
 * its last character makes V8 flatten the tree into one string, and the collector then drops
 * the tree's nodes (400k rule lines: 155 MB as trees, 57 MB flat, and built faster).
 */
export function flat(s: string): string {
  s.charCodeAt(s.length - 1);
  return s;
}

/** One flat copy per distinct value, for strings that repeat across objects. */
export function shared<T extends string>(s: T): T {
  let v = table.get(s);
  if (v === undefined) {
    // Bounded: a cluster that churns through distinct values must not grow this forever; the
    // copies already handed out stay valid after a reset.
    if (table.size >= SHARED_MAX) table.clear();
    v = own(s);
    table.set(v, v);
  }
  return v as T;
}
