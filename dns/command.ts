// `kube-dataplane dns`: the cluster DNS server alone.
import type { Options } from '../cli/flags.js';
import type { CatalogView } from '../cluster/types.js';

export interface Running {
  stop(): Promise<void>;
}

/** Starts the DNS server on an open catalog (the agent shares one catalog with the proxy). */
export async function startDns(_opts: Options, _catalog: CatalogView): Promise<Running> {
  throw new Error('the DNS server is not implemented yet');
}

export async function main(_opts: Options): Promise<number> {
  process.stderr.write('dns: not implemented yet\n');
  return 1;
}
