// JSON merge patch (RFC 7386), `application/merge-patch+json`: objects merge key by key, `null`
// removes a key, anything else (lists included) replaces what was there.
import { isObject, type Json } from './errors.js';

export function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return structuredClone(patch);
  const out = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}
