/**
 * The texts a session sends: Think Twice's re-answer prompt (arXiv 2503.19855) and the one
 * optional "insights and follow-up questions" request, with the parser of its answer.
 * @module
 */

/**
 * Think Twice's re-answer sentence, verbatim from the paper; `{answer}` is replaced by the
 * previous round's answer (trimmed). Only the answer is shown: the previous thinking never is.
 *
 * @example
 * ```ts
 * THINK_TWICE_REANSWER.replace('{answer}', '42');
 * // "The assistant's previous answer is: <answer>42</answer>, and please re-answer."
 * ```
 */
export const THINK_TWICE_REANSWER = "The assistant's previous answer is: <answer>{answer}</answer>, and please re-answer.";

/**
 * The user message of a round: the problem; from the second round on, a blank line and
 * {@link THINK_TWICE_REANSWER} with the previous answer; then each instruction (the mode's,
 * the reasoning type's) after a blank line of its own. The template of
 * {@link MultiRoundThinkingOptions.template} then turns it into the prompt.
 *
 * @param problem The session's problem, as given.
 * @param previousAnswer The previous round's answer (trimmed here); `undefined` in round 1.
 * @param instructions Instruction texts to append, in order.
 * @returns The message.
 *
 * @example
 * ```ts
 * thinkTwiceMessage('What is 6 x 7?', ' 42 ', [MODE_INSTRUCTIONS[ThinkingMode.CRITICAL]]);
 * // "What is 6 x 7?\n\nThe assistant's previous answer is: <answer>42</answer>, and please re-answer.\n\nThink critically: …"
 * ```
 */
export function thinkTwiceMessage(problem: string, previousAnswer?: string, instructions: readonly string[] = []): string {
  const parts = [problem];
  if (previousAnswer !== undefined) parts.push(THINK_TWICE_REANSWER.replace('{answer}', () => previousAnswer.trim()));
  for (const text of instructions) if (text !== '') parts.push(text);
  return parts.join('\n\n');
}

/**
 * The request for insights and follow-up questions, appended after the problem and the
 * rounds' answers (see {@link insightsMessage}). The reply is read by its two headings.
 *
 * @example
 * ```ts
 * console.log(INSIGHTS_INSTRUCTION);
 * ```
 */
export const INSIGHTS_INSTRUCTION =
  'List the key insights that support the final answer, then the follow-up questions worth exploring next. Use exactly this format:\n' +
  'Insights:\n- <one insight per line>\nFollow-up questions:\n- <one question per line>';

/**
 * The user message of the insights call: the problem, each round's answer, the final answer
 * and {@link INSIGHTS_INSTRUCTION}, separated by blank lines.
 *
 * @param problem The session's problem.
 * @param answers The rounds' answers, oldest first (each trimmed here).
 * @param finalAnswer The session's final answer.
 * @returns The message.
 *
 * @example
 * ```ts
 * insightsMessage('What is 6 x 7?', ['42', '42'], '42');
 * ```
 */
export function insightsMessage(problem: string, answers: readonly string[], finalAnswer: string): string {
  const lines = answers.map((a, i) => `Round ${i + 1}: ${a.trim()}`);
  const given = `Answers given over ${answers.length} rounds of thinking:\n${lines.join('\n')}`;
  return [problem, given, `Final answer: ${finalAnswer}`, INSIGHTS_INSTRUCTION].join('\n\n');
}

/**
 * The `- ` items under the last `Insights:` and the last `Follow-up questions:` heading of a
 * reply (a reasoning model may repeat the format in its thinking first). Case is ignored in
 * the headings; items end at a blank line or the next heading.
 * @internal
 */
export function parseInsights(text: string): { insights: string[]; followUpQuestions: string[] } {
  const lines = text.split(/\r?\n/);
  const last = (re: RegExp) => lines.reduce((found, l, i) => (re.test(l.trim()) ? i : found), -1);
  const items = (from: number) => {
    const out: string[] = [];
    if (from < 0) return out;
    for (let i = from + 1; i < lines.length; i++) {
      const l = lines[i]!.trim();
      const m = /^[-*•]\s*(.*)$/.exec(l);
      if (!m) break;
      if (m[1] !== '') out.push(m[1]!);
    }
    return out;
  };
  return { insights: items(last(/^insights:$/i)), followUpQuestions: items(last(/^follow-up questions:$/i)) };
}
