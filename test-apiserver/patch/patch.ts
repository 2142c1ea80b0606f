// A PATCH request's body applied to the stored object, by its Content-Type, as kube-apiserver
// chooses: JSON patch, merge patch, strategic merge patch. Server-side apply is not implemented
// and says so with 415, as is any other media type.
import { PatchError, type Json } from './errors.js';
import { jsonPatch } from './json-patch.js';
import { mergePatch } from './merge-patch.js';
import { strategicMergePatch } from './strategic-merge-patch.js';
import { strategiesOf } from './strategies.js';

export const PATCH_TYPES = [
  'application/json-patch+json',
  'application/merge-patch+json',
  'application/strategic-merge-patch+json',
] as const;

/** A media type the server does not take for PATCH: HTTP 415 UnsupportedMediaType. */
export class UnsupportedPatchType extends Error {}

export type PatchType = (typeof PATCH_TYPES)[number];

/** The patch type a Content-Type names; UnsupportedPatchType (415) for any other. kube-apiserver
 *  checks this before it looks the object up, so server-side apply of a new object gets 415 too. */
export function patchTypeOf(contentType: string | undefined): PatchType {
  const type = (contentType ?? '').split(';')[0].trim().toLowerCase();
  if (type === 'application/apply-patch+yaml') {
    throw new UnsupportedPatchType(
      'server-side apply (application/apply-patch+yaml) is not implemented by the test API server; use client-side kubectl apply',
    );
  }
  const known = PATCH_TYPES.find((t) => t === type);
  if (!known) {
    throw new UnsupportedPatchType(`the body of a PATCH must be one of ${PATCH_TYPES.join(', ')}; got ${JSON.stringify(contentType ?? '')}`);
  }
  return known;
}

export function applyPatch(type: PatchType, kind: string, current: Json, body: string): Json {
  let patch: Json;
  try {
    patch = JSON.parse(body) as Json;
  } catch (err) {
    throw new PatchError(`the patch is not JSON: ${(err as Error).message}`, 400);
  }
  switch (type) {
    case 'application/json-patch+json': return jsonPatch(current, patch);
    case 'application/merge-patch+json': return mergePatch(current, patch);
    default: return strategicMergePatch(current, patch, strategiesOf(kind));
  }
}
