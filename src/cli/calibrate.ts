/**
 * `capibara calibrate`: a DuoAttention head pattern, saved as DuoAttention's pattern files, from
 * - a model: `--model DIR --text FILE…` prefills each text through a LlamaDecoder (every head
 *   full), captures each layer's q, k, v and scores them; or
 * - saved captures — one safetensors file per layer and calibration text, holding `q`
 *   `[n, queryHeads, headDim]`, `k` and `v` `[n, kvHeads, headDim]` (after RoPE) and
 *   `__metadata__.layer` — scored by calibrateHeads;
 * with a progress bar either way.
 * @module
 * @internal
 */
import { readFile } from 'node:fs/promises';
import { calibrateHeads, type CalibrationMethod, type CalibrationResult, type CalibrationSample } from '../attention/index';
import { LlamaDecoder } from '../llm/index';
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
  model?: string;
  text?: string[];
}

export async function calibrate(files: string[], f: CalibrateFlags): Promise<number> {
  if (f.model !== undefined && files.length > 0) throw new UsageError('calibrate takes capture files or --model DIR --text FILE, not both');
  if (f.model === undefined && f.text !== undefined) throw new UsageError('calibrate --text needs --model DIR');
  if (f.model !== undefined && (f.text === undefined || f.text.length === 0)) throw new UsageError('calibrate --model needs --text FILE');
  if (f.model === undefined && files.length === 0) throw new UsageError('calibrate needs capture files, or --model DIR --text FILE');
  if (f.out === undefined) throw new UsageError('calibrate needs --out DIR');
  const sink = int('--sink', f.sink, 0) ?? 64;
  const recent = int('--recent', f.recent, 1) ?? 256;
  const ratio = num('--ratio', f.ratio, { min: 0, max: 1 }) ?? 0.5;
  const method = (f.method === undefined ? 'output-error' : v.oneOf('--method', f.method, ['output-error', 'attention-mass', 'both'])) as CalibrationMethod;
  const lastQueries = int('--last-queries', f.lastQueries, 1);
  const threads = int('--threads', f.threads, 1, 256);
  if (f.model !== undefined) return calibrateModel(f.model, f.text!, f.out, { sink, recent, ratio, method, lastQueries, threads });

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
  await report(result, f.out, method, sink, recent);
  return 0;
}

/** Saves the pattern and prints what was scored and chosen. */
async function report(result: CalibrationResult, out: string, method: CalibrationMethod, sink: number, recent: number): Promise<void> {
  const { pattern } = result;
  await pattern.save(out);
  const perLayer = Array.from({ length: pattern.layers }, (_, l) => pattern.retrievalHeads(l).length);
  process.stdout.write(
    `capibara calibrate: ${result.samples} samples, ${result.tokens} query positions scored (${method}); ` +
      `${pattern.retrievalCount} of ${pattern.layers * pattern.kvHeads} KV heads are retrieval heads (per layer: ${perLayer.join(', ')}); ` +
      `saved ${out}/full_attention_heads.tsv and config.json (sink ${sink}, recent ${recent})\n`,
  );
}

interface ModelRun {
  sink: number;
  recent: number;
  ratio: number;
  method: CalibrationMethod;
  lastQueries: number | undefined;
  threads: number | undefined;
}

/** `--model DIR --text FILE…`: captures on the model itself (LlamaDecoder.calibrate). */
async function calibrateModel(model: string, textFiles: string[], out: string, o: ModelRun): Promise<number> {
  let texts: string[];
  let decoder: LlamaDecoder;
  try {
    texts = await Promise.all(textFiles.map((t) => readFile(t, 'utf8')));
    decoder = await LlamaDecoder.load(model, { ...(o.threads === undefined ? {} : { threads: o.threads }), sink: o.sink, recent: o.recent });
  } catch (err) {
    process.stderr.write(`capibara calibrate: ${(err as Error).message}\n`);
    return 1;
  }
  const bar = new ProgressBar('calibrate', texts.length * decoder.config.layers);
  bar.update(0);
  let result: CalibrationResult;
  try {
    result = await decoder.calibrate(texts, {
      retrievalRatio: o.ratio, sink: o.sink, recent: o.recent, method: o.method,
      ...(o.lastQueries === undefined ? {} : { lastQueries: o.lastQueries }),
      onProgress: (done) => bar.update(done),
    });
  } catch (err) {
    bar.clear();
    process.stderr.write(`capibara calibrate: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await decoder.close();
  }
  bar.finish();
  await report(result, out, o.method, o.sink, o.recent);
  return 0;
}
