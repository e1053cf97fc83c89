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
    config: readModelJSON('OnnxCausalLM.load', dir, 'config.json', 'model.onnx, config.json and tokenizer.json')!,
    generation: readModelJSON('OnnxCausalLM.load', dir, 'generation_config.json') ?? {},
    tokenizerJson: readModelJSON('OnnxCausalLM.load', dir, 'tokenizer.json', 'model.onnx, config.json and tokenizer.json')!,
    tokenizerConfig: readModelJSON('OnnxCausalLM.load', dir, 'tokenizer_config.json') ?? {},
  };
}

/**
 * JSON object file `name` of model folder `dir`, undefined when it is absent and optional.
 * `needs` ends the message of a required file that is missing (what the folder must hold);
 * messages start with `caller`.
 * @internal
 */
export function readModelJSON(caller: string, dir: string, name: string, needs?: string): Record<string, unknown> | undefined {
  const path = join(dir, name);
  if (!existsSync(path)) {
    if (needs !== undefined) throw new Error(`${caller}: ${path} not found; the model folder needs ${needs}`);
    return undefined;
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`${caller}: ${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${caller}: ${path} must hold a JSON object`);
  return json as Record<string, unknown>;
}

/** The ids of `key` in generation_config, else config: a number or an array of numbers. @internal */
export function idsOf(generation: Record<string, unknown>, config: Record<string, unknown>, key: string): number[] {
  const raw = generation[key] ?? config[key];
  const list = Array.isArray(raw) ? raw : raw === undefined || raw === null ? [] : [raw];
  return list.filter((x): x is number => Number.isInteger(x) && (x as number) >= 0);
}

/** The ids of `key` in generation_config, else config: a number or an array of numbers. */
export function tokenIds(files: ModelDir, key: string): number[] {
  return idsOf(files.generation, files.config, key);
}

/** A positive integer field of config.json, or undefined. */
export function configInt(files: ModelDir, key: string): number | undefined {
  const x = files.config[key];
  return Number.isInteger(x) && (x as number) > 0 ? (x as number) : undefined;
}
