import { describe, expect, it } from 'vitest';
import { chunkByIds, chunkByWords, largestFit } from '../src/memory/reader-chunks';
import type { Generator } from '../src/llm/index';

/** One token per whitespace-separated word, counted by hand in every case below. */
const words = async (t: string) => t.split(/\s+/).filter(Boolean).length;

describe('largestFit', () => {
  it('finds the largest n that fits, probing only near the answer', async () => {
    for (const answer of [1, 2, 3, 7, 64, 999, 1000]) {
      const probes: number[] = [];
      const n = await largestFit(1, 1000, async (k) => {
        probes.push(k);
        return k <= answer;
      });
      expect(n).toBe(answer);
      expect(Math.max(...probes, 1)).toBeLessThanOrEqual(Math.max(2 * answer, answer + 1));
    }
  });

  it('never returns an unmeasured n, even when fits is not monotone', async () => {
    const measured = new Set<number>([1]);
    const n = await largestFit(1, 50, async (k) => {
      measured.add(k);
      return k !== 4 && k <= 9; // 4 fails although 5..9 fit
    });
    expect(measured.has(n)).toBe(true);
    expect(n).toBeLessThanOrEqual(9);
  });
});

describe('chunkByWords', () => {
  it('cuts at whitespace within the limit; the chunks join to the document', async () => {
    const doc = '  one two three four five six seven ';
    const chunks = await chunkByWords(words, doc, 3, undefined);
    expect(chunks).toEqual([
      { text: '  one two three ', tokens: 3 },
      { text: 'four five six ', tokens: 3 },
      { text: 'seven ', tokens: 1 },
    ]);
    expect(chunks.map((c) => c.text).join('')).toBe(doc);
  });

  it('ends a chunk at a paragraph break in its second half', async () => {
    const doc = 'a b c\n\nd e f g';
    expect((await chunkByWords(words, doc, 4, undefined)).map((c) => c.text)).toEqual(['a b c\n\n', 'd e f g']);
  });

  it('cuts a word longer than the limit between code points', async () => {
    const chars = async (t: string) => Array.from(t.trim()).length; // one token per character
    const chunks = await chunkByWords(chars, '🦫🦫🦫🦫🦫 x', 2, undefined);
    expect(chunks.map((c) => c.text)).toEqual(['🦫🦫', '🦫🦫', '🦫 ', 'x']);
    expect(chunks.every((c) => c.tokens <= 2)).toBe(true);
  });

  it('stops when the signal aborts', async () => {
    const ac = new AbortController();
    ac.abort(new Error('stop'));
    await expect(chunkByWords(words, 'a b c', 1, ac.signal)).rejects.toThrow('stop');
  });
});

describe('chunkByIds', () => {
  const g = {
    encode: async (t: string) => Array.from(t, (c) => c.charCodeAt(0)),
    decode: async (ids: number[]) => String.fromCharCode(...ids),
  } as unknown as Generator;

  it('decodes runs of exactly chunkTokens ids', async () => {
    expect(await chunkByIds(g, 'abcdefg', 3, undefined)).toEqual([
      { text: 'abc', tokens: 3 },
      { text: 'def', tokens: 3 },
      { text: 'g', tokens: 1 },
    ]);
  });

  it('rejects an encode result that is not an array', async () => {
    const bad = { ...g, encode: async () => 'ids' } as unknown as Generator;
    await expect(chunkByIds(bad, 'x', 3, undefined)).rejects.toThrow(new TypeError("Expected array of token ids for generator.encode() result but received 'ids' of type string"));
  });
});
