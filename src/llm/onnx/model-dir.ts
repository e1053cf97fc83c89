/**
 * Reads a model folder in the Optimum / transformers.js export layout: the ONNX file,
 * `config.json`, `generation_config.json` and the tokenizer files.
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Where the ONNX file is looked for, in order, when no `modelFile` is given. */
export const MODEL_FILES = ['model.onnx', 'onnx/model.onnx'] as const;

/** What a load needs from the folder, parsed and checked. */
export interface ModelDir {
  modelPath: string;
  config: Record<string, unknown>;
  generation: Record<string, unknown>;
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
}

export function readModelDir(dir: string, modelFile: string | undefined): ModelDir {
  if (!existsSync(dir)) throw new Error(`OnnxCausalLM.load: model folder ${dir} does not exist`);
  let modelPath: string | undefined;
  if (modelFile !== undefined) {
    modelPath = join(dir, modelFile);
    if (!existsSync(modelPath)) throw new Error(`OnnxCausalLM.load: ${modelPath} not found (options.modelFile)`);
  } else {
    modelPath = MODEL_FILES.map((f) => join(dir, f)).find((p) => existsSync(p));
    if (modelPath === undefined) throw new Error(`OnnxCausalLM.load: no ONNX model in ${dir}: looked for ${MODEL_FILES.join(', ')}`);
  }
  return {
    modelPath,
    config: readJSON(dir, 'config.json', true)!,
    generation: readJSON(dir, 'generation_config.json', false) ?? {},
    tokenizerJson: readJSON(dir, 'tokenizer.json', true)!,
    tokenizerConfig: readJSON(dir, 'tokenizer_config.json', false) ?? {},
  };
}

function readJSON(dir: string, name: string, required: boolean): Record<string, unknown> | undefined {
  const path = join(dir, name);
  if (!existsSync(path)) {
    if (required) throw new Error(`OnnxCausalLM.load: ${path} not found; the model folder needs model.onnx, config.json and tokenizer.json`);
    return undefined;
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`OnnxCausalLM.load: ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`OnnxCausalLM.load: ${path} must hold a JSON object`);
  return json as Record<string, unknown>;
}

/** The ids of `key` in generation_config, else config: a number or an array of numbers. */
export function tokenIds(files: ModelDir, key: string): number[] {
  const raw = files.generation[key] ?? files.config[key];
  const list = Array.isArray(raw) ? raw : raw === undefined || raw === null ? [] : [raw];
  return list.filter((x): x is number => Number.isInteger(x) && (x as number) >= 0);
}

/** A positive integer field of config.json, or undefined. */
export function configInt(files: ModelDir, key: string): number | undefined {
  const x = files.config[key];
  return Number.isInteger(x) && (x as number) > 0 ? (x as number) : undefined;
}
