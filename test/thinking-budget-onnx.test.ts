import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { forceThinkingBudget, OnnxCausalLM, type ThinkingRound } from '../src/index';
import { makeTinyModel } from '../scripts/make-tiny-model.mjs';

// s1 budget forcing against a real decoder (the tiny ONNX model): its output is random text,
// so thinking ends early only when its thinkEnd is common ('e') and almost never at '</think>'.
let root: string;
let model: OnnxCausalLM;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'capibara-think-onnx-'));
  const { dir } = await makeTinyModel(join(root, 'tiny'));
  model = await OnnxCausalLM.load(dir, { threads: 1 });
});

afterAll(async () => {
  await model?.close();
  rmSync(root, { recursive: true, force: true });
});

const PROMPT = 'Question: how many r are in strawberry?\n';
const BUDGETS: Array<[number, number]> = [[0, 8], [5, 20], [20, 20], [10, 60], [40, 80]];

describe('forceThinkingBudget with the tiny ONNX model', () => {
  for (const thinkEnd of ['</think>', 'e']) {
    it(`keeps thinking in [min, max] with an answer and exact accounting (thinkEnd ${JSON.stringify(thinkEnd)})`, async () => {
      let endedEarly = 0;
      let forced = 0;
      for (const [min, max] of BUDGETS) {
        for (let seed = 1; seed <= 3; seed++) {
          const charges: number[] = [];
          const rounds: ThinkingRound[] = [];
          const r = await forceThinkingBudget(model, PROMPT, {
            minThinkingTokens: min,
            maxThinkingTokens: max,
            thinkEnd,
            continuations: ['W'], // one token, so the minimum is always reachable (s1's Control)
            maxContinuations: 1000,
            answerMaxTokens: 6,
            temperature: 1,
            seed,
            charge: (n) => void charges.push(n),
            onRound: (round) => void rounds.push(round),
          });
          const at = `[${min}, ${max}] seed ${seed}`;
          expect(r.thinkingTokens, at).toBeGreaterThanOrEqual(min);
          expect(r.thinkingTokens, at).toBeLessThanOrEqual(max);
          expect(r.minReached, at).toBe(true);
          expect(r.answerTokens, at).toBeGreaterThanOrEqual(1);
          expect(r.answerTokens, at).toBeLessThanOrEqual(6);
          expect(rounds.at(-1)!.kind).toBe('answer');
          // Every token generated or appended is counted once: rounds, charges and totals agree.
          const sum = (ks: string[]) => rounds.filter((x) => ks.includes(x.kind)).reduce((a, x) => a + x.tokens, 0);
          expect(sum(['think', 'continue']), at).toBe(r.thinkingTokens);
          expect(sum(['answer']), at).toBe(r.answerTokens);
          expect(charges.reduce((a, b) => a + b, 0), at).toBe(r.thinkingTokens + r.answerTokens);
          if (r.forcedEnd) forced++;
          if (r.continuationsUsed > 0 || r.thinkingTokens < max) endedEarly++;
        }
      }
      // Both paths of the algorithm ran against the real model.
      expect(forced).toBeGreaterThan(0);
      if (thinkEnd === 'e') expect(endedEarly).toBeGreaterThan(0);
    });
  }

  it('counts a continuation with the model tokenizer', async () => {
    const r = await forceThinkingBudget(model, PROMPT, {
      minThinkingTokens: 30,
      maxThinkingTokens: 40,
      thinkEnd: 'e',
      continuations: ['Wait'],
      maxContinuations: 1000,
      answerMaxTokens: 2,
      temperature: 1,
      seed: 5,
    });
    const cont = r.rounds.filter((x) => x.kind === 'continue');
    expect(cont.length).toBeGreaterThan(0);
    for (const c of cont) expect(c.tokens).toBe(model.countTokens('Wait'));
    expect(r.thinkingTokens).toBeLessThanOrEqual(40);
  });
});
