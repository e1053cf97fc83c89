import { describe, expect, it } from 'vitest';
import {
  BudgetForcing, EnforcementLevel, type GenerateResult, type Generator, MODE_INSTRUCTIONS, MultiRoundThinking, type MultiRoundThinkingOptions,
  REASONING_INSTRUCTIONS, ReasoningType, ResourceType, type ThinkingChargeInfo, ThinkingMode, type ThinkingRoundRecord, insightsMessage,
} from '../src/index';
import { type Script, ScriptedGenerator, type ScriptedGeneratorOptions } from './support/scripted-generator';

// The fake tokenizer is one token per character, so every count below is worked out by hand:
// a thinking call writes `reasoning k</think>` (19 tokens, the stop string's 8 included) and
// an answer call writes the scripted answer then ends (EOS, not charged).
const FA = 'Final Answer:';
const Q = 'What is 6 x 7?';
const THINK = (k: number) => `reasoning ${k}</think>`;
const reanswer = (a: string) => `\n\nThe assistant's previous answer is: <answer>${a}</answer>, and please re-answer.`;

/** Thinking calls get THINK(k); answer calls the next scripted answer ('' once they run out); the insights call `insights`. */
function script(answers: string[], insights = '', think: (k: number) => string = THINK): Script {
  let t = 0;
  let a = 0;
  return (prompt) => (prompt.endsWith(FA) ? (answers[a++] ?? '') : prompt.includes('List the key insights') ? insights : think(t++));
}

function setup(answers: string[], options: Partial<MultiRoundThinkingOptions> = {}, gen: ScriptedGeneratorOptions = {}, insights = '') {
  const generator = new ScriptedGenerator(script(answers, insights), gen);
  const thinking = new MultiRoundThinking({ generator, ...options });
  return { generator, thinking };
}

/** The generate calls of each round, split at the answer calls. */
function callsByRound(generator: ScriptedGenerator) {
  const rounds: Array<typeof generator.calls> = [[]];
  for (const c of generator.calls) {
    rounds.at(-1)!.push(c);
    if (c.prompt.endsWith(FA)) rounds.push([]);
  }
  return rounds.filter((r) => r.length > 0);
}

describe('Think Twice rounds', () => {
  it('round n sends the problem and round n-1\'s answer, never its thinking; counts are exact', async () => {
    const { generator, thinking } = setup([' 41', ' 42', ' 42.0']);
    const s = await thinking.runSession(Q, { maxRounds: 5 });
    const calls = callsByRound(generator);
    expect(calls.map((r) => r[0]!.prompt)).toEqual([`${Q}\n<think>`, `${Q}${reanswer('41')}\n<think>`, `${Q}${reanswer('42')}\n<think>`]);
    expect(calls[1]![1]!.prompt).toBe(`${Q}${reanswer('41')}\n<think>reasoning 1</think>\n${FA}`);
    for (const [i, r] of s.rounds.entries()) {
      expect(r.prompt).toBe(calls[i]![0]!.prompt); // the exact text sent is part of the result
      if (i > 0) expect(r.prompt).not.toContain(`reasoning ${i - 1}`);
      expect(r).toMatchObject({ round: i + 1, thinking: `reasoning ${i}`, thinkingTokens: 19, answerTokens: [3, 3, 5][i], finishReason: 'eos', thinkingForcedEnd: false });
      expect(r.durationMs).toBeGreaterThanOrEqual(0);
    }
    expect(s.rounds.map((r) => r.answer)).toEqual([' 41', ' 42', ' 42.0']);
    expect(s).toMatchObject({ status: 'completed', stopReason: 'agreement', tokensUsed: 22 + 22 + 24 });
    expect(s.synthesis).toEqual({ finalAnswer: '42.0', finalRound: 3, confidence: 2 / 3, votes: [{ answer: '42.0', rounds: [2, 3] }, { answer: '41', rounds: [1] }] });
    expect(s.durationMs).toBeCloseTo(s.rounds.reduce((a, r) => a + r.durationMs, 0), 6);
    expect(await thinking.getSession(s.id)).toEqual(s);
  });

  it('applies the template, delimiters, bounds and sampling options to every call', async () => {
    const { generator, thinking } = setup([' x', ' x'], {
      template: (m) => `<user>${m}</user><assistant>`,
      thinkStart: '[T]',
      thinkEnd: '</think>',
      finalAnswerPrefix: FA,
      thinkingBudget: { maxThinkingTokens: 40, answerMaxTokens: 5 },
      temperature: 0.5,
      seed: 9,
      logprobs: false,
    });
    const s = await thinking.runSession(Q);
    expect(s.rounds[0]!.prompt).toBe(`<user>${Q}</user><assistant>[T]`);
    expect(generator.calls[0]!.options).toEqual({ maxTokens: 40, stop: ['</think>'], temperature: 0.5, seed: 9 });
    expect(generator.calls[1]!.options).toEqual({ maxTokens: 5, temperature: 0.5, seed: 9 });
    expect(s.rounds.every((r) => r.thinkingCap === 40 && !('answerLogprob' in r))).toBe(true);
  });
});

describe('stopping rules', () => {
  it("'max-rounds': no two consecutive answers agree; the majority tie goes to the latest", async () => {
    const { thinking } = setup([' 1', ' 2', ' 1', ' 2']);
    const s = await thinking.runSession(Q, { maxRounds: 4 });
    expect(s.stopReason).toBe('max-rounds');
    expect(s.rounds).toHaveLength(4);
    expect(s.synthesis).toMatchObject({ finalAnswer: '2', finalRound: 4, confidence: 0.5 });
  });

  it("'budget': the session budget is shared, lowers the last round's thinking cap, and is never overspent", async () => {
    const { thinking } = setup([' 1', ' 2', ' 3', ' 4'], { thinkingBudget: { maxThinkingTokens: 30, answerMaxTokens: 8 } });
    const s = await thinking.runSession(Q, { tokenBudget: 60, maxRounds: 10 });
    // 60 → 39 → 18 left; a round needs 8 + 1; round 3 thinks at most 18 - 8 = 10 tokens.
    expect(s.rounds.map((r) => [r.thinkingCap, r.thinkingTokens, r.thinkingForcedEnd])).toEqual([[30, 19, false], [30, 19, false], [10, 10, true]]);
    expect(s.rounds[2]!.thinking).toBe('reasoning ');
    expect(s).toMatchObject({ stopReason: 'budget', tokensUsed: 21 + 21 + 12, tokenBudget: 60 });
  });

  it("'abort': runSession resolves with the rounds so far; the session stays active, its spend counted, and resumes", async () => {
    const controller = new AbortController();
    const { generator, thinking } = setup([' 1', ' 2', ' 2'], {}, { beforeToken: (call, token) => void (call === 2 && token === 5 && controller.abort()) });
    const s = await thinking.runSession(Q, { maxRounds: 5, signal: controller.signal });
    expect(s.stopReason).toBe('abort');
    expect(s.status).toBe('active');
    expect(s.rounds).toHaveLength(1);
    expect(s.synthesis).toMatchObject({ finalAnswer: '1', confidence: 1 });
    expect(s.tokensUsed).toBe(21 + 5); // round 1, then the five tokens round 2 wrote before the abort
    expect((await thinking.getSession(s.id))!.status).toBe('active');
    const done = await thinking.resume(s.id);
    expect(done).toMatchObject({ status: 'completed', stopReason: 'agreement', tokensUsed: 26 + 21 + 21 });
    expect(done.rounds.map((r) => r.answer)).toEqual([' 1', ' 2', ' 2']);
    expect(generator.calls.at(-2)!.prompt).toBe(`${Q}${reanswer('2')}\n<think>`);
    expect(await thinking.resume(s.id)).toEqual(done); // completed: returned as stored
  });

  it("'caller': completeSession after rounds driven one by one", async () => {
    const { thinking } = setup([' a', ' b']);
    const id = await thinking.startThinkingSession(Q);
    await thinking.executeThinkingRound(id);
    await thinking.executeThinkingRound(id);
    const s = await thinking.completeSession(id);
    expect(s).toMatchObject({ status: 'completed', stopReason: 'caller', synthesis: { finalAnswer: 'b', confidence: 0.5 } });
    expect(s.completedAt).toBeGreaterThanOrEqual(s.createdAt);
    await expect(thinking.completeSession(id)).rejects.toThrow(`MultiRoundThinking: thinking session '${id}' is already completed (stopped by caller)`);
  });
});

describe('abort mid-round', () => {
  for (const rejectOnAbort of [false, true]) {
    it(`rejects with the signal's reason; no round is stored; spent tokens count (${rejectOnAbort ? 'generator rejects' : 'generator resolves'})`, async () => {
      const controller = new AbortController();
      const { thinking } = setup([' 1'], {}, { rejectOnAbort, beforeToken: (_c, token) => void (token === 7 && controller.abort()) });
      const id = await thinking.startThinkingSession(Q);
      const err = await thinking.executeThinkingRound(id, { signal: controller.signal }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DOMException);
      expect((err as DOMException).name).toBe('AbortError');
      const s = (await thinking.getSession(id))!;
      expect(s.rounds).toHaveLength(0);
      expect(s.tokensUsed).toBe(rejectOnAbort ? 0 : 7); // a rejecting generator reports no count
      expect(s.durationMs).toBeGreaterThan(0);
    });
  }
});

describe('ADAPTIVE in a session', () => {
  it('follows the written rules round by round, and sends the chosen mode\'s instruction', async () => {
    const { generator, thinking } = setup([' a', ' b', ' c', ' c']);
    const s = await thinking.runSession(Q, { thinkingMode: ThinkingMode.ADAPTIVE, reasoningType: ReasoningType.CAUSAL, maxRounds: 6 });
    expect(s.rounds.map((r) => [r.thinkingMode, r.modeUsed, r.adaptiveRule])).toEqual([
      ['adaptive', 'analytical', 'first-round'],
      ['adaptive', 'analytical', 'default'],
      ['adaptive', 'critical', 'last-two-differ'],
      ['adaptive', 'creative', 'three-answers-differ'],
    ]);
    const firsts = callsByRound(generator).map((r) => r[0]!.prompt);
    expect(firsts[2]).toBe(`${Q}${reanswer('b')}\n\n${MODE_INSTRUCTIONS.critical}\n\n${REASONING_INSTRUCTIONS.causal}\n<think>`);
    expect(s.stopReason).toBe('agreement');
  });

  it('SYSTEMATIC after an answer cut at its cap; INTUITIVE when the budget lowers the thinking cap', async () => {
    const { thinking } = setup([' a long answer', ' b', ' c'], { thinkingBudget: { maxThinkingTokens: 30, answerMaxTokens: 4 } });
    // Round 1 spends 19 + 4 (its answer cut at 4), round 2 19 + 2: 66 - 44 = 22 left, so round 3 may think 22 - 4.
    const s = await thinking.runSession(Q, { thinkingMode: ThinkingMode.ADAPTIVE, tokenBudget: 66, maxRounds: 5 });
    expect(s.rounds.map((r) => [r.modeUsed, r.adaptiveRule, r.finishReason, r.thinkingCap])).toEqual([
      ['analytical', 'first-round', 'length', 30],
      ['systematic', 'cut-by-budget', 'eos', 30],
      ['intuitive', 'budget-limited', 'eos', 18],
    ]);
  });

  it('a round may name its own mode and reasoning type; replaced texts are sent', async () => {
    const { generator, thinking } = setup([' a'], { modeInstructions: { critical: 'Doubt it.' }, reasoningInstructions: { deductive: '' } });
    const id = await thinking.startThinkingSession(Q, { thinkingMode: ThinkingMode.SYSTEMATIC });
    const r = await thinking.executeThinkingRound(id, { thinkingMode: ThinkingMode.CRITICAL, reasoningType: ReasoningType.DEDUCTIVE });
    expect(r).toMatchObject({ thinkingMode: 'critical', modeUsed: 'critical', reasoningType: 'deductive' });
    expect('adaptiveRule' in r).toBe(false);
    expect(generator.calls[0]!.prompt).toBe(`${Q}\n\nDoubt it.\n<think>`);
  });
});

describe('confidence', () => {
  it('agreement share and the final answer\'s mean token log-probability, reported apart', async () => {
    // Answer calls are calls 1, 3, 5: token k of call c has log-probability -(c + k) / 10.
    const { generator, thinking } = setup([' 7', ' 8', ' 7.0', ' 9'], {}, { logprob: (call, k) => -(call + k) / 10 });
    const s = await thinking.runSession(Q, { maxRounds: 4 });
    const mean = (c: number) => (-(c + 0) - (c + 1)) / 20; // two tokens: ' ', digit(s)… ' 7.0' has four
    expect(s.rounds[0]!.answerLogprob).toBeCloseTo(mean(1), 12);
    expect(s.rounds[2]!.answerLogprob).toBeCloseTo(-(5 + 6 + 7 + 8) / 40, 12);
    expect(s.synthesis).toMatchObject({ finalAnswer: '7.0', finalRound: 3, confidence: 0.5, answerLogprob: s.rounds[2]!.answerLogprob }); // 7 = 7.0
    expect(generator.calls.every((c) => c.options.logprobs === true)).toBe(true);
  });

  it('the majority answer carries its own round\'s figure; absent when the generator reports none', async () => {
    const { thinking } = setup([' 7', ' 8', ' 7.0', ' 8', ' 7'], {}, { logprob: (call) => -call });
    const s = await thinking.runSession(Q, { maxRounds: 5 });
    expect(s.synthesis).toMatchObject({ finalAnswer: '7', finalRound: 5, confidence: 3 / 5, answerLogprob: -9 });
    const none = setup([' 7', ' 7']);
    const t = await none.thinking.runSession(Q);
    expect(t.synthesis).toEqual({ finalAnswer: '7', finalRound: 2, confidence: 1, votes: [{ answer: '7', rounds: [1, 2] }] });
    expect(t.rounds.some((r) => 'answerLogprob' in r)).toBe(false);
  });
});

describe('charging', () => {
  it('every step is charged with its tokens and what it was for; the charges sum to tokensUsed', async () => {
    const charges: Array<[number, ThinkingChargeInfo]> = [];
    const reply = 'Insights:\n- one is one\nFollow-up questions:\n- two?';
    const { thinking } = setup([' 1', ' 1'], {
      thinkingBudget: { minThinkingTokens: 25, maxThinkingTokens: 60, answerMaxTokens: 8 },
      charge: (n, info) => void charges.push([n, info]),
    }, {}, reply);
    const s = await thinking.runSession(Q, { insights: true });
    expect(charges.reduce((a, [n]) => a + n, 0)).toBe(s.tokensUsed);
    const id = s.id;
    expect(charges.map(([n, i]) => [n, i.round, i.kind])).toEqual([
      [19, 1, 'think'], [4, 1, 'continue'], [19, 1, 'think'], [2, 1, 'answer'],
      [19, 2, 'think'], [4, 2, 'continue'], [19, 2, 'think'], [2, 2, 'answer'],
      [reply.length, null, 'insights'],
    ]);
    expect(charges.every(([, i]) => i.sessionId === id)).toBe(true);
    expect(s.rounds.map((r) => [r.thinkingTokens, r.continuationsUsed, r.minThinkingReached])).toEqual([[42, 1, true], [42, 1, true]]);
  });

  it('a throwing charge stops the round with its error; the charged step still counts', async () => {
    let n = 0;
    const { thinking } = setup([' 1', ' 2'], { charge: () => { if (++n === 3) throw new Error('over budget'); } });
    await expect(thinking.runSession(Q)).rejects.toThrow('over budget');
    const [id] = await thinking.store.sessionIds();
    expect((await thinking.getSession(id!))).toMatchObject({ status: 'active', tokensUsed: 21 + 19 });
  });

  it('charges a BudgetForcing allocation per step; a HARD denial ends the session with its message', async () => {
    const budgets = new BudgetForcing({
      enforcementLevel: EnforcementLevel.HARD,
      budgets: [{ resourceType: ResourceType.TOKENS, scope: 'daily', limit: 50 }],
    });
    const { thinking } = setup([' 1', ' 2', ' 3'], {
      charge: async (tokens, info) => {
        const d = await budgets.requestBudget({ resourceType: ResourceType.TOKENS, requestedAmount: tokens, priority: 1, estimatedDuration: 60, requesterId: info.sessionId });
        if (!d.approved) throw new Error(d.message);
        await budgets.commit(d.allocationId!, tokens);
      },
    });
    const err = (await thinking.runSession(Q).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(Error);
    const [id] = await thinking.store.sessionIds();
    const s = (await thinking.getSession(id!))!;
    expect(s.rounds).toHaveLength(2); // 21 + 21 tokens; round 3's thinking (19) would pass 50
    expect(s.tokensUsed).toBe(42 + 19);
    await budgets.close();
  });
});

describe('insights', () => {
  it('one extra call with the prompt shown; parsed; charged to the session budget', async () => {
    const reply = 'Insights:\n- 42 is 6 x 7\nFollow-up questions:\n- What is 7 x 8?';
    const { generator, thinking } = setup([' 42', ' 42'], { template: (m) => `U:${m}\nA:`, insightsMaxTokens: 100, thinkingBudget: { answerMaxTokens: 8 } }, {}, reply);
    const s = await thinking.runSession(Q, { insights: true, tokenBudget: 44 + reply.length + 5 });
    const call = generator.calls.at(-1)!;
    expect(call.prompt).toBe(`U:${insightsMessage(Q, [' 42', ' 42'], '42')}\nA:`);
    expect(call.options.maxTokens).toBe(reply.length + 5); // what the budget had left, below insightsMaxTokens
    expect(s.synthesis!.insights).toEqual({
      prompt: call.prompt, text: reply, insights: ['42 is 6 x 7'], followUpQuestions: ['What is 7 x 8?'], tokens: reply.length, finishReason: 'eos',
      durationMs: s.synthesis!.insights!.durationMs,
    });
    expect(s.tokensUsed).toBe(44 + reply.length);
  });
});

describe('metrics', () => {
  it('sessions completed, mean rounds, mean confidence and log-probability, modes used, stop reasons, mean session time', async () => {
    const { thinking } = setup([' 1', ' 1', ' 1', ' 2', ' 3', ' x'], { maxRounds: 3 }, { logprob: () => -0.5 });
    const a = await thinking.runSession(Q, { thinkingMode: ThinkingMode.CRITICAL }); // 1, 1: agreement
    const b = await thinking.runSession(Q, { thinkingMode: ThinkingMode.ADAPTIVE }); // 1, 2, 3: max rounds
    const open = await thinking.startThinkingSession(Q);
    await thinking.executeThinkingRound(open); // x: still active
    const m = await thinking.getMetrics();
    expect(m).toEqual({
      sessionsCompleted: 2,
      sessionsActive: 1,
      meanRoundsPerSession: 2.5,
      meanConfidence: (1 + 1 / 3) / 2,
      meanAnswerLogprob: -0.5,
      modesUsed: { critical: 3, analytical: 2, none: 1 },
      stopReasons: { agreement: 1, 'max-rounds': 1 },
      meanSessionMs: (a.durationMs + b.durationMs) / 2,
    });
    expect(b.rounds.map((r) => r.modeUsed)).toEqual(['analytical', 'analytical', 'critical']);
    expect(await new MultiRoundThinking({ generator: new ScriptedGenerator(() => '') }).getMetrics()).toEqual({
      sessionsCompleted: 0, sessionsActive: 0, meanRoundsPerSession: 0, meanConfidence: 0, meanAnswerLogprob: null, modesUsed: {}, stopReasons: {}, meanSessionMs: 0,
    });
  });
});

describe('events', () => {
  it("emits 'round' and 'completed'; a throwing listener changes nothing for the caller", async () => {
    const { thinking } = setup([' 1', ' 1']);
    const seen: string[] = [];
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      thinking.on('round', (id: string, r: ThinkingRoundRecord) => {
        seen.push(`${id.length} round ${r.round}`);
        throw new Error('listener bug');
      });
      thinking.on('completed', (s: { stopReason: string }) => seen.push(`completed ${s.stopReason}`));
      const s = await thinking.runSession(Q);
      expect(s.stopReason).toBe('agreement');
      expect(seen).toEqual(['36 round 1', '36 round 2', 'completed agreement']);
      await new Promise((r) => setImmediate(r));
      expect(warnings.filter((w) => w.message === "a 'round' listener threw: listener bug")).toHaveLength(2);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('bad input and state', () => {
  const generator = new ScriptedGenerator(() => '');

  it.each<[unknown, ErrorConstructor, string]>([
    [undefined, TypeError, 'Expected an options object for options but received undefined'],
    [{}, TypeError, 'Expected a Generator with generate and countTokens functions for options.generator but received undefined'],
    [{ generator, maxRounds: 0 }, RangeError, 'Expected integer in [1, 100] for options.maxRounds but received 0 of type number'],
    [{ generator, maxRounds: 1_000_000 }, RangeError, 'Expected integer in [1, 100] for options.maxRounds but received 1000000 of type number'],
    [{ generator, maxRounds: '5' }, TypeError, "Expected integer in [1, 100] for options.maxRounds but received '5' of type string"],
    [{ generator, rounds: 5 }, TypeError, "Unknown option 'rounds' in options (expected one of: generator, maxRounds, thinkingBudget, tokenBudget, store, thinkStart, thinkEnd, finalAnswerPrefix, template, temperature, seed, logprobs, modeInstructions, reasoningInstructions, insightsMaxTokens, charge)"],
    [{ generator, thinkingBudget: { maxThinkingTokens: 0 } }, RangeError, 'Expected integer >= 1 for options.thinkingBudget.maxThinkingTokens but received 0 of type number'],
    [{ generator, thinkingBudget: { minThinkingTokens: 9, maxThinkingTokens: 8 } }, RangeError, 'Expected integer in [0, 8] for options.thinkingBudget.minThinkingTokens but received 9 of type number'],
    [{ generator, thinkingBudget: { continuations: ['Wait', ''] } }, RangeError, "Expected non-empty string for options.thinkingBudget.continuations[1] but received '' of type string"],
    [{ generator, thinkEnd: '' }, RangeError, "Expected non-empty string for options.thinkEnd but received '' of type string"],
    [{ generator, tokenBudget: 0 }, RangeError, 'Expected integer >= 1 for options.tokenBudget but received 0 of type number'],
    [{ generator, modeInstructions: { adaptive: 'x' } }, TypeError, "Unknown option 'adaptive' in options.modeInstructions (expected one of: analytical, creative, critical, intuitive, systematic)"],
    [{ generator, reasoningInstructions: { causal: 3 } }, TypeError, 'Expected string for options.reasoningInstructions.causal but received 3 of type number'],
    [{ generator, store: {} }, TypeError, 'Expected a ThinkingStore (an object with createSession, getSession, appendRound, addSpend, completeSession, sessionIds, stats, close methods) for options.store but received object'],
    [{ generator, template: 'x' }, TypeError, "Expected function for options.template but received 'x' of type string"],
    [{ generator, logprobs: 1 }, TypeError, 'Expected boolean for options.logprobs but received 1 of type number'],
  ])('constructor %#', (options, Kind, message) => {
    expect(() => new MultiRoundThinking(options as MultiRoundThinkingOptions)).toThrow(new Kind(message));
  });

  it('session and round arguments', async () => {
    const t = new MultiRoundThinking({ generator });
    await expect(t.startThinkingSession('')).rejects.toThrow(new RangeError("Expected non-blank string for problem but received '' of type string"));
    await expect(t.startThinkingSession(' \n ')).rejects.toThrow(new RangeError("Expected non-blank string for problem but received ' \n ' of type string"));
    await expect(t.startThinkingSession(7 as never)).rejects.toThrow(new TypeError('Expected non-blank string for problem but received 7 of type number'));
    await expect(t.startThinkingSession(Q, { maxRounds: 0 })).rejects.toThrow(new RangeError('Expected integer in [1, 100] for options.maxRounds but received 0 of type number'));
    await expect(t.runSession(Q, { maxRounds: 1_000_000 })).rejects.toThrow(new RangeError('Expected integer in [1, 100] for options.maxRounds but received 1000000 of type number'));
    const modes = "'analytical', 'creative', 'critical', 'intuitive', 'systematic', 'adaptive'";
    await expect(t.startThinkingSession(Q, { thinkingMode: 'lazy' as never })).rejects.toThrow(new RangeError(`Expected one of ${modes} for options.thinkingMode but received 'lazy' of type string`));
    await expect(t.runSession(Q, { insights: 'yes' as never })).rejects.toThrow(new TypeError("Expected boolean for options.insights but received 'yes' of type string"));
    const id = await t.startThinkingSession(Q);
    await expect(t.executeThinkingRound(id, { thinkingMode: 'ANALYTICAL' as never })).rejects.toThrow(new RangeError(`Expected one of ${modes} for options.thinkingMode but received 'ANALYTICAL' of type string`));
    await expect(t.executeThinkingRound(id, { reasoningType: 'inductive ' as never })).rejects.toThrow(RangeError);
    await expect(t.executeThinkingRound(id, { signal: {} as never })).rejects.toThrow(new TypeError('Expected AbortSignal for options.signal but received object'));
    await expect(t.executeThinkingRound(id, { mode: 'critical' } as never)).rejects.toThrow(new TypeError("Unknown option 'mode' in options (expected one of: thinkingMode, reasoningType, signal)"));
    await expect(t.executeThinkingRound('nope')).rejects.toThrow(new RangeError("Expected the id of a session in the store for sessionId but received 'nope' of type string"));
    await expect(t.executeThinkingRound('')).rejects.toThrow(new RangeError("Expected non-empty string for sessionId but received '' of type string"));
    await expect(t.resume('nope')).rejects.toThrow(RangeError);
    const bad = new MultiRoundThinking({ generator, template: () => 5 as never });
    await expect(bad.runSession(Q)).rejects.toThrow(new TypeError('Expected string for the result of options.template but received 5 of type number'));
  });

  it('refuses a round past maxRounds, past the budget, on a completed session, or while one runs', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { thinking } = setup([' 1', ' 2', ' 3', ' 4'], { thinkingBudget: { answerMaxTokens: 8 } }, { beforeToken: (call, k) => (call === 0 && k === 0 ? gate : undefined) });
    const id = await thinking.startThinkingSession(Q, { maxRounds: 1 });
    const first = thinking.executeThinkingRound(id);
    await expect(thinking.executeThinkingRound(id)).rejects.toThrow(`MultiRoundThinking: thinking session '${id}' already has a round running`);
    await expect(thinking.resume(id)).rejects.toThrow(`MultiRoundThinking: thinking session '${id}' already has a round running`);
    release();
    await first;
    await expect(thinking.executeThinkingRound(id)).rejects.toThrow(`MultiRoundThinking: thinking session '${id}' has run its maxRounds (1) rounds`);
    const tight = await thinking.startThinkingSession(Q, { tokenBudget: 29 });
    await thinking.executeThinkingRound(tight); // 21 tokens: 8 left, a round needs 9
    await expect(thinking.executeThinkingRound(tight)).rejects.toThrow(
      `MultiRoundThinking: thinking session '${tight}' has 8 of its 29 tokens left, fewer than a round needs (answerMaxTokens 8 + 1)`,
    );
    expect((await thinking.resume(tight)).stopReason).toBe('budget');
    await expect(thinking.executeThinkingRound(tight)).rejects.toThrow(`MultiRoundThinking: thinking session '${tight}' is completed (stopped by budget)`);
  });

  it('after close every call rejects with ClosedError; close waits for a round in progress; a passed store stays open', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { thinking } = setup([' 1'], {}, { beforeToken: (call, k) => (call === 0 && k === 0 ? gate : undefined) });
    const id = await thinking.startThinkingSession(Q);
    const round = thinking.executeThinkingRound(id);
    const closing = thinking.close();
    await expect(thinking.getMetrics()).rejects.toThrow('MultiRoundThinking is closed');
    await expect(thinking.runSession(Q)).rejects.toThrow('MultiRoundThinking is closed');
    release();
    expect((await round).answer).toBe(' 1');
    await closing;
    await expect(thinking.executeThinkingRound(id)).rejects.toThrow('MultiRoundThinking is closed');
    // The default store closed with it.
    expect(() => thinking.store.sessionIds()).toThrow('MemoryThinkingStore is closed');

    const other = setup([' 1']);
    const kept = new MultiRoundThinking({ generator: other.generator, store: other.thinking.store });
    await kept.close();
    expect(await other.thinking.store.sessionIds()).toEqual([]);
    await other.thinking.close();
    const onClosed = new MultiRoundThinking({ generator: other.generator, store: other.thinking.store });
    await expect(onClosed.startThinkingSession(Q)).rejects.toThrow('MemoryThinkingStore is closed');
  });
});

/** A generator reporting what a real backend may: fewer log-probabilities than tokens. */
const partialLogprobs: Generator = {
  generate: async (_p, o): Promise<GenerateResult> => ({ text: ' 5', tokens: Math.min(2, o.maxTokens), finishReason: 'eos', logprobs: [-1] }),
  countTokens: (t) => t.length,
};

describe('generators in the wild', () => {
  it('averages the log-probabilities the generator gave, however many', async () => {
    const thinking = new MultiRoundThinking({ generator: partialLogprobs, thinkingBudget: { maxThinkingTokens: 4 } });
    const s = await thinking.runSession(Q);
    expect(s.synthesis).toMatchObject({ finalAnswer: '5', confidence: 1, answerLogprob: -1 });
  });
});
