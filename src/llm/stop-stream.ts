/**
 * Stop-sequence handling on streamed text, shared by the backends and the server.
 * @module
 */

/**
 * The stop sequence that completes first in `text` — the match that ends earliest (ties: the
 * one that starts earliest) — which is the one a streaming reader meets first.
 */
export function firstStop(text: string, stops: readonly string[]): { index: number; stop: string } | undefined {
  let best: { index: number; stop: string } | undefined;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i < 0) continue;
    const end = i + s.length;
    const bestEnd = best === undefined ? Infinity : best.index + best.stop.length;
    if (end < bestEnd || (end === bestEnd && i < best!.index)) best = { index: i, stop: s };
  }
  return best;
}

/**
 * Passes streamed text to onToken, holding back what may begin a stop sequence, so the
 * pieces passed on concatenate to the final text and never contain a stop sequence.
 */
export class StopStream {
  raw = '';
  #emitted = 0;
  #stopped = false;
  constructor(
    private readonly stops: readonly string[],
    private readonly onToken: ((piece: string, tokenId?: number) => void) | undefined,
  ) {}

  /** True once a stop sequence appeared in the text pushed so far. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * Appends `piece` (one token's text when `tokenId` is given); returns the stop hit when
   * this piece completed one.
   */
  push(piece: string, tokenId?: number): { index: number; stop: string } | undefined {
    const start = this.raw.length;
    this.raw += piece;
    if (this.#stopped) return undefined;
    // Only a match that ends in the new piece can be new: search from where it could begin.
    const from = Math.max(0, start - this.#longestStop + 1);
    const hit = firstStop(this.raw.slice(from), this.stops);
    if (hit) {
      hit.index += from;
      this.#release(hit.index);
      this.#stopped = true;
      return hit;
    }
    let hold = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, this.raw.length); k > hold; k--) {
        if (this.raw.endsWith(s.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    this.#release(this.raw.length - hold, start, tokenId);
    return undefined;
  }

  /** The final text is `raw.slice(0, textEnd)`: release what is left of it. */
  end(textEnd: number): void {
    this.#release(textEnd);
    this.#stopped = true;
  }

  /** On abort: the text so far is what was already passed on (held-back text may begin a stop). */
  flushOnAbort(): string {
    this.#stopped = true;
    return this.raw.slice(0, this.#emitted);
  }

  get #longestStop(): number {
    let n = 0;
    for (const s of this.stops) n = Math.max(n, s.length);
    return n;
  }

  // A released piece that is exactly the newest token's text carries its id.
  #release(end: number, tokenStart?: number, tokenId?: number): void {
    if (end <= this.#emitted) return;
    const piece = this.raw.slice(this.#emitted, end);
    const exact = tokenId !== undefined && this.#emitted === tokenStart && end === this.raw.length;
    this.#emitted = end;
    this.onToken?.(piece, exact ? tokenId : undefined);
  }
}
