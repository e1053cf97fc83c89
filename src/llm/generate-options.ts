/**
 * Validation of {@link GenerateOptions} and the prompt, shared by every backend so each
 * rejects bad input with the same message.
 * @module
 */
import type { GenerateOptions, GeneratorPrompt } from './generator';
import * as v from '../validate';

const GENERATE_KEYS = ['maxTokens', 'stop', 'temperature', 'topP', 'seed', 'signal', 'onToken', 'logprobs'] as const;

/** Checked options: `stop` is always an array; sampling fields stay undefined when unset. */
export interface CheckedGenerateOptions {
  maxTokens: number;
  stop: string[];
  temperature: number | undefined;
  topP: number | undefined;
  seed: number | undefined;
  signal: AbortSignal | undefined;
  onToken: GenerateOptions['onToken'];
  logprobs: boolean;
}

/** Checks a prompt: a string, or an array of integer token ids >= 0 (below `vocabSize` when given). */
export function checkPrompt(prompt: GeneratorPrompt, vocabSize?: number): void {
  if (typeof prompt === 'string') return;
  if (!Array.isArray(prompt)) throw v.typeError('prompt', 'string or array of token ids', prompt);
  prompt.forEach((id: unknown, i) => v.integer(`prompt[${i}]`, id, 0, vocabSize === undefined ? undefined : vocabSize - 1));
}

/** Checks the options of `generate`, naming the bad field. */
export function checkGenerateOptions(options: GenerateOptions): CheckedGenerateOptions {
  if (options === undefined) throw v.typeError('options', 'an options object', options);
  const o = v.options<GenerateOptions>('options', options, GENERATE_KEYS);
  const maxTokens = v.integer('options.maxTokens', o.maxTokens, 0);
  const stop: string[] = [];
  if (o.stop !== undefined) {
    if (!Array.isArray(o.stop)) throw v.typeError('options.stop', 'array of non-empty strings', o.stop);
    o.stop.forEach((s: unknown, i) => stop.push(v.nonEmptyString(`options.stop[${i}]`, s)));
  }
  const temperature = o.temperature === undefined ? undefined : v.finite('options.temperature', o.temperature, { min: 0 });
  let topP: number | undefined;
  if (o.topP !== undefined) {
    topP = v.finite('options.topP', o.topP, { positive: true });
    if (topP > 1) throw v.rangeError('options.topP', 'finite number in (0, 1]', topP);
  }
  const seed = o.seed === undefined ? undefined : v.integer('options.seed', o.seed, 0);
  const signal = o.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw v.typeError('options.signal', 'AbortSignal', signal);
  const onToken = v.optionalFunction<NonNullable<GenerateOptions['onToken']>>('options.onToken', o.onToken);
  const logprobs = o.logprobs === undefined ? false : v.boolean('options.logprobs', o.logprobs);
  return { maxTokens, stop, temperature, topP, seed, signal, onToken, logprobs };
}
