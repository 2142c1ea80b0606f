// Helpers shared by the IPAM unit tests.
import { CniError } from './errors.js';

/** Runs `fn`, which must throw a CniError; returns its [code, message]. */
export function cniErrorOf(fn: () => unknown): [number, string] {
  try {
    fn();
  } catch (e) {
    if (e instanceof CniError) return [e.code, e.message];
    throw e;
  }
  throw new Error('no error');
}
