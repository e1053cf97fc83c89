import { describe, expect, it } from 'vitest';

import { DEFAULT_EXPERTS } from '../src/experts/routing/default-experts';
import { ProfileScorer, RELEVANCE_WEIGHTS, type ScoredExperts } from '../src/experts/routing/profile-scorer';
import { profileText } from '../src/experts/routing/profile';
import type { ExpertProfile } from '../src/experts/routing/types';
import { Bm25Index } from '../src/text/bm25';
import { HashedEmbedder } from '../src/text/hashed-embedder';

// Written for this test, independently of the profiles' keywords: how users actually ask.
const LABELLED: Record<string, string[]> = {
  python: [
    'How can I merge two dictionaries into one in Python?',
    "what's the cleanest way to read a text file line by line",
    'pip says the package is installed but importing it fails',
    'explain what a generator expression is and when to prefer it over a list',
    'how do I sort a list of tuples by the second element',
    'my pandas groupby returns a Series, I wanted a DataFrame',
    'how to call a shell command from a script and capture its output in python',
    'what is the difference between a staticmethod and a classmethod',
    'how to add type annotations to a function that returns either a string or None',
    'parse command line flags for my python tool',
    'how do I run several coroutines concurrently with asyncio.gather',
    'write a decorator that times how long a function takes',
    'how to iterate over two lists at the same time',
    'convert a numpy array to a python list',
    'how do I make a frozen dataclass with default values',
    'set up a virtual environment for a new project and pin dependencies',
  ],
  sql: [
    'How do I join three tables and only return customers that have placed an order?',
    'write a query that returns the top 5 products by revenue per category',
    'my SELECT on postgres takes 30 seconds, how do I read the EXPLAIN output',
    'what index should I add for a query filtering by user_id and sorting by date',
    'difference between LEFT JOIN and INNER JOIN',
    'how to compute a running total with a window function',
    'how do I find rows in one table that have no match in another',
    'insert a row or update it if the primary key already exists in mysql',
    'should I normalize this schema or keep the address columns in the users table',
    'what isolation level prevents phantom reads',
    'how to rename a column in sqlite',
    'count distinct users per day from the events table',
    'write a recursive CTE to walk an employee manager hierarchy',
    'how do foreign key constraints with ON DELETE CASCADE work',
    'my stored procedure is slow when called from the app but fast in the console',
    'group rows by month and sum the amounts',
  ],
  javascript: [
    'How do I wait for several promises at once in JavaScript?',
    "my React component doesn't re-render after I update the state array",
    "what's the difference between let and var in a for loop",
    'how to add a click event to every button on the page',
    'node script cannot use import statements, says cannot use import outside a module',
    'how to type a function parameter that can be a string or an array of strings in TypeScript',
    'how to remove duplicates from an array in js',
    'what does the event loop do with microtasks and setTimeout',
    'configure webpack to load css files',
    'how do I pass data from a child component to its parent in vue',
    'why does my arrow function not have its own this',
    'format a date as yyyy-mm-dd in javascript',
    'npm install fails with peer dependency conflicts',
    "how to store a user's theme preference in the browser",
    'write a jest test for an async function',
    'how do closures capture variables inside a loop',
  ],
  debug: [
    'My C program segfaults only when compiled with optimizations, how do I find out why?',
    'the service dies at random with out of memory after running for a day',
    'how do I read this Java stack trace and find the line that threw',
    'my unit test fails randomly about one time in twenty',
    'the process hangs forever at 100% CPU, how can I see where it is stuck',
    'valgrind reports invalid read of size 8, what does that mean',
    'two threads sometimes corrupt a shared counter',
    'the app worked yesterday and now throws an exception after a dependency update',
    'how to attach gdb to a running process',
    'my loop skips the last element of the array',
    'the program prints garbage values for an uninitialized variable',
    'how do I get a core dump when my binary crashes',
    'the error message says null reference but the object is clearly set',
    'step through the code line by line in VS Code',
    'add logging to figure out why a function returns the wrong value',
    'deadlock between two mutexes, how do I find it',
  ],
  ml: [
    "My neural net's training accuracy is 99% but test accuracy is 60%, what's going on?",
    'how do I pick a good learning rate for Adam',
    'what is the difference between precision and recall',
    'how to handle a dataset where only 2% of samples are positive',
    'fine tune a pretrained transformer on my own text classification data',
    'random forest vs gradient boosting for tabular data',
    'how to split data into train, validation and test sets properly',
    'my PyTorch training loop runs out of GPU memory',
    'what does dropout do in a network',
    'how to tune hyperparameters with grid search in scikit-learn',
    'which loss to use for multi-label classification',
    'why should I scale features before k-nearest neighbors',
    'build an LSTM to forecast a time series',
    'how do word embeddings capture meaning',
    'evaluate a regression model with RMSE and R squared',
    'my keras model predicts the same class for every input',
  ],
  api: [
    'What status code should my REST API return when a resource is not found?',
    'how do I secure my endpoints with JWT tokens',
    'the browser blocks my request to another domain with a CORS error',
    'how to implement rate limiting per API key',
    'design URLs for nested resources like users and their orders',
    'how do I receive webhooks from Stripe and verify them',
    'should I use GraphQL or REST for a mobile app backend',
    'how to return paginated results with a next cursor',
    'implement OAuth2 authorization code flow for a third-party login',
    'what headers do I need to send JSON in a POST request with curl',
    'make PUT requests idempotent and handle retries safely',
    'version my API without breaking existing clients',
    'generate client SDKs from an OpenAPI document',
    'my FastAPI endpoint returns 422 unprocessable entity',
    'call a third party API with a timeout and exponential backoff',
    'set up an API gateway in front of several microservices',
  ],
};

function defaults(options?: ConstructorParameters<typeof ProfileScorer>[0]): ProfileScorer {
  const scorer = new ProfileScorer(options);
  for (const p of DEFAULT_EXPERTS) scorer.set(p);
  return scorer;
}

const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i]!, 0);

/** Everything a score returns, as plain data (for exact comparisons). */
function plain(s: ScoredExperts) {
  return { ids: [...s.ids], relevance: [...s.relevance], features: [...s.features], parts: s.parts };
}

describe('ProfileScorer accuracy on the default experts', () => {
  it('routes realistic queries to the right expert', () => {
    const scorer = defaults();
    let right = 0;
    let total = 0;
    const perDomain: Record<string, number> = {};
    const misses: string[] = [];
    for (const [domain, queries] of Object.entries(LABELLED)) {
      expect(queries.length).toBeGreaterThanOrEqual(15);
      let ok = 0;
      for (const q of queries) {
        const scored = scorer.score(q);
        const got = scored.ids[scorer.top(scored, 1)[0]!];
        if (got === domain) ok++;
        else misses.push(`${domain} → ${got}: ${q}`);
      }
      perDomain[domain] = ok / queries.length;
      right += ok;
      total += queries.length;
    }
    const accuracy = right / total;
    console.log(`top-1 accuracy ${accuracy.toFixed(3)} (${right}/${total})`, perDomain, misses);
    expect(accuracy).toBeGreaterThanOrEqual(0.8);
    for (const share of Object.values(perDomain)) expect(share).toBeGreaterThanOrEqual(0.6);
  });

  it('keeps relevance in [0, 1], with or without a domain hint', () => {
    const scorer = defaults();
    for (const q of Object.values(LABELLED).flat()) {
      for (const ctx of [undefined, { domain: 'debug' }, { domain: 'sql', exclude: ['python'] }]) {
        for (const r of scorer.score(q, ctx).relevance) {
          expect(r).toBeGreaterThanOrEqual(0);
          expect(r).toBeLessThanOrEqual(1);
        }
      }
    }
  });
});

describe('ProfileScorer signals against float64 references', () => {
  const embedder = new HashedEmbedder({ dimensions: 256 });
  const queries = [...LABELLED['sql']!.slice(0, 4), ...LABELLED['debug']!.slice(0, 4), 'how is it'];

  it('cosine equals the cosine of the embedder’s vectors', () => {
    const scorer = defaults();
    for (const q of queries) {
      const scored = scorer.score(q);
      const [qv] = embedder.embed([q]);
      const qn = Math.sqrt(dot(qv!, qv!));
      scored.ids.forEach((id, i) => {
        const [pv] = embedder.embed([profileText(DEFAULT_EXPERTS.find((p) => p.id === id)!)]);
        const ref = qn === 0 ? 0 : dot(qv!, pv!) / (qn * Math.sqrt(dot(pv!, pv!)));
        expect(Math.abs(scored.parts[i]!.cosine - ref)).toBeLessThan(1e-5);
      });
      // features: the query embedding at unit length
      expect([...scored.features]).toEqual([...qv!]);
    }
  });

  it('bm25 equals Bm25Index over the profile texts, normalised by the best', () => {
    const scorer = defaults();
    const index = new Bm25Index();
    const ids = scorer.ids();
    ids.forEach((id, r) => index.add(r, profileText(DEFAULT_EXPERTS.find((p) => p.id === id)!)));
    for (const q of queries) {
      const hits = index.search(q);
      const best = Math.max(0, ...hits.values());
      const scored = scorer.score(q);
      scored.ids.forEach((_, r) => {
        const ref = best === 0 ? 0 : (hits.get(r) ?? 0) / best;
        expect(Math.abs(scored.parts[r]!.bm25 - ref)).toBeLessThan(1e-6);
        const base = RELEVANCE_WEIGHTS.cosine * Math.max(0, scored.parts[r]!.cosine) + RELEVANCE_WEIGHTS.bm25 * scored.parts[r]!.bm25;
        expect(Math.abs(scored.relevance[r]! - base)).toBeLessThan(1e-6);
      });
    }
  });

  it('bm25 stays exact for a profile term no text tokenizes to alone', () => {
    // "uses中" is one run of letters but two terms, "us" (stemmed "uses") and "中"; tokenizing
    // "us" again gives nothing (a stopword), so the scorer must score such profiles whole.
    const profiles: ExpertProfile[] = [
      { id: 'a', domain: 'x', description: 'it uses中 characters and more', keywords: ['alpha'] },
      { id: 'b', domain: 'y', description: 'other kinds of characters', keywords: ['beta'] },
    ];
    const scorer = new ProfileScorer();
    const index = new Bm25Index();
    profiles.forEach((p, r) => {
      scorer.set(p);
      index.add(r, profileText(p));
    });
    for (const q of ['what uses characters', '中 alpha', 'beta characters']) {
      const hits = index.search(q);
      const best = Math.max(...hits.values());
      const scored = scorer.score(q);
      scored.ids.forEach((_, r) => expect(scored.parts[r]!.bm25).toBeCloseTo((hits.get(r) ?? 0) / best, 9));
    }
  });
});

describe('ProfileScorer profile changes', () => {
  const rust: ExpertProfile = { id: 'rust', domain: 'rust', description: 'Rust ownership and lifetimes', keywords: ['borrow checker', 'cargo'] };
  const queries = ['left join is slow on postgres', 'borrow checker complains about lifetimes', 'segfault in my loop', 'how is it'];

  it('set, replace and remove leave the same state as a fresh scorer', () => {
    const scorer = defaults();
    scorer.set(rust);
    const sql2 = { ...DEFAULT_EXPERTS.find((p) => p.id === 'sql')!, description: 'Only PostgreSQL tuning', capacity: 2 };
    scorer.set(sql2);
    expect(scorer.remove('ml')).toBe(true);
    expect(scorer.remove('python')).toBe(true);
    scorer.set(DEFAULT_EXPERTS.find((p) => p.id === 'python')!);
    expect(scorer.remove('rust')).toBe(true);
    scorer.set(rust);
    scorer.score('warm the cache'); // a cached query must not survive a change
    scorer.set({ ...rust, keywords: ['cargo'] });

    const fresh = new ProfileScorer();
    // Other insertion order on purpose: the row order depends on ids only.
    for (const p of [{ ...rust, keywords: ['cargo'] }, ...DEFAULT_EXPERTS.filter((p) => p.id !== 'ml' && p.id !== 'sql').reverse(), sql2]) fresh.set(p);

    expect(scorer.ids()).toEqual(['api', 'debug', 'javascript', 'python', 'rust', 'sql']);
    expect(fresh.ids()).toEqual(scorer.ids());
    expect(scorer.size).toBe(6);
    expect(scorer.get('sql')).toEqual({ ...sql2, name: 'SQL expert' });
    expect(scorer.has('ml')).toBe(false);
    for (const q of [...queries, 'warm the cache']) expect(plain(scorer.score(q))).toEqual(plain(fresh.score(q)));
  });

  it('removing an unknown id returns false and changes nothing', () => {
    const scorer = defaults();
    const before = plain(scorer.score(queries[0]!));
    expect(scorer.remove('nope')).toBe(false);
    expect(plain(scorer.score(queries[0]!))).toEqual(before);
  });

  it('gives the same results from the cache, and features callers cannot corrupt', () => {
    const cached = defaults();
    const uncached = defaults({ cacheSize: 0 });
    for (const q of [...queries, ...queries]) {
      const a = cached.score(q);
      expect(plain(a)).toEqual(plain(uncached.score(q)));
      a.features.fill(7);
    }
  });

  it('works with no experts and with every expert excluded', () => {
    const empty = new ProfileScorer();
    const scored = empty.score('anything');
    expect(scored.ids).toEqual([]);
    expect(empty.top(scored, 3)).toEqual(new Int32Array(0));
    const scorer = defaults();
    expect(scorer.score('join', { exclude: scorer.ids().slice() }).ids).toEqual([]);
  });
});

describe('ProfileScorer context', () => {
  it('leaves excluded experts out and normalises bm25 over the rest', () => {
    const scorer = defaults();
    const q = 'left join with group by is slow on postgres';
    const all = scorer.score(q);
    const scored = scorer.score(q, { exclude: ['sql', 'not-an-expert'] });
    expect(scored.ids).toEqual(['api', 'debug', 'javascript', 'ml', 'python']);
    expect(scored.relevance.length).toBe(5);
    expect(scored.parts.length).toBe(5);
    expect(Math.max(...scored.parts.map((p) => p.bm25))).toBe(1);
    scored.ids.forEach((id, j) => expect(scored.parts[j]!.cosine).toBe(all.parts[all.ids.indexOf(id)]!.cosine));
  });

  it('adds the documented domain bonus to experts of the hinted domain only', () => {
    const scorer = defaults();
    const q = 'my function returns the wrong value';
    const plainScore = scorer.score(q);
    const hinted = scorer.score(q, { domain: 'debug' });
    hinted.ids.forEach((id, i) => {
      const base = plainScore.relevance[i]!;
      const bonus = id === 'debug' ? RELEVANCE_WEIGHTS.domainBonus * (1 - base) : 0;
      expect(hinted.parts[i]!.domainBonus).toBeCloseTo(bonus, 6);
      expect(hinted.relevance[i]).toBeCloseTo(base + bonus, 6);
    });
    expect(hinted.ids[scorer.top(hinted, 1)[0]!]).toBe('debug');
  });

  it('does not let a domain hint hide a much better match', () => {
    const scorer = defaults();
    const scored = scorer.score('left join with group by on a postgres table', { domain: 'javascript' });
    expect(scored.ids[scorer.top(scored, 1)[0]!]).toBe('sql');
  });
});

describe('ProfileScorer.top', () => {
  it('orders by relevance, ties by id, and clamps k to the experts scored', () => {
    const scorer = defaults();
    for (const q of LABELLED['ml']!.slice(0, 5)) {
      const scored = scorer.score(q);
      const ref = scored.ids.map((id, i) => ({ id, i, r: scored.relevance[i]! }))
        .sort((a, b) => b.r - a.r || (a.id < b.id ? -1 : 1)).map((e) => e.i);
      expect([...scorer.top(scored, 3)]).toEqual(ref.slice(0, 3));
      expect([...scorer.top(scored, 100)]).toEqual(ref);
    }
  });

  it('breaks ties deterministically by id, whatever the insertion order', () => {
    const twin = { name: 'Ops', domain: 'x', description: 'Kubernetes deployments and helm charts', keywords: ['kubectl'] };
    const scorer = new ProfileScorer();
    scorer.set({ id: 'zeta', ...twin });
    scorer.set({ id: 'beta', ...twin });
    scorer.set({ id: 'alpha', domain: 'y', description: 'Cooking recipes' });
    const scored = scorer.score('kubectl rollout of a helm chart');
    expect(scored.relevance[1]).toBe(scored.relevance[2]);
    expect(scored.relevance[1]).toBeGreaterThan(0);
    expect([...scorer.top(scored, 3)]).toEqual([1, 2, 0]); // beta, zeta, alpha
    // A query with no terms: every relevance 0, order by id.
    const none = scorer.score('how is it');
    expect([...none.relevance]).toEqual([0, 0, 0]);
    expect([...scorer.top(none, 3)]).toEqual([0, 1, 2]);
  });
});

describe('ProfileScorer input checks', () => {
  const base = { id: 'x', domain: 'd', description: 'text' };

  it('rejects a bad query', () => {
    const scorer = defaults();
    expect(() => scorer.score('')).toThrow(new RangeError("Expected non-empty string for text but received '' of type string"));
    expect(() => scorer.score(5 as unknown as string)).toThrow(new TypeError('Expected non-empty string for text but received 5 of type number'));
    expect(() => scorer.score('q', { exclude: 'sql' as unknown as string[] })).toThrow(
      new TypeError("Expected array of strings for context.exclude but received 'sql' of type string"),
    );
    expect(() => scorer.score('q', { domian: 'sql' } as never)).toThrow(
      new TypeError("Unknown option 'domian' in context (expected one of: domain, complexity, latencyBudgetMs, exclude)"),
    );
    expect(() => scorer.top(scorer.score('q'), 0)).toThrow(new RangeError('Expected integer >= 1 for k but received 0 of type number'));
  });

  it('rejects bad profile fields with exact messages', () => {
    const scorer = new ProfileScorer();
    expect(() => scorer.set({ ...base, id: '' })).toThrow(
      new RangeError("Expected string of 1 to 128 characters for profile.id but received '' of type string"),
    );
    expect(() => scorer.set({ ...base, id: 'a'.repeat(129) })).toThrow(
      new RangeError(`Expected string of 1 to 128 characters for profile.id but received '${'a'.repeat(40)}…' of type string`),
    );
    expect(() => scorer.set({ ...base, id: 7 as unknown as string })).toThrow(
      new TypeError('Expected string of 1 to 128 characters for profile.id but received 7 of type number'),
    );
    expect(() => scorer.set({ ...base, capacity: 0 })).toThrow(new RangeError('Expected integer >= 1 for profile.capacity but received 0 of type number'));
    expect(() => scorer.set({ ...base, keywords: ['ok', 5 as unknown as string] })).toThrow(
      new TypeError('Expected string for profile.keywords[1] but received 5 of type number'),
    );
    expect(() => scorer.set({ ...base, keywords: 'ok' as unknown as string[] })).toThrow(
      new TypeError("Expected array of strings for profile.keywords but received 'ok' of type string"),
    );
    expect(() => scorer.set({ ...base, domain: '' })).toThrow(new RangeError("Expected non-empty string for profile.domain but received '' of type string"));
    expect(() => scorer.set({ ...base, keyword: ['x'] } as never)).toThrow(
      new TypeError("Unknown option 'keyword' in profile (expected one of: id, name, domain, description, keywords, capacity)"),
    );
    expect(scorer.size).toBe(0);
    expect(scorer.set({ ...base, id: 'a'.repeat(128) }).capacity).toBe(4);
  });

  it('checks the embedder and refuses asynchronous ones', () => {
    const asyncEmbedder = { dimensions: 4, embed: async (t: readonly string[]) => t.map(() => new Float32Array(4)) };
    const scorer = new ProfileScorer({ embedder: asyncEmbedder });
    expect(() => scorer.set(base)).toThrow(
      new TypeError('Expected a synchronous embedder for ProfileScorer (routing is synchronous) but embedder.embed() returned a Promise'),
    );
    expect(scorer.size).toBe(0);
    const short = new ProfileScorer({ embedder: { dimensions: 4, embed: (t) => t.map(() => new Float32Array(3)) } });
    expect(() => short.set(base)).toThrow(
      new TypeError('Expected [Float32Array of length 4] for embedder.embed() result but received Float32Array of length 3'),
    );
    expect(() => new ProfileScorer({ dimensions: 8, embedder: new HashedEmbedder({ dimensions: 16 }) })).toThrow(
      new RangeError('Expected embedder.dimensions (16) for options.dimensions but received 8 of type number'),
    );
    expect(() => new ProfileScorer({ dimensions: 0 })).toThrow(new RangeError('Expected integer in [1, 65536] for options.dimensions but received 0 of type number'));
  });

  it('uses a custom synchronous embedder, normalising its vectors', () => {
    // Unnormalised 2-d vectors: cosine must not depend on their length.
    const embed = (texts: readonly string[]) => texts.map((t) => Float32Array.of(t.includes('cat') ? 3 : 0, 4));
    const scorer = new ProfileScorer({ embedder: { dimensions: 2, embed } });
    scorer.set({ id: 'cats', domain: 'pets', description: 'cat care' });
    const scored = scorer.score('a dog');
    expect(scored.parts[0]!.cosine).toBeCloseTo(0.8, 6);
    expect([...scored.features]).toEqual([0, 1]);
  });
});
