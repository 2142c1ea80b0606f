// What a source (the API watcher, the manifest directory) feeds: raw Kubernetes objects in their
// API shape (plain JSON, or @kubernetes/client-node's model objects — same field names). The
// catalog validates and normalizes them; a source never interprets an object itself.
export type Kind = 'Service' | 'EndpointSlice' | 'Node' | 'Pod' | 'Namespace' | 'ServiceCIDR';
export const KINDS: readonly Kind[] = ['Service', 'EndpointSlice', 'Node', 'Pod', 'Namespace', 'ServiceCIDR'];
/** The kinds that live outside namespaces: their key is their name. */
export const isClusterScoped = (kind: Kind): boolean => kind === 'Node' || kind === 'Namespace' || kind === 'ServiceCIDR';

export interface ObjectSink {
  /** Adds or replaces one object. */
  apply(kind: Kind, obj: unknown): void;
  /** Removes one object; unknown objects are ignored. */
  delete(kind: Kind, namespace: string, name: string): void;
  /** Replaces every object of `kind` with `objs` (a list or relist): only the difference is
   *  delivered as a change, so a relist that finds nothing new costs consumers nothing. */
  replace(kind: Kind, objs: readonly unknown[]): void;
  /** The source has delivered a complete list of `kind` once. */
  markSynced(kind: Kind): void;
  /** Runs `fn` and delivers everything it applied as one change. */
  batch(fn: () => void): void;
}

/** A running source; `stop` ends its watches. */
export interface Source {
  start(sink: ObjectSink): Promise<void>;
  stop(): Promise<void>;
}
