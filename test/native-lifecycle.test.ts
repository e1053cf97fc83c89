import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';

const lib = resolve(__dirname, '..', 'lib', 'index.js');

function runWorker(code: string): Promise<unknown> {
  return new Promise((ok, fail) => {
    const w = new Worker(code, { eval: true, workerData: { lib } });
    w.once('message', ok);
    w.once('error', fail);
  });
}

describe('addon in worker threads and at exit', () => {
  it('runs sync and async kernels in several workers at once', async () => {
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      const { topkGating, topkGatingAsync, dispatchPlan } = require(workerData.lib);
      const logits = new Float32Array(4096 * 64).map((_, i) => Math.sin(i * 12.9898) * 43758.5453 % 1);
      const a = topkGating(logits, { experts: 64, k: 8 });
      topkGatingAsync(logits, { experts: 64, k: 8 }).then((b) => {
        const plan = dispatchPlan(b, { capacityFactor: 1 });
        parentPort.postMessage({ same: Buffer.compare(Buffer.from(a.indices.buffer), Buffer.from(b.indices.buffer)) === 0, kept: plan.permutation.length });
      });`;
    const results = await Promise.all([runWorker(code), runWorker(code), runWorker(code)]);
    for (const r of results) expect(r).toMatchObject({ same: true });
  });

  it('survives a worker terminated while its async kernel runs', async () => {
    const w = new Worker(
      `const { workerData, parentPort } = require('node:worker_threads');
       const { topkGatingAsync } = require(workerData.lib);
       const logits = new Float32Array(200000 * 64);
       for (let i = 0; i < 4; i++) topkGatingAsync(logits, { experts: 64, k: 8, threads: 1 });
       parentPort.postMessage('started');`,
      { eval: true, workerData: { lib } },
    );
    await new Promise((ok) => w.once('message', ok));
    const code = await w.terminate();
    expect(code).toBe(1);
  });

  it('exits cleanly with async work in flight', () => {
    const out = execFileSync(
      process.execPath,
      ['-e', `const { topkGatingAsync } = require(${JSON.stringify(lib)});
              topkGatingAsync(new Float32Array(100000 * 64), { experts: 64, k: 8 });
              setImmediate(() => { console.log('bye'); process.exit(0); });`],
      { encoding: 'utf8' },
    );
    expect(out.trim()).toBe('bye');
  });
});
