import type { FinishReason, GenerateOptions, GenerateResult, Generator, GeneratorPrompt } from '../../src/index';

/**
 * What the fake model would write after `prompt` if nothing stopped it; `call` counts the
 * generate calls made so far (0-based). Running out of script is the end-of-sequence token.
 */
export type Script = (prompt: string, call: number) => string;

/** One recorded generate call: the prompt as text and a copy of the options. */
export interface ScriptedCall {
  prompt: string;
  options: GenerateOptions;
}

export interface ScriptedGeneratorOptions {
  /**
   * Called before each token (0-based index within the call); tests abort mid-call from here.
   * A returned promise is awaited first, so a test can hold a generation at a token (a
   * hook that returns nothing keeps the call synchronous between tokens, as before).
   */
  beforeToken?: (call: number, token: number) => void | Promise<void>;
  /** On abort, reject with `signal.reason` (as fetch-based clients do) instead of resolving with `'abort'`. */
  rejectOnAbort?: boolean;
  /**
   * The log-probability of each token written (`token` is its 0-based index in the call,
   * `text` its character), reported when a call asks for `logprobs`; without it the fake
   * ignores the request, as a backend that cannot report them does.
   */
  logprob?: (call: number, token: number, text: string) => number;
}

/**
 * A deterministic {@link Generator} whose tokenizer is one token per Unicode code point, so
 * every count in a test can be worked out by hand: `countTokens(t)` is the code-point length
 * of `t`, token ids are code points. It writes its script one token at a time, exactly as
 * the contract says: it stops at `maxTokens` ('length'), at the earliest stop string ('stop';
 * the stop's tokens are charged, its text dropped), at the end of the script ('eos', the EOS
 * token not charged) or on abort, streams text through `onToken` holding back possible stop
 * prefixes, and records every call.
 */
export class ScriptedGenerator implements Generator {
  /** Every generate call, in order. */
  readonly calls: ScriptedCall[] = [];
  /** Every text passed to countTokens, in order. */
  readonly counted: string[] = [];

  constructor(
    private readonly script: Script,
    private readonly opts: ScriptedGeneratorOptions = {},
  ) {}

  async generate(prompt: GeneratorPrompt, options: GenerateOptions): Promise<GenerateResult> {
    const text = typeof prompt === 'string' ? prompt : this.decode(prompt);
    const call = this.calls.length;
    this.calls.push({ prompt: text, options: { ...options, ...(options.stop ? { stop: [...options.stop] } : {}) } });
    const planned = Array.from(this.script(text, call));
    const stops = options.stop ?? [];
    const ids: number[] = [];
    const logprobs: number[] = [];
    let out = '';
    let emitted = 0; // length of `out` already passed to onToken

    const release = (end: number) => {
      if (end <= emitted) return;
      const piece = out.slice(emitted, end);
      const last = Array.from(out.slice(0, end)).at(-1)!;
      // A piece that is exactly the newest token carries its id.
      options.onToken?.(piece, piece === last && end === out.length ? ids.at(-1) : undefined);
      emitted = end;
    };
    const finish = (finishReason: FinishReason, textEnd = out.length, stopSequence?: string): GenerateResult => {
      release(textEnd);
      const r: GenerateResult = { text: out.slice(0, textEnd), tokenIds: [...ids], tokens: ids.length, finishReason };
      if (stopSequence !== undefined) r.stopSequence = stopSequence;
      if (options.logprobs && this.opts.logprob) r.logprobs = logprobs;
      return r;
    };

    for (;;) {
      const pause = this.opts.beforeToken?.(call, ids.length);
      if (pause) await pause;
      if (options.signal?.aborted) {
        if (this.opts.rejectOnAbort) throw options.signal.reason;
        return finish('abort');
      }
      if (ids.length >= options.maxTokens) return finish('length');
      const ch = planned[ids.length];
      if (ch === undefined) return finish('eos');
      if (options.logprobs && this.opts.logprob) logprobs.push(this.opts.logprob(call, ids.length, ch));
      out += ch;
      ids.push(ch.codePointAt(0)!);
      // Checked after every token, so a match can only end here; the earliest start wins.
      let at = -1;
      let hit: string | undefined;
      for (const s of stops) {
        const i = out.indexOf(s);
        if (i >= 0 && (at < 0 || i < at)) [at, hit] = [i, s];
      }
      if (hit !== undefined) return finish('stop', at, hit);
      let held = 0;
      for (const s of stops) {
        for (let k = Math.min(s.length - 1, out.length); k > held; k--) {
          if (out.endsWith(s.slice(0, k))) {
            held = k;
            break;
          }
        }
      }
      release(out.length - held);
    }
  }

  countTokens(text: string): number {
    this.counted.push(text);
    return Array.from(text).length;
  }

  encode(text: string): number[] {
    return Array.from(text, (c) => c.codePointAt(0)!);
  }

  decode(ids: readonly number[]): string {
    return String.fromCodePoint(...ids);
  }
}

/**
 * A script for a thinking model: calls whose prompt ends with `finalAnswerPrefix` get
 * `answer`; every other call is a thinking round and gets `think(round, prompt)`, `round`
 * counting thinking calls from 0.
 */
export function thinker(
  think: (round: number, prompt: string) => string,
  answer = ' 42',
  finalAnswerPrefix = 'Final Answer:',
): Script {
  let round = 0;
  return (prompt) => (prompt.endsWith(finalAnswerPrefix) ? answer : think(round++, prompt));
}

/** `n` filler characters that differ per round (so repeated rounds never look like a loop). */
export function filler(n: number, round: number): string {
  return String.fromCharCode(97 + (round % 26)).repeat(n);
}
