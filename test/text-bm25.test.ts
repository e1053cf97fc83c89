import { describe, expect, it } from 'vitest';

import { Bm25Index } from '../src/text/bm25';
import { tokenize } from '../src/text/tokenize';
import { rng } from './support/random';

/**
 * Okapi BM25 straight from its definition, in float64, over already tokenized documents:
 * every query token (repeats included) adds IDF · tf · (k1 + 1) / (tf + k1 · (1 − b + b · |d| / avgdl)).
 */
function reference(docs: Map<number, string[]>, query: string[], k1 = 1.5, b = 0.75): Map<number, number> {
  const n = docs.size;
  let total = 0;
  for (const terms of docs.values()) total += terms.length;
  const avgdl = total / n;
  const out = new Map<number, number>();
  for (const [id, terms] of docs) {
    let score = 0;
    let matched = false;
    for (const q of query) {
      const tf = terms.filter((t) => t === q).length;
      if (tf === 0) continue;
      matched = true;
      let df = 0;
      for (const other of docs.values()) if (other.includes(q)) df++;
      const idf = Math.log(1 + (n - df + 0.5) / (df + 0.5));
      score += (idf * tf * (k1 + 1)) / (tf + k1 * (1 - b + (b * terms.length) / avgdl));
    }
    if (matched) out.set(id, score);
  }
  return out;
}

function expectScores(actual: Map<number, number>, expected: Map<number, number>) {
  expect([...actual.keys()].sort((a, b) => a - b)).toEqual([...expected.keys()].sort((a, b) => a - b));
  for (const [id, s] of expected) {
    expect(Math.abs(actual.get(id)! - s)).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(s)));
  }
}

function ranking(scores: Map<number, number>): number[] {
  return [...scores].sort((a, b) => b[1] - a[1] || a[0] - b[0]).map(([id]) => id);
}

const CORPUS: Array<[number, string]> = [
  [0, 'The cache was flushed after the deploy of the search service'],
  [1, 'Deploy notes: the search service now caches query results for ten minutes'],
  [2, 'The user prefers metric units and dark mode'],
  [3, 'Optimizing the cache: optimized eviction, optimization of cache keys, cache cache'],
  [4, 'Meeting with the search team about ranking quality'],
  [5, ''],
  [6, 'User asked about deploy deadlines; deadline is Friday'],
  [17, 'Metric dashboards for the cache hit rate'],
];

const QUERIES = [
  'cache',
  'search deploy',
  'cache cache deploy', // a repeated query term counts twice
  'optimize caching',
  'metric user units',
  'nothing matches this zebra',
  'the and of', // stopwords only
  '',
  'deadline friday meeting ranking quality',
];

function build(docs: Array<[number, string]>, options?: { k1?: number; b?: number }): Bm25Index {
  const index = new Bm25Index(options);
  for (const [id, text] of docs) index.add(id, text);
  return index;
}

const tokenized = (docs: Array<[number, string]>) => new Map(docs.map(([id, text]) => [id, tokenize(text)]));

describe('tokenize', () => {
  it('normalises, lower-cases, drops stopwords and apostrophes, keeps numbers', () => {
    expect(tokenize("The caches were optimized, the user's 2 queries!")).toEqual(['cach', 'optimiz', 'user', '2', 'query']);
    expect(tokenize('Version v2.0 released in 2024-06')).toEqual(['version', 'v2', '0', 'releas', '2024', '06']);
    expect(tokenize("Don't STOP; it’s NOT over")).toEqual(['dont', 'stop', 'not', 'over']);
    expect(tokenize('')).toEqual([]);
    expect(tokenize('  ... !!! ')).toEqual([]);
    expect(tokenize('the of and to a')).toEqual([]);
    expect(tokenize('x y 7')).toEqual(['x', 'y', '7']);
  });

  it('applies NFKC: full-width letters, ligatures and compatibility digits', () => {
    expect(tokenize('ＦＵＬＬＷＩＤＴＨ ﬁle ①')).toEqual(['fullwidth', 'fil', '1']);
    expect(tokenize('Cafe\u0301 café')).toEqual(['café', 'café']); // decomposed and composed forms meet
  });

  it('keeps other scripts whole, splits Han and Hiragana per character, drops emoji', () => {
    expect(tokenize('Привет, МИР! Straße')).toEqual(['привет', 'мир', 'straße']);
    expect(tokenize('नमस्ते दुनिया')).toEqual(['नमस्ते', 'दुनिया']); // vowel signs (marks) stay in the word
    expect(tokenize('我喜欢猫')).toEqual(['我', '喜', '欢', '猫']);
    expect(tokenize('東京タワーへ行きました')).toEqual(['東', '京', 'タワー', 'へ', '行', 'き', 'ま', 'し', 'た']);
    expect(tokenize('abc中文def')).toEqual(['abc', '中', '文', 'def']);
    expect(tokenize('I ❤️ pizza 🍕🍕 and 👍🏽!')).toEqual(['pizza']);
    expect(tokenize('العربية مرحبا')).toEqual(['العربية', 'مرحبا']);
  });

  it('stems English conservatively: s, es, ies, ing, ed, ization, final e', () => {
    const same = (words: string[]) => expect(new Set(words.flatMap((w) => tokenize(w))).size).toBe(1);
    same(['optimize', 'optimizes', 'optimized', 'optimizing', 'optimization', 'optimizations']);
    same(['optimise', 'optimised', 'optimising', 'optimisation']);
    same(['cache', 'caches', 'cached', 'caching']);
    same(['query', 'queries']);
    same(['run', 'running']);
    same(['stop', 'stopped', 'stopping', 'stops']);
    same(['fall', 'falling', 'falls']);
    same(['miss', 'missed', 'missing']);
    same(['box', 'boxes']);
    same(['match', 'matches', 'matched']);
    same(['class', 'classes']);
    same(['play', 'played', 'playing', 'plays']);
    same(['use', 'uses', 'used', 'using']);
    same(['meeting', 'meetings']);
    expect(tokenize('string bring thing king sing')).toEqual(['string', 'bring', 'thing', 'king', 'sing']);
    expect(tokenize('status analysis bus gas yes')).toEqual(['status', 'analysis', 'bus', 'gas', 'yes']);
    expect(tokenize('need speed agreed free tree')).toEqual(['need', 'speed', 'agreed', 'free', 'tree']);
    expect(tokenize('adding add red bed')).toEqual(['add', 'add', 'red', 'bed']);
    expect(tokenize('naïve résumés 2024s')).toEqual(['naïve', 'résumés', '2024s']); // not ASCII letters only
  });

  it('rejects a non-string', () => {
    expect(() => tokenize(3 as unknown as string)).toThrow(new TypeError('Expected string for text but received 3 of type number'));
  });
});

describe('Bm25Index: scores', () => {
  it('equals the float64 reference on every query (default k1 1.5, b 0.75)', () => {
    const index = build(CORPUS);
    expect(index.size).toBe(CORPUS.length);
    for (const q of QUERIES) expectScores(index.search(q), reference(tokenized(CORPUS), tokenize(q)));
  });

  it('equals the reference for other k1 and b, including the extremes', () => {
    for (const [k1, b] of [
      [1.2, 0.75],
      [0, 0.75],
      [2, 0],
      [0.9, 1],
    ] as const) {
      const index = build(CORPUS, { k1, b });
      for (const q of QUERIES) expectScores(index.search(q), reference(tokenized(CORPUS), tokenize(q), k1, b));
    }
  });

  it('ranks as expected', () => {
    const index = build(CORPUS);
    expect(ranking(index.search('cache'))).toEqual([3, 17, 0, 1]);
    expect(ranking(index.search('deploy search service'))[0]).toBe(0);
    expect(ranking(index.search('user metric units'))).toEqual([2, 17, 6]);
    const s = index.search('cache');
    expect(s.get(3)!).toBeGreaterThan(s.get(0)!); // higher tf wins despite a longer document
    for (const score of s.values()) expect(score).toBeGreaterThan(0);
  });

  it('repeated query terms count once per occurrence', () => {
    const index = build(CORPUS);
    const once = index.search('deploy');
    const twice = index.search('deploy deploy');
    for (const [id, s] of once) expect(twice.get(id)).toBeCloseTo(2 * s, 12);
  });

  it('IDF stays positive when a term is in every document', () => {
    const index = build([
      [0, 'alpha beta'],
      [1, 'alpha gamma'],
      [2, 'alpha'],
    ]);
    const s = index.search('alpha');
    expect(s.size).toBe(3);
    for (const score of s.values()) expect(score).toBeGreaterThan(0);
    expectScores(s, reference(tokenized([[0, 'alpha beta'], [1, 'alpha gamma'], [2, 'alpha']]), ['alpha']));
  });

  it('gives the score of the documented example', () => {
    const index = build([
      [1, 'The cache was flushed after the deploy'],
      [2, 'Deploy notes for the search service'],
    ]);
    const scores = index.search('cache flush');
    expect([...scores.keys()]).toEqual([1]);
    expect(scores.get(1)).toBeCloseTo(2 * Math.LN2, 14);
  });

  it('an empty index or a document with no terms matches nothing', () => {
    expect(new Bm25Index().search('anything').size).toBe(0);
    const index = build([[3, 'the of']]);
    expect(index.has(3)).toBe(true);
    expect(index.size).toBe(1);
    expect(index.search('the').size).toBe(0);
  });
});

describe('Bm25Index: updates', () => {
  it('remove and re-add give exactly the scores of a fresh index', () => {
    const index = build(CORPUS);
    index.remove(2);
    index.remove(17);
    index.add(0, 'A completely different text about metric cache units'); // replace
    index.add(9, 'New document on deploy caching');
    index.add(2, 'The user prefers metric units and dark mode'); // back again
    index.remove(12345); // not held: nothing happens
    const final: Array<[number, string]> = [
      [1, CORPUS[1]![1]],
      [3, CORPUS[3]![1]],
      [4, CORPUS[4]![1]],
      [5, ''],
      [6, CORPUS[6]![1]],
      [0, 'A completely different text about metric cache units'],
      [9, 'New document on deploy caching'],
      [2, 'The user prefers metric units and dark mode'],
    ];
    const fresh = build(final);
    expect(index.size).toBe(fresh.size);
    expect(index.termCount).toBe(fresh.termCount);
    expect(index.has(17)).toBe(false);
    for (const q of QUERIES) {
      const got = index.search(q);
      expect(new Map([...got].sort((a, b) => a[0] - b[0]))).toEqual(new Map([...fresh.search(q)].sort((a, b) => a[0] - b[0])));
      expectScores(got, reference(tokenized(final), tokenize(q)));
    }
  });

  it('survives random churn: matches a fresh index and the reference (searchAmong too), and forgets unused terms', () => {
    const rand = rng(7);
    const vocab = Array.from({ length: 60 }, (_, i) => `w${i}`);
    const word = () => vocab[Math.floor(rand() ** 2 * vocab.length)]!; // skewed: some terms are common
    const text = () => Array.from({ length: 1 + Math.floor(rand() * 12) }, word).join(' ');
    const index = new Bm25Index();
    const live = new Map<number, string>();
    for (let step = 0; step < 3000; step++) {
      const id = Math.floor(rand() * 80);
      if (rand() < 0.35) {
        index.remove(id);
        live.delete(id);
      } else {
        const t = text();
        index.add(id, t);
        live.set(id, t);
      }
      if (step % 500 === 499) {
        const docs = [...live];
        const fresh = build(docs);
        expect(index.size).toBe(live.size);
        expect(index.termCount).toBe(fresh.termCount);
        for (let q = 0; q < 5; q++) {
          const query = `${word()} ${word()} ${word()}`;
          const full = reference(tokenized(docs), tokenize(query));
          expectScores(index.search(query), full);
          // searchAmong over a random few: the reference's scores of those few.
          const some = docs.map(([id]) => id).filter(() => rand() < 0.2);
          expectScores(index.searchAmong(query, some), new Map([...full].filter(([id]) => some.includes(id))));
        }
      }
    }
    for (const id of [...live.keys()]) index.remove(id);
    expect(index.size).toBe(0);
    expect(index.termCount).toBe(0);
    expect(index.search('w1 w2 w3').size).toBe(0);
  });
});

describe('Bm25Index: candidates', () => {
  it('scores only accepted documents, with the unfiltered scores, asking once per document', () => {
    const index = build(CORPUS);
    const asked: number[] = [];
    const filtered = index.search('cache cache deploy search', (doc) => {
      asked.push(doc);
      return doc % 2 === 1;
    });
    const all = index.search('cache cache deploy search');
    expect([...filtered.keys()].sort((a, b) => a - b)).toEqual([1, 3, 17]);
    for (const [id, s] of filtered) expect(s).toBe(all.get(id));
    expect([...asked].sort((a, b) => a - b)).toEqual([...all.keys()].sort((a, b) => a - b)); // matching documents only, once each
    expect(index.search('cache', () => false).size).toBe(0);
  });

  it('only a strict true accepts', () => {
    const index = build(CORPUS);
    expect(index.search('cache', (() => 1) as unknown as (doc: number) => boolean).size).toBe(0);
  });

  it('allows a search from inside the predicate, and recovers when the predicate throws', () => {
    const index = build(CORPUS);
    const inner: Array<Map<number, number>> = [];
    const outer = index.search('cache', (doc) => {
      inner.push(index.search('deploy'));
      return doc !== 3;
    });
    expect([...outer.keys()].sort((a, b) => a - b)).toEqual([0, 1, 17]);
    for (const m of inner) expect(m).toEqual(index.search('deploy'));
    expect(() =>
      index.search('cache', () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expectScores(index.search('cache'), reference(tokenized(CORPUS), tokenize('cache')));
  });
});

describe('Bm25Index: searchAmong', () => {
  it('skips ids not held and repeats; an empty query or list matches nothing; rejects a non-iterable', () => {
    const index = build(CORPUS);
    expect([...index.searchAmong('cache', [3, 3, 99, 0]).keys()]).toEqual([3, 0]);
    expect(index.searchAmong('', [0, 1]).size).toBe(0);
    expect(index.searchAmong('cache', []).size).toBe(0);
    expect(() => index.searchAmong('cache', 3 as never)).toThrow(new TypeError('Expected an iterable of document ids for docs but received 3 of type number'));
  });
});

describe('Bm25Index: validation', () => {
  it('rejects bad options', () => {
    expect(() => new Bm25Index({ k1: -1 })).toThrow(new RangeError('Expected finite number >= 0 for options.k1 but received -1 of type number'));
    expect(() => new Bm25Index({ k1: '1' as unknown as number })).toThrow(
      new TypeError("Expected finite number >= 0 for options.k1 but received '1' of type string"),
    );
    expect(() => new Bm25Index({ b: 1.5 })).toThrow(new RangeError('Expected number in [0, 1] for options.b but received 1.5 of type number'));
    expect(() => new Bm25Index({ b: -0.1 })).toThrow(new RangeError('Expected number in [0, 1] for options.b but received -0.1 of type number'));
    expect(() => new Bm25Index({ b: NaN })).toThrow(new RangeError('Expected number in [0, 1] for options.b but received NaN of type number'));
    expect(() => new Bm25Index({ b: null as unknown as number })).toThrow(new TypeError('Expected number in [0, 1] for options.b but received null'));
    expect(() => new Bm25Index({ k1: Infinity })).toThrow(
      new RangeError('Expected finite number >= 0 for options.k1 but received Infinity of type number'),
    );
    expect(() => new Bm25Index({ k: 1 } as unknown as { k1: number })).toThrow(
      new TypeError("Unknown option 'k' in options (expected one of: k1, b)"),
    );
    expect(() => new Bm25Index(null as unknown as {})).toThrow(new TypeError('Expected an options object for options but received null'));
  });

  it('rejects bad ids, texts, queries and predicates', () => {
    const index = new Bm25Index();
    expect(() => index.add(-1, 'x')).toThrow(new RangeError('Expected integer >= 0 for doc but received -1 of type number'));
    expect(() => index.add(1.5, 'x')).toThrow(new RangeError('Expected integer >= 0 for doc but received 1.5 of type number'));
    expect(() => index.add('1' as unknown as number, 'x')).toThrow(new TypeError("Expected integer >= 0 for doc but received '1' of type string"));
    expect(() => index.add(1, null as unknown as string)).toThrow(new TypeError('Expected string for text but received null'));
    expect(() => index.remove(NaN)).toThrow(new RangeError('Expected integer >= 0 for doc but received NaN of type number'));
    expect(() => index.search(3 as unknown as string)).toThrow(new TypeError('Expected string for query but received 3 of type number'));
    expect(() => index.search('x', 'yes' as unknown as () => boolean)).toThrow(
      new TypeError("Expected function for candidates but received 'yes' of type string"),
    );
    expect(index.size).toBe(0); // nothing half-added
  });

  it('a failed re-add leaves the old text in place', () => {
    const index = build([[1, 'cache']]);
    expect(() => index.add(1, 5 as unknown as string)).toThrow(TypeError);
    expect(index.search('cache').has(1)).toBe(true);
  });
});
