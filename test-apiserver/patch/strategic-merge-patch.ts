// Strategic merge patch, `application/strategic-merge-patch+json`: a JSON merge patch that knows
// the kind's lists (strategies.ts). A list with a merge key merges element by element (a patch
// element updates the element with the same key, or is appended); a list of primitives with a
// merge strategy takes the union; every other list is replaced. The directives kubectl sends for
// these kinds are honoured: `$patch: replace|delete|merge` on maps and list elements,
// `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>` and `$retainKeys`.
import { PatchError, isObject, type Json, type JsonObject } from './errors.js';
import type { Strategies } from './strategies.js';

const SET_ORDER = '$setElementOrder/';
const DELETE_PRIMITIVE = '$deleteFromPrimitiveList/';

export function strategicMergePatch(target: Json, patch: Json, strategies: Strategies): Json {
  if (!isObject(patch)) throw new PatchError('a strategic merge patch must be a JSON object', 400);
  const out = mergeMap(isObject(target) ? target : {}, patch, '', strategies);
  return out === undefined ? {} : out;
}

function child(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/** Merges `patch` into `original`; undefined when the patch deletes the map. */
function mergeMap(original: JsonObject, patch: JsonObject, path: string, strategies: Strategies): JsonObject | undefined {
  const directive = patch.$patch;
  if (directive === 'delete') return undefined;
  if (directive === 'replace') return stripDirectives(patch);
  if (directive !== undefined && directive !== 'merge') {
    throw new PatchError(`${path || 'the object'}: unknown $patch directive ${JSON.stringify(directive)}`, 400);
  }
  const out: JsonObject = structuredClone(original);
  for (const [key, value] of Object.entries(patch)) {
    if (!key.startsWith(DELETE_PRIMITIVE)) continue;
    const field = key.slice(DELETE_PRIMITIVE.length);
    if (!Array.isArray(value)) throw new PatchError(`${child(path, key)} must be a list`, 400);
    const current = out[field];
    if (Array.isArray(current)) out[field] = current.filter((x) => !value.some((v) => v === x));
  }
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) continue;
    const here = child(path, key);
    if (value === null) {
      delete out[key];
    } else if (isObject(value)) {
      const merged = mergeMap(isObject(out[key]) ? out[key] : {}, value, here, strategies);
      if (merged === undefined) delete out[key];
      else out[key] = merged;
    } else if (Array.isArray(value)) {
      out[key] = mergeList(Array.isArray(out[key]) ? out[key] : [], value, here, strategies);
    } else {
      out[key] = value;
    }
  }
  for (const [key, value] of Object.entries(patch)) {
    if (!key.startsWith(SET_ORDER)) continue;
    const field = key.slice(SET_ORDER.length);
    if (!Array.isArray(value)) throw new PatchError(`${child(path, key)} must be a list`, 400);
    const list = out[field];
    if (Array.isArray(list)) out[field] = order(list, value, strategies.get(child(path, field))?.key);
  }
  if ('$retainKeys' in patch) {
    const keep = patch.$retainKeys;
    if (!Array.isArray(keep)) throw new PatchError(`${child(path, '$retainKeys')} must be a list`, 400);
    for (const key of Object.keys(out)) if (!keep.includes(key)) delete out[key];
  }
  return out;
}

function mergeList(original: Json[], patch: Json[], path: string, strategies: Strategies): Json[] {
  const strategy = strategies.get(path);
  if (!strategy) return patch.map((v) => (isObject(v) ? stripDirectives(v) : v));
  if (strategy.key === undefined) {
    const out = [...original];
    for (const v of patch) if (!out.some((x) => x === v)) out.push(v);
    return out;
  }
  const key = strategy.key;
  if (patch.some((v) => isObject(v) && v.$patch === 'replace')) {
    return patch.filter((v) => !(isObject(v) && v.$patch === 'replace')).map((v) => (isObject(v) ? stripDirectives(v) : v));
  }
  const out = structuredClone(original);
  for (const element of patch) {
    const shown = JSON.stringify(element);
    if (!isObject(element)) throw new PatchError(`${path}: ${shown} is not an object (the list merges by ${key})`, 422);
    if (!(key in element)) throw new PatchError(`${path}: ${shown} does not contain the merge key ${key}`, 422);
    const i = out.findIndex((x) => isObject(x) && x[key] === element[key]);
    if (element.$patch === 'delete') {
      if (i >= 0) out.splice(i, 1);
      continue;
    }
    const merged = mergeMap(i >= 0 ? (out[i] as JsonObject) : {}, element, `${path}[]`, strategies);
    if (merged === undefined) continue;
    if (i >= 0) out[i] = merged;
    else out.push(merged);
  }
  return out;
}

/** The elements named in `wanted` (by merge key, or by value) in that order, then the rest as
 *  they were. */
function order(list: Json[], wanted: Json[], key: string | undefined): Json[] {
  const id = (v: Json): Json => (key !== undefined && isObject(v) ? v[key] : v);
  const rank = new Map<Json, number>(wanted.map((w, i) => [id(w), i]));
  const named = list.filter((v) => rank.has(id(v))).sort((a, b) => rank.get(id(a))! - rank.get(id(b))!);
  return [...named, ...list.filter((v) => !rank.has(id(v)))];
}

function stripDirectives(v: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(v)) {
    if (key.startsWith('$')) continue;
    out[key] = isObject(value) ? stripDirectives(value) : value;
  }
  return out;
}
