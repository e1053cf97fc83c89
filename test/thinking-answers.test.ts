import { describe, expect, it } from 'vitest';
import {
  answerKey, answersAgree, chooseAdaptiveMode, INSIGHTS_INSTRUCTION, insightsMessage, MODE_INSTRUCTIONS, normalizeAnswer, parseNumericAnswer,
  REASONING_INSTRUCTIONS, ReasoningType, THINK_TWICE_REANSWER, ThinkingMode, thinkTwiceMessage,
} from '../src/index';
import { vote } from '../src/thinking/answers';
import { parseInsights } from '../src/thinking/prompts';

describe('answer normalisation', () => {
  it('folds NFKC compatibility forms, case (ß → ss) and whitespace', () => {
    expect(normalizeAnswer('  The   STRASSE\n\t')).toBe('the strasse');
    expect(normalizeAnswer('Straße')).toBe('strasse');
    expect(normalizeAnswer('ＡＢＣ ｆｉ')).toBe('abc fi'); // full-width letters and the ligature ﬁ
    expect(normalizeAnswer('\u00a0x\u2003 y ')).toBe('x y'); // no-break and em spaces
    expect(normalizeAnswer('')).toBe('');
  });

  it.each<[string, number | undefined]>([
    ['42', 42], [' 42. ', 42], ['+42', 42], ['-3.5', -3.5], ['\u22123.5', -3.5], ['1,234,567', 1234567], ['.5', 0.5], ['4.2e1', 42], ['4.2E1', 42],
    ['84/2', 42], ['1 / 4', 0.25], ['½', 0.5], ['４２', 42], ['-0', 0], ['3/0', undefined], ['1,23', undefined], ['12,3456', undefined],
    ['42 apples', undefined], ['$42$', undefined], ['42%', undefined], ['e5', undefined], ['.', undefined], ['4..', undefined], ['', undefined],
  ])('parses %j as %j', (text, value) => {
    expect(parseNumericAnswer(text)).toBe(value);
  });

  it('agreement: same normalised text, or numbers equal as parsed; empty answers agree with nothing', () => {
    expect(answersAgree('The answer is 42', 'the answer   IS 42')).toBe(true);
    for (const x of ['42.0', '+42', '4.2e1', '84/2', '42.', '４２']) expect(answersAgree('42', x), x).toBe(true);
    expect(answersAgree('42', '42.000001')).toBe(false);
    expect(answersAgree('Paris', 'Paris.')).toBe(false); // only a numeric answer drops its full stop
    expect(answersAgree('', '')).toBe(false);
    expect(answersAgree('  ', ' ')).toBe(false);
    expect(answerKey('4.2e1')).toBe('n:42');
    expect(answerKey(' Paris ')).toBe('t:paris');
    expect(answerKey(' \n')).toBe('');
  });
});

describe('majority synthesis', () => {
  it('the largest group wins; its latest answer is reported; confidence is its share of all rounds', () => {
    expect(vote(['41', '42', '42.0', 'x'])).toEqual({
      finalAnswer: '42.0',
      finalRound: 3,
      confidence: 0.5,
      votes: [{ answer: '42.0', rounds: [2, 3] }, { answer: 'x', rounds: [4] }, { answer: '41', rounds: [1] }],
    });
  });

  it('ties go to the group whose latest round is latest', () => {
    expect(vote(['a', 'b', 'b', 'a'])).toMatchObject({ finalAnswer: 'a', finalRound: 4, confidence: 0.5 });
    expect(vote(['a', 'b'])).toMatchObject({ finalAnswer: 'b', finalRound: 2, confidence: 0.5 });
    expect(vote([' Paris ', 'PARIS', 'lyon', 'Lyon'])).toMatchObject({ finalAnswer: 'Lyon', finalRound: 4 });
  });

  it('empty answers take no part, but count in the share; no answer at all gives confidence 0', () => {
    expect(vote(['', '7', ' '])).toMatchObject({ finalAnswer: '7', finalRound: 2, confidence: 1 / 3 });
    expect(vote(['', ''])).toEqual({ finalAnswer: '', finalRound: null, confidence: 0, votes: [] });
    expect(vote([])).toEqual({ finalAnswer: '', finalRound: null, confidence: 0, votes: [] });
  });
});

describe('ADAPTIVE rules', () => {
  const state = (answerKeys: string[], previousCut = false, budgetLimited = false) => ({ answerKeys, previousCut, budgetLimited });

  it('applies the first rule that holds, in the documented order', () => {
    expect(chooseAdaptiveMode(state([], false, true))).toEqual({ mode: ThinkingMode.INTUITIVE, rule: 'budget-limited' });
    expect(chooseAdaptiveMode(state(['t:a', 't:b'], true, true))).toEqual({ mode: ThinkingMode.INTUITIVE, rule: 'budget-limited' });
    expect(chooseAdaptiveMode(state([]))).toEqual({ mode: ThinkingMode.ANALYTICAL, rule: 'first-round' });
    expect(chooseAdaptiveMode(state(['t:a'], true))).toEqual({ mode: ThinkingMode.SYSTEMATIC, rule: 'cut-by-budget' });
    expect(chooseAdaptiveMode(state(['t:a', 't:b', 't:c'], true))).toEqual({ mode: ThinkingMode.SYSTEMATIC, rule: 'cut-by-budget' });
    expect(chooseAdaptiveMode(state(['t:a', 't:b', 't:c']))).toEqual({ mode: ThinkingMode.CREATIVE, rule: 'three-answers-differ' });
    expect(chooseAdaptiveMode(state(['t:a', 't:a', 't:b']))).toEqual({ mode: ThinkingMode.CRITICAL, rule: 'last-two-differ' });
    expect(chooseAdaptiveMode(state(['t:a', 't:b']))).toEqual({ mode: ThinkingMode.CRITICAL, rule: 'last-two-differ' });
    expect(chooseAdaptiveMode(state(['t:a']))).toEqual({ mode: ThinkingMode.ANALYTICAL, rule: 'default' });
    expect(chooseAdaptiveMode(state(['t:b', 't:a', 't:a']))).toEqual({ mode: ThinkingMode.ANALYTICAL, rule: 'default' });
  });

  it('an empty answer differs from every answer, itself included', () => {
    expect(chooseAdaptiveMode(state(['', '']))).toEqual({ mode: ThinkingMode.CRITICAL, rule: 'last-two-differ' });
    expect(chooseAdaptiveMode(state(['', 't:a', '']))).toEqual({ mode: ThinkingMode.CREATIVE, rule: 'three-answers-differ' });
  });
});

describe('prompt texts', () => {
  it("round n shows the previous answer in Think Twice's words, then the instructions", () => {
    expect(THINK_TWICE_REANSWER).toBe("The assistant's previous answer is: <answer>{answer}</answer>, and please re-answer.");
    expect(thinkTwiceMessage('Q?')).toBe('Q?');
    expect(thinkTwiceMessage('Q?', ' $1 and $& \n', ['A.', '', 'B.'])).toBe(
      "Q?\n\nThe assistant's previous answer is: <answer>$1 and $&</answer>, and please re-answer.\n\nA.\n\nB.",
    );
  });

  it('every mode but ADAPTIVE and every reasoning type has a documented instruction', () => {
    expect(Object.keys(MODE_INSTRUCTIONS).sort()).toEqual(Object.values(ThinkingMode).filter((m) => m !== 'adaptive').sort());
    expect(Object.keys(REASONING_INSTRUCTIONS).sort()).toEqual(Object.values(ReasoningType).sort());
    for (const t of [...Object.values(MODE_INSTRUCTIONS), ...Object.values(REASONING_INSTRUCTIONS)]) expect(t).toMatch(/^[A-Z].{40,}\.$/);
    expect(Object.isFrozen(MODE_INSTRUCTIONS) && Object.isFrozen(REASONING_INSTRUCTIONS)).toBe(true);
  });

  it('the insights request lists the answers; its reply is read under the last headings', () => {
    expect(insightsMessage('Q?', [' 1 ', '2'], '2')).toBe(`Q?\n\nAnswers given over 2 rounds of thinking:\nRound 1: 1\nRound 2: 2\n\nFinal answer: 2\n\n${INSIGHTS_INSTRUCTION}`);
    const reply = 'Insights:\n- <one insight per line>\n</think>\nINSIGHTS:\n- 2 is even\n* twice checked\n\nFollow-up questions:\n- why 2?\n-\n- and 3?\ntrailing';
    expect(parseInsights(reply)).toEqual({ insights: ['2 is even', 'twice checked'], followUpQuestions: ['why 2?', 'and 3?'] });
    expect(parseInsights('no format at all')).toEqual({ insights: [], followUpQuestions: [] });
  });
});
