import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createCompletionsServer, MultiRoundThinking, type MultiRoundThinkingOptions, OnnxCausalLM, OpenAICompatibleGenerator, SqliteThinkingStore, ThinkingMode,
} from '../src/index';
import { makeTinyModel } from '../scripts/make-tiny-model.mjs';

// Think Twice end to end on a real decoder: the tiny ONNX model's weights are random, so its
// text is noise and nothing here is about accuracy. Its thinking ends at 'e', a string it writes
// often (it almost never writes '</think>'), and its answers are one token, so greedy rounds can
// agree. Every number checked is one the model itself produced.
let root: string;
let model: OnnxCausalLM;
const Q = 'What is 6 x 7?';
const OPTIONS = { thinkEnd: 'e', thinkingBudget: { maxThinkingTokens: 24, answerMaxTokens: 1 }, temperature: 0, maxRounds: 6 } as const;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'capibara-thinking-onnx-'));
  const { dir } = await makeTinyModel(join(root, 'tiny'));
  model = await OnnxCausalLM.load(dir, { threads: 1 });
});

afterAll(async () => {
  await model?.close();
  rmSync(root, { recursive: true, force: true });
});

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('MultiRoundThinking on the tiny ONNX model', () => {
  it('runs Think Twice rounds to agreement with exact counts and the model\'s own log-probabilities', async () => {
    const thinking = new MultiRoundThinking({ generator: model, ...OPTIONS });
    const s = await thinking.runSession(Q);
    expect(s.stopReason).toBe('agreement');
    expect(s.rounds.length).toBeGreaterThanOrEqual(2);
    const answers = s.rounds.map((r) => r.answer);
    expect(answers.at(-1)).toBe(answers.at(-2));
    for (const [i, r] of s.rounds.entries()) {
      expect(r.prompt.startsWith(Q)).toBe(true);
      expect(r.prompt.endsWith('\n<think>')).toBe(true);
      if (i > 0) {
        const prev = s.rounds[i - 1]!;
        expect(r.prompt).toBe(`${Q}\n\nThe assistant's previous answer is: <answer>${prev.answer.trim()}</answer>, and please re-answer.\n<think>`);
        if (prev.thinking.length > 8) expect(r.prompt).not.toContain(prev.thinking);
      }
      expect(r.thinkingTokens).toBeLessThanOrEqual(24);
      if (r.thinkingForcedEnd) expect(r.thinkingTokens).toBe(24);
      expect(r.answerTokens).toBe(1);
      // The answer's figure, recomputed: the same answer prompt, run again, asking for log-probabilities.
      const again = await model.generate(`${r.prompt}${r.thinking}e\nFinal Answer:`, { maxTokens: 1, temperature: 0, logprobs: true });
      expect(again.text).toBe(r.answer);
      expect(r.answerLogprob).toBeCloseTo(mean(again.logprobs!), 9);
      expect(r.answerLogprob!).toBeLessThan(0);
    }
    expect(s.tokensUsed).toBe(s.rounds.reduce((a, r) => a + r.thinkingTokens + r.answerTokens, 0));
    expect(s.synthesis!.finalAnswer).toBe(answers.at(-1)!.trim());
    expect(s.synthesis!.answerLogprob).toBe(s.rounds.at(-1)!.answerLogprob);
    expect(s.synthesis!.confidence).toBe(answers.filter((a) => a === answers.at(-1)).length / answers.length);
    // Both ends of the thinking happened on the real model: closed by the model, and forced at the cap.
    expect(s.rounds.some((r) => r.thinkingForcedEnd)).toBe(true);
    expect(s.rounds.some((r) => !r.thinkingForcedEnd)).toBe(true);
    await thinking.close();
  });

  it('gives the same session through capibara serve\'s HTTP API (log-probabilities included)', async () => {
    const local = await new MultiRoundThinking({ generator: model, ...OPTIONS }).runSession(Q);
    const server = createCompletionsServer(model, { model: 'tiny' });
    const { url } = await server.listen(0);
    try {
      const client = new OpenAICompatibleGenerator({ baseURL: url, model: 'tiny', maxRetries: 0 });
      const remote = await new MultiRoundThinking({ generator: client, ...OPTIONS }).runSession(Q);
      expect(remote.stopReason).toBe(local.stopReason);
      expect(remote.rounds.map((r) => [r.prompt, r.thinking, r.answer, r.thinkingTokens, r.answerTokens])).toEqual(
        local.rounds.map((r) => [r.prompt, r.thinking, r.answer, r.thinkingTokens, r.answerTokens]),
      );
      remote.rounds.forEach((r, i) => expect(r.answerLogprob).toBeCloseTo(local.rounds[i]!.answerLogprob!, 9));
    } finally {
      await server.close();
    }
  });

  it('persists rounds run by sampling without a seed, and resumes them in a new store instance', async () => {
    const path = join(root, 'sessions.db');
    const opts: MultiRoundThinkingOptions = { generator: model, thinkEnd: 'e', thinkingBudget: { maxThinkingTokens: 16, answerMaxTokens: 3 }, temperature: 0.8 };
    const first = new SqliteThinkingStore({ path });
    const a = new MultiRoundThinking({ ...opts, store: first });
    const id = await a.startThinkingSession(Q, { maxRounds: 4, thinkingMode: ThinkingMode.ADAPTIVE, tokenBudget: 60 });
    const r1 = await a.executeThinkingRound(id);
    await a.close();
    await first.close();

    const second = new SqliteThinkingStore({ path });
    const b = new MultiRoundThinking({ ...opts, store: second });
    const s = await b.resume(id, { insights: true });
    expect(s.rounds[0]).toEqual(r1);
    expect(s.rounds.length).toBeGreaterThanOrEqual(2);
    expect(['agreement', 'max-rounds', 'budget']).toContain(s.stopReason);
    expect(s.tokensUsed).toBeLessThanOrEqual(60);
    expect(s.rounds.map((r) => r.modeUsed).every((m) => m !== null && m !== ThinkingMode.ADAPTIVE)).toBe(true);
    const insightTokens = s.synthesis!.insights?.tokens ?? 0;
    expect(s.tokensUsed).toBe(s.rounds.reduce((x, r) => x + r.thinkingTokens + r.answerTokens, 0) + insightTokens);
    expect(await b.getMetrics()).toMatchObject({ sessionsCompleted: 1, meanRoundsPerSession: s.rounds.length });
    await b.close();
    await second.close();
  });
});
