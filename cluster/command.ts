// `kube-dataplane catalog`: prints the normalized catalog as JSON and exits.
import type { Options } from '../cli/flags.js';

export async function main(_opts: Options): Promise<number> {
  process.stderr.write('catalog: not implemented yet\n');
  return 1;
}
