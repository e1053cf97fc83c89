import { describe, expect, it } from 'vitest';

import { healthOptions } from '../src/experts/routing/health';
import { DEFAULT_EXPERTS, HealthTracker, ProfileScorer, RewiringExperts, rewiringOptions, RoutingStrategy } from '../src/experts/routing/index';
import { scorerOptions } from '../src/experts/routing/profile-scorer';

const asyncEmbedder = { dimensions: 8, embed: async (texts: string[]) => texts.map(() => new Float32Array(8)) };

describe('options checked under the path their caller wrote them at', () => {
  it('health options name the tracker\'s own path or the router\'s, with no rewriting', () => {
    expect(() => healthOptions({ failureRate: 2 }, 'options')).toThrow(new RangeError('Expected number in [0, 1] for options.failureRate but received 2 of type number'));
    expect(() => new HealthTracker({ failureRate: 2 })).toThrow(new RangeError('Expected number in [0, 1] for options.failureRate but received 2 of type number'));
    expect(() => new RewiringExperts({ health: { failureRate: 2 } })).toThrow(new RangeError('Expected number in [0, 1] for options.health.failureRate but received 2 of type number'));
    expect(() => new RewiringExperts({ health: { cooldownMs: 0 } })).toThrow(new RangeError('Expected finite number > 0 for options.health.cooldownMs but received 0 of type number'));
    // The router takes the rules, not the tracker's callbacks.
    expect(() => new RewiringExperts({ health: { now: () => 1 } as never })).toThrow(
      new TypeError("Unknown option 'now' in options.health (expected one of: windowMs, failureRate, minRequests, cooldownMs)"),
    );
    expect(healthOptions(undefined, 'x')).toMatchObject({ windowMs: 60_000, failureRate: 0.5, minRequests: 2, cooldownMs: 5_000, onChange: undefined, now: Date.now });
  });

  it('scorer options name the scorer\'s path or the router\'s', () => {
    expect(() => scorerOptions({ embedder: {} }, 'options')).toThrow(
      new TypeError('Expected an Embedder ({ dimensions, embed(texts) }) for options.embedder but received object'),
    );
    expect(() => new ProfileScorer({ embedder: { dimensions: 0, embed: () => [] } as never })).toThrow(
      new RangeError('Expected integer in [1, 65536] for options.embedder.dimensions but received 0 of type number'),
    );
    expect(() => new RewiringExperts({ embedder: { dimensions: 0, embed: () => [] } as never })).toThrow(
      new RangeError('Expected integer in [1, 65536] for options.embedder.dimensions but received 0 of type number'),
    );
  });

  it('rewiringOptions names every option under the given path', () => {
    const at = 'options.routerOptions';
    const cases: Array<[unknown, Error]> = [
      [{ colour: 1 }, new TypeError(`Unknown option 'colour' in ${at} (expected one of: strategy, experts, maxFallbacks, embedder, health, decisionTtlMs, maxPendingDecisions, seed, clock, sharedState)`)],
      [{ strategy: 'random' }, new RangeError(`Expected one of 'performance_based', 'load_balanced', 'adaptive', 'predictive' for ${at}.strategy but received 'random' of type string`)],
      [{ maxFallbacks: 17 }, new RangeError(`Expected integer in [0, 16] for ${at}.maxFallbacks but received 17 of type number`)],
      [{ health: { failureRate: 2 } }, new RangeError(`Expected number in [0, 1] for ${at}.health.failureRate but received 2 of type number`)],
      [{ health: { window: 1 } }, new TypeError(`Unknown option 'window' in ${at}.health (expected one of: windowMs, failureRate, minRequests, cooldownMs)`)],
      [{ embedder: 5 }, new TypeError(`Expected an Embedder ({ dimensions, embed(texts) }) for ${at}.embedder but received 5 of type number`)],
      [{ clock: 1 }, new TypeError(`Expected function for ${at}.clock but received 1 of type number`)],
      [{ experts: {} }, new TypeError(`Expected array of ExpertProfile for ${at}.experts but received object`)],
      [{ experts: [{ id: 'x', domain: 'x', description: '' }] }, new RangeError(`Expected non-empty string for ${at}.experts[0].description but received '' of type string`)],
      [{ experts: [{ id: 'x', domain: 'x', description: 'x' }, { id: 'x', domain: 'y', description: 'y' }] }, new RangeError(`Expected an id not used by an earlier expert for ${at}.experts[1].id but received 'x' of type string`)],
    ];
    for (const [options, error] of cases) {
      expect(() => rewiringOptions(options, at)).toThrow(error);
      // The constructor names the same option at its own path.
      expect(() => new RewiringExperts(options as never)).toThrow(new (error.constructor as ErrorConstructor)(error.message.replaceAll(at, 'options')));
    }
  });

  it('gives frozen options with defaults filled in, which the constructor takes as they are', () => {
    const o = rewiringOptions({ strategy: RoutingStrategy.ADAPTIVE, seed: 5, health: { cooldownMs: 50 } }, 'options.routerOptions');
    expect(Object.isFrozen(o)).toBe(true);
    expect(o).toMatchObject({ strategy: 'adaptive', maxFallbacks: 3, decisionTtlMs: 600_000, maxPendingDecisions: 4096, seed: 5, health: { windowMs: 60_000, failureRate: 0.5, minRequests: 2, cooldownMs: 50 } });
    expect(o.experts!.map((e) => e.id)).toEqual(DEFAULT_EXPERTS.map((e) => e.id));
    const a = new RewiringExperts(o);
    const b = new RewiringExperts({ strategy: RoutingStrategy.ADAPTIVE, seed: 5, health: { cooldownMs: 50 } });
    expect(a.strategy).toBe('adaptive');
    expect(a.experts()).toEqual(b.experts());
    for (const q of ['slow SQL join', 'pandas groupby', 'React hooks']) expect(a.previewRoute(q).ranking).toEqual(b.previewRoute(q).ranking);
  });

  it('checks that a JavaScript caller\'s embedder answers synchronously', () => {
    expect(() => new RewiringExperts({ embedder: asyncEmbedder as never })).toThrow(
      new TypeError('Expected a synchronous embedder for ProfileScorer (routing is synchronous) but embedder.embed() returned a Promise'),
    );
  });
});
