/**
 * The generation step of a run: one plain call, s1 thinking bounds (forceThinkingBudget), or a
 * multi-round thinking session (MultiRoundThinking) on the expert's run generator.
 * @module
 */
import { forceThinkingBudget } from '../budget/index';
import type { FinishReason, GenerateOptions, GenerateResult, GeneratorPrompt } from '../llm/index';
import { MultiRoundThinking, type ThinkingSession, type ThinkingStopReason, type ThinkingStore } from '../thinking/index';
import type { CheckedRequest } from './request';
import type { RunGenerator } from './run-generator';

/** What the generation step produced. */
export interface Generated {
  text: string;
  finishReason: FinishReason;
  stopSequence?: string;
  tokenIds?: number[];
  logprobs?: number[];
  /** The backend's own count of the first call's prompt, when it reports one. */
  promptTokens?: number;
  /** The token ids the backend ran for the prompt (special tokens included), when it reports them. */
  promptTokenIds?: readonly number[];
  thinking?: string;
  thinkingTokens?: number;
  session?: { id: string; rounds: number; stopReason: ThinkingStopReason | undefined; confidence: number; modes: Record<string, number> };
}

/** The thinking settings of the pipeline. */
export interface ThinkingSettings {
  store: ThinkingStore | undefined;
  thinkStart: string;
  thinkEnd: string;
  finalAnswerPrefix: string;
}

/**
 * Runs the request on `gen`. `prompt` is what plain and s1 generation continue; `template`
 * turns a multi-round message into the text the model continues, and `problem` is what the
 * session thinks about.
 */
export async function generate(
  gen: RunGenerator,
  r: CheckedRequest,
  prompt: GeneratorPrompt,
  multi: { problem: string; template: (message: string) => string } | undefined,
  thinking: ThinkingSettings,
  signal: AbortSignal,
  onToken: ((piece: string, tokenId?: number) => void) | undefined,
): Promise<Generated> {
  if (r.multiRound !== undefined) return multiRound(gen, r, multi!, thinking, signal, onToken);
  if (r.thinking !== undefined) {
    const out = await forceThinkingBudget(gen, prompt as string, {
      minThinkingTokens: r.thinking.minThinkingTokens,
      maxThinkingTokens: r.thinking.maxThinkingTokens,
      answerMaxTokens: r.maxTokens,
      thinkStart: thinking.thinkStart,
      thinkEnd: thinking.thinkEnd,
      finalAnswerPrefix: thinking.finalAnswerPrefix,
      signal,
      ...(r.temperature === undefined ? {} : { temperature: r.temperature }),
      ...(r.seed === undefined ? {} : { seed: r.seed }),
    });
    if (out.answer !== '') onToken?.(out.answer);
    return { text: out.answer, finishReason: out.answerFinishReason, thinking: out.thinking, thinkingTokens: out.thinkingTokens };
  }
  const options: GenerateOptions = { maxTokens: r.maxTokens, signal };
  if (r.stop.length > 0) options.stop = r.stop;
  if (r.temperature !== undefined) options.temperature = r.temperature;
  if (r.topP !== undefined) options.topP = r.topP;
  if (r.seed !== undefined) options.seed = r.seed;
  if (r.logprobs) options.logprobs = true;
  let finished = false;
  // A generator must not call onToken after it resolved; if one does, the caller has moved on.
  if (onToken) options.onToken = (piece, id) => void (finished || onToken(piece, id));
  let res: GenerateResult;
  try {
    res = await gen.generate(prompt, options);
  } finally {
    finished = true;
  }
  if (res.finishReason === 'abort') {
    if (signal.aborted) throw signal.reason;
    throw new Error("The generator ended with finish reason 'abort' without being aborted");
  }
  const out: Generated = { text: res.text, finishReason: res.finishReason };
  if (res.stopSequence !== undefined) out.stopSequence = res.stopSequence;
  if (res.tokenIds !== undefined) out.tokenIds = res.tokenIds;
  if (res.logprobs !== undefined) out.logprobs = res.logprobs;
  const ran = (res as { promptTokens?: unknown }).promptTokens;
  if (Number.isInteger(ran) && (ran as number) >= 0) out.promptTokens = ran as number;
  const ranIds = (res as { promptTokenIds?: unknown }).promptTokenIds;
  if (Array.isArray(ranIds)) out.promptTokenIds = ranIds as number[];
  return out;
}

async function multiRound(
  gen: RunGenerator,
  r: CheckedRequest,
  multi: { problem: string; template: (message: string) => string },
  t: ThinkingSettings,
  signal: AbortSignal,
  onToken: ((piece: string, tokenId?: number) => void) | undefined,
): Promise<Generated> {
  const m = r.multiRound!;
  // One instance per run: it drives this run's generator. Without a configured store it owns
  // a fresh in-memory one, freed when the run ends.
  const thinker = new MultiRoundThinking({
    generator: gen,
    maxRounds: m.maxRounds,
    thinkingBudget: {
      minThinkingTokens: Math.min(m.minThinkingTokens, m.maxThinkingTokens),
      maxThinkingTokens: m.maxThinkingTokens,
      answerMaxTokens: m.answerMaxTokens,
    },
    template: multi.template,
    thinkStart: t.thinkStart,
    thinkEnd: t.thinkEnd,
    finalAnswerPrefix: t.finalAnswerPrefix,
    ...(t.store === undefined ? {} : { store: t.store }),
    ...(r.temperature === undefined ? {} : { temperature: r.temperature }),
    ...(r.seed === undefined ? {} : { seed: r.seed }),
  });
  let session: ThinkingSession;
  try {
    session = await thinker.runSession(multi.problem, {
      maxRounds: m.maxRounds,
      tokenBudget: r.maxTokens,
      signal,
      ...(m.thinkingMode === undefined ? {} : { thinkingMode: m.thinkingMode }),
      ...(m.reasoningType === undefined ? {} : { reasoningType: m.reasoningType }),
    });
  } finally {
    await thinker.close();
  }
  if (signal.aborted) throw signal.reason;
  const synthesis = session.synthesis!;
  const final = session.rounds.find((x) => x.round === synthesis.finalRound) ?? session.rounds.at(-1);
  const modes: Record<string, number> = {};
  for (const round of session.rounds) modes[round.modeUsed ?? 'none'] = (modes[round.modeUsed ?? 'none'] ?? 0) + 1;
  const text = synthesis.finalAnswer;
  if (text !== '') onToken?.(text);
  const out: Generated = {
    text,
    // A session stopped by its budget answered with what the budget allowed.
    finishReason: session.stopReason === 'budget' ? 'length' : final?.finishReason === 'length' ? 'length' : 'stop',
    thinkingTokens: session.rounds.reduce((a, x) => a + x.thinkingTokens, 0),
    session: { id: session.id, rounds: session.rounds.length, stopReason: session.stopReason, confidence: synthesis.confidence, modes },
  };
  if (final !== undefined) out.thinking = final.thinking;
  return out;
}
