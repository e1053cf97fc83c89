/**
 * Reads a Hugging Face model folder for {@link LlamaDecoder}: `config.json`, the tokenizer
 * files, `generation_config.json`, and opens the safetensors weights.
 * @module
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { HeadPattern } from '../../attention/index';
import * as v from '../../validate';
import { type LlamaConfig, parseLlamaConfig } from './config';
import { idsOf as idsIn, readModelJSON } from '../onnx/model-dir';

/** What a load reads besides the weights. @internal */
export interface LlamaFolder {
  configPath: string;
  rawConfig: Record<string, unknown>;
  config: LlamaConfig;
  generation: Record<string, unknown>;
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
}

const CALLER = 'LlamaDecoder.load';
const NEEDS = 'config.json, tokenizer.json and model.safetensors (or its index)';

/** @internal */
export function readLlamaFolder(dir: string): LlamaFolder {
  if (!existsSync(dir)) throw new Error(`LlamaDecoder.load: model folder ${dir} does not exist`);
  const configPath = join(dir, 'config.json');
  const rawConfig = readModelJSON(CALLER, dir, 'config.json', NEEDS)!;
  return {
    configPath,
    rawConfig,
    config: parseLlamaConfig(rawConfig, configPath),
    generation: readModelJSON(CALLER, dir, 'generation_config.json') ?? {},
    tokenizerJson: readModelJSON(CALLER, dir, 'tokenizer.json', NEEDS)!,
    tokenizerConfig: readModelJSON(CALLER, dir, 'tokenizer_config.json') ?? {},
  };
}

/** The ids of `key` in generation_config, else config: a number or an array of numbers. @internal */
export function idsOf(f: LlamaFolder, key: string): number[] {
  return idsIn(f.generation, f.rawConfig, key);
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
