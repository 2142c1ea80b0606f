import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BoundedFrequencyRunner } from './runner.js';

describe('BoundedFrequencyRunner', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function recorder(fail: (n: number) => boolean = () => false) {
    const starts: number[] = [];
    const fn = async () => {
      starts.push(Date.now() - 1_000_000);
      if (fail(starts.length)) throw new Error(`run ${starts.length} failed`);
    };
    return { starts, fn };
  }

  it('runs at once on start, then coalesces a burst into one run per min interval', async () => {
    const r = recorder();
    const runner = new BoundedFrequencyRunner(r.fn, { minIntervalMs: 1000, maxIntervalMs: 30_000 });
    runner.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(r.starts).toEqual([0]);
    for (let i = 0; i < 10; i++) {
      runner.run();
      await vi.advanceTimersByTimeAsync(50);
    }
    await vi.advanceTimersByTimeAsync(2000);
    expect(r.starts).toEqual([0, 1000]);
    await runner.stop();
  });

  it('runs at least once per max interval without requests', async () => {
    const r = recorder();
    const runner = new BoundedFrequencyRunner(r.fn, { minIntervalMs: 1000, maxIntervalMs: 5000 });
    runner.start();
    await vi.advanceTimersByTimeAsync(16_000);
    expect(r.starts).toEqual([0, 5000, 10_000, 15_000]);
    await runner.stop();
  });

  it('never runs two at a time: a request during a run waits for it', async () => {
    let release!: () => void;
    const starts: number[] = [];
    let concurrent = 0;
    let maxConcurrent = 0;
    const fn = async () => {
      starts.push(Date.now() - 1_000_000);
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      if (starts.length === 1) await new Promise<void>((res) => (release = res));
      concurrent--;
    };
    const runner = new BoundedFrequencyRunner(fn, { minIntervalMs: 100, maxIntervalMs: 30_000 });
    runner.start();
    await vi.advanceTimersByTimeAsync(0);
    runner.run();
    await vi.advanceTimersByTimeAsync(1000);
    expect(starts).toEqual([0]);
    release();
    await vi.advanceTimersByTimeAsync(0);
    expect(starts).toEqual([0, 1000]);
    expect(maxConcurrent).toBe(1);
    await runner.stop();
  });

  it('retries a failed run with exponential backoff, capped at the max interval', async () => {
    const r = recorder((n) => n <= 4);
    const errors: number[] = [];
    const runner = new BoundedFrequencyRunner(r.fn, { minIntervalMs: 1000, maxIntervalMs: 6000, onError: (_e, d) => errors.push(d) });
    runner.start();
    await vi.advanceTimersByTimeAsync(20_000);
    expect(errors).toEqual([1000, 2000, 4000, 6000]);
    expect(r.starts.slice(0, 6)).toEqual([0, 1000, 3000, 7000, 13_000, 19_000]);
    expect(runner.consecutiveFailures).toBe(0);
    await runner.stop();
  });

  it('stop() cancels what is scheduled', async () => {
    const r = recorder();
    const runner = new BoundedFrequencyRunner(r.fn, { minIntervalMs: 1000, maxIntervalMs: 2000 });
    runner.start();
    await vi.advanceTimersByTimeAsync(0);
    await runner.stop();
    runner.run();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(r.starts).toEqual([0]);
  });
});
