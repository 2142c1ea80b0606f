// What a listener asks the backend at run time: the endpoint for a new connection or session,
// and whether an endpoint is still in use. Listeners keep no endpoint lists of their own, so a
// sync that changes endpoints only updates the routes.
import type { Target } from '../core/model.js';
import type { ListenerSpec } from './listeners.js';

export interface Router {
  pick(spec: ListenerSpec, clientIP: string, avoid?: ReadonlySet<string>): Target | undefined;
  /** The endpoint still serves this listener's path. */
  has(spec: ListenerSpec, target: Target): boolean;
}

/** An IPv4 client of a dual-stack socket shows as ::ffff:a.b.c.d; affinity keys on a.b.c.d. */
export function plainAddress(a: string | undefined): string {
  return (a ?? '').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
}
