// `kube-dataplane catalog`: prints the normalized catalog as JSON and exits — what a user runs
// to see exactly what the agent sees (after validation, with slices merged).
import type { Options } from '../cli/flags.js';
import { openCatalog } from './index.js';
import type { CatalogView } from './types.js';

export function catalogAsJSON(view: CatalogView): unknown {
  const byKey = <T extends { key: string }>(a: T, b: T) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
  return {
    synced: view.synced,
    services: [...view.services()].sort(byKey).map((s) => ({ ...s, endpoints: view.endpoints(s.key) ?? null })),
    nodes: [...view.nodes()].sort(byKey),
  };
}

export async function main(opts: Options): Promise<number> {
  const handle = await openCatalog(opts, { pods: opts.pods === 'verified' });
  const timeout = new Promise<'timeout'>((r) => setTimeout(r, 30_000, 'timeout').unref());
  if ((await Promise.race([handle.synced, timeout])) === 'timeout') {
    process.stderr.write('catalog: the source did not sync within 30 s; printing what arrived\n');
  }
  process.stdout.write(JSON.stringify(catalogAsJSON(handle.view), null, 2) + '\n');
  await handle.stop();
  return handle.view.synced ? 0 : 1;
}
