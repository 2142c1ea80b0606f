// The life of a long-running command: open the catalog, start the parts on it, wait for SIGTERM
// or SIGINT, stop everything newest first — also when a later part fails to start (a port in
// use), so nothing is left half-running. `agent`, `proxy` and `dns` all run through this.
import { openCatalog, type OpenOptions } from '../cluster/index.js';
import type { CatalogView } from '../cluster/types.js';
import type { Logger } from '../common/log.js';
import type { Options } from './flags.js';
import { untilSignalled } from './main.js';

export interface Part {
  stop(): Promise<void> | void;
}

export async function serveUntilSignalled(
  opts: Options,
  open: OpenOptions,
  log: Logger,
  starters: ReadonlyArray<(view: CatalogView) => Promise<Part> | Part>,
): Promise<number> {
  const catalog = await openCatalog(opts, open);
  const parts: Part[] = [catalog];
  const stopAll = async () => {
    for (const p of parts.reverse()) await p.stop();
  };
  try {
    for (const start of starters) parts.push(await start(catalog.view));
  } catch (err) {
    await stopAll();
    throw err;
  }
  log.info('started', { node: opts.nodeName });
  const sig = await untilSignalled();
  log.info('stopping', { signal: sig });
  await stopAll();
  return 0;
}
