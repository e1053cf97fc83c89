import { describe, expect, it } from 'vitest';

import {
  type GenerateOptions,
  type GenerateResult,
  type Generator,
  type ThinkingBudgetOptions,
  type ThinkingBudgetResult,
  type ThinkingRound,
  forceThinkingBudget,
} from '../src/index';
import { rng } from './support/random';
import { type Script, ScriptedGenerator, filler, thinker } from './support/scripted-generator';

const END = '</think>'; // 8 tokens under the one-token-per-character fake tokenizer
const Q = 'Q?';

/**
 * Replays a result against the calls the generator received: every thinking prompt is the
 * prompt + thinkStart + the thinking so far, every cap is exactly max − tokens counted so far,
 * continuations appear in turn, the answer prompt closes the thinking, and the counts add up.
 */
function verify(gen: ScriptedGenerator, r: ThinkingBudgetResult, o: ThinkingBudgetOptions, prompt = Q) {
  const min = o.minThinkingTokens ?? 0;
  const max = o.maxThinkingTokens;
  const thinkEnd = o.thinkEnd ?? END;
  const continuations = o.continuations ?? ['Wait'];
  const head = prompt + (o.thinkStart ?? '<think>');
  let used = 0;
  let pos = 0;
  let call = 0;
  let conts = 0;
  for (const round of r.rounds.slice(0, -1)) {
    expect(used).toBeLessThan(max); // nothing happens once the budget is spent
    if (round.kind === 'think') {
      const c = gen.calls[call++]!;
      expect(c.prompt).toBe(head + r.thinking.slice(0, pos));
      const expected: GenerateOptions = { maxTokens: max - used, stop: [thinkEnd] };
      if (o.temperature !== undefined) expected.temperature = o.temperature;
      if (o.seed !== undefined) expected.seed = o.seed;
      if (o.signal !== undefined) expected.signal = o.signal;
      expect(c.options).toEqual(expected);
    } else {
      expect(round.kind).toBe('continue');
      expect(round.finishReason).toBeUndefined();
      const text = continuations[conts++ % continuations.length]!;
      expect(r.thinking.slice(pos, pos + round.textLength)).toBe(text);
      expect(round.tokens).toBe(Array.from(text).length);
    }
    used += round.tokens;
    pos += round.textLength;
  }
  const last = r.rounds.at(-1)!;
  expect(last.kind).toBe('answer');
  expect(pos).toBe(r.thinking.length);
  expect(used).toBe(r.thinkingTokens);
  expect(conts).toBe(r.continuationsUsed);
  expect(r.thinkingTokens).toBeLessThanOrEqual(max);
  expect(r.minReached).toBe(r.thinkingTokens >= min);
  expect(r.minUnmetReason === undefined).toBe(r.minReached);
  const a = gen.calls[call++]!;
  expect(a.prompt).toBe(`${head}${r.thinking}${thinkEnd}\n${o.finalAnswerPrefix ?? 'Final Answer:'}`);
  expect(a.options.maxTokens).toBe(o.answerMaxTokens);
  expect(a.options.stop).toBeUndefined();
  expect(last.tokens).toBe(r.answerTokens);
  expect(last.textLength).toBe(r.answer.length);
  expect(call).toBe(gen.calls.length);
}

async function run(script: Script, o: ThinkingBudgetOptions, gen = new ScriptedGenerator(script)) {
  const r = await forceThinkingBudget(gen, Q, o);
  verify(gen, r, o);
  return { r, gen };
}

/** Caps every call at `cap` tokens, as a server with a per-request limit does ('length' below the asked cap). */
function capped(gen: Generator, cap: number): Generator {
  return {
    generate: (p, o) => gen.generate(p, { ...o, maxTokens: Math.min(o.maxTokens, cap) }),
    countTokens: (t) => gen.countTokens(t),
  };
}

describe('forceThinkingBudget: the maximum', () => {
  it('lets a model that ends early (min 0) think once and answer', async () => {
    const { r, gen } = await run(thinker((i) => filler(5, i) + END + 'ignored'), { maxThinkingTokens: 50, answerMaxTokens: 10 });
    expect(r).toEqual({
      thinking: 'aaaaa', answer: ' 42', thinkingTokens: 13, answerTokens: 3, answerFinishReason: 'eos',
      continuationsUsed: 0, forcedEnd: false, minReached: true, rounds: r.rounds,
    });
    expect(r.rounds.map(({ kind, tokens, finishReason, textLength }) => ({ kind, tokens, finishReason, textLength }))).toEqual([
      { kind: 'think', tokens: 13, finishReason: 'stop', textLength: 5 },
      { kind: 'answer', tokens: 3, finishReason: 'eos', textLength: 3 },
    ]);
    expect(gen.calls.map((c) => c.prompt)).toEqual(['Q?<think>', 'Q?<think>aaaaa</think>\nFinal Answer:']);
  });

  it('cuts a model that never ends at exactly the maximum and still answers', async () => {
    const { r, gen } = await run(thinker((i) => filler(10_000, i)), { maxThinkingTokens: 30, answerMaxTokens: 10 });
    expect(r.thinking).toBe('a'.repeat(30));
    expect(r.thinkingTokens).toBe(30);
    expect(r.forcedEnd).toBe(true);
    expect(r.answer).toBe(' 42');
    expect(gen.calls.at(-1)!.prompt).toBe(`Q?<think>${'a'.repeat(30)}</think>\nFinal Answer:`);
  });

  it('does not call an end at exactly the maximum forced', async () => {
    const { r } = await run(thinker((i) => filler(12, i) + END), { maxThinkingTokens: 20, answerMaxTokens: 10 });
    expect(r.thinkingTokens).toBe(20);
    expect(r.rounds[0]!.finishReason).toBe('stop');
    expect(r.forcedEnd).toBe(false);
  });

  it('keeps a stop sequence cut by the cap in the thinking (it was generated)', async () => {
    const { r } = await run(thinker((i) => filler(5, i) + END), { maxThinkingTokens: 9, answerMaxTokens: 10 });
    expect(r.thinking).toBe('aaaaa</th');
    expect(r.forcedEnd).toBe(true);
  });

  it('continues after a backend cap of its own without a continuation', async () => {
    const gen = new ScriptedGenerator(thinker((i) => (i < 3 ? filler(10_000, i) : 'xx' + END)));
    const asked: number[] = [];
    const server = capped(gen, 12);
    const r = await forceThinkingBudget({ ...server, generate: (p, o) => (asked.push(o.maxTokens), server.generate(p, o)) }, Q, {
      maxThinkingTokens: 60, answerMaxTokens: 10,
    });
    expect(asked).toEqual([60, 48, 36, 24, 10]); // the remaining budget each time
    expect(gen.calls.map((c) => c.prompt.length)).toEqual([9, 21, 33, 45, 9 + 38 + 22]);
    expect(r.thinking).toBe(`${'a'.repeat(12)}${'b'.repeat(12)}${'c'.repeat(12)}xx`);
    expect(r.rounds.map((x) => x.finishReason)).toEqual(['length', 'length', 'length', 'stop', 'eos']);
    expect(r).toMatchObject({ thinkingTokens: 46, continuationsUsed: 0, forcedEnd: false, minReached: true, answer: ' 42' });
  });
});

describe('forceThinkingBudget: the minimum', () => {
  it('suppresses the end, appends "Wait", counts it and subtracts before deciding', async () => {
    const { r, gen } = await run(thinker((i) => filler(5, i) + END), { minThinkingTokens: 30, maxThinkingTokens: 100, answerMaxTokens: 10 });
    // 13 (5 + the 8 charged stop tokens) + 4 (Wait) + 13 = 30
    expect(r.thinking).toBe('aaaaaWaitbbbbb');
    expect(r.thinkingTokens).toBe(30);
    expect(r.continuationsUsed).toBe(1);
    expect(r.minReached).toBe(true);
    expect(gen.calls[1]!.prompt).toBe('Q?<think>aaaaaWait');
    expect(gen.calls[1]!.options.maxTokens).toBe(83);
    expect(gen.counted).toEqual(['Wait']); // counted once, then cached
  });

  it('cycles through the continuations', async () => {
    const { r } = await run(thinker((i) => filler(2, i) + END), {
      minThinkingTokens: 60, maxThinkingTokens: 200, answerMaxTokens: 5, continuations: ['Wait', 'Hmm', 'So'],
    });
    expect(r.thinking).toBe('aaWaitbbHmmccSoddWaitee');
    expect(r.continuationsUsed).toBe(4);
    expect(r.thinkingTokens).toBe(5 * 10 + 4 + 3 + 2 + 4);
  });

  it('forces through an end of sequence as through thinkEnd', async () => {
    const { r } = await run(thinker((i) => filler(6, i)), { minThinkingTokens: 15, maxThinkingTokens: 40, answerMaxTokens: 5 });
    expect(r.rounds[0]!.finishReason).toBe('eos');
    expect(r.thinking).toBe('aaaaaaWaitbbbbbb');
    expect(r.thinkingTokens).toBe(16);
  });

  it('hits min = max exactly, cutting the last round', async () => {
    const { r } = await run(thinker((i) => filler(5, i) + END), { minThinkingTokens: 25, maxThinkingTokens: 25, answerMaxTokens: 5 });
    expect(r.thinking).toBe('aaaaaWaitbbbbb</t');
    expect(r.thinkingTokens).toBe(25);
    expect(r.forcedEnd).toBe(true);
    expect(r.minReached).toBe(true);
  });

  it('lets a continuation that fills the budget exactly end the thinking', async () => {
    const { r, gen } = await run(thinker((i) => filler(4, i) + END), { minThinkingTokens: 16, maxThinkingTokens: 16, answerMaxTokens: 5 });
    expect(r.thinking).toBe('aaaaWait');
    expect(r.thinkingTokens).toBe(16);
    expect(r.forcedEnd).toBe(true);
    expect(gen.calls).toHaveLength(2);
  });

  it('reports no-room when the continuation does not fit', async () => {
    const { r } = await run(thinker((i) => filler(4, i) + END), { minThinkingTokens: 15, maxThinkingTokens: 15, answerMaxTokens: 5 });
    expect(r).toMatchObject({ thinking: 'aaaa', thinkingTokens: 12, minReached: false, minUnmetReason: 'no-room', forcedEnd: false, answer: ' 42' });
  });

  it('stops at maxContinuations and says so', async () => {
    const { r } = await run(thinker((i) => filler(3, i) + END), { minThinkingTokens: 1000, maxThinkingTokens: 2000, maxContinuations: 3, answerMaxTokens: 5 });
    expect(r).toMatchObject({ continuationsUsed: 3, thinkingTokens: 4 * 11 + 3 * 4, minReached: false, minUnmetReason: 'max-continuations', answer: ' 42' });
    const none = await run(thinker((i) => filler(3, i) + END), { minThinkingTokens: 20, maxThinkingTokens: 50, maxContinuations: 0, answerMaxTokens: 5 });
    expect(none.r).toMatchObject({ continuationsUsed: 0, thinkingTokens: 11, minReached: false, minUnmetReason: 'max-continuations' });
  });

  it('detects a loop: the same text again after a continuation', async () => {
    const { r } = await run(thinker(() => 'x = 3.' + END), { minThinkingTokens: 100, maxThinkingTokens: 200, answerMaxTokens: 5 });
    expect(r).toMatchObject({ thinking: 'x = 3.Waitx = 3.', continuationsUsed: 1, minReached: false, minUnmetReason: 'loop' });
  });

  it('detects a loop: the model closes at once after a continuation', async () => {
    const { r } = await run(thinker(() => END), { minThinkingTokens: 100, maxThinkingTokens: 200, answerMaxTokens: 5 });
    // The first immediate end is forced once: a model that skipped thinking may think when told to.
    expect(r).toMatchObject({ thinking: 'Wait', thinkingTokens: 8 + 4 + 8, continuationsUsed: 1, minUnmetReason: 'loop' });
    const late = await run(thinker((i) => (i === 0 ? filler(5, 0) : '') + END), { minThinkingTokens: 100, maxThinkingTokens: 200, answerMaxTokens: 5 });
    expect(late.r).toMatchObject({ thinking: 'aaaaaWait', continuationsUsed: 1, minUnmetReason: 'loop' });
  });

  it('does not mistake different rounds for a loop', async () => {
    const { r } = await run(thinker((i) => (i % 2 ? 'y' : 'x') + END), { minThinkingTokens: 40, maxThinkingTokens: 200, answerMaxTokens: 5 });
    expect(r.minReached).toBe(true);
    expect(r.thinking).toBe('xWaityWaitxWaity');
    expect(r.thinkingTokens).toBe(48);
  });

  it('reports a generator stalled at its own cap', async () => {
    const gen = new ScriptedGenerator(thinker((i) => filler(3, i) + END));
    const stalled: Generator = {
      generate: async (p, o) => (o.stop ? { text: '', tokens: 0, finishReason: 'length' } : gen.generate(p, o)),
      countTokens: (t) => gen.countTokens(t),
    };
    const r = await forceThinkingBudget(stalled, Q, { minThinkingTokens: 5, maxThinkingTokens: 10, answerMaxTokens: 5 });
    expect(r).toMatchObject({ thinking: '', thinkingTokens: 0, minReached: false, minUnmetReason: 'stalled', answer: ' 42', forcedEnd: false });
  });
});

describe('forceThinkingBudget: control over many behaviours', () => {
  const behaviours: Record<string, (seed: number) => Script> = {
    'ends early': () => thinker((i) => filler(3, i) + END),
    'ends after one token': () => thinker((i) => filler(1, i) + END),
    'never ends': () => thinker((i) => filler(100_000, i)),
    'ends with eos': () => thinker((i) => filler(7, i)),
    'writes long rounds': () => thinker((i) => filler(37, i) + END),
    'random lengths': (seed) => {
      const rand = rng(seed);
      return thinker((i) => filler(1 + Math.floor(rand() * 60), i) + (rand() < 0.2 ? '' : END));
    },
  };
  const budgets: Array<[number, number]> = [[0, 1], [0, 50], [1, 1], [10, 50], [30, 40], [50, 50], [20, 100], [100, 100], [99, 100], [150, 400]];

  for (const [name, make] of Object.entries(behaviours)) {
    it(`${name}: a one-token continuation puts every run in [min, max] (Control 100%)`, async () => {
      for (const [min, max] of budgets) {
        for (let seed = 1; seed <= 3; seed++) {
          const o = { minThinkingTokens: min, maxThinkingTokens: max, answerMaxTokens: 4, continuations: ['W', 'H'], maxContinuations: 1000 };
          const { r } = await run(make(seed), o);
          expect(r.minUnmetReason, `${name} [${min}, ${max}]`).toBeUndefined();
          expect(r.thinkingTokens).toBeGreaterThanOrEqual(min);
          expect(r.thinkingTokens).toBeLessThanOrEqual(max);
          expect(r.answer).toBe(' 42'.slice(0, 4));
        }
      }
    });

    it(`${name}: with "Wait" and the default cap the result is never above max and honest about min`, async () => {
      for (const [min, max] of budgets) {
        const { r } = await run(make(7), { minThinkingTokens: min, maxThinkingTokens: max, answerMaxTokens: 2 });
        expect(r.thinkingTokens).toBeLessThanOrEqual(max);
        expect(r.answer).toBe(' 4');
        expect(r.answerFinishReason).toBe('length');
      }
    });
  }
});

describe('forceThinkingBudget: hooks, sampling and abort', () => {
  it('charges every step that added tokens, summing to thinking + answer', async () => {
    const charged: Array<[number, string]> = [];
    const seen: ThinkingRound[] = [];
    const { r } = await run(thinker((i) => filler(5, i) + END), {
      minThinkingTokens: 30, maxThinkingTokens: 100, answerMaxTokens: 10,
      charge: async (tokens, round) => void charged.push([tokens, round.kind]),
      onRound: (round) => void seen.push(round),
    });
    expect(charged).toEqual([[13, 'think'], [4, 'continue'], [13, 'think'], [3, 'answer']]);
    expect(charged.reduce((s, [t]) => s + t, 0)).toBe(r.thinkingTokens + r.answerTokens);
    expect(seen).toEqual(r.rounds);
    for (const round of r.rounds) expect(round.ms).toBeGreaterThanOrEqual(0);
  });

  it('skips charging steps that added nothing, and stops when charge throws', async () => {
    const charged: number[] = [];
    const { r } = await run(thinker(() => '', ''), { maxThinkingTokens: 10, answerMaxTokens: 5, charge: (t) => void charged.push(t) });
    expect(r.thinkingTokens + r.answerTokens).toBe(0);
    expect(charged).toEqual([]);

    const gen = new ScriptedGenerator(thinker((i) => filler(5, i) + END));
    const over = new RangeError('token budget exhausted');
    await expect(forceThinkingBudget(gen, Q, {
      minThinkingTokens: 30, maxThinkingTokens: 100, answerMaxTokens: 10,
      charge: (t) => { if (t === 4) throw over; },
    })).rejects.toBe(over);
    expect(gen.calls).toHaveLength(1);
  });

  it('passes temperature, seed and signal to every call', async () => {
    const signal = new AbortController().signal;
    await run(thinker((i) => filler(5, i) + END), { minThinkingTokens: 20, maxThinkingTokens: 100, answerMaxTokens: 10, temperature: 0, seed: 7, signal });
    // verify() checked the thinking calls; the answer call:
    const gen = new ScriptedGenerator(thinker(() => END));
    await forceThinkingBudget(gen, Q, { maxThinkingTokens: 5, answerMaxTokens: 3, temperature: 0.6, seed: 1, signal });
    expect(gen.calls[1]!.options).toEqual({ maxTokens: 3, temperature: 0.6, seed: 1, signal });
  });

  it('uses custom delimiters and answer prefix, and an empty thinkStart', async () => {
    const o = { minThinkingTokens: 11, maxThinkingTokens: 40, answerMaxTokens: 5, thinkStart: '', thinkEnd: '<|end|>', finalAnswerPrefix: '' };
    const { r, gen } = await run(thinker((i) => filler(3, i) + '<|end|>', ' ok', '<|end|>\n'), o);
    expect(r.answer).toBe(' ok');
    expect(r.thinking).toBe('aaaWaitbbb');
    expect(gen.calls.at(-1)!.prompt).toBe('Q?aaaWaitbbb<|end|>\n');
  });

  it('rejects with the AbortError at once when the signal is already aborted', async () => {
    const gen = new ScriptedGenerator(thinker((i) => filler(5, i) + END));
    const controller = new AbortController();
    controller.abort();
    const err = await forceThinkingBudget(gen, Q, { maxThinkingTokens: 10, answerMaxTokens: 5, signal: controller.signal }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DOMException);
    expect((err as DOMException).name).toBe('AbortError');
    expect(gen.calls).toHaveLength(0);
  });

  it('stops between rounds', async () => {
    const gen = new ScriptedGenerator(thinker((i) => filler(5, i) + END));
    const controller = new AbortController();
    const reason = new Error('client went away');
    const p = forceThinkingBudget(gen, Q, {
      minThinkingTokens: 100, maxThinkingTokens: 200, answerMaxTokens: 5, signal: controller.signal,
      onRound: (round) => { if (round.kind === 'continue') controller.abort(reason); },
    });
    await expect(p).rejects.toBe(reason);
    expect(gen.calls).toHaveLength(1);
  });

  it('stops inside a round, charging what the generator spent', async () => {
    for (const [abortCall, abortToken, answerText] of [[1, 6, ' 42'], [2, 2, ' the answer is 42']] as const) {
      for (const rejectOnAbort of [false, true]) {
        const controller = new AbortController();
        const gen = new ScriptedGenerator(thinker((i) => filler(5, i) + END, answerText), {
          rejectOnAbort,
          beforeToken: (call, token) => { if (call === abortCall && token === abortToken) controller.abort(); },
        });
        const charged: number[] = [];
        const err = await forceThinkingBudget(gen, Q, {
          minThinkingTokens: 20, maxThinkingTokens: 100, answerMaxTokens: 50, signal: controller.signal, charge: (t) => void charged.push(t),
        }).catch((e: unknown) => e);
        expect((err as Error).name).toBe('AbortError');
        expect(gen.calls).toHaveLength(abortCall + 1); // nothing is called after the abort
        // A generator that resolves reports its partial tokens, which are charged; one that rejects cannot.
        const before = abortCall === 1 ? [13, 4] : [13, 4, 13];
        expect(charged).toEqual(rejectOnAbort ? before : [...before, abortToken]);
      }
    }
  });

  it('rejects when the generator reports an abort nobody asked for', async () => {
    const g: Generator = { generate: async () => ({ text: 'a', tokens: 1, finishReason: 'abort' }), countTokens: () => 1 };
    await expect(forceThinkingBudget(g, Q, { maxThinkingTokens: 5, answerMaxTokens: 5 })).rejects.toThrow(
      new Error("generator.generate() finished with 'abort' although the signal was not aborted"));
  });

  it('rejects generator results that break the contract', async () => {
    const cases: Array<[Partial<GenerateResult> | null, ErrorConstructor, string]> = [
      [{ text: 'a', tokens: 6, finishReason: 'length' }, RangeError, 'Expected integer in [0, 5] for generator.generate() result.tokens but received 6 of type number'],
      [{ text: 'a', tokens: 0.5, finishReason: 'length' }, RangeError, 'Expected integer in [0, 5] for generator.generate() result.tokens but received 0.5 of type number'],
      [{ text: 'a', finishReason: 'length' }, TypeError, 'Expected integer in [0, 5] for generator.generate() result.tokens but received undefined'],
      [{ tokens: 1, finishReason: 'stop' }, TypeError, 'Expected string for generator.generate() result.text but received undefined'],
      [{ text: 'a', tokens: 1, finishReason: 'done' as never }, RangeError,
        "Expected one of 'stop', 'length', 'eos', 'abort' for generator.generate() result.finishReason but received 'done' of type string"],
      [null, TypeError, 'Expected a GenerateResult object for the result of generator.generate() but received null'],
    ];
    for (const [result, Kind, message] of cases) {
      const g = { generate: async () => result, countTokens: () => 1 } as unknown as Generator;
      await expect(forceThinkingBudget(g, Q, { maxThinkingTokens: 5, answerMaxTokens: 5 })).rejects.toThrow(new Kind(message));
    }
    const g: Generator = { generate: async () => ({ text: '', tokens: 0, finishReason: 'stop', stopSequence: END }), countTokens: () => -1 };
    await expect(forceThinkingBudget(g, Q, { minThinkingTokens: 3, maxThinkingTokens: 5, answerMaxTokens: 5 })).rejects.toThrow(
      new RangeError('Expected integer >= 0 for generator.countTokens() result but received -1 of type number'));
  });
});

describe('forceThinkingBudget: argument validation', () => {
  const gen = new ScriptedGenerator(() => '');
  const base: ThinkingBudgetOptions = { maxThinkingTokens: 10, answerMaxTokens: 5 };
  const bad: Array<[string, unknown, unknown, unknown, ErrorConstructor, string]> = [
    ['generator null', null, Q, base, TypeError, 'Expected a Generator with generate and countTokens functions for generator but received null'],
    ['generator without countTokens', { generate: () => null }, Q, base, TypeError,
      'Expected a Generator with generate and countTokens functions for generator but received object'],
    ['prompt', gen, ['Q'], base, TypeError, 'Expected string for prompt but received Array of length 1'],
    ['options', gen, Q, 5, TypeError, 'Expected an options object for options but received 5 of type number'],
    ['no options', gen, Q, undefined, TypeError, 'Expected integer >= 1 for maxThinkingTokens but received undefined'],
    ['unknown option', gen, Q, { ...base, maxTokens: 3 }, TypeError,
      "Unknown option 'maxTokens' in options (expected one of: minThinkingTokens, maxThinkingTokens, thinkStart, thinkEnd, continuations, maxContinuations, finalAnswerPrefix, answerMaxTokens, temperature, seed, signal, onRound, charge)"],
    ['max fractional', gen, Q, { ...base, maxThinkingTokens: 1.5 }, RangeError, 'Expected integer >= 1 for maxThinkingTokens but received 1.5 of type number'],
    ['max 0', gen, Q, { ...base, maxThinkingTokens: 0 }, RangeError, 'Expected integer >= 1 for maxThinkingTokens but received 0 of type number'],
    ['max string', gen, Q, { ...base, maxThinkingTokens: '10' }, TypeError, "Expected integer >= 1 for maxThinkingTokens but received '10' of type string"],
    ['min > max', gen, Q, { ...base, minThinkingTokens: 11 }, RangeError, 'Expected integer in [0, 10] for minThinkingTokens but received 11 of type number'],
    ['min negative', gen, Q, { ...base, minThinkingTokens: -1 }, RangeError, 'Expected integer in [0, 10] for minThinkingTokens but received -1 of type number'],
    ['min NaN', gen, Q, { ...base, minThinkingTokens: NaN }, RangeError, 'Expected integer in [0, 10] for minThinkingTokens but received NaN of type number'],
    ['thinkStart', gen, Q, { ...base, thinkStart: 1 }, TypeError, 'Expected string for thinkStart but received 1 of type number'],
    ['thinkEnd empty', gen, Q, { ...base, thinkEnd: '' }, RangeError, "Expected non-empty string for thinkEnd but received '' of type string"],
    ['thinkEnd type', gen, Q, { ...base, thinkEnd: null }, TypeError, 'Expected non-empty string for thinkEnd but received null'],
    ['continuations type', gen, Q, { ...base, continuations: 'Wait' }, TypeError,
      "Expected non-empty array of non-empty strings for continuations but received 'Wait' of type string"],
    ['continuations empty', gen, Q, { ...base, continuations: [] }, RangeError,
      'Expected non-empty array of non-empty strings for continuations but received Array of length 0'],
    ['continuation empty', gen, Q, { ...base, continuations: ['Wait', ''] }, RangeError,
      "Expected non-empty string for continuations[1] but received '' of type string"],
    ['continuation type', gen, Q, { ...base, continuations: [3] }, TypeError, 'Expected non-empty string for continuations[0] but received 3 of type number'],
    ['maxContinuations', gen, Q, { ...base, maxContinuations: -1 }, RangeError, 'Expected integer >= 0 for maxContinuations but received -1 of type number'],
    ['answerMaxTokens 0', gen, Q, { ...base, answerMaxTokens: 0 }, RangeError,
      'Expected integer >= 1 for answerMaxTokens but received 0 of type number'],
    ['finalAnswerPrefix type', gen, Q, { ...base, finalAnswerPrefix: ['A'] }, TypeError, 'Expected string for finalAnswerPrefix but received Array of length 1'],
    ['answerMaxTokens missing', gen, Q, { maxThinkingTokens: 10 }, TypeError, 'Expected integer >= 1 for answerMaxTokens but received undefined'],
    ['temperature', gen, Q, { ...base, temperature: -0.1 }, RangeError, 'Expected finite number >= 0 for temperature but received -0.1 of type number'],
    ['temperature type', gen, Q, { ...base, temperature: '0' }, TypeError, "Expected finite number >= 0 for temperature but received '0' of type string"],
    ['seed', gen, Q, { ...base, seed: 1.5 }, RangeError, 'Expected integer >= 0 for seed but received 1.5 of type number'],
    ['signal', gen, Q, { ...base, signal: new AbortController() }, TypeError, 'Expected AbortSignal for signal but received AbortController object'],
    ['onRound', gen, Q, { ...base, onRound: true }, TypeError, 'Expected function for onRound but received true of type boolean'],
    ['charge', gen, Q, { ...base, charge: 'x' }, TypeError, "Expected function for charge but received 'x' of type string"],
  ];
  for (const [name, g, prompt, o, Kind, message] of bad) {
    it(`rejects ${name}`, async () => {
      const p = forceThinkingBudget(g as Generator, prompt as string, o as ThinkingBudgetOptions);
      await expect(p).rejects.toThrow(new Kind(message));
      await expect(p).rejects.toBeInstanceOf(Kind);
    });
  }

  it('accepts the boundary values', async () => {
    const { r } = await run(thinker(() => END), { minThinkingTokens: 0, maxThinkingTokens: 1, answerMaxTokens: 1, maxContinuations: 0, temperature: 0, seed: 0 });
    expect(r.thinkingTokens).toBe(1);
    expect(r.answer).toBe(' ');
  });
});

describe('ScriptedGenerator honours the Generator contract', () => {
  it('caps at maxTokens, stops on the earliest stop string and streams the final text', async () => {
    const gen = new ScriptedGenerator(() => 'hello <b>world</b> tail');
    const pieces: Array<[string, number | undefined]> = [];
    const r = await gen.generate('p', { maxTokens: 100, stop: ['</b>', 'd</'], onToken: (p, id) => void pieces.push([p, id]) });
    expect(r).toEqual({ text: 'hello <b>worl', tokenIds: gen.encode('hello <b>world</'), tokens: 16, finishReason: 'stop', stopSequence: 'd</' });
    expect(pieces.map(([p]) => p).join('')).toBe(r.text);
    expect(pieces[0]).toEqual(['h', 104]);
    expect(await gen.generate('p', { maxTokens: 3 })).toEqual({ text: 'hel', tokenIds: [104, 101, 108], tokens: 3, finishReason: 'length' });
    expect(await gen.generate('p', { maxTokens: 0 })).toMatchObject({ text: '', tokens: 0, finishReason: 'length' });
    expect(await gen.generate(gen.encode('ids'), { maxTokens: 50 })).toMatchObject({ text: 'hello <b>world</b> tail', tokens: 23, finishReason: 'eos' });
    expect(gen.calls.map((c) => c.prompt)).toEqual(['p', 'p', 'p', 'ids']);
    expect(gen.countTokens('héllo')).toBe(5);
    expect(gen.decode(gen.encode('a😀b'))).toBe('a😀b');
  });

  it('flushes held-back text when the cap cuts a partial stop sequence', async () => {
    const gen = new ScriptedGenerator(() => 'ab</think>');
    const pieces: string[] = [];
    const r = await gen.generate('p', { maxTokens: 4, stop: [END], onToken: (p) => void pieces.push(p) });
    expect(r).toMatchObject({ text: 'ab</', finishReason: 'length' });
    expect(pieces).toEqual(['a', 'b', '</']);
  });
});
