import { describe, expect, it } from 'vitest';

import { MemoryPriority, MemoryType } from '../src/index';
import { compileFilter } from '../src/memory/filter';
import type { MetadataValue } from '../src/memory/types';
import { describeBackends } from './support/postgres-server';
import { rng } from './support/random';

type Meta = Record<string, MetadataValue>;

const items: Meta[] = [
  { id: 0, lang: 'en', year: 2024, score: 0.5, draft: false, tags: ['ml', 'nlp'], note: 'hello world' },
  { id: 1, lang: 'es', year: 2025, score: 1, draft: true, tags: [], note: null },
  { id: 2, lang: 'en', year: '2023', tags: ['ops', 1, true, null] },
  { id: 3, year: 2022, score: -1, tags: 'ml' },
  { id: 4 },
];

/** Ids of the items the filter passes. */
function ids(filter: unknown, list: Meta[] = items): number[] {
  const pass = compileFilter(filter);
  return list.filter((m) => pass(m)).map((m) => m['id'] as number);
}

/** The error a bad filter throws, as `Kind: message`. */
function error(filter: unknown, name?: string): string {
  try {
    compileFilter(filter, name);
  } catch (e) {
    return `${(e as Error).constructor.name}: ${(e as Error).message}`;
  }
  return 'no error';
}

describe('compileFilter: field operators', () => {
  it('eq: exact scalar equality, shorthand, null, no coercion, never an array field', () => {
    expect(ids({ lang: 'en' })).toEqual([0, 2]);
    expect(ids({ lang: { eq: 'en' } })).toEqual([0, 2]);
    expect(ids({ year: 2024 })).toEqual([0]);
    expect(ids({ year: '2023' })).toEqual([2]);
    expect(ids({ year: 2023 })).toEqual([]); // no string/number coercion
    expect(ids({ draft: false })).toEqual([0]);
    expect(ids({ draft: 0 })).toEqual([]);
    expect(ids({ note: null })).toEqual([1]); // missing is not null
    expect(ids({ note: { eq: null } })).toEqual([1]);
    expect(ids({ tags: { eq: 'ml' } })).toEqual([3]); // the array fields do not match a scalar
    expect(ids({ score: { eq: 1 } })).toEqual([1]);
    expect(ids({ score: -0 })).toEqual([]);
    expect(compileFilter({ x: 0 })({ x: -0 })).toBe(true);
  });

  it('eq with an array compares the whole array in order', () => {
    expect(ids({ tags: { eq: ['ml', 'nlp'] } })).toEqual([0]);
    expect(ids({ tags: { eq: ['nlp', 'ml'] } })).toEqual([]);
    expect(ids({ tags: { eq: ['ml'] } })).toEqual([]);
    expect(ids({ tags: { eq: [] } })).toEqual([1]);
    expect(ids({ tags: { eq: ['ops', 1, true, null] } })).toEqual([2]);
    expect(ids({ tags: { ne: [] } })).toEqual([0, 2, 3, 4]);
  });

  it('ne: the negation of eq, true for a missing field', () => {
    expect(ids({ lang: { ne: 'en' } })).toEqual([1, 3, 4]);
    expect(ids({ note: { ne: null } })).toEqual([0, 2, 3, 4]);
    expect(ids({ year: { ne: 2024 } })).toEqual([1, 2, 3, 4]);
  });

  it('gt/gte/lt/lte: numbers with numbers, strings with strings, false across kinds and when missing', () => {
    expect(ids({ year: { gt: 2023 } })).toEqual([0, 1]);
    expect(ids({ year: { gte: 2024 } })).toEqual([0, 1]);
    expect(ids({ year: { lt: 2024 } })).toEqual([3]); // '2023' is a string: not compared with a number
    expect(ids({ year: { lte: 2024 } })).toEqual([0, 3]);
    expect(ids({ year: { gte: '2000' } })).toEqual([2]);
    expect(ids({ year: { lt: '3' } })).toEqual([2]);
    expect(ids({ score: { gt: -1 } })).toEqual([0, 1]);
    expect(ids({ score: { gte: -1, lt: 1 } })).toEqual([0, 3]); // several operators all hold
    expect(ids({ draft: { gt: 0 } })).toEqual([]); // booleans are not numbers
    expect(ids({ note: { lt: 'z' } })).toEqual([0]); // null is neither
    expect(ids({ tags: { gte: 'a' } })).toEqual([3]); // arrays never compare
    // Code-unit order: 'Z' (0x5a) < 'a' (0x61), '10' < '9'.
    expect(compileFilter({ s: { lt: 'a' } })({ s: 'Z' })).toBe(true);
    expect(compileFilter({ s: { lt: '9' } })({ s: '10' })).toBe(true);
    expect(compileFilter({ n: { lt: 9 } })({ n: 10 })).toBe(false);
  });

  it('in/nin: membership of the whole value; nin passes a missing field', () => {
    expect(ids({ lang: { in: ['en', 'fr'] } })).toEqual([0, 2]);
    expect(ids({ lang: { nin: ['en', 'fr'] } })).toEqual([1, 3, 4]);
    expect(ids({ year: { in: [2024, 2022, '2023'] } })).toEqual([0, 2, 3]);
    expect(ids({ note: { in: [null] } })).toEqual([1]);
    expect(ids({ draft: { in: [true] } })).toEqual([1]);
    expect(ids({ tags: { in: ['ml'] } })).toEqual([3]); // an array field is not a member
    expect(ids({ tags: { nin: ['ml'] } })).toEqual([0, 1, 2, 4]);
    expect(ids({ lang: { in: [] } })).toEqual([]);
    expect(ids({ lang: { nin: [] } })).toEqual([0, 1, 2, 3, 4]);
    expect(ids({ year: { in: ['2024'] } })).toEqual([]);
  });

  it('in/nin with long lists (looked up through a Set) agree with short ones', () => {
    const long = Array.from({ length: 50 }, (_, i) => 2000 + i).concat(['en', null, false]);
    expect(ids({ year: { in: long } })).toEqual([0, 1, 3]);
    expect(ids({ year: { nin: long } })).toEqual([2, 4]);
    expect(ids({ note: { in: long } })).toEqual([1]);
    expect(ids({ draft: { in: long } })).toEqual([0]);
    expect(ids({ tags: { in: long } })).toEqual([]);
  });

  it('contains: substring of a string, member of an array, false otherwise', () => {
    expect(ids({ note: { contains: 'lo w' } })).toEqual([0]);
    expect(ids({ note: { contains: '' } })).toEqual([0]);
    expect(ids({ tags: { contains: 'ml' } })).toEqual([0, 3]); // array member, and substring of 'ml'
    expect(ids({ tags: { contains: 'm' } })).toEqual([3]); // no substring of array elements
    expect(ids({ tags: { contains: 1 } })).toEqual([2]);
    expect(ids({ tags: { contains: true } })).toEqual([2]);
    expect(ids({ tags: { contains: null } })).toEqual([2]);
    expect(ids({ year: { contains: '20' } })).toEqual([2]); // numbers are not strings
    expect(ids({ year: { contains: 2024 } })).toEqual([]);
    expect(ids({ missing: { contains: 'x' } })).toEqual([]);
  });

  it('several fields in one object all hold; {} passes everything', () => {
    expect(ids({ lang: 'en', year: { gte: 2024 } })).toEqual([0]);
    expect(ids({ lang: 'en', tags: { contains: 'ops' } })).toEqual([2]);
    expect(ids({})).toEqual([0, 1, 2, 3, 4]);
    expect(ids({ NOT: {} })).toEqual([]);
  });

  it('looks only at own fields: names like constructor or __proto__ are ordinary', () => {
    expect(compileFilter({ constructor: { ne: null } })({})).toBe(true);
    expect(compileFilter({ constructor: { in: ['x'] } })({})).toBe(false);
    expect(compileFilter({ toString: { contains: 'function' } })({})).toBe(false);
    const meta = JSON.parse('{"__proto__": "p", "constructor": 3}') as Meta;
    expect(compileFilter(JSON.parse('{"__proto__": "p"}'))(meta)).toBe(true);
    expect(compileFilter({ constructor: { gt: 2 } })(meta)).toBe(true);
    expect(compileFilter({ x: 1 })(Object.assign(Object.create(null) as Meta, { x: 1 }))).toBe(true);
  });
});

describe('compileFilter: AND / OR / NOT', () => {
  it('combines, nests arbitrarily, and agrees with a reference evaluation', () => {
    expect(ids({ AND: [{ lang: 'en' }, { year: { gt: 2000 } }] })).toEqual([0]);
    expect(ids({ OR: [{ lang: 'es' }, { year: { lt: 2023 } }] })).toEqual([1, 3]);
    expect(ids({ NOT: { lang: 'en' } })).toEqual([1, 3, 4]);
    expect(ids({ NOT: { NOT: { lang: 'en' } } })).toEqual([0, 2]);
    expect(ids({ AND: [{ lang: 'en' }] })).toEqual([0, 2]);
    expect(ids({ OR: [{ id: 0 }, { id: 1 }, { id: 2 }, { id: 4 }] })).toEqual([0, 1, 2, 4]);
    expect(ids({ AND: [{ id: { gte: 0 } }, { id: { gte: 1 } }, { id: { gte: 2 } }] })).toEqual([2, 3, 4]);
    expect(
      ids({
        OR: [
          { AND: [{ lang: 'en' }, { NOT: { tags: { contains: 'ops' } } }] },
          { AND: [{ OR: [{ year: 2022 }, { year: 2025 }] }, { NOT: { score: { lt: 0 } } }] },
        ],
      }),
    ).toEqual([0, 1]);
  });

  it('a sub-filter shared by two branches is not a cycle', () => {
    const en = { lang: 'en' };
    expect(ids({ OR: [en, { AND: [en, { id: 2 }] }] })).toEqual([0, 2]);
  });
});

/** The documented semantics, interpreted directly (no compilation), for the randomized check. */
function interpret(f: Record<string, unknown>, m: Meta): boolean {
  if ('AND' in f) return (f['AND'] as Array<Record<string, unknown>>).every((g) => interpret(g, m));
  if ('OR' in f) return (f['OR'] as Array<Record<string, unknown>>).some((g) => interpret(g, m));
  if ('NOT' in f) return !interpret(f['NOT'] as Record<string, unknown>, m);
  return Object.entries(f).every(([field, cond]) => {
    const has = Object.keys(m).includes(field);
    const x = has ? m[field] : undefined;
    const c = cond !== null && typeof cond === 'object' ? (cond as Record<string, unknown>) : { eq: cond };
    return Object.entries(c).every(([op, y]) => {
      const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b) && has; // exact JSON equality
      const ordered = typeof x === typeof y && (typeof x === 'number' || typeof x === 'string');
      switch (op) {
        case 'eq':
          return same(x, y);
        case 'ne':
          return !same(x, y);
        case 'gt':
          return ordered && (x as number) > (y as number);
        case 'gte':
          return ordered && (x as number) >= (y as number);
        case 'lt':
          return ordered && (x as number) < (y as number);
        case 'lte':
          return ordered && (x as number) <= (y as number);
        case 'in':
          return has && !Array.isArray(x) && (y as unknown[]).some((e) => same(x, e));
        case 'nin':
          return !(has && !Array.isArray(x) && (y as unknown[]).some((e) => same(x, e)));
        case 'contains':
          if (typeof x === 'string' && typeof y === 'string') return x.indexOf(y) >= 0;
          return Array.isArray(x) && x.some((e) => same(e, y));
        default:
          throw new Error(op);
      }
    });
  });
}

/** Random metadata and filters over the fields f, g, h, drawn from `rand`. */
function randomFilters(rand: () => number) {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const scalars = [0, 1, 2, -1, 2.5, 'a', 'b', 'ab', '', 'B', true, false, null] as const;
  const fields = ['f', 'g', 'h'];
  const value = (): MetadataValue => (rand() < 0.25 ? Array.from({ length: Math.floor(rand() * 3) }, () => pick(scalars)) : pick(scalars));
  const meta = (): Meta => Object.fromEntries(fields.filter(() => rand() < 0.7).map((k) => [k, value()]));
  const condition = (): unknown => {
    if (rand() < 0.3) return pick(scalars);
    const ops = ['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'in', 'nin', 'contains'];
    return Object.fromEntries(
      ops.filter(() => rand() < 0.25).concat(pick(ops)).map((op) => {
        if (op === 'in' || op === 'nin') return [op, Array.from({ length: Math.floor(rand() * 12) }, () => pick(scalars))];
        if (op.startsWith('g') || op.startsWith('l')) return [op, pick([0, 1, 2.5, -1, 'a', 'b', ''])];
        if ((op === 'eq' || op === 'ne') && rand() < 0.2) return [op, Array.from({ length: Math.floor(rand() * 2) }, () => pick(scalars))];
        return [op, pick(scalars)];
      }),
    );
  };
  const filter = (depth: number): Record<string, unknown> => {
    const r = rand();
    const sub = () => Array.from({ length: 1 + Math.floor(rand() * 3) }, () => filter(depth + 1));
    if (depth < 3 && r < 0.15) return { AND: sub() };
    if (depth < 3 && r < 0.3) return { OR: sub() };
    if (depth < 3 && r < 0.4) return { NOT: filter(depth + 1) };
    return Object.fromEntries(fields.filter(() => rand() < 0.5).map((k) => [k, condition()]));
  };
  return { meta, filter: () => filter(0) };
}

// The same filters through MemAgent on each store: metadata goes into the store and comes back
// (a reopen reads it from the file or the database) before retrieveMemory filters on it.
describeBackends('MemAgent: metadata filters through the store', (backend) => {
  it('retrieves exactly the items the direct interpretation passes, for 300 random filters, after a reopen', async () => {
    const { meta, filter } = randomFilters(rng(23));
    const metas = Array.from({ length: 40 }, meta);
    const o = { sweepIntervalMs: 0, dedupThreshold: 2 };
    const w = await backend.open(o, 'filters');
    const ids: string[] = [];
    for (const [i, m] of metas.entries()) ids.push(await w.storeMemory(`item number ${i}`, MemoryType.SEMANTIC, MemoryPriority.LOW, [], { metadata: m }));
    await w.close();
    const m = await backend.open(o, 'filters');
    ids.forEach((id, i) => expect(m.getMemory(id)!.metadata).toEqual(metas[i]));
    let passed = 0;
    for (let i = 0; i < 300; i++) {
      const f = filter();
      const want = ids.filter((_, k) => interpret(f, metas[k]!)).sort();
      const got = (await m.retrieveMemory({ filter: f as never, topK: 100, maxTokens: 1e6 })).chunks.map((c) => c.id).sort();
      if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`${JSON.stringify(f)}: expected ${want.length} items, got ${got.length}`);
      passed += want.length;
    }
    expect(passed).toBeGreaterThan(1000); // both outcomes are well represented
    expect(passed).toBeLessThan(11_000);
    await m.close();
  });
});

describe('compileFilter: randomized against a direct interpretation', () => {
  it('agrees on 3,000 random filters over random metadata', () => {
    const { meta, filter } = randomFilters(rng(11));
    const metas = Array.from({ length: 40 }, meta);
    let passed = 0;
    for (let i = 0; i < 3000; i++) {
      const f = filter();
      const pass = compileFilter(f);
      for (const m of metas) {
        const want = interpret(f, m);
        if (pass(m) !== want) throw new Error(`${JSON.stringify(f)} on ${JSON.stringify(m)}: expected ${want}`);
        if (want) passed++;
      }
    }
    expect(passed).toBeGreaterThan(10_000); // both outcomes are well represented
    expect(passed).toBeLessThan(110_000);
  });
});

describe('compileFilter: validation', () => {
  it('rejects a filter that is not a plain object', () => {
    expect(error(3)).toBe('TypeError: Expected filter object for filter but received 3 of type number');
    expect(error(null)).toBe('TypeError: Expected filter object for filter but received null');
    expect(error(undefined)).toBe('TypeError: Expected filter object for filter but received undefined');
    expect(error([{ a: 1 }])).toBe('TypeError: Expected filter object for filter but received Array of length 1');
    expect(error(new Date(0))).toBe('TypeError: Expected filter object for filter but received Date object');
    expect(error('lang=en')).toBe("TypeError: Expected filter object for filter but received 'lang=en' of type string");
    expect(error(1, 'options.filter')).toBe('TypeError: Expected filter object for options.filter but received 1 of type number');
  });

  it('rejects a bad AND/OR list, naming its path', () => {
    expect(error({ OR: [{ a: 1 }, { AND: 3 }] })).toBe(
      'TypeError: Expected array of filters for filter.OR[1].AND but received 3 of type number',
    );
    expect(error({ AND: { a: 1 } })).toBe('TypeError: Expected array of filters for filter.AND but received object');
    expect(error({ AND: [] })).toBe('RangeError: Expected non-empty array of filters for filter.AND but received Array of length 0');
    expect(error({ NOT: { OR: [] } })).toBe(
      'RangeError: Expected non-empty array of filters for filter.NOT.OR but received Array of length 0',
    );
    expect(error({ AND: [{ a: 1 }, 'b'] })).toBe("TypeError: Expected filter object for filter.AND[1] but received 'b' of type string");
    expect(error({ OR: [null] })).toBe('TypeError: Expected filter object for filter.OR[0] but received null');
  });

  it('rejects NOT of a non-object', () => {
    expect(error({ NOT: [{ a: 1 }] })).toBe('TypeError: Expected filter object for filter.NOT but received Array of length 1');
    expect(error({ NOT: true })).toBe('TypeError: Expected filter object for filter.NOT but received true of type boolean');
    expect(error({ NOT: undefined })).toBe('TypeError: Expected filter object for filter.NOT but received undefined');
  });

  it('rejects a combinator mixed with fields or with another combinator', () => {
    expect(error({ AND: [{ a: 1 }], lang: 'en' })).toBe(
      "TypeError: Expected AND, OR or NOT alone, or field conditions only, for filter but received keys 'AND', 'lang'",
    );
    expect(error({ OR: [{ x: { lang: 'en', NOT: { a: 1 } } }] })).toBe(
      "TypeError: Unknown operator 'lang' in filter.OR[0].x (expected one of: eq, ne, gt, gte, lt, lte, in, nin, contains)",
    );
    expect(error({ OR: [{ lang: 'en', NOT: { a: 1 } }] })).toBe(
      "TypeError: Expected AND, OR or NOT alone, or field conditions only, for filter.OR[0] but received keys 'lang', 'NOT'",
    );
    expect(error({ AND: [{ a: 1 }], OR: [{ b: 1 }] })).toBe(
      "TypeError: Expected AND, OR or NOT alone, or field conditions only, for filter but received keys 'AND', 'OR'",
    );
  });

  it('rejects unknown operators, nested objects as values, and empty conditions', () => {
    expect(error({ year: { gt: 1, between: [1, 2] } })).toBe(
      "TypeError: Unknown operator 'between' in filter.year (expected one of: eq, ne, gt, gte, lt, lte, in, nin, contains)",
    );
    expect(error({ a: { b: { c: 1 } } })).toBe(
      "TypeError: Unknown operator 'b' in filter.a (expected one of: eq, ne, gt, gte, lt, lte, in, nin, contains)",
    );
    expect(error({ a: { eq: { c: 1 } } })).toBe('TypeError: Expected string, finite number, boolean or null for filter.a.eq but received object');
    expect(error({ year: {} })).toBe(
      'RangeError: Expected condition with at least one of eq, ne, gt, gte, lt, lte, in, nin, contains for filter.year but received object',
    );
    expect(error({ a: { $eq: 1 } })).toBe(
      "TypeError: Unknown operator '$eq' in filter.a (expected one of: eq, ne, gt, gte, lt, lte, in, nin, contains)",
    );
  });

  it('rejects field values that are not conditions or scalars', () => {
    const expected = 'condition object or string, finite number, boolean or null';
    expect(error({ tags: ['a', 'b'] })).toBe(`TypeError: Expected ${expected} for filter.tags but received Array of length 2`);
    expect(error({ a: undefined })).toBe(`TypeError: Expected ${expected} for filter.a but received undefined`);
    expect(error({ a: NaN })).toBe(`RangeError: Expected ${expected} for filter.a but received NaN of type number`);
    expect(error({ a: Infinity })).toBe(`RangeError: Expected ${expected} for filter.a but received Infinity of type number`);
    expect(error({ a: new Date(0) })).toBe(`TypeError: Expected ${expected} for filter.a but received Date object`);
    expect(error({ a: 1n })).toBe(`TypeError: Expected ${expected} for filter.a but received 1 of type bigint`);
    expect(error({ a: () => 1 })).toBe(`TypeError: Expected ${expected} for filter.a but received a function`);
  });

  it('rejects wrong operand types for each operator', () => {
    const scalar = 'string, finite number, boolean or null';
    expect(error({ a: { eq: undefined } })).toBe(`TypeError: Expected ${scalar} for filter.a.eq but received undefined`);
    expect(error({ a: { ne: NaN } })).toBe(`RangeError: Expected ${scalar} for filter.a.ne but received NaN of type number`);
    expect(error({ a: { eq: ['x', [1]] } })).toBe(`TypeError: Expected ${scalar} for filter.a.eq[1] but received Array of length 1`);
    expect(error({ a: { eq: ['x', { y: 1 }] } })).toBe(`TypeError: Expected ${scalar} for filter.a.eq[1] but received object`);
    expect(error({ a: { gt: true } })).toBe('TypeError: Expected finite number or string for filter.a.gt but received true of type boolean');
    expect(error({ a: { gte: null } })).toBe('TypeError: Expected finite number or string for filter.a.gte but received null');
    expect(error({ a: { lt: [1] } })).toBe('TypeError: Expected finite number or string for filter.a.lt but received Array of length 1');
    expect(error({ a: { lte: -Infinity } })).toBe(
      'RangeError: Expected finite number or string for filter.a.lte but received -Infinity of type number',
    );
    expect(error({ a: { in: 'en' } })).toBe(`TypeError: Expected array of ${scalar} for filter.a.in but received 'en' of type string`);
    expect(error({ a: { nin: { x: 1 } } })).toBe(`TypeError: Expected array of ${scalar} for filter.a.nin but received object`);
    expect(error({ a: { in: [1, 2, NaN] } })).toBe(`RangeError: Expected ${scalar} for filter.a.in[2] but received NaN of type number`);
    expect(error({ a: { nin: ['x', ['y']] } })).toBe(`TypeError: Expected ${scalar} for filter.a.nin[1] but received Array of length 1`);
    expect(error({ a: { contains: ['x'] } })).toBe(`TypeError: Expected ${scalar} for filter.a.contains but received Array of length 1`);
    expect(error({ a: { contains: NaN } })).toBe(`RangeError: Expected ${scalar} for filter.a.contains but received NaN of type number`);
  });

  it('reports the first error in a deeply nested filter with its full path', () => {
    expect(error({ AND: [{ a: 1 }, { OR: [{ b: 2 }, { NOT: { c: { in: [1, {}] } } }] }] })).toBe(
      'TypeError: Expected string, finite number, boolean or null for filter.AND[1].OR[1].NOT.c.in[1] but received object',
    );
  });

  it('rejects a cyclic filter instead of overflowing the stack', () => {
    const f: Record<string, unknown> = {};
    f['NOT'] = { AND: [f] };
    expect(error(f)).toBe('TypeError: Expected acyclic filter for filter.NOT.AND[0] but received object');
  });

  it('rejects a filter nested deeper than 64 with a RangeError naming the path, not a stack overflow', () => {
    const nest = (depth: number, leaf: unknown = { a: 1 }) => {
      let f: unknown = leaf;
      for (let i = 1; i < depth; i++) f = i % 2 === 0 ? { NOT: f } : { AND: [f] };
      return f;
    };
    expect(ids(nest(64))).toEqual(ids({ NOT: { a: 1 } })); // 63 wrappers, an odd count of NOT: the limit itself passes
    const path = `filter${'.NOT.AND[0]'.repeat(32)}`;
    expect(error(nest(65))).toBe(`RangeError: Expected filter nested at most 64 deep for ${path} but received object`);
    expect(error(nest(20_000))).toMatch(/^RangeError: Expected filter nested at most 64 deep for filter\.AND\[0\]\.NOT/);
    const notChain = Array.from({ length: 20_000 }).reduce<unknown>((f) => ({ NOT: f }), { a: 1 });
    expect(error(notChain, 'query.filter')).toBe(`RangeError: Expected filter nested at most 64 deep for query.filter${'.NOT'.repeat(64)} but received object`);
  });

  it('rejects a non-string name', () => {
    expect(() => compileFilter({}, 3 as unknown as string)).toThrow('Expected string for name but received 3 of type number');
  });
});
