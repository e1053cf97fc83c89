/** Gating cases over the CPU kernel's paths, shared by the device test and the host check of the device logic. */
import type { TopkGatingOptions } from '../../src/experts/gating/topk-gating';
import { normal, rng, ties } from './random';

export interface GatingCase {
  name: string;
  tokens: number;
  experts: number;
  options: Omit<TopkGatingOptions, 'experts'>;
  bias?: boolean;
  /** Share of logits set to -Infinity (token 0 then has every expert masked). */
  mask?: number;
}

/** Token tiles and rows, fast and general paths, groups, masks, ranges, ties. */
export const GATING_CASES: GatingCase[] = [
  { name: 'softmax E=8 k=2', tokens: 4096, experts: 8, options: { k: 2 } },
  { name: 'softmax E=64 k=8 (tiles)', tokens: 4096, experts: 64, options: { k: 8 } },
  { name: 'softmax E=64 k=6 not renormalised', tokens: 3000, experts: 64, options: { k: 6, renormalize: false } },
  { name: 'softmax E=160 k=6 (rows: the normaliser in 16 partials)', tokens: 2048, experts: 160, options: { k: 6, renormalize: false } },
  { name: 'softmax E=600 k=2 (rows)', tokens: 1024, experts: 600, options: { k: 2 } },
  { name: 'sigmoid E=64 k=4', tokens: 2048, experts: 64, options: { k: 4, scoring: 'sigmoid' } },
  {
    name: 'DeepSeek-V3: sigmoid, bias, 8 groups top-4, route scale 2.5',
    tokens: 4096, experts: 256, bias: true, options: { k: 8, scoring: 'sigmoid', routeScale: 2.5, groups: { count: 8, topkGroups: 4 } },
  },
  { name: 'softmax with bias E=128 k=8, groups scored by max', tokens: 2048, experts: 128, bias: true, options: { k: 8, groups: { count: 16, topkGroups: 3, score: 'max' } } },
  { name: 'softmax + bias E=2048 k=16 (rows)', tokens: 512, experts: 2048, bias: true, options: { k: 16, renormalize: false } },
  { name: 'k=32, expert range [16, 48)', tokens: 1024, experts: 64, options: { k: 32, expertRange: [16, 48] } },
  { name: 'masked experts (-Infinity), some rows all masked', tokens: 1024, experts: 32, options: { k: 4 }, mask: 0.6 },
  { name: 'ties (small integer logits)', tokens: 2048, experts: 16, options: { k: 3, scoring: 'sigmoid' }, bias: false },
];


/** The case's logits and full options (seeded by its shape). */
export function caseInputs(c: GatingCase): { logits: Float32Array; options: TopkGatingOptions } {
  const r = rng(c.tokens * 31 + c.experts);
  const logits = c.name.startsWith('ties') ? ties(r, c.tokens * c.experts, 4) : normal(r, c.tokens * c.experts, 2);
  if (c.mask !== undefined) {
    for (let i = 0; i < logits.length; i++) if (r() < c.mask) logits[i] = -Infinity;
    logits.fill(-Infinity, 0, c.experts); // token 0: every expert masked
  }
  return { logits, options: { ...c.options, experts: c.experts, ...(c.bias ? { bias: normal(r, c.experts, 0.05) } : {}) } };
}
