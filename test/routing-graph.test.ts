import { describe, expect, it } from 'vitest';

import { ExpertGraph, type ExpertGraphOptions, type RewireEvent } from '../src/experts/routing/expert-graph';
import { rng } from './support/random';

function graph(ids: string[], opts: ExpertGraphOptions = {}) {
  const events: RewireEvent[] = [];
  const g = new ExpertGraph({ ...opts, onRewire: (e) => events.push(e) });
  for (const id of ids) g.addNode(id);
  return { g, events };
}

/** Independent reference of the update: float64 EMA step, then clamp. */
const ema = (w: number, success: boolean, rate = 0.2) => Math.min(0.99, Math.max(0.01, w + rate * ((success ? 1 : 0) - w)));

describe('ExpertGraph nodes and weights', () => {
  it('adds, lists and removes nodes; removing drops the edges both ways', () => {
    const { g } = graph(['a', 'b', 'c']);
    expect(g.addNode('a')).toBe(false);
    expect(g.nodes()).toEqual(['a', 'b', 'c']);
    g.setWeight('a', 'b', 0.9);
    g.setWeight('b', 'a', 0.1);
    g.setWeight('c', 'b', 0.3);
    expect(g.removeNode('b')).toBe(true);
    expect(g.removeNode('b')).toBe(false);
    expect(g.has('b')).toBe(false);
    expect(g.toJSON().edges).toEqual([]);
    g.addNode('b');
    expect(g.weight('a', 'b')).toBe(0.5);
    expect(g.weight('b', 'a')).toBe(0.5);
    expect(g.weight('c', 'b')).toBe(0.5);
  });

  it('gives every pair the default weight until set; edges are directed', () => {
    const { g } = graph(['a', 'b'], { defaultWeight: 0.3 });
    expect(g.weight('a', 'b')).toBe(0.3);
    g.setWeight('a', 'b', 1);
    expect(g.weight('a', 'b')).toBe(1);
    expect(g.weight('b', 'a')).toBe(0.3);
    expect(new ExpertGraph().defaultWeight).toBe(0.5);
  });

  it('orders fallbacks by weight descending, then id', () => {
    const { g } = graph(['m', 'd', 'z', 'b', 'a']);
    g.setWeight('m', 'z', 0.8);
    g.setWeight('m', 'a', 0.2);
    expect(g.fallbacks('m')).toEqual(['z', 'b', 'd', 'a']);
    expect(g.fallbacks('m', ['a', 'm', 'd', 'a', 'z'])).toEqual(['z', 'd', 'a']);
    expect(g.fallbacks('m', [])).toEqual([]);
    expect(g.fallbacks('z')).toEqual(['a', 'b', 'd', 'm']);
  });
});

describe('ExpertGraph.rewire', () => {
  it('moves the weight by an EMA toward 1 or 0', () => {
    const { g } = graph(['a', 'b']);
    const r = g.rewire('a', 'b', true);
    expect(r).toEqual({ from: 'a', to: 'b', before: 0.5, after: ema(0.5, true), success: true, reordered: false });
    expect(g.weight('a', 'b')).toBeCloseTo(0.6, 15);
    expect(g.rewire('a', 'b', true).after).toBeCloseTo(0.68, 15);
    expect(g.rewire('a', 'b', false).after).toBeCloseTo(0.544, 15);
    expect(g.weight('b', 'a')).toBe(0.5);
  });

  it('stays within [0.01, 0.99] and recovers from either bound', () => {
    const { g } = graph(['a', 'b']);
    for (let i = 0; i < 200; i++) g.rewire('a', 'b', true);
    expect(g.weight('a', 'b')).toBe(0.99);
    expect(g.rewire('a', 'b', false).after).toBeCloseTo(0.792, 15);
    for (let i = 0; i < 200; i++) g.rewire('a', 'b', false);
    expect(g.weight('a', 'b')).toBe(0.01);
    expect(g.rewire('a', 'b', true).after).toBeCloseTo(0.208, 15);
    g.setWeight('a', 'b', 1);
    expect(g.rewire('a', 'b', true).after).toBe(0.99);
    g.setWeight('a', 'b', 0);
    expect(g.rewire('a', 'b', false).after).toBe(0.01);
  });

  it('counts and emits only the updates that change the fallback order', () => {
    const { g, events } = graph(['a', 'b', 'c']);
    expect(g.fallbacks('a')).toEqual(['b', 'c']);
    expect(g.rewire('a', 'c', true).reordered).toBe(true); // c 0.6 passes b 0.5
    expect(g.fallbacks('a')).toEqual(['c', 'b']);
    expect(g.rewiringEvents).toBe(1);
    expect(events).toEqual([{ from: 'a', to: 'c', before: 0.5, after: ema(0.5, true), success: true }]);
    g.rewire('a', 'c', true); // 0.68: same order
    g.rewire('a', 'c', false); // 0.544: same order
    expect(g.rewiringEvents).toBe(1);
    expect(events).toHaveLength(1);
    const r = g.rewire('a', 'c', false); // 0.4352: below b again
    expect(r.reordered).toBe(true);
    expect(g.rewiringEvents).toBe(2);
    expect(events[1]).toMatchObject({ from: 'a', to: 'c', success: false });
    // setWeight never counts, even when it reorders.
    g.setWeight('a', 'c', 0.9);
    expect(g.rewiringEvents).toBe(2);
    // b's fallbacks tie at 0.5 as [a, c]; c at 0.6 passes a.
    expect(g.rewire('b', 'c', true).reordered).toBe(true);
    expect(g.fallbacks('b')).toEqual(['c', 'a']);
    expect(g.rewiringEvents).toBe(3);
  });

  it('a tie reorders by id: reaching a tie counts only if the id puts it ahead', () => {
    const { g } = graph(['a', 'b', 'c']);
    g.setWeight('a', 'b', 0.6);
    g.setWeight('a', 'c', 0.5);
    g.setWeight('a', 'b', 0.4); // nothing counted for setWeight
    expect(g.rewiringEvents).toBe(0);
    // b: 0.4 → 0.52 > c 0.5: b moves ahead.
    expect(g.rewire('a', 'b', true).reordered).toBe(true);
  });

  it('matches a reference that compares the whole order before and after', () => {
    const ids = ['a', 'b', 'c', 'd', 'e'];
    const { g, events } = graph(ids, { learningRate: 0.35 });
    const rand = rng(11);
    let expected = 0;
    for (let step = 0; step < 3_000; step++) {
      const from = ids[Math.floor(rand() * ids.length)]!;
      const others = ids.filter((x) => x !== from);
      const to = others[Math.floor(rand() * others.length)]!;
      const before = g.fallbacks(from).join();
      const w = g.weight(from, to);
      const r = g.rewire(from, to, rand() < 0.5);
      expect(r.after).toBe(ema(w, r.success, 0.35));
      const changed = g.fallbacks(from).join() !== before;
      expect(r.reordered).toBe(changed);
      if (changed) expected++;
    }
    expect(g.rewiringEvents).toBe(expected);
    expect(events).toHaveLength(expected);
    expect(expected).toBeGreaterThan(100);
  });
});

describe('ExpertGraph JSON', () => {
  it('round-trips through JSON text', () => {
    const { g } = graph(['x', 'y', 'z']);
    g.rewire('x', 'z', true);
    g.setWeight('y', 'x', 0.25);
    const json = JSON.parse(JSON.stringify(g));
    expect(json).toEqual({ version: 1, nodes: ['x', 'y', 'z'], edges: [['x', 'z', ema(0.5, true)], ['y', 'x', 0.25]], rewiringEvents: 1 });
    const r = ExpertGraph.fromJSON(json, { learningRate: 0.5 });
    expect(r.toJSON()).toEqual(json);
    expect(r.fallbacks('x')).toEqual(g.fallbacks('x'));
    expect(r.rewiringEvents).toBe(1);
    expect(r.learningRate).toBe(0.5);
  });

  it('load replaces state all or nothing', () => {
    const { g } = graph(['a', 'b']);
    g.setWeight('a', 'b', 0.7);
    const before = g.toJSON();
    expect(() => g.load({ version: 1, nodes: ['p', 'q'], edges: [['p', 'r', 0.5]], rewiringEvents: 0 })).toThrow(
      new RangeError("Expected a node of json.nodes for json.edges[0][1] but received 'r' of type string"),
    );
    expect(g.toJSON()).toEqual(before);
    g.load({ version: 1, nodes: ['p'], edges: [], rewiringEvents: 4 });
    expect(g.nodes()).toEqual(['p']);
    expect(g.rewiringEvents).toBe(4);
  });

  it('rejects bad JSON with exact messages', () => {
    const j = (over: object) => ({ version: 1, nodes: ['a', 'b'], edges: [], rewiringEvents: 0, ...over });
    const cases: Array<[unknown, Error]> = [
      [[], new TypeError('Expected ExpertGraphJSON object for json but received Array of length 0')],
      [j({ version: '1' }), new RangeError("Expected 1 for json.version but received '1' of type string")],
      [j({ nodes: 'a' }), new TypeError("Expected Array for json.nodes but received 'a' of type string")],
      [j({ nodes: ['a', 'a'] }), new RangeError("Expected unique id for json.nodes[1] but received 'a' of type string")],
      [j({ nodes: ['a', 2] }), new TypeError('Expected non-empty string for json.nodes[1] but received 2 of type number')],
      [j({ edges: null }), new TypeError('Expected Array for json.edges but received null')],
      [j({ edges: [['a', 'b']] }), new TypeError('Expected [from, to, weight] for json.edges[0] but received Array of length 2')],
      [j({ edges: [['a', 'a', 0.5]] }), new RangeError("Expected node other than json.edges[0][0] for json.edges[0][1] but received 'a' of type string")],
      [j({ edges: [['a', 'b', 2]] }), new RangeError('Expected number in [0, 1] for json.edges[0][2] but received 2 of type number')],
      [j({ rewiringEvents: -1 }), new RangeError('Expected integer >= 0 for json.rewiringEvents but received -1 of type number')],
    ];
    for (const [json, err] of cases) expect(() => ExpertGraph.fromJSON(json)).toThrow(err);
  });
});

describe('ExpertGraph argument checks', () => {
  it('rejects bad options', () => {
    const cases: Array<[unknown, Error]> = [
      [{ rate: 1 }, new TypeError("Unknown option 'rate' in options (expected one of: learningRate, defaultWeight, onRewire)")],
      [{ learningRate: 0 }, new RangeError('Expected number in (0, 1] for options.learningRate but received 0 of type number')],
      [{ learningRate: '0.2' }, new TypeError("Expected number in (0, 1] for options.learningRate but received '0.2' of type string")],
      [{ defaultWeight: -0.1 }, new RangeError('Expected number in [0, 1] for options.defaultWeight but received -0.1 of type number')],
      [{ onRewire: {} }, new TypeError('Expected function for options.onRewire but received object')],
    ];
    for (const [opts, err] of cases) expect(() => new ExpertGraph(opts as ExpertGraphOptions)).toThrow(err);
  });

  it('rejects unknown nodes, self edges and bad values with exact messages', () => {
    const { g } = graph(['a', 'b']);
    expect(() => g.addNode('')).toThrow(new RangeError("Expected non-empty string for id but received '' of type string"));
    expect(() => g.weight('a', 'q')).toThrow(new RangeError("Expected a node of the graph for to but received 'q' of type string"));
    expect(() => g.weight('q', 'a')).toThrow(new RangeError("Expected a node of the graph for from but received 'q' of type string"));
    expect(() => g.setWeight('a', 'a', 0.5)).toThrow(new RangeError("Expected node other than from for to but received 'a' of type string"));
    expect(() => g.setWeight('a', 'b', Number.NaN)).toThrow(new RangeError('Expected number in [0, 1] for weight but received NaN of type number'));
    expect(() => g.rewire('a', 'b', 1 as never)).toThrow(new TypeError('Expected boolean for success but received 1 of type number'));
    expect(() => g.fallbacks('a', 'b' as never)).toThrow(new TypeError("Expected Array of node ids for candidates but received 'b' of type string"));
    expect(() => g.fallbacks('a', ['b', 'q'])).toThrow(new RangeError("Expected a node of the graph for candidates[1] but received 'q' of type string"));
    expect(g.weight('a', 'b')).toBe(0.5);
    expect(g.rewiringEvents).toBe(0);
  });
});
