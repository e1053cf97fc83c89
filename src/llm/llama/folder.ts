/**
 * Reads a Hugging Face model folder for {@link LlamaDecoder}: `config.json`, the tokenizer
 * files, `generation_config.json`, and opens the safetensors weights.
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HeadPattern } from '../../attention/index';
import * as v from '../../validate';
import { type LlamaConfig, parseLlamaConfig } from './config';

/** What a load reads besides the weights. @internal */
export interface LlamaFolder {
  configPath: string;
  rawConfig: Record<string, unknown>;
  config: LlamaConfig;
  generation: Record<string, unknown>;
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
}

/** @internal */
export function readLlamaFolder(dir: string): LlamaFolder {
  if (!existsSync(dir)) throw new Error(`LlamaDecoder.load: model folder ${dir} does not exist`);
  const configPath = join(dir, 'config.json');
  const rawConfig = readJSON(dir, 'config.json', true)!;
  return {
    configPath,
    rawConfig,
    config: parseLlamaConfig(rawConfig, configPath),
    generation: readJSON(dir, 'generation_config.json', false) ?? {},
    tokenizerJson: readJSON(dir, 'tokenizer.json', true)!,
    tokenizerConfig: readJSON(dir, 'tokenizer_config.json', false) ?? {},
  };
}

function readJSON(dir: string, name: string, required: boolean): Record<string, unknown> | undefined {
  const path = join(dir, name);
  if (!existsSync(path)) {
    if (required) throw new Error(`LlamaDecoder.load: ${path} not found; the model folder needs config.json, tokenizer.json and model.safetensors (or its index)`);
    return undefined;
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`LlamaDecoder.load: ${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`LlamaDecoder.load: ${path} must hold a JSON object`);
  return json as Record<string, unknown>;
}

/** The ids of `key` in generation_config, else config: a number or an array of numbers. @internal */
export function idsOf(f: LlamaFolder, key: string): number[] {
  const raw = f.generation[key] ?? f.rawConfig[key];
  const list = Array.isArray(raw) ? raw : raw === undefined || raw === null ? [] : [raw];
  return list.filter((x): x is number => Number.isInteger(x) && (x as number) >= 0);
}

/** The head pattern of a load: all heads full, a HeadPattern of the model's shape, or pattern files checked against config.json. @internal */
export async function resolvePattern(given: unknown, configPath: string, c: LlamaConfig): Promise<HeadPattern> {
  if (given === undefined) return HeadPattern.allRetrieval(c.layers, c.kvHeads);
  if (typeof given === 'string') {
    try {
      return await HeadPattern.load(given, { modelConfig: configPath });
    } catch (err) {
      throw new RangeError(`LlamaDecoder.load: options.headPattern ${given}: ${(err as Error).message}`, { cause: err });
    }
  }
  if (!(given instanceof HeadPattern)) throw v.typeError('options.headPattern', 'HeadPattern or a path to pattern files', given);
  if (given.layers !== c.layers || given.kvHeads !== c.kvHeads) {
    throw new RangeError(
      `LlamaDecoder.load: options.headPattern has ${given.layers} layers × ${given.kvHeads} KV heads but ${configPath} has ${c.layers} × ${c.kvHeads} (num_hidden_layers × num_key_value_heads)`,
    );
  }
  return given;
}
