/**
 * Readers for persisted strategy state: saved state may be corrupt or from another version, so
 * each field is checked and errors name its path (`json.experts.sql.stats.successes`).
 * @module
 */
import * as v from '../../../validate';

/** A plain object at `path`. */
export function object(path: string, value: unknown): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw v.typeError(path, 'object', value);
  return value as Record<string, unknown>;
}

/** A finite number at `path`, optionally >= min. */
export function num(path: string, value: unknown, min?: number): number {
  return v.finite(path, value, min === undefined ? {} : { min });
}

/** An array of `length` finite numbers at `path`. */
export function numbers(path: string, value: unknown, length: number): number[] {
  if (!Array.isArray(value)) throw v.typeError(path, `Array of ${length} finite numbers`, value);
  if (value.length !== length) throw v.rangeError(path, `Array of ${length} finite numbers`, value);
  for (let i = 0; i < length; i++) num(`${path}[${i}]`, value[i]);
  return value as number[];
}
