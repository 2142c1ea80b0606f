// JSON patch (RFC 6902), `application/json-patch+json`: a list of operations on JSON pointers
// (RFC 6901), applied in order to a copy; the first one that fails fails the whole patch.
import { isDeepStrictEqual } from 'node:util';
import { PatchError, isObject, type Json } from './errors.js';

type Op = { op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test'; path: string; value?: Json; from?: string };
const OPS = new Set(['add', 'remove', 'replace', 'move', 'copy', 'test']);

export function jsonPatch(target: Json, patch: unknown): Json {
  if (!Array.isArray(patch)) throw new PatchError('a JSON patch must be a list of operations', 400);
  const ops = patch.map((raw, i) => checkOp(raw, i));
  let doc = structuredClone(target);
  ops.forEach((op, i) => {
    try {
      doc = applyOp(doc, op);
    } catch (err) {
      if (!(err instanceof PatchError)) throw err;
      throw new PatchError(`JSON patch operation ${i} (${op.op} ${op.path}): ${err.message}`, err.code);
    }
  });
  return doc;
}

function checkOp(raw: unknown, i: number): Op {
  if (!isObject(raw)) throw new PatchError(`JSON patch operation ${i} is not an object`, 400);
  if (typeof raw.op !== 'string' || !OPS.has(raw.op)) {
    throw new PatchError(`JSON patch operation ${i}: op ${JSON.stringify(raw.op)} is not one of ${[...OPS].join(', ')}`, 400);
  }
  if (typeof raw.path !== 'string') throw new PatchError(`JSON patch operation ${i}: path is missing`, 400);
  if ((raw.op === 'add' || raw.op === 'replace' || raw.op === 'test') && !('value' in raw)) {
    throw new PatchError(`JSON patch operation ${i} (${raw.op}): value is missing`, 400);
  }
  if ((raw.op === 'move' || raw.op === 'copy') && typeof raw.from !== 'string') {
    throw new PatchError(`JSON patch operation ${i} (${raw.op}): from is missing`, 400);
  }
  return raw as unknown as Op;
}

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new PatchError(`${JSON.stringify(path)} is not a JSON pointer`, 400);
  return path.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function get(doc: Json, tokens: readonly string[]): Json {
  let cur = doc;
  for (const t of tokens) {
    if (Array.isArray(cur)) cur = cur[index(cur, t, false)];
    else if (isObject(cur) && t in cur) cur = cur[t];
    else throw new PatchError(`path does not exist`, 422);
  }
  return cur;
}

function index(list: Json[], token: string, forAdd: boolean): number {
  if (forAdd && token === '-') return list.length;
  if (!/^(0|[1-9]\d*)$/.test(token)) throw new PatchError(`${JSON.stringify(token)} is not a list index`, 422);
  const i = Number(token);
  if (i > list.length || (!forAdd && i === list.length)) throw new PatchError(`index ${i} is out of range`, 422);
  return i;
}

function add(doc: Json, tokens: readonly string[], value: Json): Json {
  if (tokens.length === 0) return value;
  const parent = get(doc, tokens.slice(0, -1));
  const last = tokens[tokens.length - 1];
  if (Array.isArray(parent)) parent.splice(index(parent, last, true), 0, value);
  else if (isObject(parent)) parent[last] = value;
  else throw new PatchError('the parent is not an object or a list', 422);
  return doc;
}

function remove(doc: Json, tokens: readonly string[]): Json {
  if (tokens.length === 0) throw new PatchError('cannot remove the whole document', 422);
  const parent = get(doc, tokens.slice(0, -1));
  const last = tokens[tokens.length - 1];
  if (Array.isArray(parent)) parent.splice(index(parent, last, false), 1);
  else if (isObject(parent) && last in parent) delete parent[last];
  else throw new PatchError('path does not exist', 422);
  return doc;
}

function applyOp(doc: Json, op: Op): Json {
  const path = pointer(op.path);
  switch (op.op) {
    case 'add': return add(doc, path, structuredClone(op.value!));
    case 'remove': return remove(doc, path);
    case 'replace':
      if (path.length === 0) return structuredClone(op.value!);
      return add(remove(doc, path), path, structuredClone(op.value!));
    case 'copy': return add(doc, path, structuredClone(get(doc, pointer(op.from!))));
    case 'move': {
      const from = pointer(op.from!);
      if (op.path.startsWith(op.from! + '/')) throw new PatchError('cannot move a value into itself', 422);
      const value = get(doc, from);
      return add(remove(doc, from), path, value);
    }
    case 'test': {
      const found = get(doc, path);
      if (!isDeepStrictEqual(found, op.value)) throw new PatchError(`the value is ${JSON.stringify(found)}, not ${JSON.stringify(op.value)}`, 422);
      return doc;
    }
  }
}
