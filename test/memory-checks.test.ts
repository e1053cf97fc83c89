import { describe, expect, it } from 'vitest';
import { checkOptions, checkQuery, checkStore, checkUpdate, checkVector, storedFields } from '../src/memory/checks';
import { DEFAULT_WEIGHTS } from '../src/memory/retrieval';
import { MemoryPriority, MemoryType } from '../src/memory/types';
import { HashedEmbedder } from '../src/text/index';

describe('checkOptions', () => {
  it('fills every default', () => {
    const o = checkOptions({});
    expect(o).toMatchObject({
      maxTokens: 512_000, path: undefined, codec: 'lz4', tokenizer: undefined, dedupThreshold: 0.95, weights: { ...DEFAULT_WEIGHTS },
      recencyDecay: 0.99, queryCacheSize: 256, sweepIntervalMs: 60_000, retainDeletedMs: 86_400_000, synchronous: 'normal', clock: Date.now,
    });
    expect(o.embedder).toBeInstanceOf(HashedEmbedder);
    expect(o.weights).not.toBe(DEFAULT_WEIGHTS);
    expect(checkOptions({ weights: { vector: 2 } }).weights).toEqual({ ...DEFAULT_WEIGHTS, vector: 2 });
  });

  it('names the option that is wrong', () => {
    expect(() => checkOptions({ maxTokens: 0 })).toThrow(new RangeError('Expected integer >= 1 for options.maxTokens but received 0 of type number'));
    expect(() => checkOptions({ tokenizer: {} })).toThrow(new TypeError('Expected an object with a countTokens method for options.tokenizer but received object'));
    expect(() => checkOptions({ embedder: { dimensions: 0, embed: () => [] } })).toThrow(/options\.embedder\.dimensions/);
    expect(() => checkOptions({ embedder: null })).toThrow(new TypeError('Expected an Embedder (dimensions and an embed method) for options.embedder but received null'));
    expect(() => checkOptions({ recencyDecay: 1.5 })).toThrow(new RangeError('Expected finite number in (0, 1] for options.recencyDecay but received 1.5 of type number'));
    expect(() => checkOptions({ weights: { bm25: -1 } })).toThrow(new RangeError('Expected finite number >= 0 for options.weights.bm25 but received -1 of type number'));
    expect(() => checkOptions({ weights: { lexical: 1 } })).toThrow(TypeError);
    expect(() => checkOptions({ sweepIntervalMs: 2 ** 31 })).toThrow(/options\.sweepIntervalMs/);
    expect(() => checkOptions({ synchronous: 'off' })).toThrow(/options\.synchronous/);
    expect(() => checkOptions({ clock: 5 })).toThrow(new TypeError('Expected function for options.clock but received 5 of type number'));
    // The first bad option in order is the one named.
    expect(() => checkOptions({ clock: 5, maxTokens: 0 })).toThrow(/options\.maxTokens/);
  });
});

describe('checkStore and storedFields', () => {
  it('normalises the fields: tags without duplicates, scope ids as columns', () => {
    const req = checkStore('text', MemoryType.EPISODIC, MemoryPriority.HIGH, ['a', 'b', 'a'], { scope: { agentId: 'bot' }, ttl: 10 });
    expect(req).toEqual({
      content: 'text',
      fields: { type: MemoryType.EPISODIC, priority: MemoryPriority.HIGH, importance: 0.5, tags: ['a', 'b'], metadata: {}, pinned: false, userId: null, agentId: 'bot', sessionId: null },
      expiresAt: undefined,
      ttl: 10,
    });
    expect(storedFields(req, 1000).expiresAt).toBe(1010);
    expect(storedFields(checkStore('t', MemoryType.EPISODIC, MemoryPriority.LOW, [], { expiresAt: 5 }), 1000).expiresAt).toBe(5);
    expect(storedFields(checkStore('t', MemoryType.EPISODIC, MemoryPriority.LOW, [], {}), 1000).expiresAt).toBeNull();
  });

  it('checks importance as a [0, 1] number and scope ids as non-empty strings', () => {
    expect(() => checkStore('t', MemoryType.EPISODIC, MemoryPriority.LOW, [], { importance: 1.5 })).toThrow(
      new RangeError('Expected number in [0, 1] for options.importance but received 1.5 of type number'),
    );
    expect(() => checkStore('t', MemoryType.EPISODIC, MemoryPriority.LOW, [], { importance: '1' })).toThrow(TypeError);
    expect(() => checkStore('t', MemoryType.EPISODIC, MemoryPriority.LOW, [], { scope: { userId: '' } })).toThrow(/options\.scope\.userId/);
    expect(() => checkStore('t', MemoryType.EPISODIC, MemoryPriority.LOW, [''], {})).toThrow(/tags\[0\]/);
    expect(() => checkStore('t', MemoryType.EPISODIC, '1', [], {})).toThrow(TypeError);
  });
});

describe('checkUpdate', () => {
  it('returns the update with tags and metadata normalised', () => {
    const u = checkUpdate({ tags: ['x', 'x'], metadata: { a: [1, 2] }, expiresAt: null });
    expect(u).toEqual({ tags: ['x'], metadata: { a: [1, 2] }, expiresAt: null });
    expect(Object.getPrototypeOf(u.metadata)).toBeNull();
  });

  it('names the field that is wrong', () => {
    expect(() => checkUpdate({ content: ' ' })).toThrow(/update\.content/);
    expect(() => checkUpdate({ priority: 4 })).toThrow(/update\.priority/);
    expect(() => checkUpdate({ importance: -0.1 })).toThrow(new RangeError('Expected number in [0, 1] for update.importance but received -0.1 of type number'));
    expect(() => checkUpdate({ expiresAt: 1.5 })).toThrow(/update\.expiresAt/);
    expect(() => checkUpdate({ pinned: 1 })).toThrow(/update\.pinned/);
    expect(() => checkUpdate({ colour: 'red' })).toThrow(TypeError);
  });
});

describe('checkQuery', () => {
  it('normalises to a canonical form, so equal queries have equal cache keys', () => {
    const a = checkQuery({ memoryTypes: [MemoryType.WORKING, MemoryType.EPISODIC, MemoryType.WORKING], tags: ['b', 'a'], queryText: 'q' });
    const b = checkQuery({ queryText: 'q', tags: ['a', 'b', 'a'], memoryTypes: [MemoryType.EPISODIC, MemoryType.WORKING], tagMode: 'any', topK: 10 });
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    expect(a).toEqual({ topK: 10, maxTokens: Infinity, queryText: 'q', memoryTypes: ['episodic', 'working'], tags: ['a', 'b'], tagMode: 'any' });
    // Blank text and empty lists filter nothing, as absent ones.
    expect(checkQuery({ queryText: '  ', tags: [], memoryTypes: [] })).toEqual({ topK: 10, maxTokens: Infinity, tagMode: 'any' });
  });

  it('compiles the filter once; the compiled form stays out of the cache key', () => {
    const q = checkQuery({ filter: { lang: 'en' } });
    expect(q.matches?.({ lang: 'en' })).toBe(true);
    expect(q.matches?.({ lang: 'es' })).toBe(false);
    expect(JSON.parse(JSON.stringify(q))).toEqual({ topK: 10, maxTokens: null, tagMode: 'any', filter: { lang: 'en' } });
  });

  it('names the field that is wrong', () => {
    expect(() => checkQuery(null)).toThrow(new TypeError('Expected a MemoryQuery object for query but received null'));
    expect(() => checkQuery({ memoryTypes: 'semantic' })).toThrow(/query\.memoryTypes/);
    expect(() => checkQuery({ memoryTypes: ['dream'] })).toThrow(/query\.memoryTypes\[0\]/);
    expect(() => checkQuery({ timeRange: { from: NaN } })).toThrow(/query\.timeRange\.from/);
    expect(() => checkQuery({ tagMode: 'some' })).toThrow(/query\.tagMode/);
    expect(() => checkQuery({ scope: { teamId: 't' } })).toThrow(TypeError);
  });
});

describe('checkVector', () => {
  it('accepts a Float32Array of the dimensions, finite', () => {
    const x = Float32Array.of(1, 2);
    expect(checkVector(x, 2)).toBe(x);
    expect(() => checkVector([1, 2], 2)).toThrow(new TypeError('Expected Float32Array of length 2 for embedder.embed() result but received Array of length 2'));
    expect(() => checkVector(Float32Array.of(1), 2)).toThrow(TypeError);
    expect(() => checkVector(Float32Array.of(1, NaN), 2)).toThrow(new RangeError('Expected finite number for embedder.embed() result[1] but received NaN of type number'));
  });
});
