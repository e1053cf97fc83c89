/**
 * Enum tables crossing the native boundary; mirrored and `static_assert`-ed in native/gating/kernels.h.
 * @module
 */
export const SCORING = { softmax: 0, sigmoid: 1 } as const;
export const GROUP_SCORE = { 'top2-sum': 0, max: 1 } as const;
export const DROP_POLICY = { position: 0, probability: 1 } as const;
