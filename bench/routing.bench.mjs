// Request-level routing (RewiringExperts) on a synthetic workload with known ground truth: queries
// of six domains, each best answered by its own expert; expert latencies that shift mid-run (sql
// becomes 4× slower at 40 %), and one expert failing for a period (python fails every call from
// 30 % to 50 %). Every strategy is compared with random and round-robin baselines on routing
// accuracy, mean latency seen by callers (fallbacks included), failures seen by callers (every
// attempt failed) and MaxVio of load. Time is virtual (an injected clock), so the run is exact and
// repeatable. Then routeQuery's own latency with 32 experts (median µs; new query texts, and
// repeated ones that the scorer's cache answers). Runs standalone or under bench/run.mjs.
import { existsSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import { prng } from './common.mjs';

const require = createRequire(import.meta.url);
if (!existsSync(new URL('../lib/index.js', import.meta.url))) {
  console.error('routing: lib/index.js missing: run `npm run build` first');
  process.exit(1);
}
const { RewiringExperts, RoutingStrategy, DEFAULT_EXPERTS } = require('../lib/index.js');

const QUICK = process.argv.includes('--quick');
const N = QUICK ? 1500 : 6000;
const STEP_MS = 40; // virtual time between queries
const MAX_ATTEMPTS = 2;

const TOPICS = {
  python: ['pandas DataFrame', 'list comprehension', 'virtualenv and pip', 'asyncio event loop', 'a Django view', 'decorators', 'a numpy array', 'type hints'],
  sql: ['a LEFT JOIN', 'a GROUP BY query', 'an index on a Postgres table', 'a slow query plan', 'a foreign key constraint', 'a window function', 'a MySQL transaction'],
  javascript: ['a React component', 'promises and async/await', 'a Node.js stream', 'npm scripts', 'a TypeScript generic', 'the DOM event loop', 'a webpack build'],
  debug: ['a segmentation fault', 'a stack trace', 'a null pointer exception', 'a memory leak', 'a breakpoint in gdb', 'a race condition', 'a core dump'],
  ml: ['a neural network', 'overfitting and dropout', 'gradient descent', 'a PyTorch training loop', 'a transformer model', 'feature scaling', 'a confusion matrix'],
  api: ['a REST endpoint', 'OAuth2 tokens', 'rate limiting and 429s', 'pagination of results', 'a GraphQL schema', 'webhook retries', 'API versioning'],
};
const FRAMES = ['How do I fix {t}?', 'Why is {t} so slow?', 'Explain {t} with an example', 'Best practice for {t}', 'I am stuck with {t}, help', 'Can you review {t}?'];
const DOMAINS = Object.keys(TOPICS);

function workload(seed) {
  const r = prng(seed);
  return Array.from({ length: N }, (_, i) => {
    const domain = DOMAINS[Math.floor(r() * DOMAINS.length)];
    const topics = TOPICS[domain];
    const text = FRAMES[Math.floor(r() * FRAMES.length)].replace('{t}', topics[Math.floor(r() * topics.length)]) + ` (#${i})`;
    return { domain, text, u: r(), v: r() };
  });
}

// The simulated experts: base latency per expert, 4× for sql after 40 %, python down 30–50 %.
const BASE = { python: 300, sql: 250, javascript: 280, debug: 400, ml: 600, api: 200 };
function serve(expert, q, i, attemptU) {
  const phase = i / N;
  let latency = BASE[expert] * (0.7 + 0.6 * q.v);
  if (expert === 'sql' && phase >= 0.4) latency *= 4;
  if (expert === 'python' && phase >= 0.3 && phase < 0.5) return { success: false, latencyMs: 30 };
  // The right expert answers 95 % of its queries; another expert 55 %, more slowly.
  const right = expert === q.domain;
  const success = attemptU < (right ? 0.95 : 0.55);
  return { success, latencyMs: right ? latency : latency * 1.5, quality: success ? (right ? 0.9 : 0.4) : 0 };
}

function maxVio(counts) {
  const xs = Object.values(counts);
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return mean === 0 ? 0 : Math.max(...xs) / mean - 1;
}

function run(name, choose) {
  const qs = workload(11);
  const r = prng(99);
  let right = 0;
  let latency = 0;
  let failures = 0;
  const load = Object.fromEntries(DOMAINS.map((d) => [d, 0]));
  for (let i = 0; i < qs.length; i++) {
    const q = qs[i];
    const { chain, record } = choose(q, i);
    if (chain[0] === q.domain) right++;
    let ok = false;
    for (const expert of chain.slice(0, MAX_ATTEMPTS)) {
      load[expert]++;
      const out = serve(expert, q, i, r());
      latency += out.latencyMs;
      record?.(expert, out);
      if (out.success) {
        ok = true;
        break;
      }
    }
    if (!ok) failures++;
  }
  return { name, accuracy: right / N, meanLatencyMs: latency / N, failureRate: failures / N, maxVio: maxVio(load) };
}

const rows = [];
for (const strategy of Object.values(RoutingStrategy)) {
  const c = { now: 0 };
  const router = new RewiringExperts({ strategy, clock: () => c.now, seed: 3 });
  rows.push(
    run(strategy, (q) => {
      c.now += STEP_MS;
      const d = router.routeQuery(q.text);
      return {
        chain: [d.expertId, ...d.fallbacks],
        record: (expert, out) => router.recordOutcome(d.id, { ...out, expertId: expert }),
      };
    }),
  );
}
{
  const r = prng(5);
  rows.push(run('random', () => {
    const ids = [...DOMAINS].sort(() => r() - 0.5);
    return { chain: ids };
  }));
  let k = 0;
  rows.push(run('round-robin', () => {
    const start = k++ % DOMAINS.length;
    return { chain: DOMAINS.map((_, j) => DOMAINS[(start + j) % DOMAINS.length]) };
  }));
}

// routeQuery latency with 32 experts.
const experts = [...DEFAULT_EXPERTS];
for (let i = 0; experts.length < 32; i++) {
  const base = DEFAULT_EXPERTS[i % DEFAULT_EXPERTS.length];
  experts.push({ ...base, id: `${base.id}-${i}`, description: `${base.description} (variant ${i})` });
}
const latencyRows = [];
for (const strategy of Object.values(RoutingStrategy)) {
  const router = new RewiringExperts({ strategy, experts });
  const qs = workload(21).slice(0, QUICK ? 3000 : 20000);
  const time = (texts) => {
    const us = [];
    for (const t of texts) {
      const t0 = process.hrtime.bigint();
      router.routeQuery(t);
      us.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    us.sort((a, b) => a - b);
    return { p50: us[us.length >> 1], p95: us[Math.floor(us.length * 0.95)] };
  };
  time(qs.slice(0, 500).map((q) => q.text)); // warm-up
  const fresh = time(qs.slice(500).map((q) => `${q.text} ${q.u}`));
  // Repeated texts: 500 routed once, then each 4 more times (the scorer's cache, 1024 texts, answers them).
  const seen = qs.slice(0, 500).map((q) => q.text);
  time(seen);
  const cached = time([...seen, ...seen, ...seen, ...seen]);
  latencyRows.push({ strategy, fresh, cached });
}

const random = rows.find((r) => r.name === 'random');
const result = {
  name: 'routing',
  title: `RewiringExperts on ${N} synthetic queries (6 experts; sql 4× slower from 40 %, python down 30–50 %; up to ${MAX_ATTEMPTS} attempts), and routeQuery latency with 32 experts (issue 4 target: p50 under 20 µs)${QUICK ? ' (quick)' : ''}`,
  rows,
  latency: latencyRows,
  table: [
    ...rows.map((r) => ({
      what: r.name,
      accuracy: `${(100 * r.accuracy).toFixed(1)} %`,
      'mean latency ms': r.meanLatencyMs.toFixed(0),
      'latency vs random': `${(100 * (1 - r.meanLatencyMs / random.meanLatencyMs)).toFixed(0)} % lower`,
      'failures seen': `${(100 * r.failureRate).toFixed(2)} %`,
      MaxVio: r.maxVio.toFixed(2),
    })),
    ...latencyRows.map((l) => ({
      what: `routeQuery, 32 experts, ${l.strategy}`,
      accuracy: '',
      'mean latency ms': '',
      'latency vs random': `p50 ${l.fresh.p50.toFixed(1)} µs, p95 ${l.fresh.p95.toFixed(1)} µs`,
      'failures seen': `cached text p50 ${l.cached.p50.toFixed(1)} µs`,
      MaxVio: '',
    })),
  ],
};
if (process.env.CAPIBARA_BENCH_OUT) writeFileSync(process.env.CAPIBARA_BENCH_OUT, JSON.stringify(result));
else console.table(result.table);
