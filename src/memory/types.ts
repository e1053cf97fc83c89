/**
 * Public types of the MemAgent memory: kinds, priorities, items, queries and results.
 * @module
 */

/**
 * The five kinds of memory of the seed: what happened (episodic), facts (semantic), how to do
 * things (procedural), scratch state of the current task (working) and consolidated knowledge
 * (long-term). The kind is a label to filter on; all kinds are stored and ranked alike.
 *
 * @example
 * ```ts
 * memory.storeMemory('The user prefers metric units', MemoryType.SEMANTIC, MemoryPriority.HIGH, ['prefs']);
 * ```
 */
export enum MemoryType {
  EPISODIC = 'episodic',
  SEMANTIC = 'semantic',
  PROCEDURAL = 'procedural',
  WORKING = 'working',
  LONG_TERM = 'long_term',
}

/**
 * How much an item matters: it weighs in ranking and retention; `CRITICAL` items are never
 * evicted to make room. Ordered: `LOW < MEDIUM < HIGH < CRITICAL`.
 *
 * @example
 * ```ts
 * const q: MemoryQuery = { queryText: 'deadline', minPriority: MemoryPriority.HIGH };
 * ```
 */
export enum MemoryPriority {
  LOW = 0,
  MEDIUM = 1,
  HIGH = 2,
  CRITICAL = 3,
}

/**
 * Who a memory belongs to, as in mem0: a user, an agent, a session (run). A query's scope
 * matches items whose fields equal each one it sets.
 *
 * @example
 * ```ts
 * const scope: MemoryScope = { userId: 'u1', sessionId: 's42' };
 * ```
 */
export interface MemoryScope {
  /** The user the memory is about or belongs to. */
  userId?: string;
  /** The agent that owns the memory. */
  agentId?: string;
  /** The session (run, conversation) it came from. */
  sessionId?: string;
}

/**
 * A value in item metadata: JSON scalars and arrays of them.
 *
 * @example
 * ```ts
 * const v: MetadataValue = ['en', 'es'];
 * ```
 */
export type MetadataValue = string | number | boolean | null | Array<string | number | boolean | null>;

/**
 * A comparison on one metadata field. `eq`/`ne` compare JSON scalars exactly; `gt`, `gte`,
 * `lt`, `lte` compare numbers with numbers and strings with strings (code-unit order), and
 * are false across kinds or for a missing field; `in`/`nin` test membership in a list;
 * `contains` is substring for a string field and membership for an array field. Several
 * operators in one object must all hold.
 *
 * @example
 * ```ts
 * const c: FieldCondition = { gte: 3, lt: 10 };
 * ```
 */
export interface FieldCondition {
  /** Equal (an array compares whole, in order); never true for a missing field. */
  eq?: MetadataValue;
  /** Not equal; true for a missing field. */
  ne?: MetadataValue;
  /** Greater than (number vs number, string vs string). */
  gt?: number | string;
  /** Greater than or equal. */
  gte?: number | string;
  /** Less than. */
  lt?: number | string;
  /** Less than or equal. */
  lte?: number | string;
  /** The field's value is one of these. */
  in?: Array<string | number | boolean | null>;
  /** The field's value is none of these; true for a missing field. */
  nin?: Array<string | number | boolean | null>;
  /** Substring of a string field, or member of an array field. */
  contains?: string | number | boolean | null;
}

/**
 * A metadata filter: `{ AND: [...] }`, `{ OR: [...] }`, `{ NOT: filter }`, or an object of
 * field conditions that must all hold, where a field maps to a {@link FieldCondition} or,
 * as shorthand for `{ eq: value }`, to a scalar. A field may not be named `AND`, `OR` or
 * `NOT`, and a combinator key may not share its object with field conditions. `{}` matches
 * every item.
 *
 * @example
 * ```ts
 * const f: MetadataFilter = { OR: [{ lang: 'en' }, { AND: [{ year: { gte: 2024 } }, { NOT: { draft: true } }] }] };
 * ```
 */
export type MetadataFilter =
  | {
      /** Every filter holds. */
      AND: MetadataFilter[];
    }
  | {
      /** At least one filter holds. */
      OR: MetadataFilter[];
    }
  | {
      /** The filter does not hold. */
      NOT: MetadataFilter;
    }
  | { [field: string]: FieldCondition | string | number | boolean | null };

/**
 * Counts tokens for budgets and capacity; any Generator (its `countTokens`) fits.
 *
 * @example
 * ```ts
 * const tokenizer: MemoryTokenizer = { countTokens: (t) => model.countTokens(t) };
 * ```
 */
export interface MemoryTokenizer {
  /** Tokens of `text` on its own. */
  countTokens(text: string): number | Promise<number>;
}
