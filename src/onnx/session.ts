/**
 * Loading ONNX Runtime and creating sessions with execution providers, falling back to the CPU
 * with a warning when a provider is not installed.
 * @module
 */
import type * as Ort from 'onnxruntime-node';
import * as is from '../validate';

/**
 * The onnxruntime-node module, loaded on first use so that importing the package stays cheap
 * for callers that never run a model.
 *
 * @returns The module.
 *
 * @example
 * ```ts
 * const ort = loadOrt();
 * const t = new ort.Tensor('float32', new Float32Array(4), [2, 2]);
 * ```
 */
export function loadOrt(): typeof Ort {
  return require('onnxruntime-node') as typeof Ort;
}

/**
 * Checks an `executionProviders` option: a non-empty array of provider names; default `['cpu']`.
 *
 * @param name The option's name in messages.
 * @param value The option.
 * @returns The provider names.
 *
 * @example
 * ```ts
 * executionProviderNames('options.executionProviders', ['cuda', 'cpu']); // ['cuda', 'cpu']
 * ```
 */
export function executionProviderNames(name: string, value: unknown): string[] {
  if (value === undefined) return ['cpu'];
  if (!Array.isArray(value) || value.length === 0) throw is.typeError(name, 'non-empty array of provider names', value);
  return value.map((p: unknown, i) => is.nonEmptyString(`${name}[${i}]`, p));
}

/**
 * How {@link createSession} creates a session and names it in its warning.
 *
 * @example
 * ```ts
 * const how: SessionRequest = { providers: ['cuda', 'cpu'], threads: 1, warningType: 'OnnxAttentionWarning', what: 'attention graphs' };
 * ```
 */
export interface SessionRequest {
  /** Execution providers in order of preference. */
  providers: string[];
  /** Intra-op threads (inter-op is 1); undefined: ONNX Runtime's default (one per core). */
  threads?: number;
  /** `name` of the warning emitted on a fallback to the CPU. */
  warningType: string;
  /** What runs on the CPU instead, for the warning: a file name or a description. */
  what: string;
}

/**
 * A session from {@link createSession}.
 *
 * @example
 * ```ts
 * const { session, providers }: CreatedSession = await createSession(loadOrt(), bytes, request);
 * ```
 */
export interface CreatedSession {
  /** The session. */
  session: Ort.InferenceSession;
  /** The providers it runs with: the requested ones, or `['cpu']` after a fallback. */
  providers: string[];
}

/**
 * Creates a session with the requested execution providers. When that fails and providers other
 * than the CPU were asked for (ORT's CUDA provider is not installed: this package sets
 * `onnxruntime-node-install=skip`), emits a warning (code `CAPIBARA_ORT_PROVIDER`) and creates
 * the session on the CPU.
 *
 * @param ort The onnxruntime-node module.
 * @param model Model bytes or a file path.
 * @param request Providers, threads and the warning's wording.
 * @returns The session and the providers it was created with (`['cpu']` after a fallback).
 * @throws The CPU session's error when the model does not load at all.
 *
 * @example
 * ```ts
 * const { session, providers } = await createSession(loadOrt(), bytes, { providers: ['cuda', 'cpu'], warningType: 'MyWarning', what: 'my graph' });
 * ```
 */
export async function createSession(
  ort: typeof Ort,
  model: Uint8Array | string,
  request: SessionRequest,
): Promise<CreatedSession> {
  const options = (eps: string[]): Ort.InferenceSession.SessionOptions => ({
    executionProviders: eps,
    graphOptimizationLevel: 'all',
    // Errors reach the caller as exceptions; ORT's own log would print them to stderr a second time.
    logSeverityLevel: 3,
    ...(request.threads === undefined ? {} : { intraOpNumThreads: request.threads, interOpNumThreads: 1 }),
  });
  const create = (eps: string[]) =>
    typeof model === 'string' ? ort.InferenceSession.create(model, options(eps)) : ort.InferenceSession.create(model, options(eps));
  const cpuOnly = request.providers.every((p) => p === 'cpu');
  try {
    return { session: await create(request.providers), providers: request.providers };
  } catch (err) {
    if (cpuOnly) throw err;
    process.emitWarning(
      `execution providers [${request.providers.join(', ')}] are not available (${(err as Error).message.split('\n')[0]}); running ${request.what} on the CPU`,
      { code: 'CAPIBARA_ORT_PROVIDER', type: request.warningType },
    );
    return { session: await create(['cpu']), providers: ['cpu'] };
  }
}
