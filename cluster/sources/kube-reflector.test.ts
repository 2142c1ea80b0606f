// The reflector's loop with a scripted client: what it resumes from, when it relists, and that
// failures slow it down instead of making it spin.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { logger, configureLogging } from '../../common/log.js';
import type { Kind, ObjectSink } from '../sink.js';
import { Reflector, type KindClient, type ReflectorOptions } from './kube-reflector.js';

const OPTS: ReflectorOptions = { inactivityMs: 5_000, backoffInitialMs: 40, backoffMaxMs: 200, watchTimeoutSeconds: [300, 300], listTimeoutMs: 1_000 };
const HOOKS = { onEvent: () => {}, onRestart: () => {}, onList: () => {} };

class Sink implements ObjectSink {
  ops: string[] = [];
  apply(_k: Kind, o: unknown): void { this.ops.push(`apply ${(o as { metadata: { name: string } }).metadata.name}`); }
  delete(_k: Kind, ns: string, name: string): void { this.ops.push(`delete ${ns}/${name}`); }
  replace(_k: Kind, objs: readonly unknown[]): void { this.ops.push(`replace ${objs.length}`); }
  markSynced(): void { this.ops.push('synced'); }
  batch(fn: () => void): void { fn(); }
}

const svc = (name: string, rv: string) => ({ kind: 'Service', metadata: { namespace: 'default', name, resourceVersion: rv } });
describe('Reflector', () => {
  configureLogging({ level: 'error' });
  // The reflector's only clock is setTimeout and Date.now: on fake timers every backoff,
  // inactivity timeout and scripted event happens when the test moves the clock, not in real time.
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('resumes a failed watch from the last event’s resourceVersion, and relists only on 410', async () => {
    const watchedFrom: string[] = [];
    let lists = 0;
    let step = 0;
    const client: KindClient = {
      async list() { lists++; return { items: [svc('a', '5')], resourceVersion: '5' }; },
      async watch(rv, _t, onEvent, onDone) {
        watchedFrom.push(rv);
        const n = step++;
        setTimeout(() => {
          if (n === 0) { onEvent('ADDED', svc('b', '6')); onEvent('BOOKMARK', { kind: 'Service', metadata: { resourceVersion: '8' } }); onDone(new Error('connection reset')); }
          else if (n === 1) { onEvent('ERROR', { kind: 'Status', code: 500, message: 'hiccup' }); }
          else if (n === 2) { onEvent('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old' }); }
        }, 5);
        return { abort() {} };
      },
    };
    const sink = new Sink();
    const r = new Reflector('Service', client, sink, OPTS, logger('test'), HOOKS);
    r.start();
    await r.synced;
    await vi.advanceTimersByTimeAsync(3_000);
    await r.stop();
    // reset → from the bookmark; ERROR 500 → same; ERROR 410 → relist, then from the new list.
    expect(watchedFrom).toEqual(['5', '8', '8', '5']);
    expect(lists).toBe(2);
    expect(sink.ops.slice(0, 3)).toEqual(['replace 1', 'synced', 'apply b']);
    expect(sink.ops.filter((o) => o === 'synced')).toHaveLength(1);
  });

  it('backs off when every watch ends in 410 right after the list, instead of spinning', async () => {
    let lists = 0;
    const client: KindClient = {
      async list() { lists++; return { items: [], resourceVersion: '1' }; },
      async watch(_rv, _t, _onEvent, onDone) {
        setImmediate(() => onDone(Object.assign(new Error('Gone'), { statusCode: 410 })));
        return { abort() {} };
      },
    };
    const r = new Reflector('Service', client, new Sink(), OPTS, logger('test'), HOOKS);
    r.start();
    await vi.advanceTimersByTimeAsync(600);
    await r.stop();
    // 40, 80, 160, 200 ms (halved by jitter at most): a handful of lists, not hundreds.
    expect(lists).toBeGreaterThanOrEqual(2);
    expect(lists).toBeLessThanOrEqual(10);
  });

  it.each([404, 403])('takes an optional kind the API server answers %i for (not served, not allowed) as none, and watches nothing', async (code) => {
    let lists = 0;
    let watches = 0;
    const client: KindClient = {
      async list() { lists++; throw Object.assign(new Error('refused'), { code }); },
      async watch() { watches++; return { abort() {} }; },
    };
    const sink = new Sink();
    const r = new Reflector('ServiceCIDR', client, sink, { ...OPTS, optional: true }, logger('test'), HOOKS);
    r.start();
    await r.synced;
    await vi.advanceTimersByTimeAsync(5_000);
    await r.stop();
    expect([lists, watches, sink.ops]).toEqual([1, 0, ['replace 0', 'synced']]);
    // A kind that is not optional keeps asking: a 404 may be an API server still starting.
    const required = new Reflector('Service', client, new Sink(), OPTS, logger('test'), HOOKS);
    required.start();
    await vi.advanceTimersByTimeAsync(1_000);
    await required.stop();
    expect(lists).toBeGreaterThan(2);
  });

  it('retries a failing list with backoff and stops promptly while waiting', async () => {
    let lists = 0;
    const client: KindClient = {
      async list() { lists++; throw new Error('connect ECONNREFUSED'); },
      async watch() { throw new Error('unreachable'); },
    };
    const r = new Reflector('Node', client, new Sink(), { ...OPTS, backoffInitialMs: 5_000, backoffMaxMs: 5_000 }, logger('test'), HOOKS);
    r.start();
    await vi.advanceTimersByTimeAsync(50);
    // Stopping must not wait out the 5 s backoff: it settles with the clock standing still.
    let stopped = false;
    void r.stop().then(() => (stopped = true));
    await vi.advanceTimersByTimeAsync(0);
    expect(stopped).toBe(true);
    expect(lists).toBe(1);
  });

  it('restarts a watch that delivers nothing for inactivityMs, from the same resourceVersion', async () => {
    const watchedFrom: string[] = [];
    let aborted = 0;
    const client: KindClient = {
      async list() { return { items: [], resourceVersion: '3' }; },
      async watch(rv) { watchedFrom.push(rv); return { abort() { aborted++; } }; },
    };
    const r = new Reflector('Pod', client, new Sink(), { ...OPTS, inactivityMs: 100 }, logger('test'), HOOKS);
    r.start();
    await vi.advanceTimersByTimeAsync(350);
    await r.stop();
    expect(watchedFrom.length).toBeGreaterThanOrEqual(3);
    expect(new Set(watchedFrom)).toEqual(new Set(['3']));
    expect(aborted).toBeGreaterThanOrEqual(watchedFrom.length - 1);
  });
});
