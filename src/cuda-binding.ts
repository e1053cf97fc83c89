/**
 * The addon's CUDA export (native/cuda), typed here beside the loader rather than in it: the
 * addon's `cuda` object, with the raw shape of `cuda.info()` and of the device entry points, which exist only in an addon built
 * with the CUDA toolkit. {@link cudaDevice} hands them out only when a device answered the probe,
 * and otherwise throws one Error that says why (not compiled, no driver, no device).
 * @module
 */
import { native, type NativeDispatch } from './native';

/** Why CUDA is or is not usable, as the addon's probe found it (see `NativeInfo.cuda`). */
export type CudaStatus = 'available' | 'not-compiled' | 'no-driver' | 'no-device' | 'error';

/** Raw result of `cuda.info()` (native/cuda/binding.cc). */
export interface RawCudaInfo {
  compiled: boolean;
  architectures: string | null;
  status: CudaStatus;
  reason: string | null;
  runtimeVersion: number | null;
  driverVersion: number | null;
  devices: { name: string; computeCapability: string; multiProcessors: number; memoryBytes: number }[];
}

/** An opaque device resource (a type-tagged External); freed by `cuda.close`. */
export interface CudaHandle {
  readonly __brand: 'CudaHandle';
}


/** The device entry points (native/cuda/device_binding.cc); every call waits for the device. */
export interface CudaDeviceBinding {
  gatingOpen(): CudaHandle;
  gatingTopk(
    handle: CudaHandle, logits: Float32Array, tokens: number, experts: number, k: number, scoring: number,
    bias: Float32Array | null, renormalize: boolean, routeScale: number, groups: number, topkGroups: number,
    groupScore: number, rangeStart: number, rangeEnd: number, sum16: boolean, weightsOut: Float32Array, indicesOut: Int32Array,
  ): void;
  /** indices null: the last topk's, still on the device. capacity -1 = dropless. */
  gatingDispatch(
    handle: CudaHandle, indices: Int32Array | null, tokens: number, k: number, experts: number, capacity: number, blockSize: number,
  ): NativeDispatch; // the CPU gatingDispatch's arrays
  /** Milliseconds per rerun of the last topk (0), the softmax + sort baseline on its logits (1) or the last dispatch (2). */
  gatingTime(handle: CudaHandle, which: 0 | 1 | 2, iterations: number): number;
  /** type: 0 float16, 1 bfloat16; streaming [layers * kvHeads], 1 = streaming head. */
  kvOpen(layers: number, kvHeads: number, headDim: number, sink: number, ring: number, maxTokens: number, type: 0 | 1, streaming: Uint8Array): CudaHandle;
  kvStore(handle: CudaHandle, layer: number, pos0: number, n: number, k: Float32Array | Uint16Array, v: Float32Array | Uint16Array): void;
  kvAttend(
    handle: CudaHandle, layer: number, pos0: number, queries: number, queryHeads: number, q: Float32Array, scale: number,
    recent: number, out: Float32Array, lse: Float32Array | null,
  ): void;
  /** Milliseconds per rerun of the last kvAttend. */
  kvTime(handle: CudaHandle, iterations: number): number;
  kvBytes(handle: CudaHandle): number;
  /** Milliseconds per copy of `bytes` between two device buffers by the copy kernel. */
  copyTime(bytes: number, iterations: number): number;
  close(handle: CudaHandle): void;
}

/** The addon's `cuda` export: `info` always, the device entry points when compiled with CUDA. */
type MaybeCuda = { cuda?: Partial<CudaDeviceBinding> & { info(): RawCudaInfo } };

/** The probe's result; an addon built before the CUDA part reports itself as not compiled. */
export function cudaProbe(): RawCudaInfo {
  const b = native() as unknown as MaybeCuda;
  if (typeof b.cuda?.info !== 'function') {
    return {
      compiled: false, architectures: null, status: 'not-compiled',
      reason: 'not compiled: the loaded addon predates its CUDA part (rebuild it: npm run build:native)',
      runtimeVersion: null, driverVersion: null, devices: [],
    };
  }
  return b.cuda.info();
}

/**
 * The device entry points, or an Error `"<what> needs a CUDA device, and none is usable: <reason>"`.
 *
 * @param what - The caller as the message names it, e.g. `"DuoKVCache({ device: 'cuda' })"`.
 */
export function cudaDevice(what: string): CudaDeviceBinding {
  const info = cudaProbe();
  if (info.status !== 'available') throw new Error(`${what} needs a CUDA device, and none is usable: ${info.reason ?? info.status}`);
  return (native() as unknown as MaybeCuda).cuda as CudaDeviceBinding;
}
