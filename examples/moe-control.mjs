// MoEControlAPI: manage a pool of expert services over the RewiringExperts router — status from
// measured traffic, a new expert, replica allocation, lifecycle rules (drift, failing experts),
// a monitor, a labelled benchmark and a whole-pool plan.
// The experts here are simulated and time is simulated (an injected clock), so it runs at once;
// replace `serve` with real model or service calls and drop the clock.
// Run: node examples/moe-control.mjs
import { ExpertMetricsCollector, MoEControlAPI } from '@capibara/core';

let now = Date.now();
const clock = () => now;
const control = new MoEControlAPI({
  numExperts: 8,
  loadBalancing: true,
  now: clock,
  routerOptions: { clock, health: { failureRate: 1 } }, // let the lifecycle rules, not cooldowns, handle the failing expert
});
control.on('retired', (e) => console.log(`  retired ${e.id} (${e.retireReason})`));
control.on('drift', (d) => console.log(`  drift: JSD ${d.divergence.toFixed(3)} bits ≥ ${d.threshold}; biggest shift ${d.shifts[0].id} ${d.shifts[0].before.toFixed(2)} → ${d.shifts[0].after.toFixed(2)}`));

// Simulated services: a mean latency per expert; 'api' has started failing.
const latency = { python: 400, sql: 900, javascript: 300, debug: 1200, ml: 2500, api: 600, rust: 700 };
const serve = (id) => ({ success: id !== 'api', latencyMs: latency[id] * (0.8 + 0.4 * Math.random()) });
const QUERIES = {
  python: ['pandas groupby is slow', 'pip install fails in my venv', 'asyncio coroutine never awaited'],
  sql: ['slow LEFT JOIN on Postgres', 'add an index to a large table', 'GROUP BY with HAVING'],
  ml: ['my PyTorch model overfits', 'learning rate for a transformer', 'train a classifier'],
  api: ['REST endpoint pagination', 'OAuth2 bearer token', 'rate limiting with 429'],
  rust: ['the borrow checker rejects my lifetime', 'cargo build fails on a crate', 'Rust async with tokio'],
};
function traffic(mix, n) {
  for (let i = 0; i < n; i++) {
    const domain = mix[i % mix.length];
    const qs = QUERIES[domain];
    const d = control.router.routeQuery(qs[i % qs.length]);
    control.router.recordOutcome(d.id, serve(d.expertId));
    now += 250;
  }
}

// A new expert: nothing is trained; the base model is what serves it.
control.createExpert({ specialization: 'rust', baseModel: 'rust-coder-7b', keywords: ['rust', 'cargo', 'borrow checker', 'lifetime', 'tokio'], performanceTargets: { accuracy: 0.95, latency: 1000 } });

control.enableDynamicManagement({ intervalMs: 60_000, idleMs: 3_600_000, maxFailureRate: 0.5, minOutcomes: 10, driftThreshold: 0.1 });
const monitor = control.createMonitor({ monitoringFrequency: 60 });

console.log('window 1: python and sql traffic');
traffic(['python', 'sql', 'python', 'api'], 120);
monitor.sample();
control.runLifecycle();

const s = control.getExpertStatus();
console.log(`active ${s.activeCount}/${s.capacity}, MaxVio ${s.maxVio.toFixed(2)}`);
for (const e of s.experts) console.log(`  ${e.id.padEnd(10)} share ${(100 * s.loadDistribution[e.id]).toFixed(0).padStart(3)} %  load ${e.load.toFixed(2)} Erl  success ${e.successRate.toFixed(2)}  bias ${e.bias.toFixed(3)}`);

console.log('window 2: the mix shifts to ml and rust');
traffic(['ml', 'rust', 'ml', 'sql'], 120);
monitor.sample();
control.runLifecycle();

const plan = control.optimizeExpertAllocation({ targetUtilization: 0.75, rebalancingStrategy: 'performance_based', replicaBudget: 10 });
console.log(`allocation: ${JSON.stringify(plan.replicas)}, retire ${JSON.stringify(plan.retire)}, expected utilisation ${plan.expectedUtilization.toFixed(2)}`);

console.log('monitor (last 5 minutes):');
for (const [id, a] of Object.entries(monitor.analyzeExpertPerformance({ timeWindow: '5m' }))) {
  console.log(`  ${id.padEnd(10)} utilisation ${(100 * a.utilization).toFixed(1)} %  efficiency ${a.efficiency.toFixed(2)}/s  ${a.needsAttention ? `→ ${a.recommendedAction} (${a.reasons.join(', ')})` : ''}`);
}

const collector = new ExpertMetricsCollector({ control });
const bench = collector.crossExpertBenchmark(Object.entries(QUERIES).filter(([c]) => c !== 'api').flatMap(([category, qs]) => qs.map((query) => ({ query, category }))));
console.log(`benchmark: accuracy ${bench.accuracy.toFixed(2)} (random ${bench.baselines.random.toFixed(2)}, majority ${bench.baselines.majority.toFixed(2)})`);

const coordinator = control.createCoordinator({ monitor });
const sys = coordinator.optimizeSystemPerformance({ objectives: ['quality', 'throughput'], constraints: { maxLatencyMs: 2000, minOutcomes: 10 } });
console.log(`plan: shift away ${JSON.stringify(sys.shiftAway.map((x) => x.id))}; projected latency ${sys.current.meanLatencyMs.toFixed(0)} → ${sys.projected.meanLatencyMs.toFixed(0)} ms, quality ×${sys.qualityPreservation?.toFixed(3)}, throughput capacity ${sys.throughputGain === null ? 'n/a' : `${(100 * sys.throughputGain).toFixed(1)} %`}`);

collector.close();
control.close(); // stops the lifecycle timer, the monitor and the coordinator
