/**
 * The order of a decision's fallbacks: the expert graph's affinity from the chosen expert
 * first, the strategy's rank second.
 * @module
 */

/**
 * Picks the best `max` fallbacks by affinity, ties going to the better-ranked expert. Only
 * those are needed, so it runs a selection pass per fallback over weights read once, in
 * scratch arrays kept between calls (one per router: not reentrant).
 * @internal
 */
export class FallbackOrder {
  #w = new Float64Array(64);
  #taken = new Uint8Array(64);

  /** @param max - Fallbacks listed at most. */
  constructor(readonly max: number) {}

  /**
   * @param graph - Affinities: `weight(from, to)`.
   * @param from - The chosen expert.
   * @param ranked - The other candidates, best ranked first.
   * @returns Up to `max` of `ranked`, by descending affinity from `from`.
   */
  select(graph: { weight(from: string, to: string): number }, from: string, ranked: readonly string[]): string[] {
    const n = ranked.length;
    if (this.#w.length < n) {
      this.#w = new Float64Array(2 * n);
      this.#taken = new Uint8Array(2 * n);
    }
    const w = this.#w;
    for (let i = 0; i < n; i++) w[i] = graph.weight(from, ranked[i]!);
    const out: string[] = [];
    const taken = this.#taken.fill(0, 0, n);
    for (let k = 0; k < Math.min(this.max, n); k++) {
      let best = -1;
      for (let i = 0; i < n; i++) if (!taken[i] && (best < 0 || w[i]! > w[best]!)) best = i; // ties: the better rank (lower i)
      taken[best] = 1;
      out.push(ranked[best]!);
    }
    return out;
  }
}
