/**
 * Checking {@link OptimizationPipelineOptions}: experts, stages and defaults, with every
 * default filled in.
 * @module
 */
import { BudgetForcing } from '../budget/index';
import { RewiringExperts } from '../experts/routing/index';
import type { Generator } from '../llm/index';
import { MemAgent, MemoryPriority } from '../memory/index';
import type { ThinkingStore } from '../thinking/index';
import * as v from '../validate';
import { ChatTemplate } from './chat-template';
import type { ThinkingSettings } from './generate';
import { checkTemperature, DEFAULT_MAX_THINKING_TOKENS, DEFAULT_MAX_TOKENS, type RequestDefaults } from './request';
import type { ExpertSpec, OptimizationPipelineOptions, PipelineBudgetOptions, PipelineMemoryOptions, PipelineMetrics, PipelineThinkingOptions } from './types';

const OPTION_KEYS = ['experts', 'router', 'memory', 'budgets', 'thinking', 'defaults', 'metrics'] as const;

/** An expert, checked. */
export interface Expert {
  id: string;
  generator: Generator;
  chatTemplate: ChatTemplate;
  contextLength: number | undefined;
}

/** The options, checked, with their defaults. */
export interface PipelineSettings {
  experts: Map<string, Expert>;
  router: RewiringExperts | undefined;
  memory: Required<Omit<PipelineMemoryOptions, 'agent'>> & { agent: MemAgent } | undefined;
  budgets: Required<PipelineBudgetOptions> | undefined;
  thinking: ThinkingSettings;
  request: RequestDefaults;
  defaultExpert: string;
  fallbackAttempts: number;
  metrics: PipelineMetrics | undefined;
}

let fallbackTemplate: ChatTemplate | undefined;

export function checkOptions(options: OptimizationPipelineOptions): PipelineSettings {
  if (options === undefined) throw v.typeError('options', 'an options object', options);
  const o = v.options<OptimizationPipelineOptions>('options', options, OPTION_KEYS);
  const experts = checkExperts(o.experts);

  let router: RewiringExperts | undefined;
  if (o.router !== undefined) {
    if (!(o.router instanceof RewiringExperts)) throw v.typeError('options.router', 'a RewiringExperts', o.router);
    router = o.router;
    const missing = router.experts().map((e) => e.id).filter((id) => !experts.has(id));
    if (missing.length > 0) {
      throw new RangeError(
        `Expected every expert of options.router to be a key of options.experts but ${missing.map((id) => `'${id}'`).join(', ')} ${missing.length === 1 ? 'is' : 'are'} not (experts: ${[...experts.keys()].map((id) => `'${id}'`).join(', ')})`,
      );
    }
  }

  const d = v.options<NonNullable<OptimizationPipelineOptions['defaults']>>('options.defaults', o.defaults, ['maxTokens', 'temperature', 'expert', 'fallbackAttempts']);
  const defaultExpert = d.expert === undefined ? experts.keys().next().value! : v.nonEmptyString('options.defaults.expert', d.expert);
  if (!experts.has(defaultExpert)) throw v.rangeError('options.defaults.expert', `one of ${[...experts.keys()].map((e) => `'${e}'`).join(', ')}`, defaultExpert);

  const t = v.options<PipelineThinkingOptions>('options.thinking', o.thinking, ['store', 'maxRounds', 'maxThinkingTokens', 'thinkStart', 'thinkEnd', 'finalAnswerPrefix']);
  let store: ThinkingStore | undefined;
  if (t.store !== undefined) {
    const s = t.store as Partial<ThinkingStore> | null;
    if (s === null || typeof s !== 'object' || typeof s.createSession !== 'function' || typeof s.appendRound !== 'function') {
      throw v.typeError('options.thinking.store', 'a ThinkingStore', t.store);
    }
    store = t.store;
  }

  return {
    experts,
    router,
    memory: checkMemory(o.memory),
    budgets: checkBudgets(o.budgets),
    thinking: {
      store,
      thinkStart: t.thinkStart === undefined ? '<think>' : v.string('options.thinking.thinkStart', t.thinkStart),
      thinkEnd: t.thinkEnd === undefined ? '</think>' : v.nonEmptyString('options.thinking.thinkEnd', t.thinkEnd),
      finalAnswerPrefix: t.finalAnswerPrefix === undefined ? 'Final Answer:' : v.string('options.thinking.finalAnswerPrefix', t.finalAnswerPrefix),
    },
    request: {
      maxTokens: d.maxTokens === undefined ? DEFAULT_MAX_TOKENS : v.integer('options.defaults.maxTokens', d.maxTokens, 0),
      temperature: d.temperature === undefined ? undefined : checkTemperature('options.defaults.temperature', d.temperature),
      maxRounds: t.maxRounds === undefined ? 3 : v.integer('options.thinking.maxRounds', t.maxRounds, 1, 100),
      maxThinkingTokens: t.maxThinkingTokens === undefined ? DEFAULT_MAX_THINKING_TOKENS : v.integer('options.thinking.maxThinkingTokens', t.maxThinkingTokens, 1),
    },
    defaultExpert,
    fallbackAttempts: d.fallbackAttempts === undefined ? 3 : v.integer('options.defaults.fallbackAttempts', d.fallbackAttempts, 1, 17),
    metrics: checkMetrics(o.metrics),
  };
}

function checkExperts(value: unknown): Map<string, Expert> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw v.typeError('options.experts', 'an object of experts by id', value);
  const out = new Map<string, Expert>();
  for (const [id, entry] of Object.entries(value as Record<string, unknown>)) {
    const name = `options.experts.${id}`;
    if (id === '' || id.length > 128) throw v.rangeError('options.experts', 'expert ids of 1 to 128 characters', id);
    const isGenerator = (x: unknown): x is Generator =>
      x !== null && typeof x === 'object' && typeof (x as Generator).generate === 'function' && typeof (x as Generator).countTokens === 'function';
    let spec: ExpertSpec;
    if (isGenerator(entry)) spec = { generator: entry };
    else {
      if (entry === null || typeof entry !== 'object') throw v.typeError(name, 'a Generator or an ExpertSpec { generator, chatTemplate?, contextLength? }', entry);
      spec = v.options<ExpertSpec>(name, entry, ['generator', 'chatTemplate', 'contextLength']) as ExpertSpec;
      if (!isGenerator(spec.generator)) throw v.typeError(`${name}.generator`, 'a Generator (an object with generate and countTokens methods)', spec.generator);
    }
    if (spec.chatTemplate !== undefined && !(spec.chatTemplate instanceof ChatTemplate)) throw v.typeError(`${name}.chatTemplate`, 'a ChatTemplate', spec.chatTemplate);
    let contextLength = spec.contextLength === undefined ? undefined : v.integer(`${name}.contextLength`, spec.contextLength, 1);
    if (contextLength === undefined) {
      // OnnxCausalLM reports its context; other generators may too.
      const c = (spec.generator as { info?: { contextLength?: unknown } }).info?.contextLength;
      if (Number.isInteger(c) && (c as number) > 0) contextLength = c as number;
    }
    fallbackTemplate ??= new ChatTemplate(ChatTemplate.FALLBACK_SOURCE);
    out.set(id, { id, generator: spec.generator, chatTemplate: spec.chatTemplate ?? fallbackTemplate, contextLength });
  }
  if (out.size === 0) throw v.rangeError('options.experts', 'at least one expert', value);
  return out;
}

function checkMemory(value: unknown): PipelineSettings['memory'] {
  if (value === undefined) return undefined;
  const o = (value instanceof MemAgent ? { agent: value } : v.options<PipelineMemoryOptions>('options.memory', value, ['agent', 'contextTokens', 'topK', 'scope', 'store', 'deferStore', 'priority'])) as Partial<PipelineMemoryOptions>;
  if (!(o.agent instanceof MemAgent)) throw v.typeError('options.memory.agent', 'a MemAgent', o.agent);
  return {
    agent: o.agent,
    contextTokens: o.contextTokens === undefined ? 512 : v.integer('options.memory.contextTokens', o.contextTokens, 0),
    topK: o.topK === undefined ? 5 : v.integer('options.memory.topK', o.topK, 1),
    scope: o.scope === undefined ? 'user' : v.oneOf('options.memory.scope', o.scope, ['user', 'session']),
    store: o.store === undefined ? true : v.boolean('options.memory.store', o.store),
    deferStore: o.deferStore === undefined ? true : v.boolean('options.memory.deferStore', o.deferStore),
    priority: o.priority === undefined ? MemoryPriority.MEDIUM : (v.integer('options.memory.priority', o.priority, MemoryPriority.LOW, MemoryPriority.CRITICAL) as MemoryPriority),
  };
}

function checkBudgets(value: unknown): PipelineSettings['budgets'] {
  if (value === undefined) return undefined;
  const o = (value instanceof BudgetForcing ? { budgets: value } : v.options<PipelineBudgetOptions>('options.budgets', value, ['budgets', 'priority', 'estimatedDurationS', 'anonymousRequester'])) as Partial<PipelineBudgetOptions>;
  if (!(o.budgets instanceof BudgetForcing)) throw v.typeError('options.budgets.budgets', 'a BudgetForcing', o.budgets);
  return {
    budgets: o.budgets,
    priority: o.priority === undefined ? 1 : v.integer('options.budgets.priority', o.priority, 0, 10),
    estimatedDurationS: o.estimatedDurationS === undefined ? 600 : v.finite('options.budgets.estimatedDurationS', o.estimatedDurationS, { positive: true }),
    anonymousRequester: o.anonymousRequester === undefined ? 'anonymous' : v.nonEmptyString('options.budgets.anonymousRequester', o.anonymousRequester),
  };
}

function checkMetrics(value: unknown): PipelineMetrics | undefined {
  if (value === undefined) return undefined;
  const m = value as Partial<PipelineMetrics> | null;
  if (m === null || typeof m !== 'object' || typeof m.observePipeline !== 'function' || typeof m.metrics !== 'function') {
    throw v.typeError('options.metrics', 'a PipelineMetrics (such as CapibaraMetrics)', value);
  }
  return m as PipelineMetrics;
}
