// The messages between the main thread and a DNS worker thread. Query and reply bytes travel
// as their own ArrayBuffers, transferred rather than copied a second time.
import type { AclOptions } from '../acl.js';
import type { LogFormat, LogLevel } from '../../common/log.js';
import type { QuerySnapshot } from '../query-metrics.js';

/** A listen address the worker binds (its port already chosen by the main thread). */
export interface WorkerRoute {
  readonly id: number;
  readonly host: string;
  readonly port: number;
}

export interface WorkerInit {
  readonly index: number;
  readonly table: SharedArrayBuffer;
  readonly routes: readonly WorkerRoute[];
  readonly acl: AclOptions;
  /** The `server` label of the cache metrics, and the cluster zone's label (`cluster.local.`). */
  readonly cacheServer: string;
  readonly clusterZone: string;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
}

export type FromWorker =
  | { readonly t: 'ready'; readonly failed: readonly string[] }
  /** A question the table does not answer; `refuse`: the source is not allowed. */
  | { readonly t: 'query'; readonly id: number; readonly route: number; readonly msg: Uint8Array; readonly address: string; readonly port: number; readonly refuse: boolean }
  | { readonly t: 'routed'; readonly id: number; readonly failed: readonly string[] }
  | { readonly t: 'metrics'; readonly id: number; readonly snapshot: QuerySnapshot };

export type ToWorker =
  | { readonly t: 'reply'; readonly id: number; readonly reply?: Uint8Array }
  | { readonly t: 'routes'; readonly id: number; readonly routes: readonly WorkerRoute[]; readonly cacheServer: string }
  | { readonly t: 'metrics'; readonly id: number }
  | { readonly t: 'stop' };

/** A copy of `b` in an ArrayBuffer of its own (a Buffer may be a slice of a pooled slab, and
 *  posting it would clone the whole slab). */
export function ownBytes(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.length);
  out.set(b);
  return out;
}
