/**
 * Expert profiles of request-level routing: how one is checked and the text it is matched on.
 * @module
 */
import * as v from '../../validate';
import type { ExpertProfile } from './types';

/**
 * How many times the keywords appear in an expert's profile text (see {@link profileText}):
 * they are the terms users type, so they weigh more than the description (BM25 term
 * frequency, and `1 + ln tf` in the hashed embedding).
 *
 * @example
 * ```ts
 * KEYWORD_REPEAT; // 2
 * ```
 */
export const KEYWORD_REPEAT = 2;

const PROFILE_KEYS = ['id', 'name', 'domain', 'description', 'keywords', 'capacity'];
const MAX_ID_LENGTH = 128;
const DEFAULT_CAPACITY = 4;

/**
 * An {@link ExpertProfile} checked by {@link validateProfile}, with its defaults filled in.
 *
 * @example
 * ```ts
 * const p: ResolvedExpertProfile = validateProfile({ id: 'sql', domain: 'sql', description: 'SQL' });
 * p.capacity; // 4
 * ```
 */
export interface ResolvedExpertProfile {
  /** Unique id, 1 to 128 characters. */
  readonly id: string;
  /** Display name (default: the id). */
  readonly name: string;
  /** Domain label, non-empty. */
  readonly domain: string;
  /** What the expert is good at. */
  readonly description: string;
  /** Terms typical of its queries (default: none). */
  readonly keywords: readonly string[];
  /** Requests it serves at once, an integer >= 1 (default 4). */
  readonly capacity: number;
}

/**
 * Checks an expert profile and fills its defaults (name: the id, keywords: none, capacity: 4).
 * Unknown fields are refused (they are usually typos).
 *
 * @param profile - The profile.
 * @param name - How the profile is named in error messages; default `'profile'`.
 * @returns A frozen copy with every field set.
 * @throws TypeError | RangeError - naming the field: e.g. `Expected string of 1 to 128
 *   characters for profile.id but received '' of type string`.
 *
 * @example
 * ```ts
 * const p = validateProfile({ id: 'api', domain: 'api', description: 'REST APIs', keywords: ['endpoint'] });
 * ```
 */
export function validateProfile(profile: ExpertProfile, name = 'profile'): ResolvedExpertProfile {
  if (profile === undefined) throw v.typeError(name, 'an options object', profile);
  const p = v.options<ExpertProfile>(name, profile, PROFILE_KEYS);
  const idExpected = `string of 1 to ${MAX_ID_LENGTH} characters`;
  if (typeof p.id !== 'string') throw v.typeError(`${name}.id`, idExpected, p.id);
  if (p.id.length === 0 || p.id.length > MAX_ID_LENGTH) throw v.rangeError(`${name}.id`, idExpected, p.id);
  const keywords = p.keywords ?? [];
  if (!Array.isArray(keywords)) throw v.typeError(`${name}.keywords`, 'array of strings', keywords);
  return Object.freeze({
    id: p.id,
    name: p.name === undefined ? p.id : v.string(`${name}.name`, p.name),
    domain: v.nonEmptyString(`${name}.domain`, p.domain),
    description: v.string(`${name}.description`, p.description),
    keywords: Object.freeze(keywords.map((k: unknown, i) => v.string(`${name}.keywords[${i}]`, k))),
    capacity: p.capacity === undefined ? DEFAULT_CAPACITY : v.integer(`${name}.capacity`, p.capacity, 1),
  });
}

/**
 * The text an expert is matched on: name, domain, description, then the keywords
 * {@link KEYWORD_REPEAT} times, separated by full stops.
 *
 * @param profile - A valid profile.
 * @returns The text embedded and indexed for it.
 *
 * @example
 * ```ts
 * profileText({ id: 'sql', domain: 'sql', description: 'Writes queries', keywords: ['join'] });
 * // 'sql. sql. Writes queries. join. join'
 * ```
 */
export function profileText(profile: ExpertProfile | ResolvedExpertProfile): string {
  const parts = [profile.name ?? profile.id, profile.domain, profile.description];
  const keywords = profile.keywords ?? [];
  for (let r = 0; r < KEYWORD_REPEAT; r++) parts.push(...keywords);
  return parts.join('. ');
}

/**
 * The router's check of a profile (stricter than {@link validateProfile}: a name and a
 * description must not be empty, nor any keyword), returning a copy with only the fields given.
 * @param name - How the profile is named in errors (`'options.experts[2]'`, `'profile'`).
 * @internal
 */
export function checkProfile(name: string, profile: unknown): ExpertProfile {
  const p = v.options<ExpertProfile>(name, profile, PROFILE_KEYS);
  const id = v.nonEmptyString(`${name}.id`, p.id);
  if (id.length > MAX_ID_LENGTH) throw v.rangeError(`${name}.id`, `string of at most ${MAX_ID_LENGTH} characters`, id);
  const out: ExpertProfile = { id, domain: v.nonEmptyString(`${name}.domain`, p.domain), description: v.nonEmptyString(`${name}.description`, p.description) };
  if (p.name !== undefined) out.name = v.nonEmptyString(`${name}.name`, p.name);
  if (p.keywords !== undefined) {
    if (!Array.isArray(p.keywords)) throw v.typeError(`${name}.keywords`, 'array of non-empty strings', p.keywords);
    out.keywords = p.keywords.map((k: unknown, i) => v.nonEmptyString(`${name}.keywords[${i}]`, k));
  }
  if (p.capacity !== undefined) out.capacity = v.integer(`${name}.capacity`, p.capacity, 1);
  return out;
}
