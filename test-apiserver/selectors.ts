// labelSelector and fieldSelector as kube-apiserver parses them, for lists and watches. Labels:
// `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, comma-separated, all must
// hold. Fields: `metadata.name` and `metadata.namespace` with `=`, `==`, `!=` (the ones every
// kind supports); any other field is refused, as the real server refuses fields a kind does not
// index, instead of being ignored.
type Obj = { metadata?: { name?: string; namespace?: string; labels?: Record<string, string> } };
export type Predicate = (o: Obj) => boolean;

/** Splits at commas outside parentheses. */
function terms(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '(') depth++;
    else if (s[i] === ')') depth--;
    else if (s[i] === ',' && depth === 0) {
      out.push(s.slice(start, i));
      start = i + 1;
    }
  }
  out.push(s.slice(start));
  return out.map((t) => t.trim()).filter((t) => t !== '');
}

const KEY = /^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$/;

function labelTerm(term: string, selector: string): Predicate {
  const bad = () => new TypeError(`labelSelector ${JSON.stringify(selector)}: cannot parse ${JSON.stringify(term)}`);
  const set = /^(\S+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(term);
  if (set) {
    const [, key, op, list] = set;
    if (!KEY.test(key)) throw bad();
    const values = new Set(list.split(',').map((v) => v.trim()));
    // An object without the label is not `in` any set, and is `notin` every one.
    const has = (o: Obj) => key in (o.metadata?.labels ?? {}) && values.has(o.metadata!.labels![key]);
    return op === 'in' ? has : (o) => !has(o);
  }
  const cmp = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(term);
  if (cmp) {
    const [, key, op, value] = cmp;
    if (!KEY.test(key)) throw bad();
    return op === '!=' ? (o) => o.metadata?.labels?.[key] !== value : (o) => o.metadata?.labels?.[key] === value;
  }
  const exists = /^(!?)(\S+)$/.exec(term);
  if (exists && KEY.test(exists[2])) {
    const [, not, key] = exists;
    return not ? (o) => !(key in (o.metadata?.labels ?? {})) : (o) => key in (o.metadata?.labels ?? {});
  }
  throw bad();
}

export function labelSelector(selector: string | undefined): Predicate {
  const preds = terms(selector ?? '').map((t) => labelTerm(t, selector!));
  return (o) => preds.every((p) => p(o));
}

export function fieldSelector(selector: string | undefined): Predicate {
  const preds = terms(selector ?? '').map((term): Predicate => {
    const m = /^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (!m) throw new TypeError(`fieldSelector ${JSON.stringify(selector)}: cannot parse ${JSON.stringify(term)}`);
    const [, field, op, value] = m;
    if (field !== 'metadata.name' && field !== 'metadata.namespace') {
      throw new TypeError(`fieldSelector ${JSON.stringify(selector)}: field label not supported: ${field}`);
    }
    const get = (o: Obj) => (field === 'metadata.name' ? o.metadata?.name : o.metadata?.namespace) ?? '';
    return op === '!=' ? (o) => get(o) !== value : (o) => get(o) === value;
  });
  return (o) => preds.every((p) => p(o));
}
