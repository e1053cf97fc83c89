/**
 * MemAgent's prompts: the memory update after each chunk and the final answer.
 * @module
 */

// The prompts are MemAgent's own, verbatim (trailing space after `<problem>` included), from
// github.com/BytedTsinghua-SIA/MemAgent @ 76b7a658, taskutils/memory_eval/utils/recurrent.py
// (TEMPLATE, TEMPLATE_FINAL, NO_MEMORY; the RL training loop in recurrent/impls/memory.py uses
// the same TEMPLATE). Apache-2.0.

/**
 * The memory before the first chunk, as in MemAgent: `'No previous memory'`.
 *
 * @example
 * ```ts
 * memAgentMemoryPrompt('Who won?', MEMAGENT_NO_MEMORY, firstChunk);
 * ```
 */
export const MEMAGENT_NO_MEMORY = 'No previous memory';

/**
 * MemAgent's memory-update prompt: the task, then `<problem>`, `<memory>` and `<section>`
 * parts, ending with `'Updated memory:\n'`. The default of {@link MemAgentReaderOptions.memoryPrompt}.
 *
 * @param problem The question.
 * @param memory The memory so far ({@link MEMAGENT_NO_MEMORY} before the first chunk).
 * @param section The chunk of the document being read.
 * @returns The prompt text (not chat-templated).
 *
 * @example
 * ```ts
 * const p = memAgentMemoryPrompt('Where is the key?', 'No previous memory', 'The key is under the mat.');
 * p.endsWith('Updated memory:\n'); // true
 * ```
 */
export function memAgentMemoryPrompt(problem: string, memory: string, section: string): string {
  return `You are presented with a problem, a section of an article that may contain the answer to the problem, and a previous memory. Please read the provided section carefully and update the memory with the new information that helps to answer the problem. Be sure to retain all relevant details from the previous memory while adding any new, useful information.

<problem> 
${problem}
</problem>

<memory>
${memory}
</memory>

<section>
${section}
</section>

Updated memory:
`;
}

/**
 * MemAgent's answer prompt: the task, then `<problem>` and `<memory>` parts (no document),
 * ending with `'Your answer:\n'`. The default of {@link MemAgentReaderOptions.answerPrompt}.
 *
 * @param problem The question.
 * @param memory The final memory.
 * @returns The prompt text (not chat-templated).
 *
 * @example
 * ```ts
 * const p = memAgentAnswerPrompt('Where is the key?', 'The key is under the mat.');
 * p.includes('<section>'); // false: the answer sees the memory only
 * ```
 */
export function memAgentAnswerPrompt(problem: string, memory: string): string {
  return `You are presented with a problem and a previous memory. Please answer the problem based on the previous memory and format your response as follows "Therefore, the answer is (insert answer here)".

<problem> 
${problem}
</problem>

<memory>
${memory}
</memory>

Your answer:
`;
}
