import { execFile } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { availableParallelism } from 'node:os';

import { CloseGuard } from '../toolkit/closing';
import { emitSafely, reportError } from '../toolkit/listeners';
import * as v from '../validate';

/**
 * One GPU as `nvidia-smi` reports it.
 *
 * @example
 * ```ts
 * const busy = (g: GpuSample) => g.utilization > 0.9;
 * ```
 */
export interface GpuSample {
  /** Device index. */
  index: number;
  /** Fraction of the last sample period the GPU was busy (0-1), as nvidia-smi reports it; NaN when it reports N/A. */
  utilization: number;
  /** Device memory in use (bytes). */
  memoryUsedBytes: number;
  /** Device memory in total (bytes). */
  memoryTotalBytes: number;
}

/**
 * One measurement of this process's resource use.
 *
 * @example
 * ```ts
 * monitor.on('sample', (s: ResourceSample) => metrics.set('cpu_cores', s.cpuCores));
 * ```
 */
export interface ResourceSample {
  /** When it was taken (epoch ms). */
  at: number;
  /** CPU time (user + system) this process used per wall-clock second since the previous sample: cores busy. */
  cpuCores: number;
  /** `cpuCores` / `os.availableParallelism()`, in [0, 1] unless the OS over-reports. */
  cpuFraction: number;
  /** Resident set size (bytes). */
  rssBytes: number;
  /** V8 heap in use (bytes). */
  heapUsedBytes: number;
  /** Memory outside the V8 heap that V8 tracks (bytes): ArrayBuffers, typed arrays, native buffers. */
  externalBytes: number;
  /** GPUs, when `nvidia-smi` is present and answers; null otherwise. */
  gpus: GpuSample[] | null;
}

/**
 * Options of {@link ResourceMonitor}.
 *
 * @example
 * ```ts
 * const opts: ResourceMonitorOptions = { intervalMs: 5_000, gpu: false };
 * ```
 */
export interface ResourceMonitorOptions {
  /** Sampling period (ms) of the unref'd timer; default 1000. */
  intervalMs?: number;
  /** Query GPUs through `nvidia-smi`: `'auto'` (default: if it runs), `false` never. */
  gpu?: 'auto' | false;
}

// nvidia-smi's GPUs, or null (not installed, or it failed this time: `missing` says which).
function queryGpus(): Promise<{ gpus: GpuSample[] | null; missing: boolean }> {
  return new Promise((resolve) => {
    execFile(
      'nvidia-smi',
      ['--query-gpu=index,utilization.gpu,memory.used,memory.total', '--format=csv,noheader,nounits'],
      { timeout: 2000 },
      (err, stdout) => {
        if (err) return resolve({ gpus: null, missing: (err as NodeJS.ErrnoException).code === 'ENOENT' });
        const gpus = stdout
          .trim()
          .split('\n')
          .filter(Boolean)
          // '[N/A]' fields (e.g. MIG devices) become NaN rather than hiding the GPU.
          .map((line) => line.split(',').map((f) => Number(f.trim())))
          .filter((f) => f.length === 4 && Number.isInteger(f[0]))
          .map(([index, util, used, total]) => ({ index: index!, utilization: util! / 100, memoryUsedBytes: used! * 2 ** 20, memoryTotalBytes: total! * 2 ** 20 }));
        resolve({ gpus, missing: false });
      },
    );
  });
}

/**
 * Samples this process's real CPU and memory use (and GPUs through `nvidia-smi` when present)
 * on an unref'd timer, emitting `sample` events; `close()` stops it. Feed the samples to your
 * metrics, or charge them to CPU / MEMORY / GPU budgets with {@link BudgetForcing}.
 *
 * @example
 * ```ts
 * import { ResourceMonitor } from '@capibara/core';
 * const monitor = new ResourceMonitor({ intervalMs: 1_000 });
 * monitor.on('sample', (s) => console.log(s.cpuCores.toFixed(2), 'cores', (s.rssBytes / 2 ** 20).toFixed(0), 'MiB'));
 * // … later
 * monitor.close();
 * ```
 */
export class ResourceMonitor extends EventEmitter {
  /** Sampling period (ms). */
  readonly intervalMs: number;
  #gpu: boolean;
  #last = { wall: performance.now(), cpu: process.cpuUsage() };
  #latest: ResourceSample | null = null;
  readonly #timer: NodeJS.Timeout;
  readonly #guard = new CloseGuard('ResourceMonitor');

  /** Starts sampling. */
  constructor(options: ResourceMonitorOptions = {}) {
    super();
    const o = v.options<ResourceMonitorOptions>('options', options, ['intervalMs', 'gpu']);
    this.intervalMs = o.intervalMs === undefined ? 1000 : v.integer('intervalMs', o.intervalMs, 1, 2 ** 31 - 1);
    if (o.gpu !== undefined && o.gpu !== 'auto' && o.gpu !== false) throw v.typeError('gpu', "'auto' or false", o.gpu);
    this.#gpu = o.gpu !== false;
    // A timer never throws: listener and sampling errors follow the package's listener policy.
    this.#timer = setInterval(() => {
      this.sample().then(
        (s) => !this.#guard.closed && emitSafely(this, 'sample', s),
        (e: unknown) => reportError(this, e, 'the resource sampler'),
      );
    }, this.intervalMs);
    this.#timer.unref();
  }

  /**
   * The most recent sample, or null before the first.
   *
   * @example
   * ```ts
   * const s = monitor.latest;
   * if (s) console.log((s.rssBytes / 2 ** 20).toFixed(0), 'MiB at', new Date(s.at));
   * ```
   */
  get latest(): ResourceSample | null {
    return this.#latest;
  }

  /**
   * Whether {@link ResourceMonitor.close} was called.
   *
   * @example
   * ```ts
   * monitor.close();
   * console.log(monitor.closed); // true
   * ```
   */
  get closed(): boolean {
    return this.#guard.closed;
  }

  /**
   * Takes a sample now (CPU use is measured since the previous sample).
   *
   * @example
   * ```ts
   * const s = await monitor.sample();
   * console.log(s.cpuCores.toFixed(2), 'cores', s.gpus?.map((g) => g.utilization) ?? 'no GPU');
   * ```
   */
  async sample(): Promise<ResourceSample> {
    const at = Date.now();
    const wall = performance.now();
    const cpu = process.cpuUsage();
    const seconds = Math.max(1e-9, (wall - this.#last.wall) / 1000);
    const cpuCores = (cpu.user - this.#last.cpu.user + cpu.system - this.#last.cpu.system) / 1e6 / seconds;
    this.#last = { wall, cpu };
    const mem = process.memoryUsage();
    let gpus: GpuSample[] | null = null;
    if (this.#gpu) {
      const q = await queryGpus();
      gpus = q.gpus;
      if (q.missing) this.#gpu = false; // not installed: stop spawning it every period
    }
    const s: ResourceSample = {
      at,
      cpuCores,
      cpuFraction: cpuCores / availableParallelism(),
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      externalBytes: mem.external,
      gpus,
    };
    if (this.#latest === null || this.#latest.at <= s.at) this.#latest = s;
    return s;
  }

  /**
   * Stops the timer. Idempotent.
   *
   * @example
   * ```ts
   * process.once('SIGTERM', () => monitor.close());
   * ```
   */
  close(): void {
    this.#guard.closeSync(() => clearInterval(this.#timer));
  }

  /** {@link ResourceMonitor.close}, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }
}
