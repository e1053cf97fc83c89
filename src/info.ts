import { cudaProbe } from './cuda-binding';
import { native } from './native';

/**
 * The CUDA part of the addon: whether it was compiled in, and whether a device can run it now.
 *
 * @example
 * ```ts
 * const cuda: CudaInfo = nativeInfo().cuda;
 * if (cuda.status !== 'available') console.log(`GPU kernels off: ${cuda.reason}`);
 * ```
 */
export interface CudaInfo {
  /** Whether the addon was built with the CUDA toolkit (CMake found nvcc and `CAPIBARA_CUDA` was not OFF). */
  compiled: boolean;
  /** The GPU code compiled in, e.g. `'sm_80 sm_90 compute_90'` (machine code, then PTX); null when not compiled. */
  architectures: string | null;
  /**
   * `'available'`: a device answered. Otherwise why not: `'not-compiled'`, `'no-driver'` (the
   * NVIDIA driver is missing or older than the CUDA runtime), `'no-device'`, or `'error'`.
   */
  status: 'available' | 'not-compiled' | 'no-driver' | 'no-device' | 'error';
  /**
   * Why CUDA is off, null when available: how the build left it out, or `cudaGetDeviceCount`'s
   * error name and message, e.g. `'no driver: cudaGetDeviceCount failed with cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version'`.
   */
  reason: string | null;
  /** CUDA runtime version compiled in (linked statically), as CUDA numbers it (13000 = 13.0); null when not compiled. */
  runtimeVersion: number | null;
  /** The driver's CUDA version (same numbering); null without a driver. */
  driverVersion: number | null;
  /** The devices found, in CUDA's order (device 0 runs the kernels). */
  devices: {
    /** The device's name, e.g. `'NVIDIA H100 80GB HBM3'`. */
    name: string;
    /** Compute capability, e.g. `'9.0'` (sm_90). */
    computeCapability: string;
    /** Streaming multiprocessors. */
    multiProcessors: number;
    /** Device memory in bytes. */
    memoryBytes: number;
  }[];
}

/**
 * What the loaded native addon runs with.
 *
 * @example
 * ```ts
 * const info: NativeInfo = nativeInfo(); // { isa: 'avx512', napiVersion: 8, cuda: { compiled: true, status: 'no-driver', … } }
 * ```
 */
export interface NativeInfo {
  /**
   * Instruction set the kernels were dispatched to when the addon loaded: the widest the CPU
   * supports, unless the `CAPIBARA_ISA` environment variable (`avx2`, `generic`) asks for less.
   */
  isa: 'avx512' | 'avx2' | 'generic';
  /** Node-API version the addon was built against. */
  napiVersion: number;
  /**
   * The CUDA kernels: compiled in or not, and usable or not with why. The device is probed once
   * per process, at the first call that needs it (CUDA's runtime loads the driver then).
   */
  cuda: CudaInfo;
}

/**
 * Loads the addon (if not yet loaded) and reports what it runs with, e.g. for a service's
 * startup log. Throws the loader's error when the addon cannot be loaded.
 *
 * @example
 * ```ts
 * import { nativeInfo } from '@capibara/core';
 * const { isa, cuda } = nativeInfo();
 * console.log(`capibara kernels: ${isa}; CUDA: ${cuda.status === 'available' ? cuda.devices[0]!.name : cuda.reason}`);
 * ```
 */
export function nativeInfo(): NativeInfo {
  const b = native();
  const c = cudaProbe();
  return {
    isa: b.kernelIsa,
    napiVersion: b.napiVersion,
    cuda: {
      compiled: c.compiled, architectures: c.architectures, status: c.status, reason: c.reason,
      runtimeVersion: c.runtimeVersion, driverVersion: c.driverVersion, devices: c.devices.map((d) => ({ ...d })),
    },
  };
}
