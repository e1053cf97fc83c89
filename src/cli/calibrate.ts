/**
 * `capibara calibrate`: a DuoAttention head pattern from saved captures — one safetensors file
 * per layer and calibration text, holding `q` `[n, queryHeads, headDim]`, `k` and `v`
 * `[n, kvHeads, headDim]` (after RoPE) and `__metadata__.layer` — scored by calibrateHeads
 * with a progress bar, saved as DuoAttention's pattern files.
 * @module
 * @internal
 */
import { calibrateHeads, type CalibrationMethod, type CalibrationSample } from '../attention/index';
import * as v from '../validate';
import { int, num, UsageError } from './args';
import { ProgressBar } from './progress';
import { readFloat32, readHeader, type SafetensorsHeader } from './safetensors';

/** The options of `capibara calibrate`. */
export interface CalibrateFlags {
  out?: string;
  sink?: string;
  recent?: string;
  ratio?: string;
  method?: string;
  lastQueries?: string;
  threads?: string;
  layers?: string;
}

export async function calibrate(files: string[], f: CalibrateFlags): Promise<number> {
  if (files.length === 0) throw new UsageError('calibrate needs at least one capture file');
  if (f.out === undefined) throw new UsageError('calibrate needs --out DIR');
  const sink = int('--sink', f.sink, 0) ?? 64;
  const recent = int('--recent', f.recent, 1) ?? 256;
  const ratio = num('--ratio', f.ratio, { min: 0, max: 1 }) ?? 0.5;
  const method = (f.method === undefined ? 'output-error' : v.oneOf('--method', f.method, ['output-error', 'attention-mass', 'both'])) as CalibrationMethod;
  const lastQueries = int('--last-queries', f.lastQueries, 1);
  const threads = int('--threads', f.threads, 1, 256);

  // Every header first: the shapes and the layers, so a bad file fails before any scoring.
  const headers: Array<{ path: string; header: SafetensorsHeader; layer: number }> = [];
  let shape: { queryHeads: number; kvHeads: number; headDim: number } | undefined;
  for (const path of files) {
    let header: SafetensorsHeader;
    try {
      header = await readHeader(path);
    } catch (err) {
      process.stderr.write(`capibara calibrate: ${(err as Error).message}\n`);
      return 1;
    }
    const layer = Number(header.metadata['layer']);
    if (!Number.isInteger(layer) || layer < 0) {
      process.stderr.write(`capibara calibrate: ${path} has no __metadata__.layer (an integer >= 0 as a string)\n`);
      return 1;
    }
    const q = header.tensors.get('q');
    const k = header.tensors.get('k');
    if (q === undefined || k === undefined || q.shape.length !== 3 || k.shape.length !== 3 || !header.tensors.has('v')) {
      process.stderr.write(`capibara calibrate: ${path} needs tensors q [n, queryHeads, headDim], k and v [n, kvHeads, headDim]\n`);
      return 1;
    }
    const s = { queryHeads: q.shape[1]!, kvHeads: k.shape[1]!, headDim: q.shape[2]! };
    if (shape === undefined) shape = s;
    else if (s.queryHeads !== shape.queryHeads || s.kvHeads !== shape.kvHeads || s.headDim !== shape.headDim) {
      process.stderr.write(`capibara calibrate: ${path} has ${s.queryHeads} query heads, ${s.kvHeads} KV heads of ${s.headDim}; ${files[0]} has ${shape.queryHeads}, ${shape.kvHeads} of ${shape.headDim}\n`);
      return 1;
    }
    headers.push({ path, header, layer });
  }
  const layers = int('--layers', f.layers, 1) ?? Math.max(...headers.map((h) => h.layer)) + 1;
  const bar = new ProgressBar('calibrate', headers.length);
  bar.update(0);
  async function* samples(): AsyncGenerator<CalibrationSample> {
    for (const { path, header, layer } of headers) {
      const [q, k, vv] = await Promise.all([readFloat32(path, header, 'q'), readFloat32(path, header, 'k'), readFloat32(path, header, 'v')]);
      yield { layer, q: q.data, k: k.data, v: vv.data };
    }
  }
  let result;
  try {
    result = await calibrateHeads(samples(), {
      layers,
      ...shape!,
      sink,
      recent,
      retrievalRatio: ratio,
      method,
      ...(lastQueries === undefined ? {} : { lastQueries }),
      ...(threads === undefined ? {} : { threads }),
      onProgress: (done) => bar.update(done),
    });
  } catch (err) {
    bar.clear();
    process.stderr.write(`capibara calibrate: ${(err as Error).message}\n`);
    return 1;
  }
  bar.finish();
  const { pattern } = result;
  await pattern.save(f.out);
  const perLayer = Array.from({ length: layers }, (_, l) => pattern.retrievalHeads(l).length);
  process.stdout.write(
    `capibara calibrate: ${result.samples} samples, ${result.tokens} query positions scored (${method}); ` +
      `${pattern.retrievalCount} of ${layers * shape!.kvHeads} KV heads are retrieval heads (per layer: ${perLayer.join(', ')}); ` +
      `saved ${f.out}/full_attention_heads.tsv and config.json (sink ${sink}, recent ${recent})\n`,
  );
  return 0;
}
