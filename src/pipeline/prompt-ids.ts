/**
 * Tokenizing a prompt once. The budget stage counts a text prompt with the expert's
 * `encode()`; the generation stage then hands the expert those ids, so the model does not
 * encode the prompt a second time. `encode()` adds no special tokens, while a backend adds its
 * own (a BOS) to a text prompt: they are learned per generator from a text call whose result
 * reports the ids it ran (`promptTokenIds`, as OnnxCausalLM's does), as the tokens around the
 * encoded prompt. Until they are known (and for a generator that does not report its ids) the
 * prompt goes as text.
 * @module
 */
import type { Generator } from '../llm/index';

/** The special tokens a backend puts around an encoded text prompt. */
export interface Specials {
  prefix: readonly number[];
  suffix: readonly number[];
}

/** Per generator: its specials, or null when they cannot be learned (the prompt then goes as text). */
const learned = new WeakMap<Generator, Specials | null>();

/** Whether the prompt is worth encoding (rather than counting) for this generator. */
export function mayHandIds(g: Generator): boolean {
  return typeof g.encode === 'function' && learned.get(g) !== null;
}

/** The ids the backend would run for a text prompt that encodes to `ids`, when known. */
export function promptIds(g: Generator, ids: readonly number[]): number[] | undefined {
  const s = learned.get(g);
  if (s === undefined || s === null) return undefined;
  return [...s.prefix, ...ids, ...s.suffix];
}

/**
 * Learns (or checks) the generator's specials from one text call: `encoded` is what
 * `encode()` gave for the prompt, `ran` the ids the backend reported running. The ids must be
 * the encoded prompt with at most `most` tokens around it, found at one offset only; a
 * generator that reports no ids, or whose ids disagree with what was learned, is never handed
 * ids.
 */
export function learnSpecials(g: Generator, encoded: readonly number[], ran: readonly number[] | undefined, most: number): void {
  const known = learned.get(g);
  if (known === null) return;
  if (ran === undefined) {
    if (known === undefined) learned.set(g, null);
    return;
  }
  const extra = ran.length - encoded.length;
  const found: Specials[] = [];
  for (let p = 0; p <= extra && extra <= most; p++) {
    let same = true;
    for (let i = 0; i < encoded.length && same; i++) same = ran[p + i] === encoded[i];
    if (same) found.push({ prefix: ran.slice(0, p), suffix: ran.slice(p + encoded.length) });
  }
  if (found.length > 1) return; // ambiguous on this prompt: try the next one
  const s = found[0];
  if (s === undefined || (known !== undefined && !(equal(known.prefix, s.prefix) && equal(known.suffix, s.suffix)))) {
    learned.set(g, null);
    return;
  }
  if (known === undefined) learned.set(g, s);
}

function equal(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
