// The device gating kernel's per-token logic (native/cuda/gating_row.cuh), compiled by nvcc for
// the host and run here against the CPU kernel on the same cases as cuda-gating.test.ts: the
// routing math and its orderings (selection, ties, groups, sums), not the GPU's execution of it,
// which only cuda-gating.test.ts on a GPU checks. Skipped with the reason where nvcc is missing.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topkGating } from '../src/experts/gating/topk-gating';
import { GATING_CASES, caseInputs } from './support/gating-cases';

const ROOT = join(__dirname, '..');
// nvcc and the check program are not built with ASan: keep the sanitizer run's preload away from them.
const { LD_PRELOAD: _preload, ...CHILD_ENV } = process.env;
const nvcc = spawnSync('nvcc', ['--version'], { encoding: 'utf8', env: CHILD_ENV });
const SKIP = nvcc.status === 0 ? '' : ` (skipped: nvcc not found: ${nvcc.error?.message ?? nvcc.stderr})`;
let dir: string;
let bin: string;

/** Whether the CPU kernel takes its token-tile path (native/gating/topk.cc UsesTiles; cuda-gating.ts mirrors it). */
function usesTiles(k: number, experts: number, groups: number, bias: boolean): boolean {
  const most = bias || groups > 1 ? 1024 : k <= 4 ? 512 : 128;
  return k <= 8 && groups <= 64 && experts <= most;
}

function runHost(logits: Float32Array, o: ReturnType<typeof caseInputs>['options']): { weights: Float32Array; indices: Int32Array; bad: bigint } {
  const E = o.experts!;
  const T = logits.length / E;
  const groups = o.groups?.count ?? 1;
  const bias = o.bias === undefined ? null : Float32Array.from(o.bias);
  const head = new ArrayBuffer(8 + 11 * 4 + 4);
  const view = new DataView(head);
  view.setBigInt64(0, BigInt(T), true);
  const ints = [E, o.k, o.scoring === 'sigmoid' ? 1 : 0, o.renormalize === false ? 0 : 1, groups, o.groups?.topkGroups ?? 1,
    o.groups?.score === 'max' ? 1 : 0, o.expertRange?.[0] ?? 0, o.expertRange?.[1] ?? E, usesTiles(o.k, E, groups, bias !== null) ? 0 : 1, bias ? 1 : 0];
  ints.forEach((x, i) => view.setInt32(8 + 4 * i, x, true));
  view.setFloat32(8 + 44, o.routeScale ?? 1, true);
  const request = join(dir, 'request.bin');
  const result = join(dir, 'result.bin');
  writeFileSync(request, Buffer.concat([Buffer.from(head), ...(bias ? [Buffer.from(bias.buffer)] : []), Buffer.from(logits.buffer, logits.byteOffset, logits.byteLength)]));
  const run = spawnSync(bin, [request, result], { env: CHILD_ENV });
  if (run.status !== 0) throw new Error(`gating host check exited with ${run.status}: ${String(run.stderr)}`);
  const out = readFileSync(result);
  const n = T * o.k;
  const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength).slice();
  return {
    weights: new Float32Array(bytes.buffer, 0, n),
    indices: new Int32Array(bytes.buffer, 4 * n, n),
    bad: new DataView(bytes.buffer).getBigInt64(8 * n, true),
  };
}

describe.skipIf(SKIP !== '')(`device gating logic (host build) equals the CPU kernel${SKIP}`, () => {
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'capibara-gating-host-'));
    bin = join(dir, 'gating-host');
    const c = spawnSync('nvcc', ['-std=c++17', '-O2', '-I', join(ROOT, 'native'), join(ROOT, 'test/support/cuda-gating-host.cu'), '-o', bin], { encoding: 'utf8', env: CHILD_ENV });
    if (c.status !== 0) throw new Error(`nvcc failed: ${c.stderr}`);
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(GATING_CASES)('$name', (c) => {
    const { logits, options } = caseInputs(c);
    const cpu = topkGating(logits, options);
    const host = runHost(logits, options);
    expect(host.bad).toBe(-1n);
    expect(host.indices).toEqual(cpu.indices);
    let worst = 0;
    for (let i = 0; i < cpu.weights.length; i++) worst = Math.max(worst, Math.abs(host.weights[i]! - cpu.weights[i]!));
    expect(worst).toBeLessThanOrEqual(1e-6);
  });

  it('reports the first NaN or +Infinity logit as the CPU kernel does', () => {
    const { logits, options } = caseInputs(GATING_CASES[0]!);
    logits[5 * options.experts! + 1] = Number.POSITIVE_INFINITY;
    logits[9 * options.experts!] = Number.NaN;
    expect(runHost(logits, options).bad).toBe(BigInt(5 * options.experts! + 1));
  });
});
