// Token-level MoE routing for one layer, DeepSeek-V3 style: sigmoid scores, group-limited
// top-8 of 256 experts, loss-free bias balancing, and a capacity-limited dispatch plan.
// Run: node examples/moe-gating.mjs   (after `npm ci`, which builds the addon and lib/)
import { MoEGate, routerStats, topkGating } from '@capibara/core';

const experts = 256;
const tokens = 2048;

// Synthetic router logits with a few systematically favoured experts (a skewed router).
let seed = 1;
const rand = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
const favour = Float32Array.from({ length: experts }, () => (rand() < 0.05 ? 1.5 : 0));
const batch = () => Float32Array.from({ length: tokens * experts }, (_, i) => rand() * 2 - 1 + favour[i % experts]);

// One call: fused score → group limit → top-k → weights.
const logits = batch();
const { indices, weights } = topkGating(logits, {
  experts, k: 8, scoring: 'sigmoid', routeScale: 2.5, groups: { count: 8, topkGroups: 4 },
});
console.log('token 0 → experts', Array.from(indices.subarray(0, 8)), 'weights', Array.from(weights.subarray(0, 8), (w) => +w.toFixed(3)));

// A gate that balances itself over batches with the bias of the previous batches.
const gate = new MoEGate({
  experts, k: 8, scoring: 'sigmoid', routeScale: 2.5, groups: { count: 8, topkGroups: 4 },
  balancer: { rate: 0.001 }, dispatch: { capacityFactor: 1.25, blockSize: 16 },
});
for (let step = 0; step <= 200; step++) {
  const x = batch();
  const r = gate.route(x);
  if (step % 50 === 0) {
    const s = routerStats(x, r, { scoring: 'sigmoid' });
    console.log(`batch ${step}: MaxVio ${s.maxVio.toFixed(3)}  CV² ${s.cv2.toFixed(3)}  dropped ${r.plan.dropped.length}/${tokens * 8} slots`);
  }
}
