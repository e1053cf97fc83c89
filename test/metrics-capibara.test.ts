import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { AttentionType, CapibaraMetrics, ClosedError, DuoAttention, MemAgent, MemoryPriority, MemoryType, METRICS, MultiRoundThinking } from '../src/index';
import { ScriptedGenerator, thinker } from './support/scripted-generator';

const closing: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const c of closing.splice(0).reverse()) await c.close();
});

/** The samples of the exposition, by `name{labels}`. */
async function samples(metrics: CapibaraMetrics): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await metrics.metrics()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

describe('CapibaraMetrics', () => {
  it('names every metric capibara_<part>_<what>_<unit>, counters ending in _total', () => {
    for (const m of METRICS) {
      expect(m.name).toMatch(/^capibara_(routing|memory|budget|thinking|attention|llm|pipeline|http|server)_[a-z_]+$/);
      expect(m.name.endsWith('_total')).toBe(m.type === 'counter');
      if (m.type === 'histogram') expect(m.name).toMatch(/_(seconds|ratio)$/);
    }
    expect(new Set(METRICS.map((m) => m.name)).size).toBe(METRICS.length);
  });

  it('counts thinking rounds by mode and sessions by stop reason, with their confidence', async () => {
    const metrics = new CapibaraMetrics();
    const thinking = new MultiRoundThinking({ generator: new ScriptedGenerator(thinker(() => 'hm</think>', ' 4')), thinkingBudget: { maxThinkingTokens: 10, answerMaxTokens: 3 } });
    closing.push(thinking, metrics);
    metrics.observeThinking(thinking);
    metrics.observeThinking(thinking); // a second time does nothing
    await thinking.runSession('2 + 2?', { maxRounds: 3 });
    const s = await samples(metrics);
    expect(s.get('capibara_thinking_rounds_total{mode="none"}')).toBe(2);
    expect(s.get('capibara_thinking_sessions_total{kind="multi-round",stop_reason="agreement"}')).toBe(1);
    expect(s.get('capibara_thinking_confidence_ratio_count')).toBe(1);
    expect(s.get('capibara_thinking_confidence_ratio_sum')).toBe(1);
  });

  it('reads memory and attention figures at each scrape; counters move by the difference', async () => {
    const metrics = new CapibaraMetrics();
    const memory = new MemAgent({ sweepIntervalMs: 0 });
    const duo = new DuoAttention({ numHeads: 2, kvHeads: 1, headDim: 4, threads: 1 });
    closing.push(duo, memory, metrics);
    metrics.observeMemory(memory);
    metrics.observeAttention(duo);
    await memory.storeMemory('capybaras swim well', MemoryType.SEMANTIC, MemoryPriority.LOW);
    await memory.retrieveMemory({ queryText: 'swim' });
    await memory.retrieveMemory({ queryText: 'swim' });
    const q = new Float32Array(2 * 4).fill(0.5);
    const kv = new Float32Array(3 * 4).fill(0.25);
    await duo.processAttention({ q, k: kv, v: kv, type: AttentionType.CROSS });
    let s = await samples(metrics);
    expect(s.get('capibara_memory_items')).toBe(1);
    expect(s.get('capibara_memory_searches_total{cache="miss"}')).toBe(1);
    expect(s.get('capibara_memory_searches_total{cache="hit"}')).toBe(1);
    expect(s.get('capibara_attention_calls_total')).toBe(1);
    const attended = s.get('capibara_attention_kv_attended_bytes_total')!;
    expect(attended).toBe(duo.getMetrics().kvBytesAttended);
    await memory.retrieveMemory({ queryText: 'swim' });
    s = await samples(metrics);
    expect(s.get('capibara_memory_searches_total{cache="hit"}')).toBe(2);
    expect(s.get('capibara_attention_calls_total')).toBe(1);
  });

  it('HTTP requests by route, method and status; the server gauges', async () => {
    const metrics = new CapibaraMetrics();
    closing.push(metrics);
    metrics.observeServer({ running: 1, waiting: 3 });
    metrics.recordHttp('/v1/completions', 'POST', 200, 0.25);
    metrics.recordHttp('/v1/completions', 'POST', 200, 0.5);
    metrics.recordHttp('/v1/models/{id}', 'GET', 404, 0.001);
    const s = await samples(metrics);
    expect(s.get('capibara_http_requests_total{route="/v1/completions",method="POST",status="200"}')).toBe(2);
    expect(s.get('capibara_http_requests_total{route="/v1/models/{id}",method="GET",status="404"}')).toBe(1);
    expect(s.get('capibara_http_request_duration_seconds_sum{route="/v1/completions"}')).toBe(0.75);
    expect([s.get('capibara_server_generations_running'), s.get('capibara_server_requests_waiting')]).toEqual([1, 3]);
  });

  it('close() removes its listeners; later observe calls throw ClosedError and recording does nothing', async () => {
    const metrics = new CapibaraMetrics();
    const thinking = new MultiRoundThinking({ generator: new ScriptedGenerator(thinker(() => 'x</think>', ' 1')), thinkingBudget: { maxThinkingTokens: 4, answerMaxTokens: 2 } });
    closing.push(thinking);
    metrics.observeThinking(thinking);
    expect(thinking.listenerCount('round')).toBe(1);
    metrics.close();
    metrics.close();
    expect(thinking.listenerCount('round')).toBe(0);
    expect(() => metrics.observeThinking(thinking)).toThrow(new ClosedError('CapibaraMetrics'));
    metrics.recordHttp('/health', 'GET', 200, 0.001);
    expect((await samples(metrics)).get('capibara_http_requests_total{route="/health",method="GET",status="200"}')).toBeUndefined();
  });

  it('registers into a given registry, once; checks its options', () => {
    const registry = new Registry();
    const metrics = new CapibaraMetrics({ registry });
    closing.push(metrics);
    expect(registry.getSingleMetric('capibara_pipeline_requests_total')).toBeDefined();
    expect(() => new CapibaraMetrics({ registry })).toThrow('A metric with the name capibara_routing_decisions_total has already been registered.');
    expect(() => new CapibaraMetrics({ registry: {} as Registry })).toThrow(new TypeError('Expected a prom-client Registry for options.registry but received object'));
    expect(() => new CapibaraMetrics({ durationBuckets: [1, 0.5] })).toThrow(new RangeError('Expected a number > 1 for options.durationBuckets[1] but received 0.5 of type number'));
    expect(() => new CapibaraMetrics({ defaultMetric: true } as never)).toThrow(new TypeError("Unknown option 'defaultMetric' in options (expected one of: registry, defaultMetrics, durationBuckets)"));
  });
});
