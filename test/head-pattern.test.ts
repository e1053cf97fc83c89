import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { HeadPattern } from '../src/attention/head-pattern';
import { formatPythonJson, parseFullAttentionHeads } from '../src/attention/head-pattern-file';

const flags = (p: HeadPattern) => Array.from(p.retrieval);

describe('HeadPattern.fromRatio', () => {
  it('keeps the top scores, ties to the lower (layer, head)', () => {
    // 2 layers × 4 heads; 0.5 is tied four ways across layers.
    const scores = new Float64Array([0.5, 0.9, 0.5, 0.1, 0.5, 0.2, 0.5, 0.8]);
    const p = HeadPattern.fromRatio(scores, { layers: 2, kvHeads: 4, retrievalRatio: 0.5 });
    // 0.9, 0.8, then the first two 0.5s in flat order: (0,0) and (0,2).
    expect(flags(p)).toEqual([1, 1, 1, 0, 0, 0, 0, 1]);
    expect(p.retrievalHeads(0)).toEqual([0, 1, 2]);
    expect(p.streamingHeads(1)).toEqual([0, 1, 2]);
    expect(p.streamingFlags(1)).toEqual([true, true, true, false]);
    expect(p.isRetrieval(1, 3)).toBe(true);
    expect(p.isRetrieval(1, 2)).toBe(false);
    expect(p.retrievalCount).toBe(4);
    expect(p.retrievalRatio).toBe(0.5);
    expect(p.score(1, 3)).toBe(0.8);
    expect([p.layers, p.kvHeads, p.sink, p.recent]).toEqual([2, 4, undefined, undefined]);
  });

  it('rounds round(ratio × total) with halves up', () => {
    const seven = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7];
    expect(HeadPattern.fromRatio(seven, { layers: 1, kvHeads: 7, retrievalRatio: 0.5 }).retrievalCount).toBe(4); // 3.5
    const ten = Array.from({ length: 10 }, (_, i) => i);
    const count = (r: number) => HeadPattern.fromRatio(ten, { layers: 2, kvHeads: 5, retrievalRatio: r }).retrievalCount;
    expect([0, 0.04, 0.05, 0.25, 0.35, 0.349, 0.45, 1].map(count)).toEqual([0, 0, 1, 3, 4, 3, 5, 10]);
    expect(flags(HeadPattern.fromRatio(ten, { layers: 2, kvHeads: 5, retrievalRatio: 0.3 }))).toEqual([0, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
  });

  it('takes Float32Array scores and copies them in', () => {
    const s = new Float32Array([0.25, 0.75]);
    const p = HeadPattern.fromRatio(s, { layers: 1, kvHeads: 2, retrievalRatio: 0.5, sink: 4, recent: 16 });
    s[0] = 9;
    expect(Array.from(p.scores)).toEqual([0.25, 0.75]);
    expect(p.scores).toBeInstanceOf(Float64Array);
    p.scores[1] = 0; // a copy: the pattern is unchanged
    expect(p.score(0, 1)).toBe(0.75);
    expect([p.sink, p.recent]).toEqual([4, 16]);
  });

  it('rejects bad arguments with messages naming them', () => {
    const shape = { layers: 2, kvHeads: 2, retrievalRatio: 0.5 };
    expect(() => HeadPattern.fromRatio([1, 2, 3], shape)).toThrow(
      new RangeError('Expected Float64Array, Float32Array or number[] of length 4 (layers × kvHeads) for scores but received Array of length 3'),
    );
    expect(() => HeadPattern.fromRatio('x' as never, shape)).toThrow(TypeError);
    expect(() => HeadPattern.fromRatio([1, NaN, 0, 0], shape)).toThrow(new RangeError('Expected finite numbers for scores but scores[1] is NaN'));
    expect(() => HeadPattern.fromRatio([1, 2, 3, 4], { ...shape, retrievalRatio: 1.5 })).toThrow(
      new RangeError('Expected number in [0, 1] for options.retrievalRatio but received 1.5 of type number'),
    );
    expect(() => HeadPattern.fromRatio([1, 2, 3, 4], { ...shape, layers: 0 })).toThrow(
      new RangeError('Expected integer >= 1 for options.layers but received 0 of type number'),
    );
    expect(() => HeadPattern.fromRatio([1, 2, 3, 4], { ...shape, ratio: 1 } as never)).toThrow(
      new TypeError("Unknown option 'ratio' in options (expected one of: layers, kvHeads, sink, recent, retrievalRatio)"),
    );
    const p = HeadPattern.fromRatio([1, 2, 3, 4], shape);
    expect(() => p.retrievalHeads(2)).toThrow(new RangeError('Expected integer in [0, 1] for layer but received 2 of type number'));
    expect(() => p.isRetrieval(0, -1)).toThrow(new RangeError('Expected integer in [0, 1] for head but received -1 of type number'));
  });
});

describe('HeadPattern.fromQuantile and fromThreshold', () => {
  // Expected splits computed with numpy 2.4: (a >= np.quantile(a, q)).astype(int), DuoAttention's rule.
  const a = [0.1, 0.7, 0.7, 0.3, 0.9, 0.7, 0.2, 0.5];
  const numpy: Array<[number, number[]]> = [
    [0.25, [0, 1, 1, 1, 1, 1, 0, 1]], // threshold 0.275
    [0.3, [0, 1, 1, 0, 1, 1, 0, 1]], // 0.32
    [0.5, [0, 1, 1, 0, 1, 1, 0, 0]], // 0.6
    [0.75, [0, 1, 1, 0, 1, 1, 0, 0]], // 0.7 exactly: the three tied 0.7s stay retrieval
    [0.9, [0, 0, 0, 0, 1, 0, 0, 0]], // 0.7599999999999999
  ];
  it.each(numpy)('q = %s matches numpy.quantile with >=', (q, expected) => {
    expect(flags(HeadPattern.fromQuantile(a, { layers: 2, kvHeads: 4 }, q))).toEqual(expected);
  });

  it('matches numpy on an odd count and at q = 1/3', () => {
    const b = [0.3, 0.1, 0.2, 0.7, 0.6, 0.4, 0.35];
    expect(flags(HeadPattern.fromQuantile(b, { layers: 1, kvHeads: 7 }, 0.5))).toEqual([0, 0, 0, 1, 1, 1, 1]);
    expect(flags(HeadPattern.fromQuantile(b, { layers: 1, kvHeads: 7 }, 1 / 3))).toEqual([1, 0, 0, 1, 1, 1, 1]);
    expect(flags(HeadPattern.fromQuantile(b, { layers: 1, kvHeads: 7 }, 0.1))).toEqual([1, 0, 1, 1, 1, 1, 1]);
  });

  it('q = 0 keeps every head, q = 1 none (as DuoAttention)', () => {
    expect(HeadPattern.fromQuantile(a, { layers: 2, kvHeads: 4 }, 0).retrievalCount).toBe(8);
    expect(HeadPattern.fromQuantile(a, { layers: 2, kvHeads: 4 }, 1).retrievalCount).toBe(0);
    expect(() => HeadPattern.fromQuantile(a, { layers: 2, kvHeads: 4 }, -0.1)).toThrow(
      new RangeError('Expected number in [0, 1] for q but received -0.1 of type number'),
    );
  });

  it('threshold keeps scores at or above it, ties included', () => {
    expect(flags(HeadPattern.fromThreshold(a, { layers: 2, kvHeads: 4 }, 0.7))).toEqual([0, 1, 1, 0, 1, 1, 0, 0]);
    expect(flags(HeadPattern.fromThreshold(a, { layers: 2, kvHeads: 4 }, 0.95))).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(() => HeadPattern.fromThreshold(a, { layers: 2, kvHeads: 4 }, Infinity)).toThrow(
      new RangeError('Expected finite number for threshold but received Infinity of type number'),
    );
  });
});

describe('HeadPattern.fromBudget and kvBytes', () => {
  // Per head at 1000 tokens, headDim 8, float16: full 2·8·2·1000 = 32000 B, streaming 2·8·2·16 = 512 B.
  const base = { layers: 2, kvHeads: 4, tokens: 1000, headDim: 8, dtype: 'float16' as const, sink: 4, recent: 12 };
  const scores = [0.3, 0.9, 0.3, 0.1, 0.8, 0.3, 0.2, 0.0];
  const floor = 8 * 512;
  const step = 32000 - 512;

  it('keeps as many top heads as fit', () => {
    const p = HeadPattern.fromBudget(scores, { ...base, bytes: floor + 3 * step });
    expect(flags(p)).toEqual([1, 1, 0, 0, 1, 0, 0, 0]); // 0.9, 0.8, then the first 0.3
    expect(HeadPattern.fromBudget(scores, { ...base, bytes: floor + 3 * step - 1 }).retrievalCount).toBe(2);
    expect(HeadPattern.fromBudget(scores, { ...base, bytes: floor }).retrievalCount).toBe(0);
    expect(HeadPattern.fromBudget(scores, { ...base, bytes: 1e12 }).retrievalCount).toBe(8);
    expect([p.sink, p.recent]).toEqual([4, 12]);
    expect(p.kvBytes({ tokens: 1000, headDim: 8, dtype: 'float16' })).toEqual({ bytes: floor + 3 * step, fullBytes: 8 * 32000, ratio: (floor + 3 * step) / (8 * 32000) });
  });

  it('counts bytes per element, and a context within the window costs the same either way', () => {
    const p = HeadPattern.fromBudget(scores, { ...base, dtype: undefined, bytesPerElement: 1, bytes: 8 * 256 + 2 * (16000 - 256) });
    expect(p.retrievalCount).toBe(2);
    const short = HeadPattern.fromBudget(scores, { ...base, tokens: 10, bytes: 8 * 2 * 8 * 2 * 10 });
    expect(short.retrievalCount).toBe(8);
    expect(short.kvBytes({ tokens: 10, headDim: 8 }).ratio).toBe(1);
    expect(HeadPattern.allStreaming(2, 4).kvBytes({ tokens: 1000, headDim: 8, sink: 4, recent: 12 }).ratio).toBe(16 / 1000);
  });

  it('refuses a budget below every head streaming, and ambiguous sizes', () => {
    expect(() => HeadPattern.fromBudget(scores, { ...base, bytes: floor - 1 })).toThrow(
      new RangeError('Expected at least 4096 (every head streaming at 1000 tokens) for options.bytes but received 4095 of type number'),
    );
    expect(() => HeadPattern.fromBudget(scores, { ...base, bytesPerElement: 2, bytes: 1e9 })).toThrow(
      new TypeError('Expected one of dtype and bytesPerElement in options but received both'),
    );
    expect(() => HeadPattern.fromBudget(scores, { ...base, dtype: 'int8' as never, bytes: 1e9 })).toThrow(
      new RangeError("Expected one of 'float32', 'float16' for options.dtype but received 'int8' of type string"),
    );
    expect(() => HeadPattern.fromBudget(scores, { ...base, sink: undefined as never, bytes: 1e9 })).toThrow(
      new TypeError('Expected integer >= 0 for options.sink but received undefined'),
    );
    expect(() => HeadPattern.allRetrieval(2, 4).kvBytes({ tokens: 10, headDim: 8 })).toThrow(
      new TypeError('Expected integer >= 0 (the pattern has no window) for options.sink but received undefined'),
    );
  });
});

describe('HeadPattern.fromMask, all*, JSON', () => {
  it('builds from rows or a flat mask', () => {
    const p = HeadPattern.fromMask([[true, false, false], [0, 1, 1]]);
    expect(flags(p)).toEqual([1, 0, 0, 0, 1, 1]);
    expect(Array.from(p.scores)).toEqual([1, 0, 0, 0, 1, 1]);
    const flat = HeadPattern.fromMask(new Uint8Array([1, 0, 0, 1]), { layers: 2, kvHeads: 2 });
    expect(flat.retrievalHeads(1)).toEqual([1]);
    expect(HeadPattern.allRetrieval(3, 2).retrievalRatio).toBe(1);
    expect(HeadPattern.allStreaming(3, 2).streamingFlags(2)).toEqual([true, true]);
  });

  it('rejects bad masks', () => {
    expect(() => HeadPattern.fromMask([[true, false], [true]])).toThrow(
      new RangeError('Expected 2 flags (as mask[0]) for mask[1] but received Array of length 1'),
    );
    expect(() => HeadPattern.fromMask([1, 0, 2, 0], { layers: 2, kvHeads: 2 })).toThrow(
      new RangeError('Expected boolean or 0/1 for mask[2] but received 2 of type number'),
    );
    expect(() => HeadPattern.fromMask([1, 0, 1])).toThrow(new TypeError('Expected shape options for a flat mask for shape but received undefined'));
    expect(() => HeadPattern.fromMask([[1, 0]], { layers: 2, kvHeads: 2 })).toThrow(
      new RangeError("Expected 1 layers × 2 KV heads (the mask's rows) for shape but received 2 × 2"),
    );
  });

  it('round-trips through JSON, split included', () => {
    const p = HeadPattern.fromRatio([0.2, 0.9, 0.4, 0.1], { layers: 2, kvHeads: 2, retrievalRatio: 0.5, sink: 4, recent: 8 });
    const json = JSON.parse(JSON.stringify(p));
    expect(json).toEqual({ version: 1, layers: 2, kvHeads: 2, scores: [0.2, 0.9, 0.4, 0.1], retrieval: [0, 1, 1, 0], sink: 4, recent: 8 });
    const back = HeadPattern.fromJSON(json);
    expect(back.toJSON()).toEqual(json);
    expect(() => HeadPattern.fromJSON({ ...json, retrieval: [0, 1, 2, 0] })).toThrow(
      new RangeError('Expected 0 or 1 for json.retrieval[2] but received 2 of type number'),
    );
    expect(() => HeadPattern.fromJSON({ ...json, version: 2 })).toThrow(new RangeError('Expected 1 for json.version but received 2 of type number'));
  });
});

describe('full_attention_heads.tsv and config.json', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'capibara-heads-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  // Two rows as np.savetxt(path, a, delimiter="\t") writes them (values from DuoAttention's
  // Meta-Llama-3.1-8B-Instruct pattern, plus a negative gate as their trained files have).
  const NUMPY =
    '6.054687500000000000e-01\t0.000000000000000000e+00\t9.687500000000000000e-01\t6.835937500000000000e-01\n' +
    '9.960937500000000000e-01\t-2.355575561523437500e-04\t8.125000000000000000e-01\t1.000000000000000000e+00\n';

  it('parses numpy output and writes it back byte for byte', () => {
    const parsed = parseFullAttentionHeads(NUMPY);
    expect([parsed.layers, parsed.kvHeads]).toEqual([2, 4]);
    expect(parsed.scores[5]).toBe(-2.3555755615234375e-4);
    const p = HeadPattern.fromRatio(parsed.scores, { layers: 2, kvHeads: 4, retrievalRatio: 0.5 });
    expect(p.toTsv()).toBe(NUMPY);
    // Expected text from numpy: the exact binary value to 19 digits, a 3-digit exponent, -0 kept, and
    // exact ties (bfloat16 gates have short expansions) rounded half to even: …5625 → …562, …1875 → …188.
    const odd = HeadPattern.fromRatio([0.1, 1 / 3, 1e-300, -0, 1.1026859283447266e-5, 1.1622905731201172e-5], { layers: 1, kvHeads: 6, retrievalRatio: 0 });
    expect(odd.toTsv()).toBe(
      '1.000000000000000056e-01\t3.333333333333333148e-01\t1.000000000000000025e-300\t-0.000000000000000000e+00\t1.102685928344726562e-05\t1.162290573120117188e-05\n',
    );
    expect(parseFullAttentionHeads(odd.toTsv()).scores).toEqual(odd.scores);
  });

  it('saves both files in DuoAttention layout and loads the same pattern back', async () => {
    const p = HeadPattern.fromRatio(parseFullAttentionHeads(NUMPY).scores, { layers: 2, kvHeads: 4, retrievalRatio: 0.375, sink: 64, recent: 256 });
    await p.save(dir);
    const tsv = readFileSync(join(dir, 'full_attention_heads.tsv'), 'utf8');
    const config = readFileSync(join(dir, 'config.json'), 'utf8');
    expect(tsv).toBe(NUMPY);
    expect(config).toBe('{"sink_size": 64, "recent_size": 256, "sparsity": 0.625, "num_full_attention_heads": 3}');
    const back = await HeadPattern.load(dir);
    expect(back.toJSON()).toEqual(p.toJSON());
    // Same files again, byte for byte, and the TSV path works as well as the directory.
    const again = join(dir, 'again');
    await (await HeadPattern.load(join(dir, 'full_attention_heads.tsv'))).save(again);
    expect(readFileSync(join(again, 'full_attention_heads.tsv'), 'utf8')).toBe(tsv);
    expect(readFileSync(join(again, 'config.json'), 'utf8')).toBe(config);
  });

  it('keeps ties exactly through save and load', async () => {
    const p = HeadPattern.fromRatio([0.5, 0.5, 0.5, 0.5, 0.5, 0.5], { layers: 2, kvHeads: 3, retrievalRatio: 0.5, sink: 4, recent: 8 });
    await p.save(dir);
    expect(flags(await HeadPattern.load(dir))).toEqual([1, 1, 1, 0, 0, 0]);
  });

  it('reads a DuoAttention directory with a split rule; the window comes from config.json', async () => {
    writeFileSync(join(dir, 'full_attention_heads.tsv'), NUMPY);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_name: 'x', sink_size: 128, recent_size: 256, deploy_sink_size: null, threshold: 0.5, sparsity: null }));
    const q = await HeadPattern.load(dir, { sparsity: 0.5 });
    expect(flags(q)).toEqual([0, 0, 1, 0, 1, 0, 1, 1]); // median 0.748046875
    expect([q.sink, q.recent]).toEqual([128, 256]);
    expect((await HeadPattern.load(dir, { retrievalRatio: 0.25 })).retrievalHeads(1)).toEqual([0, 3]);
    expect((await HeadPattern.load(dir, { threshold: 0.8125 })).retrievalCount).toBe(4);
    const clipped = await HeadPattern.load(dir, { sparsity: 0.5, clip: true });
    expect(clipped.score(1, 1)).toBe(0);
    await expect(HeadPattern.load(dir)).rejects.toThrow(
      new RangeError('No split rule for full_attention_heads.tsv: pass sparsity, retrievalRatio or threshold (config.json has no num_full_attention_heads)'),
    );
    await expect(HeadPattern.load(dir, { sparsity: 0.5, threshold: 0.5 })).rejects.toThrow(
      new TypeError('Expected at most one of sparsity, retrievalRatio, threshold in options but received sparsity and threshold'),
    );
  });

  it('loads without config.json (no window) and tolerates CRLF, blank lines, comments and trailing spaces', async () => {
    const file = join(dir, 'alphas.tsv');
    writeFileSync(file, '# gates\r\n0.25\t0.75 \r\n\r\n 1\t0\r\n\n\n');
    const p = await HeadPattern.load(file, { retrievalRatio: 0.5 });
    expect([p.layers, p.kvHeads, p.sink, p.recent]).toEqual([2, 2, undefined, undefined]);
    expect(flags(p)).toEqual([0, 1, 1, 0]);
    await expect(p.save(join(dir, 'out'))).rejects.toThrow(
      new TypeError('Expected integer >= 0 (the pattern has no window) for options.sink but received undefined'),
    );
    await p.save(join(dir, 'out'), { sink: 4, recent: 60 });
    expect(readFileSync(join(dir, 'out', 'config.json'), 'utf8')).toBe('{"sink_size": 4, "recent_size": 60, "sparsity": 0.5, "num_full_attention_heads": 2}');
  });

  it('rejects ragged rows and non-numbers naming line and column', () => {
    expect(() => parseFullAttentionHeads('1\t2\t3\n4\t5\n')).toThrow(new RangeError('full_attention_heads.tsv line 2 has 2 columns but line 1 has 3'));
    expect(() => parseFullAttentionHeads('# c\n\n1\t2\n3\tabc\n')).toThrow(
      new RangeError("full_attention_heads.tsv line 4, column 2: expected a finite number but found 'abc'"),
    );
    expect(() => parseFullAttentionHeads('1\tnan\n')).toThrow(new RangeError("full_attention_heads.tsv line 1, column 2: expected a finite number but found 'nan'"));
    expect(() => parseFullAttentionHeads('1\t2\t\n')).toThrow(new RangeError("full_attention_heads.tsv line 1, column 3: expected a finite number but found ''"));
    expect(() => parseFullAttentionHeads('1e400\n')).toThrow(RangeError);
    expect(() => parseFullAttentionHeads('\n \n')).toThrow(new RangeError('full_attention_heads.tsv has no rows'));
  });

  it('checks the shape against the model config, by object, file or directory', async () => {
    writeFileSync(join(dir, 'full_attention_heads.tsv'), NUMPY);
    const llama = { num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8 };
    await expect(HeadPattern.load(dir, { modelConfig: llama, sparsity: 0.5 })).rejects.toThrow(
      new RangeError('Expected 32 layers (num_hidden_layers in modelConfig) but full_attention_heads.tsv has 2'),
    );
    const model = join(dir, 'model');
    mkdirSync(model);
    writeFileSync(join(model, 'config.json'), JSON.stringify({ num_hidden_layers: 2, num_attention_heads: 32, num_key_value_heads: 8 }));
    await expect(HeadPattern.load(dir, { modelConfig: model, sparsity: 0.5 })).rejects.toThrow(
      new RangeError('Expected 8 KV heads (num_key_value_heads in config.json) but full_attention_heads.tsv has 4'),
    );
    writeFileSync(join(model, 'mha.json'), JSON.stringify({ num_hidden_layers: 2, num_attention_heads: 6 }));
    await expect(HeadPattern.load(dir, { modelConfig: join(model, 'mha.json'), sparsity: 0.5 })).rejects.toThrow(
      new RangeError('Expected 6 KV heads (num_attention_heads in mha.json) but full_attention_heads.tsv has 4'),
    );
    const ok = await HeadPattern.load(dir, { modelConfig: { text_config: { num_hidden_layers: 2, num_attention_heads: 16, num_key_value_heads: 4 } }, sparsity: 0.5 });
    expect(ok.retrievalCount).toBe(4);
    expect(() => ok.checkModelConfig({ num_hidden_layers: 2 })).toThrow(
      new TypeError('Expected integer >= 1 for num_attention_heads in modelConfig but received undefined'),
    );
    expect(() => ok.checkModelConfig({ text_config: { num_hidden_layers: 28, num_key_value_heads: 4 } })).toThrow(
      new RangeError('Expected 28 layers (num_hidden_layers in modelConfig text_config) but the head pattern has 2'),
    );
    writeFileSync(join(model, 'bad.json'), '{ nope');
    await expect(HeadPattern.load(dir, { modelConfig: join(model, 'bad.json'), sparsity: 0.5 })).rejects.toThrow(/bad\.json is not valid JSON/);
  });

  it('refuses to save a split the scores cannot reproduce', async () => {
    const odd = HeadPattern.fromJSON({ version: 1, layers: 1, kvHeads: 3, scores: [0.9, 0.5, 0.1], retrieval: [1, 0, 1], sink: 4, recent: 8 });
    await expect(odd.save(dir)).rejects.toThrow(
      new RangeError(
        'Expected a split of the top 2 heads by score (ties to the lower index) for save, but layer 0 head 1 breaks it (full_attention_heads.tsv stores scores only)',
      ),
    );
  });

  it('writes config.json as Python json.dump does', () => {
    // Expected text from Python: json.dumps({"a": 1, "b": 0.5, "c": 1e-05, "d": 1.5e-07, "e": None, "f": "x", "g": 1.5e+300}).
    expect(formatPythonJson({ a: 1, b: 0.5, c: 1e-5, d: 1.5e-7, e: null, f: 'x', g: 1.5e300 })).toBe(
      '{"a": 1, "b": 0.5, "c": 1e-05, "d": 1.5e-07, "e": null, "f": "x", "g": 1.5e+300}',
    );
  });
});
