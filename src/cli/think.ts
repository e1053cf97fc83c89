/**
 * `capibara think`: one MultiRoundThinking session from the terminal, printing each round as
 * it is stored, then the synthesis. The model: the tiny local one (default), a model folder,
 * an OpenAI-compatible server, or a config's default expert.
 * @module
 * @internal
 */
import { rmSync } from 'node:fs';
import { type Generator, OnnxCausalLM, OpenAICompatibleGenerator } from '../llm/index';
import { buildPipeline, ChatTemplate, loadPipelineConfig } from '../pipeline/index';
import { MultiRoundThinking, SqliteThinkingStore, type ThinkingRoundRecord, ThinkingMode } from '../thinking/index';
import * as v from '../validate';
import { int, ms, tinyModel, UsageError } from './args';

/** The options of `capibara think`. */
export interface ThinkFlags {
  config?: string;
  model?: string;
  baseUrl?: string;
  remoteModel?: string;
  rounds?: string;
  mode?: string;
  maxThinkingTokens?: string;
  answerTokens?: string;
  budget?: string;
  store?: string;
  temperature?: string;
}

export async function think(problem: string, f: ThinkFlags): Promise<number> {
  v.nonEmptyString('problem', problem);
  const sources = [f.config, f.model, f.baseUrl].filter((x) => x !== undefined).length;
  if (sources > 1) throw new UsageError('think takes one of --config, --model and --base-url');
  if ((f.baseUrl === undefined) !== (f.remoteModel === undefined)) throw new UsageError('--base-url and --remote-model go together');
  const maxRounds = int('--rounds', f.rounds, 1, 100) ?? 3;
  const mode = f.mode === undefined ? undefined : (v.oneOf('--mode', f.mode, Object.values(ThinkingMode)) as ThinkingMode);
  const maxThinkingTokens = int('--max-thinking-tokens', f.maxThinkingTokens, 1) ?? 64;
  const answerMaxTokens = int('--answer-tokens', f.answerTokens, 1) ?? 16;
  const tokenBudget = int('--budget', f.budget, 1);
  const temperature = f.temperature === undefined ? 0 : v.finite('--temperature', Number(f.temperature), { min: 0 });

  const closers: Array<() => unknown> = [];
  try {
    let generator: Generator;
    let template: ((m: string) => string) | undefined;
    let what: string;
    if (f.config !== undefined) {
      const { config, baseDir } = await loadPipelineConfig(f.config).catch((err: unknown) => {
        throw err instanceof TypeError || err instanceof RangeError ? new UsageError(`--config ${f.config}: ${err.message}`) : err;
      });
      const built = await buildPipeline(config, { baseDir });
      closers.push(() => built.close());
      const expert = built.pipeline.expert(built.pipeline.defaultExpert);
      generator = expert.generator;
      template = (m) => expert.chatTemplate.render([{ role: 'user', content: m }]);
      what = `expert ${built.pipeline.defaultExpert} of ${f.config}`;
    } else if (f.baseUrl !== undefined) {
      generator = new OpenAICompatibleGenerator({ baseURL: f.baseUrl, model: f.remoteModel! });
      what = `${f.remoteModel} at ${f.baseUrl}`;
    } else {
      let dir = f.model;
      if (dir === undefined) {
        const made = await tinyModel('capibara-think-');
        closers.push(() => rmSync(made.dir, { recursive: true, force: true }));
        dir = made.modelDir;
        what = 'the tiny local model (random weights: its text is noise)';
      } else what = `the model in ${dir}`;
      const model = await OnnxCausalLM.load(dir);
      closers.push(() => model.close());
      generator = model;
      const chat = ChatTemplate.fromModelDir(dir);
      if (!chat.isFallback) template = (m) => chat.render([{ role: 'user', content: m }]);
    }
    const store = f.store === undefined ? undefined : new SqliteThinkingStore({ path: f.store });
    if (store !== undefined) closers.push(() => store.close());
    const thinking = new MultiRoundThinking({
      generator,
      maxRounds,
      thinkingBudget: { maxThinkingTokens, answerMaxTokens },
      temperature,
      ...(store === undefined ? {} : { store }),
      ...(template === undefined ? {} : { template }),
    });
    closers.push(() => thinking.close());
    process.stdout.write(`capibara think: ${what}; at most ${maxRounds} rounds of ${maxThinkingTokens} thinking + ${answerMaxTokens} answer tokens\n`);
    thinking.on('round', (_id: string, r: ThinkingRoundRecord) => {
      const mode = r.modeUsed === null ? '' : ` (${r.modeUsed}${r.adaptiveRule ? `: ${r.adaptiveRule}` : ''})`;
      process.stdout.write(`round ${r.round}${mode}: ${r.thinkingTokens} thinking tokens, ${r.answerTokens} answer tokens, ${ms(r.durationMs)}\n`);
      process.stdout.write(`  answer: ${JSON.stringify(r.answer.trim())}\n`);
    });
    const session = await thinking.runSession(problem, {
      maxRounds,
      ...(mode === undefined ? {} : { thinkingMode: mode }),
      ...(tokenBudget === undefined ? {} : { tokenBudget }),
    });
    const s = session.synthesis!;
    process.stdout.write(
      `final answer: ${JSON.stringify(s.finalAnswer)} (round ${s.finalRound ?? '-'}; confidence ${s.confidence.toFixed(2)}: the share of rounds that gave it` +
        `${s.answerLogprob === undefined ? '' : `; mean answer log-probability ${s.answerLogprob.toFixed(3)}`}); stopped by ${session.stopReason}; ` +
        `${session.tokensUsed} tokens; session ${session.id}${f.store === undefined ? '' : ` in ${f.store}`}\n`,
    );
    return 0;
  } finally {
    for (const c of closers.reverse()) await c();
  }
}
