import { EventEmitter } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { writeFileAtomic } from '../src/toolkit/atomic-write';
import { CloseGuard, ClosedError } from '../src/toolkit/closing';
import { emitSafely, reportError } from '../src/toolkit/listeners';
import { MinHeap } from '../src/toolkit/min-heap';
import { SerialQueue } from '../src/toolkit/serial-queue';
import { sleep } from '../src/toolkit/sleep';

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('CloseGuard', () => {
  it('runs the release once and gives every close the first promise', async () => {
    const g = new CloseGuard('Thing');
    let runs = 0;
    const a = g.close(async () => {
      runs++;
    });
    const b = g.close(() => {
      runs++;
    });
    expect(a).toBe(b);
    await a;
    expect(runs).toBe(1);
    expect(g.closed).toBe(true);
  });

  it('throws a ClosedError naming the owner once closed', () => {
    const g = new CloseGuard('MemAgent');
    expect(() => g.check()).not.toThrow();
    g.closeSync(() => undefined);
    expect(() => g.check()).toThrow(ClosedError);
    expect(() => g.check()).toThrow('MemAgent is closed');
    expect(g.error().name).toBe('ClosedError');
  });

  it('reports a failed release to every closer', async () => {
    const g = new CloseGuard('Store');
    const a = g.close(() => {
      throw new Error('flush failed');
    });
    await expect(a).rejects.toThrow('flush failed');
    await expect(g.close(() => undefined)).rejects.toThrow('flush failed');
    expect(g.closed).toBe(true);
  });
});

describe('SerialQueue', () => {
  it('runs jobs one at a time in call order, a failure failing only its caller', async () => {
    const q = new SerialQueue();
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const first = q.run(async () => {
      order.push('a start');
      await gate;
      order.push('a end');
      return 1;
    });
    const second = q.run(() => {
      order.push('b');
      throw new Error('b failed');
    });
    const third = q.run(async () => {
      order.push('c');
      return 3;
    });
    await Promise.resolve();
    expect(order).toEqual(['a start']);
    release();
    await expect(first).resolves.toBe(1);
    await expect(second).rejects.toThrow('b failed');
    await expect(third).resolves.toBe(3);
    expect(order).toEqual(['a start', 'a end', 'b', 'c']);
    await expect(q.idle()).resolves.toBeUndefined();
  });
});

describe('sleep', () => {
  it('resolves after the delay', async () => {
    vi.useFakeTimers();
    let done = false;
    const p = sleep(1000).then(() => (done = true));
    await vi.advanceTimersByTimeAsync(999);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await p;
    expect(done).toBe(true);
  });

  it("rejects with the signal's reason on abort, or the caller's error", async () => {
    vi.useFakeTimers();
    const ac = new AbortController();
    const p = sleep(10_000, ac.signal);
    ac.abort(new Error('stop'));
    await expect(p).rejects.toThrow('stop');
    await expect(sleep(5, ac.signal, () => new RangeError('mine'))).rejects.toThrow(RangeError);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('writeFileAtomic', () => {
  it('replaces the file and leaves no temporary file behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'capibara-atomic-'));
    try {
      const path = join(dir, 'state.json');
      await writeFileAtomic(path, 'one');
      await writeFileAtomic(path, Buffer.from('two'));
      expect(readFileSync(path, 'utf8')).toBe('two');
      expect(readdirSync(dir)).toEqual(['state.json']);
      await expect(writeFileAtomic(join(dir, 'missing', 'x'), 'x')).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('listener policy', () => {
  it("a throwing listener goes to 'error' listeners, and the others still run", () => {
    const e = new EventEmitter();
    const seen: unknown[] = [];
    e.on('tick', () => {
      throw new Error('bad listener');
    });
    e.on('tick', (x) => seen.push(x));
    e.on('error', (err) => seen.push((err as Error).message));
    expect(emitSafely(e, 'tick', 7)).toBe(true);
    expect(seen).toEqual(['bad listener', 7]);
  });

  it('with no error listener (or one that throws) the error becomes a process warning', () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    const e = new EventEmitter();
    e.on('tick', () => {
      throw new Error('first');
    });
    emitSafely(e, 'tick');
    reportError(e, new Error('timer failed'));
    e.on('error', () => {
      throw new Error('second');
    });
    emitSafely(e, 'tick');
    expect(warn.mock.calls.map((c) => c[0])).toEqual([
      "a 'tick' listener threw: first",
      'a background task threw: timer failed',
      "an 'error' listener threw: second",
    ]);
    expect(emitSafely(new EventEmitter(), 'none')).toBe(false);
  });
});

describe('MinHeap', () => {
  it('pops in key order, equal keys in insertion order, against a reference', () => {
    const heap = new MinHeap<number>();
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const ref: Array<[number, number]> = [];
    for (let i = 0; i < 2000; i++) {
      const key = Math.floor(rand() * 300);
      heap.push(key, i);
      ref.push([key, i]);
      if (rand() < 0.3) {
        const want = Math.min(...ref.map(([key]) => key));
        expect(heap.peekKey()).toBe(want);
        const at = ref.findIndex(([key]) => key === want); // the first inserted of the smallest key
        expect(heap.pop()).toBe(ref[at]![1]);
        ref.splice(at, 1);
      }
    }
    ref.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    expect(Array.from({ length: heap.size }, () => heap.pop())).toEqual(ref.map(([, id]) => id));
    expect(heap.pop()).toBeUndefined();
    expect(heap.peekKey()).toBe(Infinity);
  });
});
