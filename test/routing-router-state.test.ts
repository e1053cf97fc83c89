import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { RewiringExperts, RoutingStrategy } from '../src/experts/routing/index';
import { readRouterState, RoutingCounters } from '../src/experts/routing/router-state';
import { saveState } from '../src/experts/routing/state-file';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'capibara-router-state-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('RoutingCounters', () => {
  it('counts, shares out and round-trips through JSON', () => {
    const c = new RoutingCounters();
    c.route('a');
    c.route('a');
    c.route('b');
    c.outcome(true, 10);
    c.outcome(false, 30);
    expect(c.utilization(['a', 'b', 'c'])).toEqual({ a: 2 / 3, b: 1 / 3, c: 0 });
    c.remove('b');
    const json = c.toJSON();
    expect(json).toEqual({ routed: 3, outcomes: 2, successes: 1, latencySum: 40, routedTo: { a: 2 } });
    expect(RoutingCounters.fromJSON(JSON.parse(JSON.stringify(json)), 'f: stats').toJSON()).toEqual(json);
    expect(Object.getPrototypeOf(new RoutingCounters().utilization(['__proto__']))).toBeNull();
  });

  it('names a bad saved field', () => {
    const good = { routed: 1, outcomes: 0, successes: 0, latencySum: 0, routedTo: { a: 1 } };
    expect(() => RoutingCounters.fromJSON({ ...good, routed: -1 }, 'f: stats')).toThrow(new RangeError('Expected finite number >= 0 for f: stats.routed but received -1 of type number'));
    expect(() => RoutingCounters.fromJSON({ ...good, routedTo: null }, 'f: stats')).toThrow(new TypeError('Expected object of counts for f: stats.routedTo but received null'));
    expect(() => RoutingCounters.fromJSON({ ...good, routedTo: { a: 'x' } }, 'f: stats')).toThrow(TypeError);
    expect(() => RoutingCounters.fromJSON(undefined, 'f: stats')).toThrow(new TypeError('Expected finite number >= 0 for f: stats.routed but received undefined'));
  });
});

describe('router state files', () => {
  it('saves each part as its own toJSON gives it and restores a router from them', async () => {
    const path = join(dir, 'router.json');
    const router = new RewiringExperts({ strategy: RoutingStrategy.PREDICTIVE });
    const d = router.routeQuery('slow SQL join');
    router.recordOutcome(d.id, { success: true, latencyMs: 12 });
    await router.save(path);
    const state = await readRouterState(path);
    expect(state).toMatchObject({ strategy: 'predictive', stats: { routed: 1, outcomes: 1, successes: 1, latencySum: 12, routedTo: { sql: 1 } } });
    expect(state.experts).toEqual(router.experts());
    expect(Object.keys(state)).toEqual(['strategy', 'experts', 'policy', 'graph', 'health', 'stats']);
    const loaded = await RewiringExperts.load(path);
    expect(loaded.getMetrics()).toEqual({ ...router.getMetrics(), inFlight: loaded.getMetrics().inFlight });
  });

  it('refuses files that hold no router, another strategy\'s state or bad counters', async () => {
    const path = join(dir, 'bad.json');
    await saveState(path, { graph: {} });
    await expect(RewiringExperts.load(path)).rejects.toThrow(`RewiringExperts.load: ${path} does not hold a router's state`);
    const router = new RewiringExperts({ strategy: RoutingStrategy.ADAPTIVE });
    const good = join(dir, 'good.json');
    await router.save(good);
    const state = JSON.parse(await readFile(good, 'utf8')).state;
    await saveState(path, { ...state, strategy: 'predictive' });
    await expect(RewiringExperts.load(path)).rejects.toThrow(`RewiringExperts.load: ${path} says strategy predictive but holds adaptive state`);
    await saveState(path, { ...state, stats: { ...state.stats, outcomes: 'many' } });
    await expect(RewiringExperts.load(path)).rejects.toThrow(new TypeError(`Expected finite number >= 0 for ${path}: stats.outcomes but received 'many' of type string`));
    await saveState(path, { ...state, strategy: 'random' });
    await expect(RewiringExperts.load(path)).rejects.toThrow(/for options\.strategy/);
  });
});
