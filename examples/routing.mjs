// RewiringExperts: route queries to the expert most likely to answer them, feed outcomes back,
// watch an expert fail and traffic move away and back, walk fallbacks, save the learned state.
// The "experts" here are simulated; replace callExpert with real model or service calls.
// Run: node examples/routing.mjs
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RewiringExperts, RoutingStrategy } from '@capibara/core';

let now = Date.now();
const router = new RewiringExperts({ strategy: RoutingStrategy.PERFORMANCE_BASED, clock: () => now });
router.on('cooldown', (id, s) => console.log(`  ${id} cools down until +${s.coolingUntil - now} ms (${s.reason})`));
router.on('recovered', (id) => console.log(`  ${id} recovered`));
router.on('rewired', (e) => console.log(`  rewired ${e.from} → ${e.to}: ${e.before.toFixed(2)} → ${e.after.toFixed(2)}`));

for (const q of ['How do I speed up a pandas groupby?', 'This LEFT JOIN is slow on Postgres', 'Segfault in my C extension', 'Design a paginated REST endpoint']) {
  const d = router.routeQuery(q);
  console.log(`${q}\n  → ${d.expertId} (relevance ${d.reasons.relevance.toFixed(2)}), fallbacks ${d.fallbacks.join(', ')}`);
  router.recordOutcome(d.id, { success: true, latencyMs: 300 });
}

// The sql expert goes down: its failures cool it down (and teach the strategy); fallbacks answer.
let sqlDown = true;
const callExpert = async (expert) => {
  if (expert.id === 'sql' && sqlDown) throw Object.assign(new Error('sql expert: 503'), { status: 503 });
  return `answer from ${expert.id}`;
};
for (let i = 0; i < 4; i++) {
  const r = await router.routeWithFallback('Slow GROUP BY query on MySQL', callExpert);
  console.log(`attempt ${i}: answered by ${r.expertId} after ${r.attempts.length} attempt(s)`);
  now += 1000;
}
sqlDown = false;
now += 10_000;
const back = await router.routeWithFallback('Slow GROUP BY query on MySQL', callExpert);
console.log(`after recovery: answered by ${back.expertId}`);

const m = router.getMetrics();
console.log(`routed ${m.totalRouted}, success rate ${(100 * m.successRate).toFixed(0)} %, rewiring events ${m.rewiringEvents}`);
const dir = mkdtempSync(join(tmpdir(), 'capibara-routing-example-'));
await router.save(join(dir, 'router.json'));
const restored = await RewiringExperts.load(join(dir, 'router.json'));
console.log(`restored: ${restored.experts().length} experts, ${restored.getMetrics().totalRouted} routed`);
rmSync(dir, { recursive: true, force: true });
