/**
 * When two answers are the same, and which answer a session settles on: the normalisation,
 * the number parsing, the majority vote and the confidence figures, all stated in the TSDoc
 * so a reported figure can be recomputed by hand.
 * @module
 */

/**
 * The form in which answers are compared:
 * 1. Unicode NFKC (compatibility forms fold: full-width `４２` → `42`, `ﬁ` → `fi`);
 * 2. case: `toUpperCase()` then `toLowerCase()`, locale-independent, which folds `ß` to `ss`
 *    as Unicode full case folding does;
 * 3. whitespace: every run of white space becomes one space, and the ends are trimmed.
 *
 * @param answer An answer as the model wrote it.
 * @returns The normalised text.
 *
 * @example
 * ```ts
 * normalizeAnswer('  The   STRASSE\n'); // 'the strasse'
 * normalizeAnswer('Straße');            // 'strasse'
 * ```
 */
export function normalizeAnswer(answer: string): string {
  return answer.normalize('NFKC').toUpperCase().toLowerCase().replace(/\s+/g, ' ').trim();
}

// A decimal: optional sign (ASCII or U+2212 minus), digits with optional comma thousands
// separators, an optional fraction and an optional exponent; at least one digit before it.
const DECIMAL = /^[+\-\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+|(?=\.\d))(?:\.\d+)?(?:e[+\-\u2212]?\d+)?$/;
// A fraction of integers; U+2044 is the fraction slash NFKC makes of '½'.
const FRACTION = /^([+\-\u2212]?\d+) ?[/\u2044] ?(\d+)$/;

/**
 * The value of a numeric answer, or `undefined` when the answer is not a number. The answer is
 * normalised first ({@link normalizeAnswer}); one trailing `.` (the end of a sentence) is
 * dropped. It is numeric when what is left is entirely:
 * - a decimal: an optional sign (`+`, `-` or U+2212 `−`), digits — optionally with `,`
 *   thousands separators in groups of three — an optional `.` fraction and an optional
 *   exponent `e±N` (`42`, `-3.5`, `1,234,567`, `.5`, `4.2e1`); or
 * - a fraction of two integers `a/b` (`84/2`, `1 / 3`, `½`), b not 0.
 *
 * Units, words, percent signs or LaTeX around the number make it text.
 *
 * @param answer An answer as the model wrote it.
 * @returns The number as a double, or `undefined`.
 *
 * @example
 * ```ts
 * parseNumericAnswer(' 1,024. '); // 1024
 * parseNumericAnswer('½');        // 0.5
 * parseNumericAnswer('42 apples'); // undefined
 * ```
 */
export function parseNumericAnswer(answer: string): number | undefined {
  let s = normalizeAnswer(answer);
  if (s.endsWith('.') && !s.endsWith('..')) s = s.slice(0, -1).trimEnd();
  const minus = (t: string) => t.replace('\u2212', '-');
  if (DECIMAL.test(s)) {
    const x = Number(minus(s).replace(/,/g, ''));
    return Number.isFinite(x) ? x + 0 : undefined; // + 0 turns -0 into 0
  }
  const f = FRACTION.exec(s);
  if (f) {
    const den = Number(f[2]);
    const x = Number(minus(f[1]!)) / den;
    return den !== 0 && Number.isFinite(x) ? x + 0 : undefined;
  }
  return undefined;
}

/**
 * The comparison key of an answer: `'n:' + value` for a numeric answer
 * ({@link parseNumericAnswer}; `42`, `42.0`, `+42`, `4.2e1` and `84/2` share the key `n:42`),
 * else `'t:' + normalizeAnswer(answer)`; `''` for an answer that is empty after normalisation.
 *
 * @param answer An answer as the model wrote it.
 * @returns The key; equal keys are the same answer.
 *
 * @example
 * ```ts
 * answerKey('Paris.'); // 't:paris.'
 * answerKey('4.2e1');  // 'n:42'
 * ```
 */
export function answerKey(answer: string): string {
  const n = normalizeAnswer(answer);
  if (n === '') return '';
  const x = parseNumericAnswer(n);
  return x === undefined ? `t:${n}` : `n:${x}`;
}

/**
 * Whether two answers agree: their {@link answerKey}s are equal and not empty — the same text
 * after normalisation, or, for numeric answers, the same parsed value (two doubles equal).
 * Empty answers agree with nothing.
 *
 * @param a One answer.
 * @param b Another.
 * @returns True when they count as the same answer.
 *
 * @example
 * ```ts
 * answersAgree('The answer is 42', 'the answer   is 42'); // true
 * answersAgree('42', '42.0');                             // true
 * answersAgree('', '');                                   // false
 * ```
 */
export function answersAgree(a: string, b: string): boolean {
  const k = answerKey(a);
  return k !== '' && k === answerKey(b);
}

/**
 * One answer of a session's vote, with the rounds that gave it.
 *
 * @example
 * ```ts
 * const vote: AnswerVote = { answer: '42', rounds: [1, 3] };
 * ```
 */
export interface AnswerVote {
  /** The answer as the latest of its rounds wrote it, trimmed. */
  answer: string;
  /** The 1-based rounds whose answers have this answer's {@link answerKey}, in order. */
  rounds: number[];
}

/** What the vote over a session's answers gives. @internal */
export interface Vote {
  finalAnswer: string;
  finalRound: number | null;
  confidence: number;
  votes: AnswerVote[];
}

/**
 * Majority over the answers (oldest first): answers are grouped by {@link answerKey}, empty
 * ones leave out; the group with most rounds wins, a tie going to the group whose latest round
 * is latest. The final answer is that group's latest answer; confidence is its rounds over all
 * rounds (empty ones included), 0 when there is no non-empty answer.
 * @internal
 */
export function vote(answers: readonly string[]): Vote {
  const groups = new Map<string, AnswerVote>();
  answers.forEach((a, i) => {
    const key = answerKey(a);
    if (key === '') return;
    const g = groups.get(key);
    if (g) {
      g.rounds.push(i + 1);
      g.answer = a.trim();
    } else groups.set(key, { answer: a.trim(), rounds: [i + 1] });
  });
  const votes = [...groups.values()].sort((x, y) => y.rounds.length - x.rounds.length || y.rounds.at(-1)! - x.rounds.at(-1)!);
  const best = votes[0];
  if (best === undefined) return { finalAnswer: '', finalRound: null, confidence: 0, votes };
  return { finalAnswer: best.answer, finalRound: best.rounds.at(-1)!, confidence: best.rounds.length / answers.length, votes };
}
