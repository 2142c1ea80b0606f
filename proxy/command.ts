// `kube-dataplane proxy`: the service proxy alone.
import type { Options } from '../cli/flags.js';
import type { CatalogView } from '../cluster/types.js';

export interface Running {
  stop(): Promise<void>;
}

/** Starts the proxy on an open catalog (the agent shares one catalog with DNS). */
export async function startProxy(_opts: Options, _catalog: CatalogView): Promise<Running> {
  throw new Error('the service proxy is not implemented yet');
}

export async function main(_opts: Options): Promise<number> {
  process.stderr.write('proxy: not implemented yet\n');
  return 1;
}
