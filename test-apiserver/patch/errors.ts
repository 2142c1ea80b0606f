// What a patch can do wrong, as the API answers it: 400 when the patch itself is malformed,
// 422 when it is well-formed but cannot be applied to the object (a failed JSON-patch `test`, a
// path that does not exist, a list element without its merge key).
export class PatchError extends Error {
  constructor(message: string, readonly code: 400 | 422) {
    super(message);
  }
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
