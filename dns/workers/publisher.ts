// The writer's side of the answer table: what the main thread publishes, and when it goes
// stale. A question a worker handed over is answered by the route's handler with the route
// "armed"; the block that answers it asks `target` where to publish (handler.ts), and only then
// is anything written. Catalog changes bump the dependency versions of what they touch.
import type { CatalogView } from '../../cluster/types.js';
import type { Answer } from '../cache.js';
import type { AnswerSink, AnswerTarget } from '../handler.js';
import type { Template } from '../records.js';
import type { Query } from '../wire.js';
import { AnswerTable, MAX_KEY, ZONE_WIDE, questionKey, serviceDependency } from './answer-table.js';

export class TablePublisher implements AnswerSink {
  /** The route whose handed-over question is being answered now (synchronously), if any. */
  private armed: number | undefined;
  /** Bumped when the table is emptied: a late answer of an older configuration is not published. */
  private generation = 0;
  private readonly scratch = new Uint8Array(MAX_KEY);
  private readonly unwatch: () => void;

  constructor(readonly table: AnswerTable, catalog: CatalogView) {
    // A change makes stale the answers of the services it names, and every answer that any
    // change may alter (negative answers, reverse names, pods, the apex's serial).
    this.unwatch = catalog.onChange((change) => {
      for (const key of change.services) table.bump(serviceDependency(key));
      table.bump(ZONE_WIDE);
    });
  }

  /** Runs `answer` (a handler's synchronous part) with answers published under `route`. */
  armedFor<T>(route: number, answer: () => T): T {
    this.armed = route;
    try {
      return answer();
    } finally {
      this.armed = undefined;
    }
  }

  /** A new configuration: everything published goes. */
  clear(): void {
    this.table.clear();
    this.generation++;
  }

  close(): void {
    this.unwatch();
  }

  target(msg: Buffer, q: Query): AnswerTarget | undefined {
    if (this.armed === undefined) return undefined;
    const n = questionKey(msg, q, this.armed, this.scratch);
    const key = this.scratch.slice(0, n);
    const gen = this.generation;
    const table = this.table;
    const current = () => gen === this.generation;
    return {
      template(tpl: Template, dep: number, plugin: number, flags: number) {
        if (current()) table.publishTemplate(key, n, dep, tpl, plugin, flags);
      },
      answer(a: Answer, expires: number, dep: number, plugin: number, flags: number) {
        if (current()) table.publishAnswer(key, n, dep, a, expires, plugin, flags);
      },
    };
  }
}
