// Opens the one catalog of a process from the source the options name.
import type { Options } from '../cli/flags.js';
import type { CatalogView } from './types.js';

export interface CatalogHandle {
  readonly view: CatalogView;
  /** Resolves once every kind has been listed once (the catalog is synced). */
  readonly synced: Promise<void>;
  stop(): Promise<void>;
}

export interface OpenOptions {
  /** Watch Pods too (DNS `--pods verified`); off by default, Pods are many. */
  pods?: boolean;
}

export async function openCatalog(opts: Pick<Options, 'kubeconfig' | 'manifests' | 'nodeName'>, open: OpenOptions = {}): Promise<CatalogHandle> {
  throw new Error(`openCatalog is not implemented yet (${JSON.stringify(opts)}, ${JSON.stringify(open)})`);
}
