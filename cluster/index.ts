// Opens the one catalog of a process from the source the options name: `--manifests DIR`, or the
// Kubernetes API (`--kubeconfig FILE`, or the in-cluster config when running in a pod).
import type { Options } from '../cli/flags.js';
import { logger } from '../common/log.js';
import { Catalog } from './catalog.js';
import type { Kind, Source } from './sink.js';
import { ManifestSource } from './sources/manifests.js';
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
  /** Watch Namespaces too (DNS: an existing namespace with no services is a name, NODATA). */
  namespaces?: boolean;
  /** Watch ServiceCIDRs too (the nftables proxy drops their addresses no service has). */
  serviceCIDRs?: boolean;
}

export async function openCatalog(opts: Pick<Options, 'kubeconfig' | 'manifests'>, open: OpenOptions = {}): Promise<CatalogHandle> {
  const kinds: Kind[] = ['Service', 'EndpointSlice', 'Node', ...(open.pods ? (['Pod'] as const) : []), ...(open.namespaces ? (['Namespace'] as const) : []), ...(open.serviceCIDRs ? (['ServiceCIDR'] as const) : [])];
  const catalog = new Catalog({ kinds });
  let source: Source;
  if (opts.manifests) {
    source = new ManifestSource({ dir: opts.manifests });
  } else {
    // Imported only here: the API client is large, and manifest users never need it.
    const { KubeSource } = await import('./sources/kube.js');
    source = new KubeSource({ kubeconfig: opts.kubeconfig, kinds, log: logger('watch') });
  }
  const synced = new Promise<void>((resolve) => {
    if (catalog.synced) return resolve();
    const off = catalog.onChange(() => {
      if (catalog.synced) {
        off();
        resolve();
      }
    });
  });
  // The API source starts watching and returns; the manifest source has listed once by then.
  await source.start(catalog);
  return { view: catalog, synced, stop: () => source.stop() };
}
