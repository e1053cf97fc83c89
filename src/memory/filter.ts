import * as v from '../validate';
// FieldCondition and MetadataFilter are imported for the doc links.
import type { FieldCondition, MetadataFilter, MetadataValue } from './types';

/** A compiled filter: true when an item's metadata passes. */
type Predicate = (metadata: Readonly<Record<string, MetadataValue>>) => boolean;
/** A compiled test of one field's value (`undefined` = the field is missing). */
type ValueTest = (value: MetadataValue | undefined) => boolean;
type Scalar = string | number | boolean | null;

const COMBINATORS = ['AND', 'OR', 'NOT'] as const;
const OPERATORS = ['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'in', 'nin', 'contains'] as const;
type Operator = (typeof OPERATORS)[number];
const SCALAR = 'string, finite number, boolean or null';
/** Above this many entries an `in`/`nin` list is looked up through a Set. */
const SET_THRESHOLD = 8;
/** Deepest nesting of filter objects (the root is depth 1): compiling recurses once per level. */
export const MAX_FILTER_DEPTH = 64;

const hasOwn = Object.prototype.hasOwnProperty;

/**
 * Validates a metadata filter (see {@link MetadataFilter}) once and compiles it into a
 * predicate over item metadata, built from closures so that evaluating it on thousands of
 * items costs no parsing.
 *
 * Semantics, beyond those documented on {@link FieldCondition}:
 * - a missing field fails every operator except `ne` and `nin`, which it passes;
 *   `{ eq: null }` does not match a missing field (missing is not null);
 * - `eq`/`ne` with a scalar never equal an array field (use `contains`); with an array they
 *   compare the whole array, element by element, in order;
 * - `in`/`nin` test the field's whole value, so an array field is never `in` a list;
 * - an empty filter `{}` matches everything; an empty `in` list matches nothing.
 *
 * Every error is thrown before anything is evaluated and names the exact place in the filter:
 * a `TypeError` for a value of the wrong kind, a `RangeError` for the right kind with a bad
 * value (an empty `AND`/`OR`, a non-finite number, filter objects nested deeper than
 * {@link MAX_FILTER_DEPTH}, 64).
 *
 * @param filter - the filter, usually parsed JSON.
 * @param name - what to call the filter in error messages; default `'filter'`.
 * @returns a predicate: `true` when the metadata passes.
 * @throws TypeError | RangeError - naming the path, e.g.
 *   `Expected array of filters for filter.OR[1].AND but received 3 of type number`.
 *
 * @example
 * ```ts
 * const pass = compileFilter({ OR: [{ lang: 'en' }, { year: { gte: 2024 }, tags: { contains: 'ml' } }] });
 * pass({ lang: 'es', year: 2025, tags: ['ml', 'nlp'] }); // true
 * ```
 */
export function compileFilter(filter: unknown, name = 'filter'): (metadata: Readonly<Record<string, MetadataValue>>) => boolean {
  v.string('name', name);
  return compileNode(filter, name, new Set());
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * `ancestors` holds the objects on the path from the root, to reject cycles and filters nested
 * deeper than MAX_FILTER_DEPTH instead of overflowing the stack.
 */
function compileNode(node: unknown, path: string, ancestors: Set<object>): Predicate {
  if (!isPlainObject(node)) throw v.typeError(path, 'filter object', node);
  if (ancestors.has(node)) throw v.typeError(path, 'acyclic filter', node);
  if (ancestors.size >= MAX_FILTER_DEPTH) throw v.rangeError(path, `filter nested at most ${MAX_FILTER_DEPTH} deep`, node);
  ancestors.add(node);
  try {
    const keys = Object.keys(node);
    const combinators = keys.filter((k) => (COMBINATORS as readonly string[]).includes(k));
    if (combinators.length > 0 && keys.length > 1) {
      const list = keys.map((k) => `'${k}'`).join(', ');
      throw new TypeError(`Expected AND, OR or NOT alone, or field conditions only, for ${path} but received keys ${list}`);
    }
    const key = combinators[0];
    if (key === 'NOT') {
      const inner = compileNode(node['NOT'], `${path}.NOT`, ancestors);
      return (m) => !inner(m);
    }
    if (key === 'AND' || key === 'OR') return compileList(key, node[key], `${path}.${key}`, ancestors);
    return allOf(keys.map((field) => compileField(field, node[field], path)));
  } finally {
    ancestors.delete(node);
  }
}

function compileList(key: 'AND' | 'OR', list: unknown, path: string, ancestors: Set<object>): Predicate {
  if (!Array.isArray(list)) throw v.typeError(path, 'array of filters', list);
  if (list.length === 0) throw v.rangeError(path, 'non-empty array of filters', list);
  const parts = list.map((item, i) => compileNode(item, `${path}[${i}]`, ancestors));
  return key === 'AND' ? allOf(parts) : anyOf(parts);
}

// Specialised for one and two parts: most filters are that small, and a loop-free closure is faster.
function allOf<T>(parts: Array<(x: T) => boolean>): (x: T) => boolean {
  const [a, b] = parts;
  if (parts.length === 0 || a === undefined) return () => true;
  if (parts.length === 1) return a;
  if (parts.length === 2 && b !== undefined) return (x) => a(x) && b(x);
  return (x) => {
    for (const p of parts) if (!p(x)) return false;
    return true;
  };
}

function anyOf(parts: Predicate[]): Predicate {
  const [a, b] = parts;
  if (a === undefined) return () => false;
  if (parts.length === 1) return a;
  if (parts.length === 2 && b !== undefined) return (m) => a(m) || b(m);
  return (m) => {
    for (const p of parts) if (p(m)) return true;
    return false;
  };
}

function compileField(field: string, condition: unknown, parent: string): Predicate {
  const path = `${parent}.${field}`;
  let test: ValueTest;
  if (isPlainObject(condition)) {
    const ops = Object.keys(condition);
    if (ops.length === 0) throw v.rangeError(path, `condition with at least one of ${OPERATORS.join(', ')}`, condition);
    test = allOf(ops.map((op) => compileOperator(op, condition[op], path)));
  } else if (isScalar(condition)) {
    test = compileOperator('eq', condition, path);
  } else {
    const expected = `condition object or ${SCALAR}`;
    if (typeof condition === 'number') throw v.rangeError(path, expected, condition);
    throw v.typeError(path, expected, condition);
  }
  // Own properties only: a field named 'constructor' or '__proto__' must not see Object.prototype.
  return (m) => test(hasOwn.call(m, field) ? m[field] : undefined);
}

function isScalar(x: unknown): x is Scalar {
  return x === null || typeof x === 'string' || typeof x === 'boolean' || (typeof x === 'number' && Number.isFinite(x));
}

function scalar(path: string, x: unknown): Scalar {
  if (isScalar(x)) return x;
  if (typeof x === 'number') throw v.rangeError(path, SCALAR, x);
  throw v.typeError(path, SCALAR, x);
}

function compileOperator(op: string, operand: unknown, parent: string): ValueTest {
  if (!(OPERATORS as readonly string[]).includes(op)) {
    throw new TypeError(`Unknown operator '${op}' in ${parent} (expected one of: ${OPERATORS.join(', ')})`);
  }
  const path = `${parent}.${op}`;
  switch (op as Operator) {
    case 'eq':
      return equals(path, operand);
    case 'ne': {
      const eq = equals(path, operand);
      return (x) => !eq(x);
    }
    case 'gt':
    case 'gte':
    case 'lt':
    case 'lte':
      return compare(op as 'gt' | 'gte' | 'lt' | 'lte', path, operand);
    case 'in':
      return member(path, operand);
    case 'nin': {
      const inList = member(path, operand);
      return (x) => !inList(x);
    }
    case 'contains': {
      const s = scalar(path, operand);
      if (typeof s === 'string') return (x) => (typeof x === 'string' ? x.includes(s) : Array.isArray(x) && x.includes(s));
      return (x) => Array.isArray(x) && x.includes(s);
    }
  }
}

function equals(path: string, operand: unknown): ValueTest {
  if (!Array.isArray(operand)) {
    const s = scalar(path, operand);
    return (x) => x === s;
  }
  const want = operand.map((e, i) => scalar(`${path}[${i}]`, e));
  return (x) => Array.isArray(x) && x.length === want.length && x.every((e, i) => e === want[i]);
}

function compare(op: 'gt' | 'gte' | 'lt' | 'lte', path: string, operand: unknown): ValueTest {
  if (typeof operand === 'number') {
    if (!Number.isFinite(operand)) throw v.rangeError(path, 'finite number or string', operand);
  } else if (typeof operand !== 'string') {
    throw v.typeError(path, 'finite number or string', operand);
  }
  const kind = typeof operand;
  const y = operand;
  // One closure per operator: the comparison is fixed at compile time. The kind check makes
  // numbers against strings (and arrays, null, missing) false rather than coerced.
  switch (op) {
    case 'gt':
      return (x) => typeof x === kind && (x as typeof y) > y;
    case 'gte':
      return (x) => typeof x === kind && (x as typeof y) >= y;
    case 'lt':
      return (x) => typeof x === kind && (x as typeof y) < y;
    case 'lte':
      return (x) => typeof x === kind && (x as typeof y) <= y;
  }
}

function member(path: string, operand: unknown): ValueTest {
  if (!Array.isArray(operand)) throw v.typeError(path, `array of ${SCALAR}`, operand);
  const list = operand.map((e, i) => scalar(`${path}[${i}]`, e));
  // Set.has uses SameValueZero, which equals === here: NaN cannot occur in a validated list.
  if (list.length > SET_THRESHOLD) {
    const set = new Set<Scalar>(list);
    return (x) => x !== undefined && !Array.isArray(x) && set.has(x);
  }
  return (x) => x !== undefined && !Array.isArray(x) && list.includes(x);
}
