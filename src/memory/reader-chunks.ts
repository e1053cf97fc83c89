/**
 * How the MemAgent reader cuts a document into chunks: at exact token boundaries when the
 * generator can encode and decode, otherwise at whitespace with measured token counts.
 * @module
 */
import type { Generator } from '../llm/index';
import * as v from '../validate';

/**
 * One chunk of a document as {@link MemAgentReader.chunk} cut it.
 *
 * @example
 * ```ts
 * const chunks: ReaderChunk[] = await reader.chunk(longText);
 * console.log(chunks.length, chunks[0]?.tokens);
 * ```
 */
export interface ReaderChunk {
  /** The chunk's text. */
  text: string;
  /**
   * Its tokens: the exact number of token ids in the chunk when the generator has
   * `encode`/`decode`, else `countTokens(text)`.
   */
  tokens: number;
}

/**
 * Tokens of `text` by the generator, checked to be an integer >= 0.
 * @internal
 */
export async function countTokens(g: Generator, text: string): Promise<number> {
  return v.integer('generator.countTokens() result', await g.countTokens(text), 0);
}

/**
 * Largest `n` in `[lo, hi]` with `fits(n)`, where `fits(lo)` holds. Gallops up from `lo`, then
 * bisects: probes stay within about twice the answer, so cutting a whole document costs O(N)
 * text counted instead of probing halves of it. Only a measured fit is ever returned, so a
 * tokenizer that is not quite monotone under concatenation cannot make a chunk exceed the limit.
 * @internal
 */
export async function largestFit(lo: number, hi: number, fits: (n: number) => Promise<boolean>): Promise<number> {
  let step = 1;
  let galloping = true;
  while (lo < hi) {
    const probe = galloping ? Math.min(hi, lo + step) : lo + Math.ceil((hi - lo) / 2);
    if (await fits(probe)) {
      lo = probe;
      step *= 2;
    } else {
      hi = probe - 1;
      galloping = false;
    }
  }
  return lo;
}

/**
 * MemAgent's own cut: the document's token ids in runs of `chunkTokens`, each decoded.
 * @internal
 */
export async function chunkByIds(g: Generator, document: string, chunkTokens: number, signal: AbortSignal | undefined): Promise<ReaderChunk[]> {
  const ids: unknown = await g.encode!(document);
  if (!Array.isArray(ids)) throw v.typeError('generator.encode() result', 'array of token ids', ids);
  const chunks: ReaderChunk[] = [];
  for (let at = 0; at < ids.length; at += chunkTokens) {
    signal?.throwIfAborted();
    const slice = (ids as number[]).slice(at, at + chunkTokens);
    chunks.push({ text: v.string('generator.decode() result', await g.decode!(slice)), tokens: slice.length });
  }
  return chunks;
}

/**
 * The cut at whitespace (paragraph breaks preferred), each chunk as long as `count` allows
 * within `limit`; a longer word is cut between code points. The chunks join to the document.
 * @internal
 */
export async function chunkByWords(count: (text: string) => Promise<number>, document: string, limit: number, signal: AbortSignal | undefined): Promise<ReaderChunk[]> {
  // Words with their trailing whitespace; leading whitespace joins the first: nothing is lost.
  const pieces: string[] = document.match(/\S+\s*/g) ?? [];
  const lead = /^\s*/.exec(document)![0];
  if (lead !== '') {
    if (pieces.length > 0) pieces[0] = lead + pieces[0];
    else pieces.push(lead);
  }
  const chunks: ReaderChunk[] = [];
  let i = 0;
  while (i < pieces.length) {
    signal?.throwIfAborted();
    const first = pieces[i]!;
    const firstTokens = await count(first);
    if (firstTokens > limit) {
      // A word over the limit: cut it between code points; its rest is read next.
      const chars = Array.from(first);
      const counts = new Map<number, number>();
      const fits = async (k: number) => {
        const n = await count(chars.slice(0, k).join(''));
        counts.set(k, n);
        return n <= limit;
      };
      const k = (await fits(1)) ? await largestFit(1, chars.length - 1, fits) : 1;
      chunks.push({ text: chars.slice(0, k).join(''), tokens: counts.get(k)! });
      const rest = chars.slice(k).join('');
      if (rest === '') i++;
      else pieces[i] = rest;
      continue;
    }
    const counts = new Map<number, number>([[1, firstTokens]]);
    const measure = async (n: number) => {
      let c = counts.get(n);
      if (c === undefined) {
        c = await count(pieces.slice(i, i + n).join(''));
        counts.set(n, c);
      }
      return c;
    };
    let n = await largestFit(1, pieces.length - i, async (m) => (await measure(m)) <= limit);
    // End at the last paragraph break of the chunk's second half, so chunks hold whole paragraphs.
    const paragraphEnd = (p: number) => /\n[^\S\n]*\n\s*$/.test(pieces[i + p - 1]!);
    if (i + n < pieces.length && !paragraphEnd(n)) {
      for (let p = n - 1; p >= Math.ceil(n / 2); p--) {
        if (paragraphEnd(p)) {
          // Counted again: a tokenizer may count a shorter text as more tokens at its seam.
          if ((await measure(p)) <= limit) n = p;
          break;
        }
      }
    }
    chunks.push({ text: pieces.slice(i, i + n).join(''), tokens: counts.get(n)! });
    i += n;
  }
  return chunks;
}
