/**
 * Records keyed by labels that come from callers (expert ids, domains, categories).
 * @module
 */

/**
 * A record with no prototype, filled from `entries`: any key — `'__proto__'`, `'constructor'`
 * — is an ordinary own key, so a caller's label can neither vanish nor reach `Object.prototype`.
 */
export function dict<T>(entries: Iterable<readonly [string, T]> = []): Record<string, T> {
  const out = Object.create(null) as Record<string, T>;
  for (const [k, x] of entries) out[k] = x;
  return out;
}
