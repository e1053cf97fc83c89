/**
 * The JSON Schema of `capibara.config.json` (draft 2020-12), shipped as
 * `schema/capibara.config.schema.json` for editors, and checked by schema-check.ts.
 * @module
 */
import type { SchemaNode } from './schema-check';

const positiveInt = { type: 'integer', minimum: 1 } as const;
const nonNegativeInt = { type: 'integer', minimum: 0 } as const;
const nonEmpty = { type: 'string', minLength: 1 } as const;

const profile = {
  type: 'object',
  description: 'How the router sees this expert (RewiringExperts ExpertProfile, without the id). Needed for every expert when there are several.',
  additionalProperties: false,
  required: ['domain', 'description'],
  properties: {
    name: { ...nonEmpty, description: 'Display name; default the id.' },
    domain: { ...nonEmpty, description: 'Domain label queries can hint at.' },
    description: { ...nonEmpty, description: 'What the expert is good at: the text queries are matched against.' },
    keywords: { type: 'array', items: nonEmpty, description: 'Terms typical of its queries.' },
    capacity: { ...positiveInt, description: 'Requests it serves at once before it counts as saturated; default 4.' },
  },
} as const;

const common = {
  chatTemplate: { ...nonEmpty, description: "Jinja chat template; default the model folder's tokenizer_config.json chat_template (onnx), else a plain fallback." },
  contextLength: { ...positiveInt, description: 'Tokens the model sees at once; default what the backend reports.' },
  profile,
} as const;

const onnxExpert = {
  type: 'object',
  description: 'A local ONNX model (OnnxCausalLM).',
  additionalProperties: false,
  required: ['backend', 'path'],
  properties: {
    backend: { const: 'onnx' },
    path: { ...nonEmpty, description: 'The model folder (model.onnx, config.json, tokenizer.json), relative to the config file.' },
    threads: { type: 'integer', minimum: 1, maximum: 256, description: 'ONNX Runtime intra-op threads.' },
    executionProviders: { type: 'array', minItems: 1, items: nonEmpty, description: "ONNX Runtime execution providers, e.g. ['cuda', 'cpu']." },
    modelFile: { ...nonEmpty, description: 'The ONNX file inside the folder.' },
    ...common,
  },
} as const;

const llamaExpert = {
  type: 'object',
  description: 'A Hugging Face Llama-family model folder decoded by LlamaDecoder: dense layers in ONNX Runtime, attention (DuoAttention) on the KV cache.',
  additionalProperties: false,
  required: ['backend', 'path'],
  properties: {
    backend: { const: 'llama' },
    path: { ...nonEmpty, description: 'The model folder (config.json, model.safetensors, tokenizer.json), relative to the config file.' },
    threads: { type: 'integer', minimum: 1, maximum: 256, description: 'Threads of ONNX Runtime and of the attention kernel.' },
    headPattern: { ...nonEmpty, description: 'DuoAttention pattern files (capibara calibrate writes them), relative to the config file; default every head full.' },
    sink: { ...positiveInt, description: "Sink tokens of a streaming head; default the pattern's, else 64." },
    recent: { ...positiveInt, description: "Recent tokens of a streaming head; default the pattern's, else 256." },
    storage: { enum: ['float32', 'float16', 'bf16', 'int8'], description: 'How the KV cache stores keys and values; default float32.' },
    weights: { enum: ['float32', 'int8', 'int4'], description: 'How the linear layers hold their weights: as read, or quantised at load per block of 32 (Q8_0 / Q4_0); default float32.' },
    maxTokens: { ...positiveInt, description: "Most tokens the KV cache holds; default the model's max_position_embeddings." },
    ...common,
  },
} as const;

const openaiExpert = {
  type: 'object',
  description: 'Any OpenAI-compatible /v1/completions server (OpenAICompatibleGenerator).',
  additionalProperties: false,
  required: ['backend', 'baseURL', 'model'],
  properties: {
    backend: { const: 'openai' },
    baseURL: { ...nonEmpty, description: "The server's URL, e.g. http://127.0.0.1:8000." },
    model: { ...nonEmpty, description: 'The model name the server expects.' },
    apiKey: { ...nonEmpty, description: 'API key sent as Bearer (prefer apiKeyEnv).' },
    apiKeyEnv: { ...nonEmpty, description: 'Environment variable holding the API key.' },
    timeoutMs: { ...positiveInt, description: 'Per-request timeout.' },
    maxRetries: { ...nonNegativeInt, description: 'Retries on 429/5xx.' },
    ...common,
  },
} as const;

/**
 * The JSON Schema of `capibara.config.json`: experts and their backends, routing, memory,
 * budgets (with a Redis URL), thinking defaults, request defaults and the server. Paths are
 * relative to the config file. {@link checkPipelineConfig} validates against it and names the
 * path of a bad key (`config.experts.sql.threads`).
 *
 * @example
 * ```ts
 * import { writeFileSync } from 'node:fs';
 * import { PIPELINE_CONFIG_SCHEMA } from '@capibara/core';
 * writeFileSync('capibara.config.schema.json', JSON.stringify(PIPELINE_CONFIG_SCHEMA, null, 2));
 * ```
 */
export const PIPELINE_CONFIG_SCHEMA: Readonly<Record<string, unknown>> = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://github.com/capibara/core/schema/capibara.config.schema.json',
  title: 'capibara.config.json',
  description: 'Builds an OptimizationPipeline and the server in front of it (capibara serve --config).',
  type: 'object',
  additionalProperties: false,
  required: ['experts'],
  properties: {
    $schema: { type: 'string', description: 'Where editors find this schema.' },
    experts: {
      type: 'object',
      description: 'The experts by id (1 to 128 characters), each a backend.',
      minProperties: 1,
      additionalProperties: { oneOf: [onnxExpert, llamaExpert, openaiExpert], discriminator: { propertyName: 'backend' } },
    },
    routing: {
      type: 'object',
      description: 'RewiringExperts over the experts (used when there are several).',
      additionalProperties: false,
      properties: {
        strategy: { enum: ['performance_based', 'load_balanced', 'adaptive', 'predictive'], description: 'Default performance_based.' },
        fallbackAttempts: { type: 'integer', minimum: 1, maximum: 17, description: 'Experts tried at most per request; default 3.' },
        seed: { type: 'integer', description: 'Seed of the strategies that sample.' },
        sharedState: {
          type: 'object',
          description: 'Share expert health and outcomes with the other replicas through Redis; default this process only.',
          additionalProperties: false,
          required: ['url'],
          properties: {
            url: { ...nonEmpty, description: 'Redis URL (redis://host:6379).' },
            prefix: { ...nonEmpty, description: "Key prefix in Redis; default 'capibara:routing:'." },
            syncIntervalMs: { ...positiveInt, description: 'Longest staleness of the fleet view (ms); default 1000.' },
          },
        },
      },
    },
    memory: {
      type: 'object',
      description: 'MemAgent memory, per user.',
      additionalProperties: false,
      properties: {
        path: { ...nonEmpty, description: 'SQLite file, relative to the config file; default in memory (lost on exit). Not with postgres.' },
        postgres: {
          type: 'object',
          description: 'Keep the memory in PostgreSQL, shared by every replica; not with path.',
          additionalProperties: false,
          required: ['connectionString'],
          properties: {
            connectionString: { ...nonEmpty, description: 'libpq connection string (postgres://user:password@host:5432/db).' },
            schema: { ...nonEmpty, description: "PostgreSQL schema holding the tables; default 'public'." },
          },
        },
        maxTokens: { ...positiveInt, description: 'Capacity in tokens; default 512,000.' },
        compression: { enum: ['lz4', 'gzip', 'none'] },
        contextTokens: { ...nonNegativeInt, description: 'Most memory tokens put into a prompt; default 512.' },
        topK: { ...positiveInt, description: 'Most memories put into a prompt; default 5.' },
        scope: { enum: ['user', 'session'], description: 'Which memories a request sees; default user.' },
        store: { type: 'boolean', description: 'Store each exchange; default true.' },
        deferStore: { type: 'boolean', description: 'Answer before the exchange is stored (the trace event waits for it); default true.' },
      },
    },
    budgets: {
      type: 'object',
      description: 'BudgetForcing token budgets.',
      additionalProperties: false,
      properties: {
        redisUrl: { ...nonEmpty, description: 'Keep budgets in Redis (shared by every process); default in this process.' },
        redisPrefix: { ...nonEmpty, description: 'Key prefix in Redis.' },
        enforcementLevel: { enum: ['soft', 'medium', 'hard'], description: 'Default hard.' },
        onStoreError: { enum: ['fail-open', 'fail-closed'], description: 'Default fail-closed.' },
        limits: {
          type: 'array',
          description: 'Token limits.',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['scope', 'limit'],
            properties: {
              scope: { enum: ['request', 'session', 'daily', 'weekly', 'monthly'] },
              limit: { type: 'number', minimum: 0, description: 'Tokens per window.' },
              requesterId: { ...nonEmpty, description: "Only this requester's requests count." },
              shared: { type: 'boolean', description: 'One pool for every requester (default: one limit each).' },
              softThreshold: { type: 'number', exclusiveMinimum: 0, maximum: 1, description: 'Alert at this fraction.' },
              timeZone: { ...nonEmpty, description: 'IANA time zone of calendar windows; default UTC.' },
            },
          },
        },
        priority: { type: 'integer', minimum: 0, maximum: 10, description: 'Priority of requests; default 1.' },
        estimatedDurationS: { type: 'number', exclusiveMinimum: 0, description: 'Seconds a reservation may stay open; default 600.' },
        anonymousRequester: { ...nonEmpty, description: "Requester of requests without a user; default 'anonymous'." },
      },
    },
    thinking: {
      type: 'object',
      description: 'Settings of thinking requests.',
      additionalProperties: false,
      properties: {
        storePath: { ...nonEmpty, description: 'SQLite file keeping multi-round sessions; default none (in memory per request).' },
        maxRounds: { type: 'integer', minimum: 1, maximum: 100, description: 'Default 3.' },
        maxThinkingTokens: { ...positiveInt, description: 'Default 1024.' },
        thinkStart: { type: 'string' },
        thinkEnd: nonEmpty,
        finalAnswerPrefix: { type: 'string' },
      },
    },
    defaults: {
      type: 'object',
      description: 'Request defaults.',
      additionalProperties: false,
      properties: {
        maxTokens: { ...nonNegativeInt, description: 'Default 256.' },
        temperature: { type: 'number', minimum: 0, maximum: 2 },
        expert: { ...nonEmpty, description: 'Expert of requests that are not routed; default the first.' },
      },
    },
    server: {
      type: 'object',
      description: 'capibara serve.',
      additionalProperties: false,
      properties: {
        model: { ...nonEmpty, description: "The model name clients send; default 'capibara'." },
        host: { ...nonEmpty, description: 'Default 127.0.0.1.' },
        port: { type: 'integer', minimum: 0, maximum: 65535, description: 'Default 8000.' },
        apiKey: { ...nonEmpty, description: 'A key every request must send (no user).' },
        apiKeys: { type: 'object', additionalProperties: nonEmpty, 'x-secret-keys': true, description: 'API keys mapped to users: { "<key>": "<user>" }. Errors show only their first 4 characters.' },
        maxQueue: nonNegativeInt,
        maxBodyBytes: positiveInt,
        maxPromptsPerRequest: positiveInt,
        maxTokensPerRequest: positiveInt,
        contextLength: positiveInt,
        headersTimeoutMs: positiveInt,
        requestTimeoutMs: positiveInt,
      },
    },
  },
} as const satisfies SchemaNode;
