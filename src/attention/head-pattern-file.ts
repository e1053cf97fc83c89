/**
 * DuoAttention's pattern files (github.com/mit-han-lab/duo-attention, `duo_attn/utils.py`):
 * `full_attention_heads.tsv` is written by `np.savetxt(path, alphas, delimiter="\t")` — one line
 * per layer, one `%.18e` value per KV head, tab-separated, each line ending in `\n`, no header —
 * and read by `np.loadtxt` (then clipped to [0, 1]); `config.json` beside it is `json.dump` of the
 * training arguments, of which `load_attn_pattern` reads `sink_size` and `recent_size`.
 * This module parses and formats both byte-compatibly, reads and writes a pattern's two files
 * (for {@link HeadPattern.load} and {@link HeadPattern.save}), and checks a pattern's shape
 * against a Hugging Face model config.
 * @module
 */
import { mkdir, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import { writeFileAtomic } from '../toolkit/atomic-write';
import * as v from '../validate';

/** File name of DuoAttention's per-head gate values. @internal */
export const TSV_NAME = 'full_attention_heads.tsv';
/** File name of DuoAttention's run configuration, beside the TSV. @internal */
export const CONFIG_NAME = 'config.json';

/**
 * Scores parsed from a `full_attention_heads.tsv` text.
 *
 * @example
 * ```ts
 * const { layers, kvHeads, scores } = parseFullAttentionHeads('1.0\t0.0\n0.5\t0.25\n');
 * ```
 */
export interface ParsedHeadScores {
  /** Rows (one per layer). */
  layers: number;
  /** Columns (one per KV head). */
  kvHeads: number;
  /** Row-major `[layers, kvHeads]`. */
  scores: Float64Array;
}

// A decimal float as np.loadtxt accepts it; nan/inf are refused (a score must order).
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/**
 * Parses a `full_attention_heads.tsv` text: tab-separated numbers, one row per layer. Blank
 * lines, `#` comment lines (np.savetxt's header style), `\r\n` endings and spaces around fields
 * are tolerated, as np.loadtxt does; a ragged row or a field that is not a finite decimal number
 * is a `RangeError` naming the line and column (both 1-based).
 *
 * @param text - The file's content.
 * @param name - How messages name the file; default `full_attention_heads.tsv`.
 * @returns The shape and the row-major scores.
 * @example
 * ```ts
 * parseFullAttentionHeads('9.0e-01\t1.0e-02\n'); // { layers: 1, kvHeads: 2, scores: Float64Array [0.9, 0.01] }
 * ```
 */
export function parseFullAttentionHeads(text: string, name: string = TSV_NAME): ParsedHeadScores {
  v.string('text', text);
  const values: number[] = [];
  let kvHeads = 0;
  let firstLine = 0;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    // Spaces and \r only: a stray tab is an empty field, an error as in np.loadtxt.
    const line = lines[i]!.replace(/^[ \r]+|[ \r]+$/g, '');
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split('\t');
    if (kvHeads === 0) {
      kvHeads = fields.length;
      firstLine = i + 1;
    } else if (fields.length !== kvHeads) {
      throw new RangeError(`${name} line ${i + 1} has ${fields.length} columns but line ${firstLine} has ${kvHeads}`);
    }
    for (let c = 0; c < fields.length; c++) {
      const field = fields[c]!.trim();
      const x = Number(field);
      if (!NUMBER.test(field) || !Number.isFinite(x)) {
        throw new RangeError(`${name} line ${i + 1}, column ${c + 1}: expected a finite number but found '${field}'`);
      }
      values.push(x);
    }
  }
  if (kvHeads === 0) throw new RangeError(`${name} has no rows`);
  return { layers: values.length / kvHeads, kvHeads, scores: Float64Array.from(values) };
}

/**
 * One value as C's `%.18e` (np.savetxt's default): 19 significant digits of the exact binary
 * value, rounded half to even, exponent of two digits at least, sign kept on -0. Not
 * `toExponential(18)`: it rounds exact ties up, and bfloat16-trained gates are full of ties
 * (1.1026859283447265625e-05 must print …562e-05).
 */
function formatE18(x: number): string {
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  if (x === 0) return `${sign}0.${'0'.repeat(18)}e+00`;
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(x));
  const bits = view.getBigUint64(0);
  const biased = Number(bits >> 52n);
  const fraction = bits & ((1n << 52n) - 1n);
  const mantissa = biased === 0 ? fraction : fraction | (1n << 52n);
  const e2 = biased === 0 ? -1074 : biased - 1075;
  // x = mantissa · 2^e2 = digits · 10^-scale exactly (2^-k = 5^k / 10^k).
  let digits = e2 >= 0 ? (mantissa << BigInt(e2)).toString() : (mantissa * 5n ** BigInt(-e2)).toString();
  let exp10 = digits.length - 1 - (e2 >= 0 ? 0 : -e2);
  if (digits.length > 19) {
    let head = BigInt(digits.slice(0, 19));
    const next = digits.charCodeAt(19) - 48;
    const beyond = /[1-9]/.test(digits.slice(20));
    if (next > 5 || (next === 5 && (beyond || (head & 1n) === 1n))) head += 1n;
    digits = head.toString();
    if (digits.length > 19) {
      digits = digits.slice(0, 19); // 9.99…95 rounded to 10.00…0
      exp10 += 1;
    }
  } else {
    digits = digits.padEnd(19, '0');
  }
  const exp = `${exp10 < 0 ? '-' : '+'}${String(Math.abs(exp10)).padStart(2, '0')}`;
  return `${sign}${digits[0]}.${digits.slice(1)}e${exp}`;
}

/**
 * Formats scores exactly as `np.savetxt(path, scores, delimiter="\t")` does: `%.18e` values,
 * tab-separated, one `\n`-terminated line per layer.
 *
 * @param scores - Row-major `[layers, kvHeads]`.
 * @param kvHeads - Values per line.
 * @returns The file's content.
 * @example
 * ```ts
 * formatFullAttentionHeads(new Float64Array([1, 0.5]), 2); // '1.000000000000000000e+00\t5.000000000000000000e-01\n'
 * ```
 */
export function formatFullAttentionHeads(scores: ArrayLike<number>, kvHeads: number): string {
  let out = '';
  for (let i = 0; i < scores.length; i += kvHeads) {
    const row: string[] = [];
    for (let h = 0; h < kvHeads; h++) row.push(formatE18(scores[i + h]!));
    out += `${row.join('\t')}\n`;
  }
  return out;
}

/** A non-integer float as Python's `repr` (what json.dump writes): `0.5`, `1e-05`, `1.5e+300`. */
function pythonFloat(x: number): string {
  const [mant, expText] = x.toExponential().split('e') as [string, string];
  const exp = Number(expText);
  if (exp >= -4 && exp < 16) return String(x);
  return `${mant}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
}

/**
 * Formats a flat object as Python's `json.dump` does by default (`", "` and `": "` separators,
 * no trailing newline), so a `config.json` written here reads like DuoAttention's. Integers are
 * written as ints; other numbers as Python floats.
 *
 * @param config - Keys and scalar values, in order.
 * @returns The JSON text.
 * @internal
 * @example
 * ```ts
 * formatPythonJson({ sink_size: 64, recent_size: 256, sparsity: 0.5 }); // '{"sink_size": 64, "recent_size": 256, "sparsity": 0.5}'
 * ```
 */
export function formatPythonJson(config: Record<string, number | string | boolean | null>): string {
  const parts = Object.entries(config).map(([key, value]) => {
    const text = typeof value === 'number' && !Number.isInteger(value) ? pythonFloat(value) : JSON.stringify(value);
    return `${JSON.stringify(key)}: ${text}`;
  });
  return `{${parts.join(', ')}}`;
}

/**
 * The parts of a Hugging Face `config.json` that fix a head pattern's shape. Multimodal configs
 * that nest the language model under `text_config` are read there.
 *
 * @example
 * ```ts
 * const config: ModelConfig = { num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8 };
 * ```
 */
export interface ModelConfig {
  /** Decoder layers. */
  num_hidden_layers?: number;
  /** Query heads; the KV head count when `num_key_value_heads` is absent (multi-head attention). */
  num_attention_heads?: number;
  /** KV heads under grouped-query attention. */
  num_key_value_heads?: number;
  /** The language model's config inside a multimodal one. */
  text_config?: ModelConfig;
  /** Any other key of the file. */
  [key: string]: unknown;
}

/**
 * Reads a model config: an object is used as is; a string is a `config.json` path, or a
 * directory holding one. Returns the config and how messages name it.
 *
 * @param modelConfig - The config object, file or directory.
 * @returns The parsed config and its label (`config.json` for files, `modelConfig` for objects).
 * @internal
 * @example
 * ```ts
 * const { config } = await readModelConfig('/models/Llama-3.1-8B-Instruct');
 * ```
 */
export async function readModelConfig(modelConfig: unknown): Promise<{ config: ModelConfig; label: string }> {
  if (typeof modelConfig !== 'string') return { config: modelConfigObject(modelConfig), label: 'modelConfig' };
  v.nonEmptyString('modelConfig', modelConfig);
  const { path, text } = await readFileOrIn(modelConfig, CONFIG_NAME);
  return { config: modelConfigObject(parseJson(text, path)), label: basename(path) };
}

function modelConfigObject(value: unknown): ModelConfig {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || ArrayBuffer.isView(value)) {
    throw v.typeError('modelConfig', 'a Hugging Face config object or a path to config.json', value);
  }
  return value as ModelConfig;
}

/** Reads `path`, or the file `name` inside it when `path` is a directory; returns the path read. */
export async function readFileOrIn(path: string, name: string): Promise<{ path: string; text: string }> {
  try {
    return { path, text: await readFile(path, 'utf8') };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EISDIR') throw err;
    const inside = join(path, name);
    return { path: inside, text: await readFile(inside, 'utf8') };
  }
}

/**
 * Parses a JSON file's text; a syntax error becomes a `RangeError` naming the file.
 *
 * @param text - The file's content.
 * @param path - The file, for the message.
 * @returns The parsed value.
 * @internal
 * @example
 * ```ts
 * const config = parseJson(await readFile(path, 'utf8'), path);
 * ```
 */
export function parseJson(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new RangeError(`${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Checks a head pattern's shape against a model config: `num_hidden_layers` must equal the
 * layers and `num_key_value_heads` (or `num_attention_heads` when absent) the KV heads.
 *
 * @param config - The model config.
 * @param layers - Layers of the pattern.
 * @param kvHeads - KV heads of the pattern.
 * @param label - How the config is named (`config.json`).
 * @param source - How the pattern is named (`full_attention_heads.tsv`).
 * @internal
 * @example
 * ```ts
 * checkModelShape(config, 28, 8, 'config.json', 'full_attention_heads.tsv');
 * // RangeError: Expected 32 layers (num_hidden_layers in config.json) but full_attention_heads.tsv has 28
 * ```
 */
export function checkModelShape(config: ModelConfig, layers: number, kvHeads: number, label: string, source: string): void {
  let c = config;
  let where = label;
  if (c.num_hidden_layers === undefined && c.text_config && typeof c.text_config === 'object') {
    c = c.text_config;
    where = `${label} text_config`;
  }
  const expectedLayers = v.integer(`num_hidden_layers in ${where}`, c.num_hidden_layers, 1);
  const kvKey = c.num_key_value_heads !== undefined && c.num_key_value_heads !== null ? 'num_key_value_heads' : 'num_attention_heads';
  const expectedHeads = v.integer(`${kvKey} in ${where}`, c[kvKey], 1);
  if (expectedLayers !== layers) {
    throw new RangeError(`Expected ${expectedLayers} layers (num_hidden_layers in ${where}) but ${source} has ${layers}`);
  }
  if (expectedHeads !== kvHeads) {
    throw new RangeError(`Expected ${expectedHeads} KV heads (${kvKey} in ${where}) but ${source} has ${kvHeads}`);
  }
}

/**
 * Options of {@link HeadPattern.load}. At most one split rule (`sparsity`, `retrievalRatio`,
 * `threshold`); with none, the count saved by {@link HeadPattern.save} in `config.json`
 * (`num_full_attention_heads`) is used, and a file without one is refused.
 *
 * @example
 * ```ts
 * const options: LoadOptions = { modelConfig: '/models/Llama-3.1-8B-Instruct/config.json', sparsity: 0.5 };
 * ```
 */
export interface LoadOptions {
  /** A Hugging Face model config (object, `config.json` path, or model directory) to check the shape against. */
  modelConfig?: ModelConfig | string;
  /** DuoAttention's rule: share of streaming heads as a quantile ({@link HeadPattern.fromQuantile}). */
  sparsity?: number;
  /** Exact share of retrieval heads ({@link HeadPattern.fromRatio}). */
  retrievalRatio?: number;
  /** Heads scoring at least this are retrieval ({@link HeadPattern.fromThreshold}). */
  threshold?: number;
  /** Clip scores to [0, 1] as DuoAttention's loader does (trained gates can end slightly below 0); default `false`. */
  clip?: boolean;
}

/**
 * Options of {@link HeadPattern.save}.
 *
 * @example
 * ```ts
 * await pattern.save('patterns/llama-3.1-8b', { sink: 64, recent: 256 });
 * ```
 */
export interface SaveOptions {
  /** `sink_size` to write; default the pattern's. */
  sink?: number;
  /** `recent_size` to write; default the pattern's. */
  recent?: number;
}

/**
 * How a loaded pattern is split: one of the load options' rules (checked, except a ratio, which
 * `HeadPattern.fromRatio` checks), else the top `count` heads saved in `config.json`. @internal
 */
export type SplitRule =
  | { kind: 'sparsity'; value: number }
  | { kind: 'ratio'; value: number }
  | { kind: 'threshold'; value: number }
  | { kind: 'count'; value: number };

/**
 * A pattern's files as read by {@link HeadPattern.load}: the scores, the shape with the window
 * from `config.json`, and the split rule. @internal
 */
export interface PatternFiles {
  scores: Float64Array;
  shape: { layers: number; kvHeads: number; sink?: number; recent?: number };
  rule: SplitRule;
}

const LOAD_KEYS = ['modelConfig', 'sparsity', 'retrievalRatio', 'threshold', 'clip'];

/**
 * Reads a pattern directory (or its TSV file) and the `config.json` beside it, checks the
 * shape against `options.modelConfig`, and picks the split rule (see {@link HeadPattern.load}).
 *
 * @param path - Pattern directory or TSV file.
 * @param options - The load options.
 * @returns Scores, shape and rule.
 * @internal
 * @example
 * ```ts
 * const { scores, shape, rule } = await readPatternFiles('patterns/llama', { sparsity: 0.5 });
 * ```
 */
export async function readPatternFiles(path: string, options: LoadOptions | undefined): Promise<PatternFiles> {
  v.nonEmptyString('path', path);
  const o = v.options<LoadOptions>('options', options, LOAD_KEYS);
  const { modelConfig, sparsity, retrievalRatio, threshold } = o;
  const rules = Object.entries({ sparsity, retrievalRatio, threshold }).filter(([, x]) => x !== undefined).map(([k]) => k);
  if (rules.length > 1) throw new TypeError(`Expected at most one of sparsity, retrievalRatio, threshold in options but received ${rules.join(' and ')}`);
  const clip = o.clip === undefined ? false : v.boolean('options.clip', o.clip);

  const { path: tsvPath, text } = await readFileOrIn(path, TSV_NAME);
  const name = basename(tsvPath);
  const parsed = parseFullAttentionHeads(text, name);
  if (clip) for (let i = 0; i < parsed.scores.length; i++) parsed.scores[i] = Math.min(1, Math.max(0, parsed.scores[i]!));

  const configPath = join(dirname(tsvPath), CONFIG_NAME);
  const config = await readDuoConfig(configPath);
  const shape: PatternFiles['shape'] = { layers: parsed.layers, kvHeads: parsed.kvHeads };
  const sink = config?.['sink_size'];
  const recent = config?.['recent_size'];
  if (sink !== undefined && sink !== null) shape.sink = v.integer(`sink_size in ${configPath}`, sink, 0);
  if (recent !== undefined && recent !== null) shape.recent = v.integer(`recent_size in ${configPath}`, recent, 0);

  if (modelConfig !== undefined) {
    const { config: model, label } = await readModelConfig(modelConfig);
    checkModelShape(model, parsed.layers, parsed.kvHeads, label, name);
  }

  const files = (rule: SplitRule): PatternFiles => ({ scores: parsed.scores, shape, rule });
  if (sparsity !== undefined) return files({ kind: 'sparsity', value: v.unitInterval('options.sparsity', sparsity) });
  if (retrievalRatio !== undefined) return files({ kind: 'ratio', value: retrievalRatio });
  if (threshold !== undefined) return files({ kind: 'threshold', value: v.finite('options.threshold', threshold) });
  const saved = config?.['num_full_attention_heads'];
  if (saved === undefined || saved === null) {
    throw new RangeError(`No split rule for ${name}: pass sparsity, retrievalRatio or threshold (${CONFIG_NAME} has no num_full_attention_heads)`);
  }
  return files({ kind: 'count', value: v.integer(`num_full_attention_heads in ${configPath}`, saved, 0, parsed.scores.length) });
}

/** The `config.json` beside a TSV, or undefined when there is none. */
async function readDuoConfig(path: string): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const config = parseJson(text, path);
  if (config === null || typeof config !== 'object' || Array.isArray(config)) throw v.typeError(path, 'a JSON object', config);
  return config as Record<string, unknown>;
}

/**
 * Writes a pattern's two files into `dir` (created if missing), each durably and atomically
 * (a reader never sees half a file): the TSV text and `config.json` in `json.dump` style.
 *
 * @param dir - Output directory.
 * @param tsv - The `full_attention_heads.tsv` text.
 * @param config - `config.json`'s keys, in order.
 * @returns Resolves once both files are in place.
 * @internal
 * @example
 * ```ts
 * await writePatternFiles('patterns/llama', pattern.toTsv(), { sink_size: 64, recent_size: 256, sparsity: 0.5, num_full_attention_heads: 128 });
 * ```
 */
export async function writePatternFiles(dir: string, tsv: string, config: Record<string, number>): Promise<void> {
  const json = formatPythonJson(config);
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(join(dir, TSV_NAME), tsv);
  await writeFileAtomic(join(dir, CONFIG_NAME), json);
}
