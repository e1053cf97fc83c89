import { native } from './native';

/**
 * What the loaded native addon runs with.
 *
 * @example
 * ```ts
 * const info: NativeInfo = nativeInfo(); // { isa: 'avx512', napiVersion: 8 }
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
}

/**
 * Loads the addon (if not yet loaded) and reports what it runs with, e.g. for a service's
 * startup log. Throws the loader's error when the addon cannot be loaded.
 *
 * @example
 * ```ts
 * import { nativeInfo } from '@capibara/core';
 * console.log(`capibara kernels: ${nativeInfo().isa}`);
 * ```
 */
export function nativeInfo(): NativeInfo {
  const b = native();
  return { isa: b.kernelIsa, napiVersion: b.napiVersion };
}
