/**
 * Keeping an {@link OnnxCausalLM}'s KV cache on the device between steps: with an accelerator
 * provider active, the session is created with IO binding of every `present.*` output to
 * `preferredOutputLocation: 'gpu-buffer'`, and those tensors are fed back as the next step's
 * `past_key_values.*` without a copy to the host. Where ONNX Runtime leaves an output on the CPU
 * anyway (the CPU provider does), the tensors are ordinary ones and nothing changes.
 * @module
 */
import type * as Ort from 'onnxruntime-node';
import type { PastSlot } from './kv-cache';

/** Whether a tensor lives in device memory (readable only through `getData()`). */
export function onDevice(t: Ort.Tensor): boolean {
  return t.location === 'gpu-buffer';
}

/** Frees the device memory of the tensors among `tensors` that are on the device, except those in `keep`. */
export function disposeOnDevice(tensors: Iterable<Ort.Tensor>, keep: ReadonlySet<Ort.Tensor> = new Set()): void {
  for (const t of tensors) if (onDevice(t) && !keep.has(t)) t.dispose();
}

/**
 * A second session over the same model with the present outputs bound to device memory, or null
 * when the providers are the CPU's only or ONNX Runtime refuses the option (the caller keeps its
 * first session). Options as src/onnx/session.ts's createSession, plus the binding.
 */
export async function deviceKvSession(
  ort: typeof Ort, modelPath: string, providers: readonly string[], threads: number | undefined, slots: readonly PastSlot[],
): Promise<Ort.InferenceSession | null> {
  if (providers.every((p) => p === 'cpu')) return null;
  try {
    return await ort.InferenceSession.create(modelPath, {
      executionProviders: [...providers],
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
      ...(threads === undefined ? {} : { intraOpNumThreads: threads, interOpNumThreads: 1 }),
      preferredOutputLocation: Object.fromEntries(slots.map((s) => [s.output, 'gpu-buffer' as const])),
    });
  } catch {
    return null;
  }
}
