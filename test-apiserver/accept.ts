// The Accept header as kube-apiserver reads it for its alternative representations (aggregated
// discovery, tables): media ranges in order, the first one the server can produce wins.

/** The version of `application/json;g=GROUP;v=VERSION;as=KIND` the client asks for first, among
 *  `versions`; undefined when plain JSON (or nothing it knows) comes first. Protobuf ranges are
 *  skipped: the server speaks JSON only. */
export function preferredVersion<V extends string>(
  accept: string | undefined, group: string, as: string, versions: readonly V[],
): V | undefined {
  for (const range of (accept ?? '').split(',')) {
    const [type, ...params] = range.split(';').map((s) => s.trim());
    const p = Object.fromEntries(params.map((kv) => kv.split('=').map((s) => s.trim()) as [string, string]));
    if ((type === 'application/json' || type === '*/*') && p.g === undefined && p.as === undefined) return undefined;
    if (type !== 'application/json' || p.g !== group || p.as !== as) continue;
    const v = versions.find((x) => x === p.v);
    if (v) return v;
  }
  return undefined;
}
